"""The batch engine against the simulated data center (a separate process) and its faults.

The engine runs in the test's event loop with the real probes and action
plugins; the simulator runs in its own process, so final PowerStates can be
read back with the DMTF ``redfish`` client (blocking) without stalling it.
Fleet of 12 (seed 7): stor-001 ← db-001 ← arch-001 ← img-001 ← rtr-001/web-001/web-002,
db-001 ← ris-001, bkp-stor-01 ← bkp-arch-01, rtr-001 ← gw-northgate-1.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pacs_tui.batch.audit import AuditEvent, AuditLog
from pacs_tui.batch.confirm import Confirmation
from pacs_tui.batch.gates import GatePolicy
from pacs_tui.batch.plan import PlanOptions
from pacs_tui.batch.progress import BatchProgress
from pacs_tui.batch.readings import MonitorReadings
from pacs_tui.batch.runner import BatchResult, BatchRunner, FailurePolicy, RetryPolicy
from pacs_tui.inventory import Inventory, load_inventory
from pacs_tui.monitor import FleetMonitor
from pacs_tui.plugin_catalog import load_probes
from pacs_tui.session import Session
from pacs_tui.sim.fleet import build_fleet
from pacs_tui.sim.redfish_flavour import BmcFlavour
from pacs_tui_redfish_reset.action import RedfishResetAction
from peers import require_module
from sim_process import RunningSim, running_sim

FLEET = 12
FLAVOURS = {s.name: s.flavour for s in build_fleet(FLEET, seed=7).servers}


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[RunningSim]:
    with running_sim(tmp_path / "dc", "--servers", str(FLEET), "--time-scale", "0.05") as running:
        yield running


# -- the simulator's control API and the DMTF client ------------------------------------


def dmtf_power_states(sim: RunningSim, names: list[str]) -> dict[str, str]:
    """PowerState of each server, read with the DMTF reference client (blocking)."""
    require_module("redfish")
    import redfish

    username, password = sim.bmc_credentials()
    port = sim.defaults["bmc"]["port"]
    by_name = {s["name"]: s for s in sim.servers()}
    states = {}
    for name in names:
        client = redfish.redfish_client(
            base_url=f"https://{by_name[name]['bmc']['address']}:{port}",
            username=username, password=password, cafile=str(sim.out / "ca.pem"), timeout=10,
        )  # fmt: skip
        client.login(auth="session")
        try:
            system = client.get("/redfish/v1/Systems").dict["Members"][0]["@odata.id"]
            states[name] = client.get(system).dict["PowerState"]
        finally:
            client.logout()
    return states


async def power_states(sim: RunningSim, names: list[str]) -> dict[str, str]:
    return await asyncio.to_thread(dmtf_power_states, sim, names)


# -- the engine --------------------------------------------------------------------------


@dataclass
class Engine:
    inventory: Inventory
    session: Session
    readings: MonitorReadings
    audit: AuditLog

    async def run(
        self,
        names: list[str],
        verb: str,
        options: PlanOptions | None = None,
        *,
        subscriber: Any = None,
        started: Any = None,
        **runner_args: Any,
    ) -> BatchResult:
        servers = [self.inventory.server(n) for n in names]
        plan, batch = await self.session.plan(servers, verb, self.readings, options)
        assert not plan.refused, plan.refusals
        runner = self.session.runner(
            plan, self.readings, batch_id=batch,
            confirmation=Confirmation.assumed(plan), **{"poll_s": 0.1, **runner_args},
        )  # fmt: skip
        if subscriber is not None:
            runner.subscribe(subscriber)
        if started is not None:
            started(runner)
        return await runner.run()

    def events(self, batch: str, kind: str = "step") -> list[AuditEvent]:
        return [e for e in self.audit.events(batch=batch) if e.kind == kind]


@asynccontextmanager
async def engine(sim: RunningSim, tmp_path: Path) -> AsyncIterator[Engine]:
    inventory = load_inventory(sim.out / "inventory.yaml")
    probes = load_probes({"power", "ssh", "dicom"})
    assert set(probes.plugins) == {"power", "ssh", "dicom"}, probes.failed
    audit = AuditLog(tmp_path / "audit.sqlite3")
    monitor = FleetMonitor(inventory, probes=list(probes.plugins.values()))
    settings = {"redfish_task_poll_s": 0.05}
    async with monitor, Session(inventory, audit=audit, settings=settings) as session:
        assert set(session.actions) == {"redfish-reset", "ssh-control"}, session.failed_actions
        yield Engine(inventory, session, MonitorReadings(monitor), audit)
    audit.close()


def first_ts(events: list[AuditEvent], server: str) -> str:
    return min(e.ts for e in events if e.server == server)


def last_ts(events: list[AuditEvent], server: str) -> str:
    return max(e.ts for e in events if e.server == server)


# -- tests -------------------------------------------------------------------------------


async def test_off_then_on_in_dependency_waves(sim: RunningSim, tmp_path: Path) -> None:
    chain = ["stor-001", "db-001", "arch-001", "ris-001"]
    leaves = ["img-001", "rtr-001", "web-001", "web-002", "gw-northgate-1"]
    async with engine(sim, tmp_path) as e:
        off = await e.run(chain + leaves, "off")
        assert off.ok, off.to_json()
        assert await power_states(sim, chain + leaves) == dict.fromkeys(chain + leaves, "Off")
        steps = e.events(off.batch)
        # Dependents first: every step on a server ends before its dependency's first step.
        assert last_ts(steps, "gw-northgate-1") < first_ts(steps, "rtr-001")
        assert last_ts(steps, "img-001") < first_ts(steps, "arch-001")
        assert last_ts(steps, "arch-001") < first_ts(steps, "db-001")
        assert last_ts(steps, "ris-001") < first_ts(steps, "db-001")
        assert last_ts(steps, "db-001") < first_ts(steps, "stor-001")
        calls = [s.call for s in steps if s.server == "arch-001"]
        assert calls[0].endswith("systemctl stop pacs pacs-archive")
        assert "ResetType=GracefulShutdown" in calls[1] and "until PowerState=Off" in calls[2]

        on = await e.run(chain + leaves, "on", PlanOptions(gate=GatePolicy(poll_s=0.1)))
        assert on.ok, on.to_json()
        assert await power_states(sim, chain + leaves) == dict.fromkeys(chain + leaves, "On")
        steps = e.events(on.batch)
        assert last_ts(steps, "stor-001") < first_ts(steps, "db-001")
        assert last_ts(steps, "db-001") < first_ts(steps, "arch-001")
        assert last_ts(steps, "arch-001") < first_ts(steps, "img-001")
        assert last_ts(steps, "rtr-001") < first_ts(steps, "gw-northgate-1")
        gate = next(s for s in steps if s.server == "arch-001" and s.call.startswith("gate"))
        assert gate.outcome == "ok" and "dicom" in gate.call
    hosts = {h["name"]: h for h in sim.control("GET", "/hosts")}
    assert hosts["arch-001"]["units"] == {"pacs": "active", "pacs-archive": "active"}


async def test_task_monitor_and_strict_state_bmcs(sim: RunningSim, tmp_path: Path) -> None:
    task_bmc, strict_leaf = "gw-northgate-1", "bkp-arch-01"  # neither has dependents
    assert FLAVOURS[task_bmc] is BmcFlavour.TASK_MONITOR
    assert FLAVOURS[strict_leaf] is BmcFlavour.STRICT_STATE
    async with engine(sim, tmp_path) as e:
        result = await e.run([task_bmc], "force-off")
        assert result.ok
        post = next(s for s in e.events(result.batch) if "ResetType=ForceOff" in s.call)
        assert post.detail.startswith("202") and "task" in post.detail
        assert (await power_states(sim, [task_bmc]))[task_bmc] == "Off"

        # Plan while On; the box goes off behind our back; the runner must not re-send.
        servers = [e.inventory.server(strict_leaf)]
        plan, batch = await e.session.plan(servers, "off", e.readings)
        assert plan.touched
        sim.control("POST", f"/hosts/{strict_leaf}/power", {"reset_type": "ForceOff"})
        runner = e.session.runner(plan, e.readings, batch_id=batch, poll_s=0.1)
        skipped = await runner.run()
        assert skipped.servers[strict_leaf].status == "skipped"
        assert not any("POST" in s.call for s in e.events(batch))

        # Sent anyway, a strict BMC answers 409 with its Redfish message; never retried.
        action = e.session.actions["redfish-reset"]
        assert isinstance(action, RedfishResetAction)
        step = action.steps(servers[0], "GracefulShutdown")[0]
        outcome = await action.run(step)
        assert not outcome.ok and not outcome.transient
        assert outcome.detail.startswith("HTTP 409 rejected")
        assert "not allowed while the system PowerState is Off" in outcome.detail

        back = await e.run([task_bmc, strict_leaf], "on", PlanOptions(gate=GatePolicy(poll_s=0.1)))
        assert back.ok, back.to_json()
    assert await power_states(sim, [task_bmc, strict_leaf]) == {task_bmc: "On", strict_leaf: "On"}


async def test_503_is_retried_and_a_slow_bmc_is_waited_for(sim: RunningSim, tmp_path: Path) -> None:
    busy, slow = "web-001", "web-002"
    sim.control("POST", f"/hosts/{slow}/faults", {"bmc_delay_s": 0.4})
    async with engine(sim, tmp_path) as e:
        # Plan first (the power probe must read the BMC), then make it answer 503.
        plan, batch = await e.session.plan(
            [e.inventory.server(busy), e.inventory.server(slow)], "force-off", e.readings
        )
        sim.control("POST", f"/hosts/{busy}/faults", {"bmc_503": True})
        runner = e.session.runner(
            plan, e.readings, batch_id=batch, confirmation=Confirmation.assumed(plan),
            poll_s=0.1, retry=RetryPolicy(attempts=6, base_s=0.2, max_s=3),
        )  # fmt: skip

        async def clear_after_a_retry() -> None:
            while not e.events(batch, "retry"):
                await asyncio.sleep(0.05)
            sim.control("DELETE", f"/hosts/{busy}/faults")

        clearing = asyncio.create_task(clear_after_a_retry())
        result = await asyncio.wait_for(runner.run(), 60)
        await clearing
        assert result.ok, result.to_json()
        retries = e.events(batch, "retry")
        assert retries and all(r.server == busy for r in retries)
        assert "503" in retries[0].detail
    assert await power_states(sim, [busy, slow]) == {busy: "Off", slow: "Off"}


async def test_ignored_graceful_shutdown_fails_then_escalates(
    sim: RunningSim, tmp_path: Path
) -> None:
    stubborn = "web-002"
    sim.control("POST", f"/hosts/{stubborn}/faults", {"ignore_graceful_shutdown": True})
    async with engine(sim, tmp_path) as e:
        failed = await e.run([stubborn, "web-001"], "off", PlanOptions(power_timeout_s=1.0))
        assert not failed.ok
        assert failed.servers[stubborn].status == "failed"
        assert "not Off after 1 s" in failed.servers[stubborn].detail
        assert failed.servers["web-001"].status == "reached"  # its wave-mate is not held back
        assert not any("ForceOff" in s.call for s in e.events(failed.batch))
        assert (await power_states(sim, [stubborn]))[stubborn] == "On"

        escalated = await e.run([stubborn], "off", PlanOptions(escalate_after_s=0.8))
        assert escalated.ok, escalated.to_json()
        calls = [(s.call, s.outcome) for s in e.events(escalated.batch)]
        graceful = next(i for i, (c, _) in enumerate(calls) if "GracefulShutdown" in c)
        force = next(i for i, (c, _) in enumerate(calls) if "ResetType=ForceOff" in c)
        assert graceful < force
        assert calls[graceful + 1][1] == "timeout" and calls[force][1] == "ok"
    assert (await power_states(sim, [stubborn]))[stubborn] == "Off"


async def test_dicom_that_never_comes_back_holds_the_next_wave(
    sim: RunningSim, tmp_path: Path
) -> None:
    # Take img-001 and arch-001 down (bypassing any BMC), then power them on.
    for name in ("img-001", "arch-001"):
        sim.control("POST", f"/hosts/{name}/power", {"reset_type": "ForceOff"})
    sim.control("POST", "/hosts/arch-001/faults", {"dicom_never_ready": True})
    gate = GatePolicy(timeout_s=1.5, poll_s=0.1)
    async with engine(sim, tmp_path) as e:
        left = await e.run(
            ["arch-001", "img-001"],
            "on",
            PlanOptions(gate=gate),
            on_failure=FailurePolicy.LEAVE_OUT,
        )
        assert left.servers["arch-001"].status == "failed"
        assert "dicom" in left.servers["arch-001"].detail
        assert left.servers["img-001"].status == "left-out"
        assert not any(s.server == "img-001" for s in e.events(left.batch))
        assert not left.ok

        halted = await e.run(["arch-001", "img-001"], "on", PlanOptions(gate=gate))
        assert halted.halted and halted.servers["img-001"].status == "not-run"
        assert e.events(halted.batch, "halt")
    states = await power_states(sim, ["arch-001", "img-001"])
    assert states == {"arch-001": "On", "img-001": "Off"}


async def test_restart_with_and_without_graceful_restart(sim: RunningSim, tmp_path: Path) -> None:
    assert FLAVOURS["arch-001"] is BmcFlavour.NO_GRACEFUL_RESTART
    assert FLAVOURS["img-001"] is BmcFlavour.GENERIC
    async with engine(sim, tmp_path) as e:
        result = await e.run(
            ["arch-001", "img-001"], "restart", PlanOptions(gate=GatePolicy(poll_s=0.1))
        )
        assert result.ok, result.to_json()
        steps = e.events(result.batch)
        arch = [s.call for s in steps if s.server == "arch-001"]
        img = [(s.call, s.outcome, s.detail) for s in steps if s.server == "img-001"]
        assert any("GracefulShutdown" in c for c in arch) and any(c.endswith("=On") for c in arch)
        assert any("GracefulRestart" in c for c, _, _ in img)
        assert any(d.startswith("went down") for _, _, d in img)
        assert last_ts(steps, "arch-001") < first_ts(steps, "img-001")
    assert await power_states(sim, ["arch-001", "img-001"]) == {"arch-001": "On", "img-001": "On"}


async def test_pause_holds_new_steps_and_abort_stops_the_rest(
    sim: RunningSim, tmp_path: Path
) -> None:
    leaves = ["web-001", "web-002", "ris-001", "gw-northgate-1"]
    async with engine(sim, tmp_path) as e:
        holder: dict[str, BatchRunner] = {}
        servers_done: list[str] = []
        paused_at: list[int] = []

        def on_event(event: BatchProgress) -> None:
            runner = holder["runner"]
            if event.kind != "server":
                return
            servers_done.append(event.server)
            if len(servers_done) == 1:
                runner.pause()
            elif len(servers_done) == 2:
                runner.abort("test abort")

        task = asyncio.create_task(
            e.run(leaves, "force-off", subscriber=on_event, started=lambda r: holder.update(runner=r),
                  concurrency=1)
        )  # fmt: skip
        while not holder.get("runner") or not holder["runner"].paused:
            await asyncio.sleep(0.02)
        batch = holder["runner"].batch_id
        paused_at.append(len(e.events(batch)))
        await asyncio.sleep(0.8)  # an absence: nothing may happen while paused
        assert len(e.events(batch)) == paused_at[0]
        holder["runner"].resume()
        result = await asyncio.wait_for(task, 30)
        assert result.aborted
        statuses = [result.servers[n].status for n in leaves]
        assert statuses[:2] == ["reached", "reached"] and statuses[2:] == ["aborted", "aborted"]
        assert e.events(batch, "pause") and e.events(batch, "resume") and e.events(batch, "abort")
        assert not any(s.server in leaves[2:] for s in e.events(batch))
    states = await power_states(sim, leaves)
    assert states == {"web-001": "Off", "web-002": "Off", "ris-001": "On", "gw-northgate-1": "On"}


async def test_a_step_reported_is_already_committed(sim: RunningSim, tmp_path: Path) -> None:
    """Subscribers hear of a step only after its row is in the database."""
    async with engine(sim, tmp_path) as e:
        seen: list[tuple[str, str]] = []
        reader = sqlite_reader(tmp_path / "audit.sqlite3")

        def on_event(event: BatchProgress) -> None:
            if event.kind == "step":
                rows = reader(event.batch)
                assert (event.server, event.call) in rows
                seen.append((event.server, event.call))

        result = await e.run(["web-001"], "force-off", subscriber=on_event)
        assert result.ok and len(seen) == 2


def sqlite_reader(path: Path) -> Any:
    import sqlite3

    def rows(batch: str) -> set[tuple[str, str]]:
        db = sqlite3.connect(path)
        try:
            return set(db.execute("SELECT server, call FROM events WHERE batch = ?", (batch,)))
        finally:
            db.close()

    return rows


async def test_a_refused_reset_names_the_server_left_on_with_its_units_stopped(
    sim: RunningSim, tmp_path: Path
) -> None:
    victim = "img-001"
    assert FLAVOURS[victim] is BmcFlavour.GENERIC
    async with engine(sim, tmp_path) as e:
        plan, batch = await e.session.plan([e.inventory.server(victim)], "restart", e.readings)
        calls = [s.call for s in plan.servers[0].steps]
        assert "systemctl stop" in calls[0] and "ResetType=GracefulRestart" in calls[1]
        # The BMC turns into one that refuses GracefulRestart after the plan was made.
        sim.control("POST", f"/hosts/{victim}/faults", {"bmc_flavour": "no-graceful-restart"})
        try:
            runner = e.session.runner(
                plan, e.readings, batch_id=batch, confirmation=Confirmation.assumed(plan),
                poll_s=0.1,
            )  # fmt: skip
            result = await runner.run()
        finally:
            sim.control("DELETE", f"/hosts/{victim}/faults")
        assert result.servers[victim].status == "failed"
        assert "GracefulRestart" in result.servers[victim].detail
        units = tuple(sim.control("GET", f"/hosts/{victim}")["units"])
        assert set(sim.control("GET", f"/hosts/{victim}")["units"].values()) == {"inactive"}
        assert result.units_stopped_on == {victim: units}
        assert result.stranded_lines() == [
            f"1 server still On with their PACS units stopped: {victim} ({', '.join(units)})"
        ]
        assert result.to_json()["units_stopped_on"] == {victim: list(units)}
        end = e.events(batch, "batch-end")[0]
        assert "still On with their PACS units stopped" in end.detail
        assert e.events(batch, "units-stopped")[0].server == victim
    assert (await power_states(sim, [victim]))[victim] == "On"


def logins(sim: RunningSim, name: str) -> int:
    """Redfish sessions the BMC of ``name`` saw opened (POSTs to its session collection)."""
    return sum(
        r["count"]
        for r in sim.bmc(name)["requests"]
        if r["method"] == "POST" and r["path"].rstrip("/").endswith("/Sessions")
    )


async def test_one_redfish_session_per_bmc_with_the_monitor_running(
    sim: RunningSim, tmp_path: Path
) -> None:
    # Issue 14: the reset action logged in on its own beside the power probe's session,
    # two sessions per BMC during a batch; it now borrows the probe's client. Likewise
    # the unit stop runs over the SSH probe's open connection: no second SSH login.
    names = ["web-001", "web-002", "gw-northgate-1", "bkp-arch-01"]  # no dependents
    assert FLAVOURS["gw-northgate-1"] is BmcFlavour.TASK_MONITOR
    async with engine(sim, tmp_path) as e:
        await e.readings.monitor.sweep()  # what the control room has done long before
        e.readings.monitor.start()  # and its continuous polling
        try:
            ssh_before = {n: sim.control("GET", f"/hosts/{n}")["ssh_logins"] for n in names}
            off = await e.run(names, "off")
            assert off.ok, off.to_json()
            ssh_after = {n: sim.control("GET", f"/hosts/{n}")["ssh_logins"] for n in names}
            assert ssh_after == ssh_before == dict.fromkeys(names, 1)
            stops = [s for s in e.events(off.batch) if "systemctl stop" in s.call]
            assert {s.server for s in stops} == set(names)
            assert all(s.outcome == "ok" for s in stops)
            on = await e.run(names, "on", PlanOptions(gate=GatePolicy(poll_s=0.1)))
            assert on.ok, on.to_json()
            # Counted by the peer, while everything is still open.
            for name in names:
                bmc = sim.bmc(name)
                assert bmc["sessions"] == 1, (name, bmc)
                assert logins(sim, name) == 1, (name, bmc["requests"])
                assert bmc["resets"] == ["GracefulShutdown", "On"], name
        finally:
            await e.readings.monitor.stop()
    # Logged out once, by the probe that owns the session.
    assert all(sim.bmc(n)["sessions"] == 0 for n in names)
