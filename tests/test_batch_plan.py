"""Batch plans, dry runs, confirmation rules, gates and read-only sessions (pure logic).

The action plugins used here are the real built-in ones: building their
steps does no I/O, so no device is needed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pacs_tui.batch.audit import AuditLog
from pacs_tui.batch.confirm import Confirmation, ConfirmationRequired, ConfirmationRule
from pacs_tui.batch.dry_run import dry_run_lines
from pacs_tui.batch.gates import GatePolicy, judge, parse_gate_spec
from pacs_tui.batch.plan import (
    HINT_DEPENDENTS,
    HINT_NO_BMC,
    HINT_NO_ESCALATION,
    HINT_NO_GRACEFUL,
    PlanError,
    PlanOptions,
    StepKind,
    build_plan,
)
from pacs_tui.batch.readings import PowerFacts
from pacs_tui.batch.runner import BatchRunner, PlanRefused
from pacs_tui.inventory import Inventory, load_inventory_text
from pacs_tui.plugin_api import Health, ProbeResult
from pacs_tui.session import ReadOnlySession, Session
from pacs_tui_redfish_reset.action import RedfishResetAction
from pacs_tui_ssh_control.action import SshControlAction

ALL_RESETS = ("On", "ForceOff", "GracefulShutdown", "GracefulRestart", "ForceRestart")


def inventory(tmp_path: Path, *, read_only: bool = False) -> Inventory:
    """storage ← database ← archive ← viewer-1, viewer-2; 'lone' has no BMC."""
    key = tmp_path / "key"
    key.write_text("not a real key\n")
    key.chmod(0o600)
    doc = {
        "read_only": read_only,
        "sites": [{"name": "dc", "kind": "datacenter"}],
        "credentials": {"bmc": {"password_env": "NOPE"}, "ssh": {"key_file": "key"}},
        "defaults": {
            "bmc": {"port": 8443, "credentials": "bmc", "verify_tls": False},
            "ssh": {"port": 2222, "user": "ops", "credentials": "ssh"},
        },
        "servers": [
            {"name": "stor", "site": "dc", "role": "storage",
             "bmc": {"address": "127.9.0.1"}, "ssh": {"host": "127.9.0.1"}},
            {"name": "db", "site": "dc", "role": "database", "depends_on": ["stor"],
             "bmc": {"address": "127.9.0.2"}, "ssh": {"host": "127.9.0.2"}},
            {"name": "arch", "site": "dc", "role": "archive", "depends_on": ["db"],
             "bmc": {"address": "127.9.0.3"}, "ssh": {"host": "127.9.0.3"},
             "dicom": {"host": "127.9.0.3", "port": 11112, "ae_title": "ARCH"}},
            {"name": "view-1", "site": "dc", "role": "web-viewer", "depends_on": ["arch"],
             "bmc": {"address": "127.9.0.4"}},
            {"name": "view-2", "site": "dc", "role": "web-viewer", "depends_on": ["arch"],
             "bmc": {"address": "127.9.0.5"}, "ssh": {"host": "127.9.0.5"}},
            {"name": "lone", "site": "dc", "role": "web-viewer"},
        ],
    }  # fmt: skip
    return load_inventory_text(yaml.safe_dump(doc), tmp_path / "inventory.yaml")


def facts(
    state: str = "On", resets: tuple[str, ...] = ALL_RESETS, **overrides: str
) -> dict[str, PowerFacts]:
    names = ("stor", "db", "arch", "view-1", "view-2", "lone")
    out = {
        n: PowerFacts(
            state=overrides.get(n.replace("-", "_"), state),
            reset_types=resets,
            facts={
                "reset_target": "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset",
                "system_path": "/redfish/v1/Systems/1",
            },
        )
        for n in names
    }
    return out


ACTIONS = {"redfish-reset": RedfishResetAction(), "ssh-control": SshControlAction()}


def names(plan) -> list[list[str]]:  # type: ignore[no-untyped-def]
    return [[sp.server.name for sp in wave.servers] for wave in plan.waves]


def test_off_goes_dependents_first_and_on_dependencies_first(tmp_path: Path) -> None:
    inv = inventory(tmp_path)
    chain = ["stor", "db", "arch", "view-1", "view-2"]
    off = build_plan(inv, chain, "off", facts(), ACTIONS)
    assert not off.refused
    assert names(off) == [["view-1", "view-2"], ["arch"], ["db"], ["stor"]]
    on = build_plan(inv, chain, "on", facts("Off"), ACTIONS)
    assert names(on) == [["stor"], ["db"], ["arch"], ["view-1", "view-2"]]


def test_off_steps_stop_units_then_graceful_shutdown_then_wait(tmp_path: Path) -> None:
    plan = build_plan(
        inventory(tmp_path), ["arch"], "off", facts(view_1="Off", view_2="Off"), ACTIONS
    )
    steps = plan.servers[0].steps
    assert [s.kind for s in steps] == [StepKind.CALL, StepKind.CALL, StepKind.WAIT]
    assert steps[0].call == "ssh ops@127.9.0.3:2222 systemctl stop pacs pacs-archive"
    assert steps[0].optional
    assert steps[1].call == (
        "POST https://127.9.0.3:8443/redfish/v1/Systems/1/Actions/ComputerSystem.Reset "
        "ResetType=GracefulShutdown"
    )
    assert "PowerState=Off" in steps[2].call and "300 s" in steps[2].call
    assert not any(s.escalation for s in steps)


def test_escalation_adds_force_off_after_the_graceful_wait(tmp_path: Path) -> None:
    options = PlanOptions(escalate_after_s=45, power_timeout_s=120)
    plan = build_plan(inventory(tmp_path), ["view-1"], "off", facts(), ACTIONS, options)
    steps = plan.servers[0].steps
    # view-1 has no SSH: no unit stop; then graceful, wait 45 s, ForceOff, wait 120 s.
    assert [s.call.split(" ")[-1] if s.kind is StepKind.CALL else s.kind for s in steps] == [
        "ResetType=GracefulShutdown", StepKind.WAIT, "ResetType=ForceOff", StepKind.WAIT,
    ]  # fmt: skip
    assert steps[1].timeout_s == 45 and steps[1].escalate_on_timeout
    assert steps[2].escalation and steps[3].escalation and steps[3].timeout_s == 120


def test_bmc_without_graceful_shutdown_uses_ssh_shutdown(tmp_path: Path) -> None:
    resets = ("On", "ForceOff")
    plan = build_plan(inventory(tmp_path), ["view-2"], "off", facts(resets=resets), ACTIONS)
    calls = [s.call for s in plan.servers[0].steps]
    assert "ssh ops@127.9.0.5:2222 shutdown -h now" in calls
    assert not any("GracefulShutdown" in c for c in calls)
    # view-1 has no SSH either: there is no graceful way down, and the plan says so.
    refused = build_plan(inventory(tmp_path), ["view-1"], "off", facts(resets=resets), ACTIONS)
    assert refused.refused and "no graceful way down" in refused.refusals[0]
    # The hint fits this refusal, not the one for unselected dependents.
    assert refused.hints == (HINT_NO_GRACEFUL,)
    assert "override-dependents" not in "\n".join(dry_run_lines(refused))


def test_each_refusal_kind_has_its_own_hint(tmp_path: Path) -> None:
    inv = inventory(tmp_path)
    both = build_plan(
        inv, ["arch", "view-1"], "off", facts(view_2="On", resets=("On", "ForceOff")), ACTIONS
    )
    assert set(both.hints) == {HINT_DEPENDENTS, HINT_NO_GRACEFUL}
    lone = build_plan(inv, ["lone"], "on", facts("Off"), ACTIONS)
    assert lone.hints == (HINT_NO_BMC,)
    escalate = PlanOptions(escalate_after_s=5)
    no_force = build_plan(
        inv, ["view-2"], "off", facts(resets=("GracefulShutdown",)), ACTIONS, escalate
    )
    assert no_force.hints == (HINT_NO_ESCALATION,)


def test_unknown_power_states_are_left_out_unless_included(tmp_path: Path) -> None:
    inv = inventory(tmp_path)
    for word in ("Unknown", "Starting"):
        plan = build_plan(inv, ["view-1", "view-2"], "force-off", facts(view_1=word), ACTIONS)
        by_name = {sp.server.name: sp for sp in plan.servers}
        assert by_name["view-1"].left_out and not by_name["view-1"].steps
        assert "state unknown" in by_name["view-1"].skip_reason
        assert [sp.server.name for sp in plan.touched] == ["view-2"]
        assert "1 left out (state unknown)" in plan.summary()
        assert any("LEFT OUT" in line for line in dry_run_lines(plan))
        included = build_plan(
            inv, ["view-1"], "force-off", facts(view_1=word), ACTIONS,
            PlanOptions(include_unknown=frozenset({"view-1"})),
        )  # fmt: skip
        assert included.touched and included.included_unknown[0].startswith("view-1: PowerState")


def test_unselected_dependents_that_are_on_refuse_the_plan(tmp_path: Path) -> None:
    inv = inventory(tmp_path)
    plan = build_plan(inv, ["arch"], "off", facts(view_2="Off"), ACTIONS)
    assert plan.refusals == ("arch: dependent view-1 is not selected and is still On",)
    unknown = build_plan(inv, ["arch"], "off", facts(view_1="Off", view_2="Unknown"), ACTIONS)
    assert "view-2 is not selected and is Unknown" in unknown.refusals[0]
    fine = build_plan(inv, ["arch"], "off", facts(view_1="Off", view_2="Off"), ACTIONS)
    assert not fine.refused
    forced = build_plan(inv, ["arch"], "force-off", facts(view_2="Off"), ACTIONS)
    assert forced.refused
    override = PlanOptions(override_dependents=True)
    overridden = build_plan(inv, ["arch"], "off", facts(view_2="Off"), ACTIONS, override)
    assert not overridden.refused
    assert overridden.overridden == ("arch: dependent view-1 is not selected and is still On",)
    # Powering on never needs the dependents.
    assert not build_plan(inv, ["arch"], "on", facts("Off"), ACTIONS).refused


def test_servers_already_at_target_are_skipped(tmp_path: Path) -> None:
    inv = inventory(tmp_path)
    plan = build_plan(inv, ["view-1", "view-2"], "off", facts(view_1="Off"), ACTIONS)
    by_name = {sp.server.name: sp for sp in plan.servers}
    assert by_name["view-1"].skipped and by_name["view-1"].steps == ()
    assert not by_name["view-2"].skipped
    assert [sp.server.name for sp in plan.touched] == ["view-2"]
    on = build_plan(inv, ["view-1", "view-2"], "on", facts(view_2="Off"), ACTIONS)
    assert [sp.server.name for sp in on.touched] == ["view-2"]
    # Already On: no reset is sent, but its gate still holds back the next wave.
    already = next(sp for sp in on.servers if sp.server.name == "view-1")
    assert [s.kind for s in already.steps] == [StepKind.GATE] and not already.sends


def test_on_and_force_off_and_restart_steps(tmp_path: Path) -> None:
    inv = inventory(tmp_path)
    on = build_plan(inv, ["arch"], "on", facts("Off"), ACTIONS).servers[0].steps
    assert [s.kind for s in on] == [StepKind.CALL, StepKind.WAIT, StepKind.GATE]
    assert on[0].call.endswith("ResetType=On")
    assert on[2].checks == ("power", "ssh", "services", "dicom")
    off = build_plan(inv, ["view-1"], "force-off", facts(), ACTIONS).servers[0].steps
    assert [s.call.split()[-1] for s in off][:1] == ["ResetType=ForceOff"] and len(off) == 2
    restart = build_plan(inv, ["db"], "restart", facts(), ACTIONS).servers[0].steps
    calls = " | ".join(s.call for s in restart)
    assert "ResetType=GracefulRestart" in calls and "GracefulShutdown" not in calls
    assert restart[-1].kind is StepKind.GATE
    assert any(s.only_if_off and s.call.endswith("ResetType=On") for s in restart)
    no_restart = ("On", "ForceOff", "GracefulShutdown")
    fallback = build_plan(inv, ["db"], "restart", facts(resets=no_restart), ACTIONS)
    calls = [s.call for s in fallback.servers[0].steps]
    assert any(c.endswith("ResetType=GracefulShutdown") for c in calls)
    assert any(c.endswith("ResetType=On") for c in calls)


def test_a_server_without_bmc_is_refused_and_unknown_verbs_raise(tmp_path: Path) -> None:
    inv = inventory(tmp_path)
    plan = build_plan(inv, ["lone"], "on", facts("Off"), ACTIONS)
    assert plan.refusals == ("lone: has no BMC, so its PowerState cannot be verified",)
    with pytest.raises(PlanError, match="unknown verb"):
        build_plan(inv, ["db"], "hibernate", facts(), ACTIONS)
    with pytest.raises(PlanError, match="redfish-reset"):
        build_plan(inv, ["db"], "on", facts(), {})


def test_dry_run_lists_every_wave_and_call(tmp_path: Path) -> None:
    chain = ["stor", "db", "arch", "view-1", "view-2"]
    plan = build_plan(inventory(tmp_path), chain, "off", facts(), ACTIONS)
    text = "\n".join(dry_run_lines(plan))
    for sp in plan.servers:
        for step in sp.steps:
            assert step.call in text
    assert text.index("wave 1") < text.index("view-1") < text.index("wave 2") < text.index("arch")
    assert "nothing is sent" in text


@pytest.mark.parametrize(
    ("verb", "count", "needed"),
    [("off", 5, False), ("off", 6, True), ("on", 1, False), ("force-off", 1, True)],
)
def test_typed_confirmation_above_threshold_and_always_for_force_off(
    tmp_path: Path, verb: str, count: int, needed: bool
) -> None:
    servers = [f"s{i}" for i in range(count)]
    doc = {
        "sites": [{"name": "dc", "kind": "datacenter"}],
        "servers": [
            {"name": n, "site": "dc", "role": "web-viewer", "bmc": {"address": f"127.9.1.{i + 1}"}}
            for i, n in enumerate(servers)
        ],
    }
    inv = load_inventory_text(yaml.safe_dump(doc), tmp_path / "inv.yaml")
    state = "Off" if verb == "on" else "On"
    plan = build_plan(inv, servers, verb, {n: PowerFacts(state) for n in servers}, ACTIONS)
    rule = ConfirmationRule()
    assert rule.required(plan) is needed
    assert str(count) in rule.prompt(plan)
    assert Confirmation(f" {count}\n").matches(plan)
    assert not Confirmation(str(count + 1)).matches(plan)
    assert not Confirmation("yes").matches(plan)
    assert ConfirmationRule(threshold=0).required(plan)


def test_runner_refuses_unconfirmed_refused_and_read_only(tmp_path: Path) -> None:
    inv = inventory(tmp_path)
    audit = AuditLog(tmp_path / "audit.sqlite3")
    readings = object()
    chain = ["stor", "db", "arch", "view-1", "view-2", "lone"]
    many = build_plan(inv, chain[:5], "off", facts(), ACTIONS, PlanOptions())
    session = Session(inv, audit=audit)
    four = ConfirmationRule(threshold=4)
    with pytest.raises(ConfirmationRequired):
        session.runner(many, readings, batch_id="b1", confirm_rule=four)  # type: ignore[arg-type]
    with pytest.raises(ConfirmationRequired):  # a wrong count is no confirmation
        session.runner(
            many, readings, batch_id="b1", confirmation=Confirmation("4"), confirm_rule=four
        )  # type: ignore[arg-type]
    assert session.runner(  # the typed count unlocks it
        many, readings, batch_id="b1", confirmation=Confirmation("5"),  # type: ignore[arg-type]
        confirm_rule=four,
    )  # fmt: skip
    refused = build_plan(inv, ["arch"], "off", facts(), ACTIONS)
    with pytest.raises(PlanRefused, match="view-1"):
        session.runner(refused, readings, batch_id="b2")  # type: ignore[arg-type]
    for read_only in (
        Session(inv, read_only=True, audit=audit),
        Session(inventory(tmp_path, read_only=True), audit=audit),
    ):
        assert read_only.read_only
        with pytest.raises(ReadOnlySession, match="read"):
            read_only.runner(many, readings, batch_id="b3", confirmation=Confirmation("5"))  # type: ignore[arg-type]
        with pytest.raises(ReadOnlySession):
            BatchRunner(read_only, many, ACTIONS, readings, audit, batch_id="b4")  # type: ignore[arg-type]
        with pytest.raises(ReadOnlySession):
            read_only.load_actions()
    # The flag can add read-only, never lift the inventory's.
    assert Session(inventory(tmp_path, read_only=True), read_only=False).read_only
    assert "read_only" in Session(inventory(tmp_path, read_only=True)).read_only_reason
    audit.close()


async def test_read_only_session_cannot_open_or_plan(tmp_path: Path) -> None:
    session = Session(inventory(tmp_path), read_only=True, audit=AuditLog(tmp_path / "a.sqlite3"))
    with pytest.raises(ReadOnlySession):
        await session.open()
    with pytest.raises(ReadOnlySession):
        await session.plan([], "off", object())  # type: ignore[arg-type]
    assert session.actions == {}


def test_gate_policy_per_role_and_judgement(tmp_path: Path) -> None:
    inv = inventory(tmp_path)
    policy = GatePolicy(by_role=parse_gate_spec("web-viewer=power+ssh; storage=power"))
    assert policy.checks_for(inv.server("arch")) == ("power", "ssh", "services", "dicom")
    assert policy.checks_for(inv.server("view-1")) == ("power",)  # view-1 has no SSH
    assert policy.checks_for(inv.server("view-2")) == ("power", "ssh")
    assert policy.checks_for(inv.server("stor")) == ("power",)
    with pytest.raises(ValueError, match="unknown check"):
        parse_gate_spec("archive=power+pixie-dust")
    with pytest.raises(ValueError, match="unknown gate check"):
        GatePolicy(checks=("power", "vibes"))

    def result(state: str, health: Health = Health.OK) -> ProbeResult:
        return ProbeResult.make(state, health, detail=f"{state}!")

    checks = ("power", "ssh", "services", "dicom")
    good = {"power": result("On"), "ssh": result("ok"), "dicom": result("ok")}
    assert judge(checks, good).passed
    no_dicom = {**good, "dicom": result("refused", Health.DOWN)}
    verdict = judge(checks, no_dicom)
    assert not verdict.passed and verdict.missing == ("dicom: refused (refused!)",)
    units_down = {**good, "ssh": result("degraded", Health.DEGRADED)}
    assert judge(checks, units_down).missing == ("services: degraded (degraded!)",)
    assert judge(("power", "ssh"), units_down).passed
    assert not judge(checks, {}).passed


def test_a_left_out_server_keeps_what_it_needs_on_and_what_needs_it_off(tmp_path: Path) -> None:
    inv = inventory(tmp_path)
    chain = ["stor", "db", "arch", "view-1", "view-2"]
    # db's PowerState is null: it may be running, so stor (under it) must not go off.
    off = build_plan(inv, chain, "off", facts(db="Unknown"), ACTIONS)
    by_name = {sp.server.name: sp for sp in off.servers}
    assert by_name["db"].left_out
    assert by_name["stor"].left_out and "db (depends on it)" in by_name["stor"].skip_reason
    assert not by_name["stor"].steps
    assert [sp.server.name for sp in off.touched] == ["view-1", "view-2", "arch"]
    assert "2 left out (state unknown)" in off.summary() and "skipped" not in off.summary()
    # Powering on: nothing that needs db starts on top of it.
    on = build_plan(inv, chain, "on", facts("Off", db="Unknown"), ACTIONS)
    left = sorted(sp.server.name for sp in on.servers if sp.left_out)
    assert left == ["arch", "db", "view-1", "view-2"]
    assert [sp.server.name for sp in on.touched] == ["stor"]
