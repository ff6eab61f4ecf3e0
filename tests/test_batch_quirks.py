"""The batch engine against BMCs that misbehave as real ones do: one reset per server per step.

The engine (plan → runner → redfish-reset action → read back through the
power probe) runs in-process against the simulator's BMCs (``bmc_lab``), and
each BMC counts the ResetTypes it received, so "exactly one reset" is
asserted on the peer's side, including for a BMC that carries the reset out
and answers after our timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pacs_tui.batch.audit import AuditLog
from pacs_tui.batch.confirm import Confirmation
from pacs_tui.batch.plan import BatchPlan, PlanOptions
from pacs_tui.batch.readings import MonitorReadings, Readings
from pacs_tui.batch.runner import BatchResult, ServerStatus
from pacs_tui.inventory import InventoryError, Server
from pacs_tui.monitor import FleetMonitor
from pacs_tui.plugin_api import ProbeResult
from pacs_tui.power import PowerState
from pacs_tui.session import Session
from pacs_tui.sim.redfish_flavour import BmcFlavour, FlavourTimings
from pacs_tui_redfish_power.login_guard import LOGIN_GUARD
from pacs_tui_redfish_power.probe import RedfishPowerProbe
from redfish_peers import BmcLab, bmc_lab, write_inventory

SETTINGS = {"redfish_task_poll_s": 0.05}
QUICK_401 = FlavourTimings(html_401_session_timeout_s=3.0)  # sessions idle out in 3 s


@pytest.fixture(autouse=True)
def fresh_login_guard() -> None:
    LOGIN_GUARD.clear()


@dataclass
class Engine:
    lab: BmcLab
    session: Session
    readings: Readings
    audit: AuditLog

    async def plan(
        self, names: list[str], verb: str, options: PlanOptions | None = None
    ) -> tuple[BatchPlan, str]:
        servers = [self.lab.server(n) for n in names]
        return await self.session.plan(servers, verb, self.readings, options)

    async def run(
        self, names: list[str], verb: str, options: PlanOptions | None = None
    ) -> BatchResult:
        plan, batch = await self.plan(names, verb, options)
        assert not plan.refused, plan.refusals
        runner = self.session.runner(
            plan, self.readings, batch_id=batch, confirmation=Confirmation.assumed(plan),
            poll_s=0.05,
        )  # fmt: skip
        return await runner.run()


@asynccontextmanager
async def engine(
    tmp_path: Path, flavours: Mapping[str, BmcFlavour], **lab_args: Any
) -> AsyncIterator[Engine]:
    async with bmc_lab(tmp_path, flavours, **lab_args) as lab:
        audit = AuditLog(tmp_path / "audit.sqlite3")
        monitor = FleetMonitor(lab.inventory, probes=[RedfishPowerProbe()])
        async with monitor, Session(lab.inventory, audit=audit, settings=SETTINGS) as session:
            yield Engine(lab, session, MonitorReadings(monitor), audit)
        audit.close()


def status(result: BatchResult, name: str) -> tuple[ServerStatus, str]:
    found = result.servers[name]
    return found.status, found.detail


# -- never twice ---------------------------------------------------------------------


async def test_a_reset_answered_after_our_timeout_is_sent_once(tmp_path: Path) -> None:
    # The BMC carries the reset out at once and answers 3 s later; we wait 1 s.
    async with engine(tmp_path, {"bmc-a": BmcFlavour.GENERIC}, bmc_options={"timeout_s": 1.0}) as e:
        e.lab.hosts["bmc-a"].faults.bmc_post_answer_delay_s = 3.0
        result = await e.run(["bmc-a"], "force-off", PlanOptions(power_timeout_s=10))
        assert status(result, "bmc-a")[0] is ServerStatus.REACHED, result.servers
        assert e.lab.service.resets("bmc-a") == ["ForceOff"]
        unknown = [ev for ev in e.audit.events() if ev.outcome == "unknown"]
        assert len(unknown) == 1 and "may have carried it out" in unknown[0].detail


async def test_an_escalation_forceoff_answered_late_is_sent_once(tmp_path: Path) -> None:
    async with engine(tmp_path, {"bmc-a": BmcFlavour.GENERIC}, bmc_options={"timeout_s": 1.0}) as e:
        host = e.lab.hosts["bmc-a"]
        host.faults.ignore_graceful_shutdown = True
        host.faults.bmc_post_answer_delay_s = 3.0
        options = PlanOptions(escalate_after_s=1.0, power_timeout_s=10, stop_units=False)
        result = await e.run(["bmc-a"], "off", options)
        assert status(result, "bmc-a")[0] is ServerStatus.REACHED, result.servers
        assert e.lab.service.resets("bmc-a") == ["GracefulShutdown", "ForceOff"]


async def test_a_task_monitor_503_does_not_resend_the_reset(tmp_path: Path) -> None:
    async with engine(tmp_path, {"bmc-a": BmcFlavour.TASK_503_ONCE}) as e:
        result = await e.run(
            ["bmc-a"], "restart", PlanOptions(power_timeout_s=10, stop_units=False)
        )
        assert status(result, "bmc-a")[0] is ServerStatus.REACHED, result.servers
        assert e.lab.service.resets("bmc-a").count("GracefulRestart") == 1


async def test_a_task_monitor_ending_in_204_ends_the_wait(tmp_path: Path) -> None:
    async with engine(tmp_path, {"bmc-a": BmcFlavour.TASK_204}) as e:
        result = await e.run(["bmc-a"], "force-off", PlanOptions(power_timeout_s=10))
        found = result.servers["bmc-a"]
        assert found.status is ServerStatus.REACHED
        assert found.duration_s < 3  # was 120 s: the 204 was never taken as the end
        steps = [ev.detail for ev in e.audit.events() if ev.kind == "step"]
        assert any("task monitor answered 204" in d for d in steps), steps
        assert e.lab.service.resets("bmc-a") == ["ForceOff"]


# -- read back -------------------------------------------------------------------------


class StaleFirstReadings:
    """Readings that still say On for the first reads: the server went Off meanwhile.

    The BMC is real and answers from its true state; only the moment of the
    read is shifted, as when a server powers off between the plan and the POST.
    """

    def __init__(self, inner: Readings, stale: int) -> None:
        self.inner = inner
        self.stale = stale

    def has(self, probe: str) -> bool:
        return self.inner.has(probe)

    async def read(self, server: Server, probe: str) -> ProbeResult | None:
        result = await self.inner.read(server, probe)
        if self.stale > 0 and result is not None and probe == "power":
            self.stale -= 1
            return ProbeResult(
                str(PowerState.ON), result.health, result.latency_ms, "powered on", result.observed_at,
                result.facts,
            )  # fmt: skip
        return result


async def test_a_409_for_a_server_already_at_its_target_is_not_a_failure(tmp_path: Path) -> None:
    async with engine(tmp_path, {"bmc-a": BmcFlavour.STRICT_STATE}) as e:
        e.lab.hosts["bmc-a"].power_state = PowerState.OFF
        e.lab.hosts["bmc-a"].os_state = "down"
        e.readings = StaleFirstReadings(e.readings, stale=2)  # the plan's read and the runner's
        result = await e.run(["bmc-a"], "force-off", PlanOptions(power_timeout_s=5))
        state, detail = status(result, "bmc-a")
        assert state is ServerStatus.REACHED, detail
        assert result.ok
        assert e.lab.service.resets("bmc-a") == ["ForceOff"]  # the one refused, not re-sent
        events = [ev for ev in e.audit.events() if ev.kind == "step"]
        assert any("already Off" in ev.detail and "409" in ev.detail for ev in events), events


async def test_a_bmc_lost_after_the_reset_is_named_in_the_result(tmp_path: Path) -> None:
    async with engine(tmp_path, {"bmc-a": BmcFlavour.GENERIC}, bmc_options={"timeout_s": 0.5}) as e:
        host = e.lab.hosts["bmc-a"]
        host.faults.ignore_graceful_shutdown = True
        plan, batch = await e.plan(
            ["bmc-a"], "off", PlanOptions(power_timeout_s=2, stop_units=False)
        )
        runner = e.session.runner(
            plan, e.readings, batch_id=batch, confirmation=Confirmation.assumed(plan), poll_s=0.05
        )
        running = asyncio.create_task(runner.run())
        while not e.lab.service.resets("bmc-a"):
            await asyncio.sleep(0.02)
        await e.lab.service.set_reachable("bmc-a", False)
        result = await running
        state, detail = status(result, "bmc-a")
        assert state is ServerStatus.FAILED
        assert "BMC lost" in detail and "stopped answering" in detail, detail


# -- expired sessions, unknown states, several systems ---------------------------------


async def test_an_expired_session_with_a_broken_401_does_not_stall_the_batch(
    tmp_path: Path,
) -> None:
    async with engine(tmp_path, {"bmc-a": BmcFlavour.HTML_401}, timings=QUICK_401) as e:
        plan, batch = await e.plan(["bmc-a"], "force-off", PlanOptions(power_timeout_s=15))
        await asyncio.sleep(3.3)  # the flavour's sessions idle out after 3 s
        runner = e.session.runner(
            plan, e.readings, batch_id=batch, confirmation=Confirmation.assumed(plan), poll_s=0.05
        )
        result = await runner.run()
        found = result.servers["bmc-a"]
        assert found.status is ServerStatus.REACHED, found.detail
        assert found.duration_s < 5
        assert e.lab.service.resets("bmc-a") == ["ForceOff"]


@pytest.mark.parametrize("word", ["null", "Starting"])
async def test_an_unknown_power_state_is_left_out_unless_included(
    tmp_path: Path, word: str
) -> None:
    async with engine(tmp_path, {"bmc-a": BmcFlavour.GENERIC, "bmc-b": BmcFlavour.GENERIC}) as e:
        e.lab.hosts["bmc-a"].faults.bmc_power_state_word = word
        result = await e.run(["bmc-a", "bmc-b"], "force-off", PlanOptions(power_timeout_s=5))
        state, detail = status(result, "bmc-a")
        assert state is ServerStatus.LEFT_OUT and "state unknown" in detail
        assert status(result, "bmc-b")[0] is ServerStatus.REACHED
        assert not result.ok  # a server not known to be Off is not a success
        assert e.lab.service.resets("bmc-a") == []
        left = [ev for ev in e.audit.events() if ev.kind == "left-out"]
        assert [ev.server for ev in left] == ["bmc-a"]
        # Included explicitly: acted on, and the inclusion is audited.
        e.lab.hosts["bmc-a"].faults.bmc_power_state_word = word
        plan, _ = await e.plan(["bmc-a"], "on", PlanOptions(include_unknown=frozenset({"bmc-a"})))
        assert plan.included_unknown and plan.touched
        assert any(ev.kind == "include-unknown" for ev in e.audit.events())


# -- several systems behind one BMC ------------------------------------------------------

BLADES = {f"blade-{n}": BmcFlavour.BLADE_ENCLOSURE for n in range(1, 5)}


async def test_a_blade_is_reset_through_its_own_system_and_no_other(tmp_path: Path) -> None:
    async with engine(tmp_path, BLADES) as e:
        addresses = {e.lab.server(n).bmc.address for n in BLADES}  # type: ignore[union-attr]
        assert len(addresses) == 1  # one enclosure BMC
        readings = {n: await e.lab.probe.probe(e.lab.server(n)) for n in BLADES}
        assert {r.facts["system_path"] for r in readings.values()} == {
            f"/redfish/v1/Systems/Blade{n}" for n in range(1, 5)
        }
        result = await e.run(["blade-3"], "force-off", PlanOptions(power_timeout_s=5))
        assert status(result, "blade-3")[0] is ServerStatus.REACHED
        assert {n: e.lab.service.resets(n) for n in BLADES} == {
            "blade-1": [], "blade-2": [], "blade-3": ["ForceOff"], "blade-4": [],
        }  # fmt: skip
        assert {n: str(h.power_state) for n, h in e.lab.hosts.items()} == {
            "blade-1": "On", "blade-2": "On", "blade-3": "Off", "blade-4": "On",
        }  # fmt: skip
        # One session per client (the lab probe, the monitor's probe, whose client the
        # action borrows), not per blade.
        assert e.lab.sessions("blade-1") == 2


async def test_a_server_that_names_no_system_of_an_enclosure_is_never_reset(
    tmp_path: Path,
) -> None:
    async with bmc_lab(tmp_path, BLADES) as lab:
        enclosure = lab.server("blade-1").bmc
        assert enclosure is not None
        lone_dir = tmp_path / "lone"
        lone_dir.mkdir()
        (lone_dir / "fleet-ca.pem").write_bytes(lab.ca_file.read_bytes())
        bmc = {"address": enclosure.address, "port": enclosure.port, "ca_file": "fleet-ca.pem",
               "credentials": "bmc-admin"}  # fmt: skip
        inventory = write_inventory(lone_dir, {"lone": bmc})
        audit = AuditLog(tmp_path / "audit.sqlite3")
        monitor = FleetMonitor(inventory, probes=[RedfishPowerProbe()])
        async with monitor, Session(inventory, audit=audit, settings=SETTINGS) as session:
            readings = MonitorReadings(monitor)
            reading = await readings.read(inventory.server("lone"), "power")
            assert reading is not None and reading.state == "Unknown"
            assert "ambiguous" in reading.detail
            assert all(f"Blade{n}" in reading.detail for n in range(1, 5))
            assert reading.facts["system_members"] == ["Blade1", "Blade2", "Blade3", "Blade4"]
            plan, _ = await session.plan([inventory.server("lone")], "force-off", readings)
            assert plan.refused and "ambiguous" in plan.refusals[0]
            assert plan.hints == (
                "name the server's ComputerSystem with bmc.system in the inventory",
            )
            # Even an action called directly refuses: the client never guesses a member.
            action = session.actions["redfish-reset"]
            step = action.steps(inventory.server("lone"), "ForceOff", reading.facts)[0]
            outcome = await action.run(step)
            assert not outcome.ok and not outcome.transient and "ambiguous" in outcome.detail
        audit.close()
        assert all(lab.service.resets(n) == [] for n in BLADES)
        assert all(str(h.power_state) == "On" for h in lab.hosts.values())


def test_servers_sharing_a_bmc_must_name_their_systems(tmp_path: Path) -> None:
    bmc = {"address": "127.0.0.9", "credentials": "bmc-admin"}
    with pytest.raises(InventoryError) as caught:
        write_inventory(
            tmp_path, {"a": bmc, "b": {**bmc, "system": "Blade2"}, "c": {**bmc, "system": "Blade2"}}
        )
    text = str(caught.value)
    assert "servers[0].bmc.system" in text and "shared by a, b, c" in text
    assert "system 'Blade2' of BMC 127.0.0.9:443 is already b" in text
