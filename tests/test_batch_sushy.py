"""Batch resets against sushy-emulator: real Redfish reset semantics from another team.

sushy-emulator answers a ComputerSystem.Reset at once and changes PowerState
1-11 s later, so a runner that trusted the POST would report success early;
ours must wait, re-reading PowerState. It has no SessionService (basic auth).
"""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pacs_tui.batch.audit import AuditLog
from pacs_tui.batch.confirm import Confirmation
from pacs_tui.batch.gates import GatePolicy
from pacs_tui.batch.plan import PlanOptions
from pacs_tui.batch.readings import MonitorReadings
from pacs_tui.monitor import FleetMonitor
from pacs_tui.plugin_catalog import load_probes
from pacs_tui.session import Session
from peers import require_binary, require_module
from redfish_peers import SushyEmulator, sushy_emulator, write_inventory

pytestmark = [pytest.mark.peer("sushy-emulator"), pytest.mark.slow]


@pytest.fixture
def sushy(tmp_path: Path) -> Iterator[SushyEmulator]:
    require_module("sushy_tools")
    binary = require_binary("sushy-emulator", str(Path(sys.executable).parent / "sushy-emulator"))
    with sushy_emulator(binary, tmp_path) as emulator:
        yield emulator


def dmtf_power_state(emulator: SushyEmulator) -> str:
    require_module("redfish")
    import redfish

    client = redfish.redfish_client(
        base_url=emulator.url, username=emulator.username, password=emulator.password, timeout=10
    )
    client.login(auth="basic")
    try:
        system = client.get("/redfish/v1/Systems").dict["Members"][0]["@odata.id"]
        return str(client.get(system).dict["PowerState"])
    finally:
        client.logout()


async def test_off_and_on_wait_for_the_real_power_state(
    sushy: SushyEmulator, tmp_path: Path
) -> None:
    bmc = {
        "address": sushy.address,
        "port": sushy.port,
        "scheme": "http",
        "credentials": "bmc-admin",
    }
    inventory = write_inventory(tmp_path, {"sushy-01": bmc})
    probes = load_probes({"power"})
    audit = AuditLog(tmp_path / "audit.sqlite3")
    monitor = FleetMonitor(inventory, probes=list(probes.plugins.values()))
    options = PlanOptions(power_timeout_s=40, gate=GatePolicy(poll_s=0.25))
    async with monitor, Session(inventory, audit=audit) as session:
        readings = MonitorReadings(monitor)
        server = inventory.server("sushy-01")
        for verb, final in (("off", "Off"), ("on", "On")):
            plan, batch = await session.plan([server], verb, readings, options)
            assert not plan.refused, plan.refusals
            runner = session.runner(
                plan, readings, batch_id=batch, confirmation=Confirmation.assumed(plan), poll_s=0.25
            )
            result = await asyncio.wait_for(runner.run(), 60)
            assert result.ok, result.to_json()
            steps = [e for e in audit.events(batch=batch) if e.kind == "step"]
            post = next(s for s in steps if s.call.startswith("POST"))
            wait = next(s for s in steps if "until PowerState" in s.call)
            assert post.outcome == "ok" and post.call.startswith(
                f"POST {sushy.url}/redfish/v1/Systems/"
            )
            expected = "GracefulShutdown" if verb == "off" else "On"
            assert post.call.endswith(f"ResetType={expected}")
            # The POST came back before the state changed (sushy's fake driver lags about
            # a second behind the request, and bcrypt makes each of our requests slow):
            # the wait had to re-read PowerState rather than trust the POST.
            waited = float(re.search(r"after ([\d.]+) s", wait.detail).group(1))  # type: ignore[union-attr]
            assert wait.outcome == "ok" and waited > 0.1
            assert await asyncio.to_thread(dmtf_power_state, sushy) == final
    audit.close()


@pytest.mark.parametrize(
    ("baseline_w", "at_peak_w"),
    [({}, {}), ({"sushy-01": 200.0}, {"sushy-01": 400.0})],
    ids=["nameplate", "baseline-draw-unreadable"],
)
async def test_a_rack_budget_powers_on_a_bmc_that_reports_no_draw(
    sushy: SushyEmulator, tmp_path: Path, baseline_w: dict[str, float], at_peak_w: dict[str, float]
) -> None:
    """sushy-emulator's systems report no power draw (no Chassis Power resources).

    - nameplate: counted at its nameplate (steady = peak), the server needs no settling,
      so the budget costs nothing on such a BMC;
    - baseline-draw-unreadable: a baseline gives it a draw (200 W, peak 400 W), but none
      can be read now: the plan counts the peak for good and plans no settle step (a draw
      that cannot be read would never settle: a fresh user's run waited out the timeout).

    Either way the emulator receives exactly one reset per batch."""
    from dataclasses import replace

    from pacs_tui.inventory import Rack

    bmc = {"address": sushy.address, "port": sushy.port, "scheme": "http",
           "credentials": "bmc-admin"}  # fmt: skip
    plain = write_inventory(tmp_path, {"sushy-01": bmc})
    servers = tuple(replace(s, rack="R01", nameplate_w=500.0) for s in plain.servers)
    inventory = replace(plain, servers=servers, racks={"R01": Rack("R01", 600.0)})
    probes = load_probes({"power", "rack-power"})
    audit = AuditLog(tmp_path / "audit.sqlite3")
    monitor = FleetMonitor(inventory, probes=list(probes.plugins.values()))
    options = PlanOptions(power_timeout_s=40, gate=GatePolicy(poll_s=0.25), settle_timeout_s=60,
                          baseline_w=baseline_w, baseline_given=bool(baseline_w))  # fmt: skip
    async with monitor, Session(inventory, audit=audit) as session:
        readings = MonitorReadings(monitor)
        server = inventory.server("sushy-01")
        for verb in ("off", "on"):
            plan, batch = await session.plan([server], verb, readings, options)
            assert not plan.refused, plan.refusals
            if verb == "on":
                assert plan.budget is not None and plan.budget.budgets == {"R01": 600.0}
                assert plan.budget.at_peak_w == at_peak_w
                assert not [s for s in plan.servers[0].steps if s.kind == "settle"]
            runner = session.runner(
                plan, readings, batch_id=batch, confirmation=Confirmation.assumed(plan), poll_s=0.25
            )
            result = await asyncio.wait_for(runner.run(), 40)  # a settle wait would take 60 s
            assert result.ok, result.to_json()
        posts = [e.call for e in audit.events(batch=batch) if e.call.startswith("POST")]
        assert len(posts) == 1 and posts[0].endswith("ResetType=On")
        assert result.budget_peaks["R01"]["budget_w"] == 600.0
    audit.close()
    assert await asyncio.to_thread(dmtf_power_state, sushy) == "On"
    # What the peer received: one reset per server per batch (off, then on), no repeat.
    assert sushy.reset_posts(at_least=2) == 2, sushy.log.read_text()[-2000:]
