"""Batch UI pieces without a fleet: bindings per session, commands, the pane, the snapshot.

The plan for the snapshot is built by the real planner from a fixed
inventory and fixed power facts (the built-in action plugins build their
steps without I/O), so the screen is the same on every run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from textual.app import App, ComposeResult

from pacs_tui.batch.confirm import Confirmation, ConfirmationRule
from pacs_tui.batch.plan import BatchPlan, PlanOptions, build_plan
from pacs_tui.batch.progress import BatchProgress
from pacs_tui.batch.readings import PowerFacts
from pacs_tui.inventory import load_inventory_text
from pacs_tui.session import ReadOnlySession, Session
from pacs_tui_redfish_reset.action import RedfishResetAction
from pacs_tui_ssh_control.action import SshControlAction
from pacs_tui_widgets.app import ControlRoomApp
from pacs_tui_widgets.batch_desk import BATCH_BINDING_IDS
from pacs_tui_widgets.batch_pane import BatchPane
from pacs_tui_widgets.command_line import CommandError
from pacs_tui_widgets.health_style import STATE_VARIABLE_DEFAULTS
from pacs_tui_widgets.plan_screen import PlanDecision, PlanScreen
from ui_pilot import make_app, run_command, screen_text, wait_for

pytestmark = pytest.mark.timeout(60)
RESETS = ("On", "ForceOff", "GracefulShutdown", "GracefulRestart", "ForceRestart")


def fixed_inventory(tmp_path: Path) -> Any:
    """stor ← db ← arch ← view-1, view-2 (view-1 without SSH), all with BMCs."""
    key = tmp_path / "key"
    key.write_text("not a real key\n")
    key.chmod(0o600)
    servers: list[dict[str, Any]] = []
    for n, (name, role, deps) in enumerate(
        [("stor", "storage", []), ("db", "database", ["stor"]), ("arch", "archive", ["db"]),
         ("view-1", "web-viewer", ["arch"]), ("view-2", "web-viewer", ["arch"])], start=1,
    ):  # fmt: skip
        entry: dict[str, Any] = {"name": name, "site": "dc", "role": role, "depends_on": deps}
        entry["bmc"] = {"address": f"127.9.0.{n}"}
        if name != "view-1":
            entry["ssh"] = {"host": f"127.9.0.{n}"}
        servers.append(entry)
    doc = {
        "sites": [{"name": "dc", "kind": "datacenter"}],
        "credentials": {"bmc": {"password_env": "NOPE"}, "ssh": {"key_file": "key"}},
        "defaults": {
            "bmc": {"port": 8443, "credentials": "bmc", "verify_tls": False},
            "ssh": {"port": 2222, "user": "ops", "credentials": "ssh"},
        },
        "servers": servers,
    }
    return load_inventory_text(yaml.safe_dump(doc), tmp_path / "inventory.yaml")


def fixed_plan(tmp_path: Path, names: list[str], verb: str = "off") -> BatchPlan:
    inventory = fixed_inventory(tmp_path)
    facts = {
        s.name: PowerFacts(
            "On", RESETS, {"system_path": "/redfish/v1/Systems/1",
                           "reset_target": "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset"},
        )
        for s in inventory.servers
    }  # fmt: skip
    actions = {"redfish-reset": RedfishResetAction(), "ssh-control": SshControlAction()}
    return build_plan(
        inventory,
        names,
        verb,
        facts,
        actions,
        PlanOptions(),
        selection="marked: " + ", ".join(names),
    )


class PlanHost(App[None]):
    """Shows one plan screen, as the control room would push it."""

    def __init__(self, plan: BatchPlan) -> None:
        super().__init__()
        self.plan = plan
        self.recorded: list[tuple[str, bool]] = []
        self.decision: PlanDecision | None = None

    def get_theme_variable_defaults(self) -> dict[str, str]:
        return {**super().get_theme_variable_defaults(), **STATE_VARIABLE_DEFAULTS}

    def compose(self) -> ComposeResult:
        return iter(())

    def on_mount(self) -> None:
        async def replan(options: PlanOptions) -> tuple[BatchPlan, str]:
            raise AssertionError("not re-planned in this test")

        def record(plan: BatchPlan, batch: str, conf: Confirmation | None, ok: bool) -> None:
            self.recorded.append((conf.how if conf else "none", ok))

        def decided(decision: PlanDecision | None) -> None:
            self.decision = decision

        screen = PlanScreen(
            self.plan, "0123456789ab", rule=ConfirmationRule(), replan=replan, record=record
        )
        self.push_screen(screen, decided)


def test_plan_screen_snapshot(snap_compare: Any, tmp_path: Path) -> None:
    # view-2 is on and not selected: the plan shows the refusal next to the waves and calls.
    plan = fixed_plan(tmp_path, ["db", "arch", "view-1"])
    assert plan.refused
    assert snap_compare(PlanHost(plan), terminal_size=(120, 46))


async def test_plan_screen_dry_run_and_typed_confirmation(tmp_path: Path) -> None:
    plan = fixed_plan(tmp_path, ["view-1"], verb="force-off")
    host = PlanHost(plan)
    async with host.run_test(size=(120, 46)) as pilot:
        await pilot.pause()
        assert "Type 1 to confirm" in screen_text(host)  # type: ignore[arg-type]
        await pilot.press("enter")  # empty answer
        assert isinstance(host.screen, PlanScreen) and host.recorded == [("typed", False)]
        await pilot.press("ctrl+t")
        await wait_for(pilot, lambda: host.decision is not None)
        assert host.decision is not None and host.decision.dry_run
        assert host.decision.confirmation is None


async def test_read_only_room_binds_no_batch_key_and_cannot_build_a_runner() -> None:
    app, _ = make_app(read_only=True)
    assert app.session.read_only and app.runner is None
    ids = {row.binding_id for row in app.binding_rows({})}
    assert ids.isdisjoint(BATCH_BINDING_IDS) and "app.audit" in ids
    with pytest.raises(ReadOnlySession):
        app.session.require_writable("build a batch runner")
    async with app.run_test(size=(150, 44)) as pilot:
        await pilot.press("O", "F", "N", "R", "b", "A", "p")
        assert not isinstance(app.screen, PlanScreen)
        assert not set(app.active_bindings) & {"O", "N", "R", "F", "A", "b", "p"}
        with pytest.raises(CommandError, match="refused"):
            app.execute_command("power off")
    with pytest.raises(ValueError, match="read-only"):
        ControlRoomApp(app.inventory, read_only=True, probes=[], session=Session(app.inventory))


async def test_writable_room_lists_batch_keys_and_checks_power_commands() -> None:
    app, _ = make_app()
    ids = {row.binding_id for row in app.binding_rows({})}
    assert set(BATCH_BINDING_IDS) <= ids and {"plan.run", "plan.cancel", "abort.yes"} <= ids
    titles = [entry.title for entry in app.palette_commands()]
    assert "FORCE off marked servers" in titles and "Audit log" in titles
    async with app.run_test(size=(150, 100)) as pilot:
        assert {"O", "N", "R", "F", "A", "b", "p", "L"} <= set(app.active_bindings)
        with pytest.raises(CommandError, match="power off"):
            app.execute_command("power sideways")
        with pytest.raises(CommandError) as bad:
            app.execute_command("power off role=(")
        assert bad.value.position is not None and bad.value.position > len("power off")
        await run_command(pilot, app, "help")
        await pilot.pause()
        text = screen_text(app)
        for binding_id in BATCH_BINDING_IDS:
            assert binding_id in text
        assert ":power off|on|restart|force-off" in text


async def test_batch_pane_coalesces_a_burst_of_events_into_one_redraw(tmp_path: Path) -> None:
    plan = fixed_plan(tmp_path, ["stor", "db", "arch", "view-1", "view-2"])

    class PaneHost(App[None]):
        def get_theme_variable_defaults(self) -> dict[str, str]:
            return {**super().get_theme_variable_defaults(), **STATE_VARIABLE_DEFAULTS}

        def compose(self) -> ComposeResult:
            yield BatchPane(id="batch")

    host = PaneHost()
    async with host.run_test(size=(120, 30)) as pilot:
        pane = host.query_one(BatchPane)
        pane.show_dry_run(plan, "feedbeef0001")
        pane.status = "running"
        before = pane.redraws

        def event(kind: str, n: int, **kw: Any) -> BatchProgress:
            return BatchProgress(kind, "feedbeef0001", "off", 1, 5, 0, 1, n, 5, n * 0.1, None, **kw)

        for i in range(500):  # a burst far faster than the screen: queued, not drawn
            pane.pending.append(event("step", 0, server="view-2", call=f"GET #{i}", outcome="ok"))
        pane.pending.append(event("server", 1, server="view-2", outcome="reached"))
        pane.pending.append(event("server", 2, server="view-1", outcome="failed", detail="boom"))
        pane.drain()
        assert pane.redraws == before + 1 and not pane.pending
        assert pane.results == {"view-2": "reached", "view-1": "failed"}
        await pilot.pause()
        assert "1 FAILED" in str(pane.query_one("#batch-title").render())
