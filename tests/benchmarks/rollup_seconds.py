"""Benchmark: the control room's each-second roll-up, full (``fleet_rollup``) and kept (``RollupTracker``).

    .venv/bin/python tests/benchmarks/rollup_seconds.py [--servers 300 3000] [--news 0.31]

Method
------
A fleet of N servers (``tests/ui_fleet.build_inventory``: one data center,
edge sites behind a router), four probes each, every reading fresh and OK
with an expectation of its next one (as the scheduler and a service's mirror
leave them). Then ``--seconds`` simulated seconds: in each, a share
``--news`` of the servers gets one new reading of one probe (0.31 is what
``service_scale.py`` measured a room's mirror apply at 3 000 servers, 0.17–0.55
per server and second at 300–3 000), then both roll-ups run at the same
instant and must be equal. The figures are the median CPU time (process
time, one thread) of one roll-up of each kind, and the servers the kept one
read again. No UI, no event loop: the roll-up's own cost.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _summary import Figure, emit

from pacs_tui.inventory import Server
from pacs_tui.plugin_api import Health, ProbeResult
from pacs_tui.rollup import fleet_rollup
from pacs_tui.rollup_tracker import RollupTracker
from pacs_tui.state import FleetState
from ui_fleet import PROBE_NAMES, build_inventory

MEASURES = (
    "CPU of the each-second fleet roll-up: full, and kept (only servers with news read again)"
)
LEAVES_OUT = (
    "the room's drawing and the mirror's parsing; GIL contention with the event loop "
    "(the room rolls up in a thread above 500 servers); faults (every reading is OK)"
)
QUICK_ARGS = ("--servers", "300", "3000", "--seconds", "10")

START = 1_750_000_000.0
INTERVALS = {"power": 5.0, "network": 5.0, "dicom": 10.0, "ssh": 10.0}


def reading(rng: random.Random, probe: str, at: float) -> ProbeResult:
    return ProbeResult("On" if probe == "power" else "ok", Health.OK, rng.random() * 10, "", at)


def measure(servers: int, seconds: int, news: float) -> dict[str, float]:
    """Median CPU ms of one full and one kept roll-up, and servers read again per second."""
    rng = random.Random(servers)
    inventory = build_inventory(servers)
    names = inventory.names()
    clock = [START]
    state = FleetState(names, INTERVALS, clock=lambda: clock[0])
    for name in names:
        for probe in PROBE_NAMES:
            state.record(name, probe, reading(rng, probe, START - rng.random() * 4))
            state.expect_next(name, probe, INTERVALS[probe] + 5.0)
    applicable = {s.name: frozenset(PROBE_NAMES) for s in inventory.servers}

    def probes(server: Server) -> frozenset[str]:
        return applicable[server.name]

    tracker = RollupTracker(inventory, state, probes)
    tracker.rollup()  # the first reads every server, as the full one does
    full_ms: list[float] = []
    kept_ms: list[float] = []
    reread: list[int] = []
    for _ in range(seconds):
        clock[0] += 1.0
        for name in rng.sample(names, int(servers * news)):
            probe = rng.choice(PROBE_NAMES)
            state.record(name, probe, reading(rng, probe, clock[0]))
            state.expect_next(name, probe, INTERVALS[probe] + 5.0)
        began = time.process_time()
        kept = tracker.rollup()
        kept_ms.append((time.process_time() - began) * 1000)
        reread.append(tracker.reread)
        began = time.process_time()
        full = fleet_rollup(inventory, state, probes)
        full_ms.append((time.process_time() - began) * 1000)
        if kept != full:
            raise SystemExit(f"kept roll-up differs from the full one at {servers} servers")
    tracker.close()
    return {
        "full_ms": statistics.median(full_ms),
        "kept_ms": statistics.median(kept_ms),
        "reread": statistics.median(reread),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, nargs="+", default=[300, 3000])
    parser.add_argument("--seconds", type=int, default=30, help="simulated seconds")
    parser.add_argument("--news", type=float, default=0.31, help="servers with news per second")
    args = parser.parse_args()
    figures: list[Figure] = []
    for servers in args.servers:
        got = measure(servers, args.seconds, args.news)
        print(
            f"{servers} servers, {args.news:.0%} with news each second: full roll-up "
            f"{got['full_ms']:.1f} ms CPU, kept {got['kept_ms']:.1f} ms "
            f"({got['reread']:.0f} servers read again; medians of {args.seconds} s)"
        )
        figures += [
            Figure(f"full roll-up, {servers} servers", round(got["full_ms"], 1), "ms CPU"),
            Figure(f"kept roll-up, {servers} servers", round(got["kept_ms"], 1), "ms CPU"),
        ]
    emit(*figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
