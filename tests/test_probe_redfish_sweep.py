"""One scheduler sweep of 300 simulated BMCs over kept-alive HTTPS, measured.

The BMCs run in a child process, so ``time.process_time()`` here is the
client's CPU alone (probe, aiohttp, TLS records, scheduler); the server's
CPU is read from /proc. Numbers are printed for the report (``-s``).
"""

from __future__ import annotations

import time
from pathlib import Path

from pacs_tui.plugin_api import Health, ProbeContext
from pacs_tui.scheduler import Scheduler
from pacs_tui.state import FleetState
from pacs_tui_redfish_power.probe import RedfishPowerProbe
from redfish_peers import remote_bmcs, write_inventory

FLEET = 300


async def test_a_warm_sweep_of_300_bmcs_is_cheap(tmp_path: Path) -> None:
    with remote_bmcs(tmp_path, FLEET) as bmcs:
        blocks = {
            f"srv-{i:04d}": {
                "address": address,
                "port": bmcs.port,
                "ca_file": str(bmcs.ca_file),
                "credentials": "bmc-admin",
            }
            for i, address in enumerate(bmcs.addresses)
        }
        inventory = write_inventory(tmp_path, blocks)
        probe = RedfishPowerProbe()
        await probe.open(ProbeContext(inventory))
        try:
            state = FleetState(inventory.names(), {probe.name: probe.interval_s})
            scheduler = Scheduler(list(inventory), [probe], state)
            started = time.perf_counter()
            await scheduler.sweep()  # warm-up: TLS handshakes, logins, discovery
            warm_up_s = time.perf_counter() - started

            cpu, wall, server_cpu = time.process_time(), time.perf_counter(), bmcs.cpu_s()
            await scheduler.sweep()
            cpu = time.process_time() - cpu
            wall = time.perf_counter() - wall
            server_cpu = bmcs.cpu_s() - server_cpu
        finally:
            await probe.close()

    readings = [state.latest(name, probe.name) for name in inventory.names()]
    assert all(r is not None and (r.state, r.health) == ("On", Health.OK) for r in readings)
    assert all(r is not None and r.facts["auth"] == "session" for r in readings)
    assert max(scheduler.peak_per_endpoint.values()) <= 2
    print(
        f"\n{FLEET} BMCs, HTTPS keep-alive: warm-up sweep {warm_up_s:.2f} s wall; "
        f"warm sweep {wall:.3f} s wall, client CPU {cpu:.3f} s "
        f"({cpu / FLEET * 1000:.2f} ms/poll), server CPU {server_cpu:.2f} s"
    )
    # Generous bounds (2 shared cores, parallel tests): a reconnect or a login
    # per poll would cost ~3 ms CPU each and blow the first one.
    assert cpu < 1.0
    assert wall < 5.0
