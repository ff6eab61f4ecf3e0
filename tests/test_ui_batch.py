"""Batch power actions from the control room, against the real simulator in-process.

The simulated data center (12 servers, seed 7) runs in the test's event loop
with real Redfish BMCs, SSH servers and DICOM nodes on a random 127.N
loopback range; the app uses the installed probe and action plugins and its
own poller. Dependencies: rtr-001 ← gw-northgate-1, bkp-stor-01 ←
bkp-arch-01; web-001 and web-002 have no dependents.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from pacs_tui.batch.audit import AuditEvent
from pacs_tui.inventory import load_inventory
from pacs_tui.power import PowerState
from pacs_tui.sim.datacenter import SimOptions, SimulatedDataCenter
from pacs_tui_widgets.abort_prompt import AbortPrompt
from pacs_tui_widgets.app import ControlRoomApp
from pacs_tui_widgets.keymap import KeymapConfig
from pacs_tui_widgets.plan_screen import PlanScreen
from ui_pilot import notifications, screen_text, wait_for

pytestmark = pytest.mark.timeout(240)

SIZE = (160, 60)
SETTINGS = {"batch_poll_s": 0.1, "redfish_task_poll_s": 0.05}


@dataclass
class Room:
    center: SimulatedDataCenter
    app: ControlRoomApp
    pilot: Pilot[Any]

    def power(self, name: str) -> PowerState:
        return self.center.hosts[name].power_state

    def audit(self, kind: str | None = None) -> list[AuditEvent]:
        events = self.app.session.audit.events()
        return [e for e in events if kind is None or e.kind == kind]

    async def mark(self, *names: str) -> None:
        for name in names:
            assert self.app.grid.move_to(name), name
            await self.pilot.press("space")
        assert self.app.grid.marks == set(names)

    async def plan_screen(self, key: str) -> PlanScreen:
        await self.pilot.press(key)
        await wait_for(self.pilot, lambda: isinstance(self.app.screen, PlanScreen), 30, "plan")
        screen = self.app.screen
        assert isinstance(screen, PlanScreen)
        await self.pilot.pause()
        return screen

    async def batch_done(self, timeout: float = 60) -> None:
        await wait_for(
            self.pilot,
            lambda: self.app.runner is not None and not self.app.batch_active,
            timeout,
            "the batch to end",
        )
        await self.pilot.pause(0.3)  # one pane drain (4 Hz)


@asynccontextmanager
async def control_room(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Room]:
    monkeypatch.setenv("PACS_TUI_DATA_DIR", str(tmp_path / "data"))
    options = SimOptions(servers=12, address_octet=random.randint(100, 250), time_scale=0.02)
    center = SimulatedDataCenter(options)
    paths = center.write_client_files(tmp_path / "dc")
    await center.start()
    try:
        inventory = load_inventory(paths["inventory"])
        app = ControlRoomApp(
            inventory, settings=SETTINGS, keymap=KeymapConfig(), theme_dir=tmp_path / "themes"
        )
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await wait_for(
                pilot,
                lambda: (
                    app.session.actions.keys() >= {"redfish-reset", "ssh-control"}
                    and all(app.state.latest(s, "power") is not None for s in app.servers)
                ),
                timeout=90,
                what="action plugins open and a power reading of every server",
            )
            yield Room(center, app, pilot)
            await app.monitor.stop()
    finally:
        await center.stop()
    assert (tmp_path / "data" / "audit.sqlite3").exists()


async def test_escape_sends_nothing_then_off_runs_in_waves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with control_room(tmp_path, monkeypatch) as room:
        app, pilot = room.app, room.pilot
        await room.mark("gw-northgate-1", "rtr-001")
        await room.plan_screen("O")
        await pilot.press("escape")
        assert not isinstance(app.screen, PlanScreen)
        assert app.runner is None  # no runner was ever built
        declined = room.audit("confirm")
        assert [e.outcome for e in declined] == ["declined"] and "escape" in declined[0].detail
        assert not room.audit("step")

        await room.plan_screen("O")
        text = screen_text(app)
        assert "wave 1: gw-northgate-1" in text and "wave 2: rtr-001" in text
        assert "GracefulShutdown" in text and "systemctl stop" in text
        assert "nothing has been sent" in text
        assert room.power("gw-northgate-1") is PowerState.ON  # planning sent nothing
        await pilot.press("enter")
        await wait_for(pilot, lambda: not isinstance(app.screen, PlanScreen), 10, "plan closed")
        assert app.batch_pane.display
        await room.batch_done()
        assert room.power("gw-northgate-1") is PowerState.OFF
        assert room.power("rtr-001") is PowerState.OFF
        assert room.power("web-001") is PowerState.ON
        assert app.runner is not None and app.runner.result.ok
        assert app.batch_pane.results == {"gw-northgate-1": "reached", "rtr-001": "reached"}
        # Dependents went first: gw's result is in the log before rtr's first step.
        batch = app.runner.batch_id
        rows = [e for e in room.audit() if e.batch == batch]
        order = [(e.kind, e.server) for e in rows]
        gw_done = order.index(("server", "gw-northgate-1"))
        rtr_first = next(i for i, (k, s) in enumerate(order) if s == "rtr-001")
        assert gw_done < rtr_first
        kinds = {e.kind for e in rows}
        assert {"plan", "confirm", "batch-start", "step", "server", "batch-end"} <= kinds
        assert any("GracefulShutdown" in e.call for e in rows if e.server == "rtr-001")
        # The grid shows what the poller read back.
        assert app.state.latest("rtr-001", "power").state == "Off"  # type: ignore[union-attr]
        # The grid redraws state changes at 2 Hz: wait for the row, do not race it.
        await wait_for(
            pilot,
            lambda: any(
                " rtr-001 " in line and "Off" in line for line in screen_text(app).splitlines()
            ),
            10,
            "the grid row of rtr-001 to show Off",
        )
        assert any("OK" in n and batch in n for n in notifications(app))


async def test_force_off_needs_the_typed_count_and_refusals_need_the_override(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with control_room(tmp_path, monkeypatch) as room:
        app, pilot = room.app, room.pilot
        assert app.grid.move_to("web-002")  # nothing marked: the cursor's server
        screen = await room.plan_screen("F")
        assert "Type 1 to confirm" in screen_text(app)
        await pilot.press("2", "enter")
        assert isinstance(app.screen, PlanScreen)
        assert "wrong count" in screen_text(app)
        assert room.audit("confirm")[-1].outcome == "declined"
        assert room.power("web-002") is PowerState.ON and app.runner is None
        await pilot.press("1", "enter")
        await room.batch_done()
        assert room.power("web-002") is PowerState.OFF
        assert [e.outcome for e in room.audit("confirm")] == ["declined", "confirmed"]
        assert any("ForceOff" in e.call for e in room.audit("step"))

        # bkp-arch-01 depends on bkp-stor-01 and is on: powering the storage off is refused.
        assert app.grid.move_to("bkp-stor-01")
        screen = await room.plan_screen("O")
        text = screen_text(app)
        assert "REFUSED" in text and "bkp-arch-01" in text
        await pilot.press("enter")
        assert isinstance(app.screen, PlanScreen) and "nothing was sent" in screen_text(app)
        first_runner = app.runner
        await pilot.press("ctrl+o")
        await wait_for(pilot, lambda: screen.plan.overridden and not screen.busy, 30, "override")
        assert not screen.plan.refused
        assert "overridden" in screen_text(app)
        assert room.power("bkp-stor-01") is PowerState.ON
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.runner is not first_runner, 10, "a new batch")
        await room.batch_done()
        assert room.power("bkp-stor-01") is PowerState.OFF
        assert room.power("bkp-arch-01") is PowerState.ON
        overrides = room.audit("override")
        assert overrides and "bkp-arch-01" in overrides[-1].detail


async def test_pause_resume_escalation_navigation_and_abort(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with control_room(tmp_path, monkeypatch) as room:
        app, pilot = room.app, room.pilot
        room.center.hosts["gw-northgate-1"].faults.ignore_graceful_shutdown = True
        await room.mark("gw-northgate-1", "rtr-001")
        screen = await room.plan_screen("O")
        assert "only if the wait before timed out" not in screen_text(app)  # no escalation
        app.set_focus(screen.query_one("#plan-escalate"))
        # The escalation input: re-plan, do not run. 3 s, so the pause below lands
        # before the graceful wait ends even on a loaded machine.
        await pilot.press("3", "enter")
        await wait_for(pilot, lambda: screen.plan.options.escalate_after_s == 3.0, 30, "replan")
        await wait_for(
            pilot,
            lambda: "only if the wait before timed out" in screen_text(app),
            10,
            "the escalation ForceOff in the dry-run calls",
        )
        assert app.runner is None
        app.set_focus(None)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.batch_active, 10, "the batch to start")
        await pilot.press("p")
        runner = app.runner
        assert runner is not None and runner.paused

        def wait_timed_out() -> bool:
            return any(
                e.server == "gw-northgate-1" and e.outcome == "timeout" for e in room.audit("step")
            )

        # The graceful shutdown is ignored; after 3 s the wait times out, and the
        # ForceOff that follows is held by the pause.
        await wait_for(pilot, wait_timed_out, 30, "the graceful wait to time out")
        cursor = app.grid.cursor
        await pilot.press("j", "j")  # the grid keeps working during the batch
        assert app.grid.cursor == cursor + 2
        await pilot.pause(0.6)  # a window in which a ForceOff would have been sent
        assert room.power("gw-northgate-1") is PowerState.ON
        assert not any("ForceOff" in e.call for e in room.audit("step"))
        assert app.batch_pane.status == "paused"
        await pilot.press("p")
        await room.batch_done()
        assert room.power("gw-northgate-1") is PowerState.OFF
        assert room.power("rtr-001") is PowerState.OFF
        assert {e.kind for e in room.audit()} >= {"pause", "resume"}

        # Abort: web-001 ignores its shutdown and waits; abort stops the batch.
        room.center.hosts["web-001"].faults.ignore_graceful_shutdown = True
        await pilot.press("escape")  # clear the marks
        await room.mark("web-001")
        await room.plan_screen("O")
        await pilot.press("enter")
        await wait_for(
            pilot,
            lambda: any(
                e.server == "web-001" and "GracefulShutdown" in e.call for e in room.audit("step")
            ),
            30,
            "web-001's shutdown call",
        )
        await pilot.press("A")
        await wait_for(pilot, lambda: isinstance(app.screen, AbortPrompt), 5, "abort prompt")
        await pilot.press("y")
        await room.batch_done()
        assert app.runner is not None and app.runner.result.aborted
        assert app.runner.result.servers["web-001"].status == "aborted"
        assert room.power("web-001") is PowerState.ON
        assert any(e.kind == "abort" for e in room.audit())
        assert any("ABORTED" in n for n in notifications(app))
