"""``pacs-tui rehearse``: the whole move weekend, headless, on the simulator.

Exit 0 only when the move is proven same-or-better; 1 when a problem was
found (each one named, e.g. ``slow-storage: archive find latency worse``);
2 for bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import sys
from pathlib import Path
from typing import Any

from pacs_tui.cli import EXIT_OK, EXIT_UNHEALTHY, EXIT_USAGE


def register(subparsers: Any) -> None:
    """Add the ``rehearse`` subcommand."""
    from pacs_tui.rehearsal import PLANTS

    p = subparsers.add_parser(
        "rehearse",
        help="rehearse the move weekend headless on the simulator and report",
        description=(
            "Start a simulated data center and run the weekend: replication check, baseline, "
            "shutdown waves, transit, power-up waves with health gates, baseline again, "
            "compare. Exit 0 only when the move is proven same-or-better."
        ),
    )
    p.add_argument("--servers", type=int, default=300, help="fleet size (default 300)")
    p.add_argument("--report", type=Path, required=True, metavar="DIR", help="report folder")
    p.add_argument(
        "--plant", action="append", choices=PLANTS, default=[], metavar="FAULT",
        help=f"plant a problem in the new site (repeatable): {', '.join(PLANTS)}",
    )  # fmt: skip
    p.add_argument(
        "--time-scale", type=float, default=0.05,
        help="simulated power/boot delays (1 = realistic; default 0.05)",
    )  # fmt: skip
    p.add_argument(
        "--samples", type=int, default=5, help="latency samples per metric and server (5)"
    )
    p.add_argument("--seed", type=int, default=7, help="fleet seed (default 7)")
    p.add_argument(
        "--address-octet", type=int, help="servers on 127.OCTET.x.y (default: random 100-250)"
    )
    p.add_argument("--transit", type=float, default=1.0, help="seconds BMCs stay unreachable")
    p.add_argument("--concurrency", type=int, default=64, help="servers at once per wave (64)")
    p.add_argument(
        "--replication-days", type=int, default=7,
        help="days up to today compared between each archive and its replica (7)",
    )  # fmt: skip
    p.add_argument(
        "--noise-floor-ms", type=float, default=10.0,
        help="latency changes below this are noise on a shared CPU (default 10 ms)",
    )  # fmt: skip
    p.add_argument(
        "--batch-timeout", type=float, default=180.0, metavar="S",
        help="how long each PowerState wait and health gate may take (default 180 s): "
        "what a dead-on-arrival server costs before it is replaced from the spares pool",
    )  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the result as JSON at the end")
    p.set_defaults(handler=run_rehearse)


def _raise_open_file_limit() -> None:
    """Hundreds of BMC, SSH and DICOM connections at once: lift the soft fd limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = 65536 if hard == resource.RLIM_INFINITY else hard
    if soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def run_rehearse(args: argparse.Namespace) -> int:
    """Check the arguments, rehearse, print the verdict."""
    from pacs_tui.rehearsal import Rehearsal, RehearsalOptions

    if args.address_octet is not None and not 1 <= args.address_octet <= 254:
        print("pacs-tui rehearse: error: --address-octet must be 1..254", file=sys.stderr)
        return EXIT_USAGE
    if not args.batch_timeout > 0:
        print("pacs-tui rehearse: error: --batch-timeout must be > 0", file=sys.stderr)
        return EXIT_USAGE
    try:
        options = RehearsalOptions(
            report_dir=args.report,
            servers=args.servers,
            plants=tuple(dict.fromkeys(args.plant)),
            time_scale=args.time_scale,
            samples=args.samples,
            seed=args.seed,
            address_octet=args.address_octet,
            transit_s=args.transit,
            concurrency=args.concurrency,
            replication_days=args.replication_days,
            noise_floor_ms=args.noise_floor_ms,
            batch_timeout_s=args.batch_timeout,
        )
    except ValueError as exc:
        print(f"pacs-tui rehearse: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    _raise_open_file_limit()
    quiet = args.json
    rehearsal = Rehearsal(options, progress=None if quiet else lambda line: print(line, flush=True))
    result = asyncio.run(rehearsal.run())
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        for detection in result.detections:
            print(f"FOUND {detection}")
        if result.ok:
            print(f"PASSED: the move is proven same-or-better ({result.elapsed_s:.0f} s)")
        else:
            where = f"; stopped at {result.stopped_at}" if result.stopped_at else ""
            print(f"FAILED: {', '.join(result.faults) or 'a phase failed'}{where}")
        print(f"report: {result.summary_path}")
    return EXIT_OK if result.ok else EXIT_UNHEALTHY
