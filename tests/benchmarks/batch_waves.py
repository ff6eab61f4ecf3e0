"""Benchmark: power a simulated fleet off and back on in dependency waves.

Starts ``pacs-tui sim`` (300 servers by default, ``--time-scale 0.2``: about
0.6 s of OS shutdown, 0.4 s power transitions, 1.6 s boot to services) in its
own process, then runs the batch engine in this process: ``off`` of every
server (dependents first), then ``on`` (dependencies first, each wave gated
on power, SSH, units and DICOM). Before the batches the fleet monitor sweeps
the fleet once, as the control room has polled it before anyone starts a
batch (``--cold``: no sweep).

The headline is the batch's wall time against the hardware floor: the sum
over waves of the slowest server's own simulated transition (``HostTimings``
× the time scale; every simulated host has the same timings): for ``off``
the OS shutdown and the PoweringOff phase, for ``on`` the PoweringOn phase,
the boot and the start of the units (the DICOM listener opens with them).
A wave whose servers all were at the target already (gate only) counts 0.
The target is total ≤ 1.3 × the floor. The floor leaves out every protocol
exchange (the SSH unit stop, the reset's POST, the polls that see the
change), so no engine reaches 1.0. The engine's own critical path (the sum
over waves of its slowest server) is printed too; total / critical path is
about 1 by construction, so it says only that the waves wait for nothing
but their slowest server. It also counts the Redfish sessions each BMC saw
opened (logins) over both batches. Loopback only.

    .venv/bin/python tests/benchmarks/batch_waves.py [--servers 300] [--time-scale 0.2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
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
from pacs_tui.batch.runner import BatchResult, ServerStatus
from pacs_tui.inventory import load_inventory
from pacs_tui.monitor import FleetMonitor
from pacs_tui.plugin_catalog import load_probes
from pacs_tui.scheduler import ConcurrencyCaps
from pacs_tui.session import Session
from pacs_tui.sim.host import HostTimings
from sim_process import RunningSim, running_sim

TARGET_RATIO = 1.3

MEASURES = (
    "300 simulated servers off, then on, in dependency waves: wall time vs the hardware floor "
    "(Σ over waves of the slowest server's simulated transition)"
)
LEAVES_OUT = (
    "real hardware timings (sim at --time-scale 0.2); the CLI's start-up (the engine runs "
    "in this process); a BMC's own task queue under load; the floor leaves out every "
    "protocol exchange (SSH unit stop, reset POST, the polls that see the change)"
)
QUICK_ARGS: tuple[str, ...] = ()


async def run_batches(
    out: Path, poll_s: float, concurrency: int, *, sweep: bool = True
) -> list[BatchResult]:
    inventory = load_inventory(out / "inventory.yaml")
    probes = load_probes({"power", "ssh", "dicom"})
    audit = AuditLog(out / "audit.sqlite3")
    settings = {"redfish_task_poll_s": poll_s, "ssh_max_new_connections": 20}
    # The batch polls on demand; the caps keep the BMCs and sshds from being flooded.
    monitor = FleetMonitor(
        inventory,
        probes=list(probes.plugins.values()),
        settings=settings,
        caps=ConcurrencyCaps(total=512),
    )
    options = PlanOptions(gate=GatePolicy(poll_s=poll_s, timeout_s=120), power_timeout_s=120)
    results = []
    async with monitor, Session(inventory, audit=audit, settings=settings) as session:
        readings = MonitorReadings(monitor)
        if sweep:
            started = time.monotonic()
            await monitor.sweep()
            print(f"first sweep {time.monotonic() - started:.1f} s", file=sys.stderr)
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


def host_transition_s(verb: str, time_scale: float) -> float:
    """One simulated server's own transition, in seconds (``pacs_tui.sim.host``'s phases).

    ``off`` (GracefulShutdown): the OS shutdown, then PoweringOff (half a power
    transition). ``on``: PoweringOn, the boot until sshd answers, the units'
    start (the DICOM listener opens with them): what the gate waits for.
    """
    timings = HostTimings().scaled(time_scale)
    if verb == "off":
        return timings.shutdown_s + timings.power_transition_s / 2
    return timings.power_transition_s + timings.boot_s + timings.service_start_s


def wave_floor_s(result: BatchResult, wave: int, time_scale: float) -> float:
    """The slowest transition among the wave's servers that were sent a reset (0: none)."""
    moved = [
        s for s in result.servers.values() if s.wave == wave and s.status is ServerStatus.REACHED
    ]
    return host_transition_s(result.verb, time_scale) if moved else 0.0


def report(result: BatchResult, time_scale: float) -> dict[str, Any]:
    waves = [
        {
            "wave": w.index,
            "wall_s": round(w.duration_s, 2),
            "slowest_server_s": round(w.slowest_s, 2),
            "floor_s": round(wave_floor_s(result, w.index, time_scale), 2),
        }
        for w in result.waves
    ]
    floor = sum(wave_floor_s(result, w.index, time_scale) for w in result.waves)
    ratio = result.elapsed_s / floor if floor else float("nan")
    own = result.elapsed_s / result.critical_path_s if result.critical_path_s else float("nan")
    return {
        "verb": result.verb,
        "servers": sum(result.counts().values()),
        "ok": result.ok,
        "counts": result.counts(),
        "total_s": round(result.elapsed_s, 2),
        "floor_s": round(floor, 2),
        "ratio": round(ratio, 3),
        "critical_path_s": round(result.critical_path_s, 2),
        "critical_path_ratio": round(own, 3),
        "target_met": ratio <= TARGET_RATIO,
        "waves": waves,
    }


def logins_per_bmc(sim: RunningSim) -> dict[str, int]:
    """Redfish sessions each BMC saw opened (POSTs to its session collection), by BMC URL."""
    counts: dict[str, int] = {}
    for server in sim.servers():
        if "bmc" not in server:
            continue
        bmc = sim.bmc(server["name"])
        if bmc["base_url"] in counts:
            continue  # a blade enclosure's BMC, counted once
        counts[bmc["base_url"]] = sum(
            r["count"]
            for r in bmc["requests"]
            if r["method"] == "POST" and r["path"].rstrip("/").endswith("/Sessions")
        )
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=300)
    parser.add_argument("--time-scale", type=float, default=0.2)
    parser.add_argument("--poll", type=float, default=0.25, help="seconds between re-reads")
    parser.add_argument("--concurrency", type=int, default=300)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--cold", action="store_true", help="no monitor sweep before the batches")
    parser.add_argument("--keep", type=Path, help="copy the audit log here (per-step times)")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="pacs-tui-batch-bench-") as tmp:
        out = Path(tmp) / "dc"
        started = time.monotonic()
        with running_sim(
            out, "--servers", str(args.servers), "--time-scale", str(args.time_scale), timeout=120
        ) as sim:
            print(f"sim up in {time.monotonic() - started:.1f} s", file=sys.stderr)
            results = asyncio.run(
                run_batches(out, args.poll, args.concurrency, sweep=not args.cold)
            )
            logins = logins_per_bmc(sim)
        if args.keep is not None:
            shutil.copy(out / "audit.sqlite3", args.keep)
    reports = [report(r, args.time_scale) for r in results]
    most = max(logins.values(), default=0)
    if args.json:
        print(json.dumps({"batches": reports, "logins_per_bmc_max": most}, indent=2))
    else:
        for r in reports:
            print(
                f"{r['verb']:>4}: {r['counts']}  total {r['total_s']:.2f} s, "
                f"hardware floor {r['floor_s']:.2f} s, ratio {r['ratio']:.3f} "
                f"({'meets' if r['target_met'] else 'MISSES'} ≤ {TARGET_RATIO}); "
                f"engine's critical path {r['critical_path_s']:.2f} s "
                f"(total / critical path {r['critical_path_ratio']:.3f})"
            )
            for w in r["waves"]:
                print(
                    f"      wave {w['wave']}: wall {w['wall_s']:.2f} s, "
                    f"slowest server {w['slowest_server_s']:.2f} s, floor {w['floor_s']:.2f} s"
                )
        print(
            f"Redfish sessions opened per BMC over both batches: at most {most} "
            f"({len(logins)} BMCs, {sum(logins.values())} logins); load {load:.2f} at start"
        )
    emit(
        *(
            figure
            for r in reports
            for figure in (
                Figure(f"{r['verb']}: total ({r['servers']} servers)", r["total_s"], "s"),
                Figure(f"{r['verb']}: hardware floor", r["floor_s"], "s"),
                Figure(f"{r['verb']}: total / hardware floor (≤ {TARGET_RATIO})", r["ratio"], "×"),
            )
        ),
        Figure("Redfish sessions opened per BMC, most", most, ""),
    )
    return 0 if all(r["ok"] and r["target_met"] for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
