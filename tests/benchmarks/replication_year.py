"""Benchmark: check one simulated year of replication (~876 000 studies per side).

Not a test. Two simulated archives (a primary holding the group's ~2 400
studies a day and its replica) run in a child process, so the archives and
the check each have a core of this 2-core machine; the check runs here, as
``pacs-tui replication check`` does, and prints wall time, peak RSS of both
processes and the queries sent.

    .venv/bin/python tests/benchmarks/replication_year.py [--days 365] [--per-day 2400]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from _summary import Figure, emit  # noqa: E402

from pacs_tui.inventory import DicomEndpoint, Server  # noqa: E402
from pacs_tui.replication import check_replication  # noqa: E402
from pacs_tui.replication.progress import ProgressLine  # noqa: E402

LAST_DAY = date(2026, 1, 4)

MEASURES = (
    "pacs-tui replication check of two simulated archives (C-FIND by day, ~2 400 studies/day)"
)
LEAVES_OUT = (
    "a whole year under make bench (90 days; --days 365 for it); a real archive's database; "
    "C-MOVE of missing studies; network latency (loopback)"
)
QUICK_ARGS = ("--days", "90")


async def serve(days: int, per_day: float, octet: int) -> None:
    """The child: the two archives, until stdin closes."""
    from dicom_peers import free_port
    from pacs_tui.sim.dicom_node import DicomNode
    from pacs_tui.sim.host import HardwareFacts, SimulatedHost
    from pacs_tui.sim.studies import StudyIndex

    index = StudyIndex(7000, LAST_DAY - timedelta(days=days + 30), LAST_DAY, per_day)
    ports = {}
    nodes = []
    for n, (name, ae, studies) in enumerate(
        (("arch-001", "ARCH001", index), ("bkp-01", "BKP01", index.replica())), 1
    ):
        address = f"127.{octet}.0.{n}"
        hardware = HardwareFacts("x", "x", name, ("52:54:00:00:00:01",), "1", "1")
        host = SimulatedHost(name=name, role="archive", site="dc", address=address, units=("pacs",),
                             hardware=hardware, speaks_dicom=True)  # fmt: skip
        node = DicomNode(host, port=free_port(address), ae_title=ae, studies=studies)
        await node.start()
        nodes.append(node)
        ports[name] = [address, node.port, ae]
    print(json.dumps(ports), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for node in nodes:
        await node.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--per-day", type=float, default=2400.0)
    parser.add_argument("--pause", type=float, default=0.0)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--octet", type=int, default=171, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.days, args.per_day, args.octet))
        return 0
    child = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--serve",
            "--days",
            str(args.days),
            "--per-day",
            str(args.per_day),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdin is not None
    ports = json.loads(child.stdout.readline())
    servers = [
        Server(name=name, site="dc", role="archive", dicom=DicomEndpoint(addr, port, ae, "PACSTUI"))
        for name, (addr, port, ae) in ports.items()
    ]
    first = LAST_DAY - timedelta(days=args.days - 1)
    began, cpu = time.monotonic(), time.process_time()
    report = asyncio.run(
        check_replication(
            servers[0],
            servers[1],
            date_from=first,
            date_to=LAST_DAY,
            pause_s=args.pause,
            timeout=120,
            progress=ProgressLine(sys.stderr, interval_s=10),
        )
    )
    wall, cpu = time.monotonic() - began, time.process_time() - cpu
    child.stdin.close()
    child.wait(timeout=30)
    client_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    server_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "days": args.days,
                "studies_per_side": report.primary_total,
                "safe": report.safe_to_shutdown,
                "wall_s": round(wall, 1),
                "check_cpu_s": round(cpu, 1),
                "check_peak_rss_mb": round(client_rss, 1),
                "archives_peak_rss_mb": round(server_rss, 1),
                "queries": report.queries,
                "cores": os.cpu_count(),
            },
            indent=2,
        )
    )
    queries = sum(report.queries.values())
    emit(
        Figure(f"{args.days} days: studies per side", report.primary_total, "studies"),
        Figure("check wall time", wall, "s"),
        Figure("check throughput", report.primary_total / wall, "studies/s"),
        Figure("C-FIND queries sent (both sides)", queries, "queries"),
        Figure("check peak RSS", client_rss, "MB"),
        Figure("archives' peak RSS", server_rss, "MB"),
    )
    # The replica is whole by construction: anything but "safe" is a wrong verdict.
    return 0 if report.safe_to_shutdown else 1


if __name__ == "__main__":
    sys.exit(main())
