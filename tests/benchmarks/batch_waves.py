"""Benchmark: power a simulated fleet off and back on in dependency waves.

Starts ``pacs-tui sim`` (300 servers by default, ``--time-scale 0.2``: about
0.6 s of OS shutdown, 0.4 s power transitions, 1.6 s boot to services) in its
own process, then runs the batch engine in this process: ``off`` of every
server (dependents first), then ``on`` (dependencies first, each wave gated
on power, SSH, units and DICOM). For each batch it reports the total time
and the critical path, the sum over waves of the slowest server in the
wave; the target is total ≤ 1.3 × critical path. It also prints what the
simulated hardware alone needs (its timings × waves), to show what the
protocols and the engine add per server. Loopback only.

    .venv/bin/python tests/benchmarks/batch_waves.py [--servers 300] [--time-scale 0.2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _summary import Figure, emit

from pacs_tui.batch.audit import AuditLog
from pacs_tui.batch.confirm import Confirmation
from pacs_tui.batch.gates import GatePolicy
from pacs_tui.batch.plan import PlanOptions
from pacs_tui.batch.readings import MonitorReadings
from pacs_tui.batch.runner import BatchResult
from pacs_tui.inventory import load_inventory
from pacs_tui.monitor import FleetMonitor
from pacs_tui.plugin_catalog import load_probes
from pacs_tui.scheduler import ConcurrencyCaps
from pacs_tui.session import Session
from pacs_tui.sim.host import HostTimings
from sim_process import running_sim

TARGET_RATIO = 1.3

MEASURES = "300 simulated servers off, then on, in dependency waves: total vs critical path"
LEAVES_OUT = (
    "real hardware timings (sim at --time-scale 0.2); the CLI's start-up (the engine runs "
    "in this process); a BMC's own task queue under load"
)
QUICK_ARGS: tuple[str, ...] = ()


async def run_batches(out: Path, poll_s: float, concurrency: int) -> list[BatchResult]:
    inventory = load_inventory(out / "inventory.yaml")
    probes = load_probes({"power", "ssh", "dicom"})
    audit = AuditLog(out / "audit.sqlite3")
    # The batch polls on demand; the caps keep the BMCs and sshds from being flooded.
    monitor = FleetMonitor(
        inventory, probes=list(probes.plugins.values()), caps=ConcurrencyCaps(total=512)
    )
    settings = {"redfish_task_poll_s": poll_s, "ssh_max_new_connections": 20}
    options = PlanOptions(gate=GatePolicy(poll_s=poll_s, timeout_s=120), power_timeout_s=120)
    results = []
    async with monitor, Session(inventory, audit=audit, settings=settings) as session:
        readings = MonitorReadings(monitor)
        for verb in ("off", "on"):
            plan, batch = await session.plan(
                list(inventory.servers), verb, readings, options, selection="*"
            )
            assert not plan.refused, plan.refusals
            runner = session.runner(
                plan, readings, batch_id=batch, confirmation=Confirmation.assumed(plan),
                concurrency=concurrency, poll_s=poll_s,
            )  # fmt: skip
            results.append(await runner.run())
    audit.close()
    return results


def sim_floor_s(verb: str, waves: int, time_scale: float) -> float:
    """What the simulated hardware alone needs per wave, times the waves (no protocol cost)."""
    timings = HostTimings().scaled(time_scale)
    if verb == "off":
        per_wave = timings.shutdown_s + timings.power_transition_s / 2
    else:
        per_wave = timings.power_transition_s + timings.boot_s + timings.service_start_s
    return per_wave * waves


def report(result: BatchResult, time_scale: float) -> dict[str, Any]:
    waves = [
        {
            "wave": w.index,
            "wall_s": round(w.duration_s, 2),
            "slowest_server_s": round(w.slowest_s, 2),
        }
        for w in result.waves
    ]
    ratio = result.elapsed_s / result.critical_path_s if result.critical_path_s else float("nan")
    return {
        "verb": result.verb,
        "servers": sum(result.counts().values()),
        "ok": result.ok,
        "counts": result.counts(),
        "total_s": round(result.elapsed_s, 2),
        "critical_path_s": round(result.critical_path_s, 2),
        "ratio": round(ratio, 3),
        "sim_floor_s": round(sim_floor_s(result.verb, len(result.waves), time_scale), 2),
        "target_met": ratio <= TARGET_RATIO,
        "waves": waves,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=300)
    parser.add_argument("--time-scale", type=float, default=0.2)
    parser.add_argument("--poll", type=float, default=0.25, help="seconds between re-reads")
    parser.add_argument("--concurrency", type=int, default=300)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pacs-tui-batch-bench-") as tmp:
        out = Path(tmp) / "dc"
        started = time.monotonic()
        with running_sim(
            out, "--servers", str(args.servers), "--time-scale", str(args.time_scale), timeout=120
        ):
            print(f"sim up in {time.monotonic() - started:.1f} s", file=sys.stderr)
            results = asyncio.run(run_batches(out, args.poll, args.concurrency))
    reports = [report(r, args.time_scale) for r in results]
    if args.json:
        print(json.dumps(reports, indent=2))
    else:
        for r in reports:
            print(
                f"{r['verb']:>4}: {r['counts']}  total {r['total_s']:.2f} s, "
                f"critical path {r['critical_path_s']:.2f} s, ratio {r['ratio']:.3f} "
                f"({'meets' if r['target_met'] else 'MISSES'} ≤ {TARGET_RATIO}); "
                f"simulated hardware alone {r['sim_floor_s']:.2f} s"
            )
            for w in r["waves"]:
                print(
                    f"      wave {w['wave']}: wall {w['wall_s']:.2f} s, "
                    f"slowest server {w['slowest_server_s']:.2f} s"
                )
    emit(
        *(
            figure
            for r in reports
            for figure in (
                Figure(f"{r['verb']}: total ({r['servers']} servers)", r["total_s"], "s"),
                Figure(f"{r['verb']}: total / critical path (≤ {TARGET_RATIO})", r["ratio"], "×"),
                Figure(f"{r['verb']}: simulated hardware alone", r["sim_floor_s"], "s"),
            )
        )
    )
    return 0 if all(r["ok"] and r["target_met"] for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
