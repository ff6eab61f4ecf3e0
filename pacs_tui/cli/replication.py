"""``pacs-tui replication check``: is the remote-backup copy complete?"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from pacs_tui.cli import EXIT_OK, EXIT_UNHEALTHY, EXIT_USAGE, load_fleet

DEFAULT_DAYS = 30


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date YYYY-MM-DD") from None


def register(subparsers: Any) -> None:
    """Add ``replication check``."""
    p = subparsers.add_parser(
        "replication",
        help="compare the primary archive with its remote-backup copy",
        description="Compare study counts of two archives by C-FIND.",
    )
    sub = p.add_subparsers(dest="replication_command", metavar="ACTION", required=True)
    c = sub.add_parser(
        "check",
        help="compare study counts per day (and per modality) of primary and replica",
        description="Count studies per day on both archives (and per modality with "
        "--by-modality), list the days that differ and say whether the primary may be shut "
        "down (every count must match). Exit 0 safe, 1 not safe, 2 bad input.",
    )
    c.add_argument("--inventory", "-i", type=Path, required=True, help="inventory YAML file")
    c.add_argument("--primary", required=True, help="name of the primary archive server")
    c.add_argument("--replica", required=True, help="name of the remote-backup archive server")
    c.add_argument(
        "--from",
        dest="date_from",
        type=_day,
        default=None,
        help=f"first day (default: {DEFAULT_DAYS - 1} days before --to)",
    )
    c.add_argument(
        "--to", dest="date_to", type=_day, default=None, help="last day (default: today)"
    )
    c.add_argument(
        "--by-modality",
        nargs="?",
        const="",
        default=None,
        metavar="LIST",
        help="also compare per modality (comma list; default CR,CT,DX,MG,MR,NM,PT,US,XA)",
    )
    c.add_argument("--timeout", type=float, default=30.0, help="seconds per query (default 30)")
    c.add_argument("--json", action="store_true", help="print the report as JSON")
    c.set_defaults(handler=run_check)


def _error(message: str) -> int:
    print(f"pacs-tui replication: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def run_check(args: argparse.Namespace) -> int:
    """Resolve both servers, run the check, print the verdict."""
    from pacs_tui.replication import DEFAULT_MODALITIES, check_replication

    inventory = load_fleet(args.inventory)
    servers = []
    for option, name in (("--primary", args.primary), ("--replica", args.replica)):
        try:
            server = inventory.server(name)
        except KeyError:
            return _error(f"{option}: no server named {name!r} in the inventory")
        if server.dicom is None:
            return _error(f"{option}: {name} has no dicom endpoint in the inventory")
        servers.append(server)
    if args.primary == args.replica:
        return _error("--primary and --replica name the same server")
    date_to = args.date_to or date.today()
    date_from = args.date_from or date_to - timedelta(days=DEFAULT_DAYS - 1)
    if date_to < date_from:
        return _error(f"--to {date_to} is before --from {date_from}")
    if args.timeout <= 0:
        return _error("--timeout must be > 0")
    modalities = None
    if args.by_modality is not None:
        listed = [m.strip().upper() for m in args.by_modality.split(",") if m.strip()]
        modalities = listed or list(DEFAULT_MODALITIES)
    report = asyncio.run(
        check_replication(
            servers[0],
            servers[1],
            date_from=date_from,
            date_to=date_to,
            modalities=modalities,
            timeout=args.timeout,
        )
    )
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        for difference in report.differences:
            what = difference.modality or "all"
            print(
                f"{difference.day}  {what:4} primary {difference.primary:>7}  "
                f"replica {difference.replica:>7}  ({difference.replica - difference.primary:+d})"
            )
        for error in report.errors:
            print(f"error: {error}", file=sys.stderr)
        print(report.verdict())
    return EXIT_OK if report.safe_to_shutdown else EXIT_UNHEALTHY
