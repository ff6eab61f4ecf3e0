"""``pacs-tui audit``: read the append-only log of batches, steps and results."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pacs_tui.cli import EXIT_OK, EXIT_USAGE


def register(subparsers: Any) -> None:
    """Add the ``audit`` subcommand."""
    p = subparsers.add_parser(
        "audit",
        help="show the audit log of power batches",
        description=(
            "Print the audit log: every plan, confirmation, step, result and abort, with "
            "timestamp (UTC) and operator. Reads $PACS_TUI_DATA_DIR/audit.sqlite3 "
            "(default ~/.local/share/pacs-tui/audit.sqlite3)."
        ),
    )
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument(
        "--since", metavar="ISO|DURATION",
        help="only events since then: 2024-05-17T22:00, or 30m, 12h, 7d back",
    )  # fmt: skip
    p.add_argument("--batch", help="only the events of this batch id")
    p.add_argument("--db", type=Path, help="another audit database file")
    p.set_defaults(handler=run_audit)


def run_audit(args: argparse.Namespace) -> int:
    """Print the events."""
    from pacs_tui.batch.audit import (
        AuditLog,
        default_audit_path,
        event_json,
        event_line,
        parse_since,
    )

    since = None
    if args.since:
        try:
            since = parse_since(args.since)
        except ValueError as exc:
            print(f"pacs-tui audit: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
    path = args.db or default_audit_path()
    if not path.exists():
        if not args.json:
            print(f"no audit log yet ({path})", file=sys.stderr)
        return EXIT_OK
    with AuditLog(path) as log:
        for event in log.iter_events(since, args.batch):
            print(event_json(event) if args.json else event_line(event))
    return EXIT_OK
