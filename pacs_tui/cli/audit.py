"""``pacs-tui audit``: read the append-only log of batches, steps and results.

After the events it names every interrupted batch (started, never ended, its
process gone: see ``pacs_tui.batch.interrupted``); ``--ack ID`` records that
the operator has seen one, so it is no longer named.
"""

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
            "(default ~/.local/share/pacs-tui/audit.sqlite3). Batches that started and never "
            "ended (their process was killed) are named last, with the servers not confirmed "
            "at their target, until acknowledged with --ack."
        ),
    )
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument(
        "--since", metavar="ISO|DURATION",
        help="only events since then: 2024-05-17T22:00, or 30m, 12h, 7d back",
    )  # fmt: skip
    p.add_argument("--batch", help="only the events of this batch id")
    p.add_argument("--db", type=Path, help="another audit database file")
    p.add_argument(
        "--interrupted", action="store_true",
        help="only the interrupted batches (started, never ended, process gone)",
    )  # fmt: skip
    p.add_argument(
        "--ack", metavar="BATCH",
        help="acknowledge an interrupted batch (audited): it is no longer named",
    )  # fmt: skip
    p.set_defaults(handler=run_audit)


def run_audit(args: argparse.Namespace) -> int:
    """Print the events, then the interrupted batches; or acknowledge one."""
    import json
    import sqlite3

    from pacs_tui.batch.audit import (
        AuditLog,
        default_audit_path,
        event_json,
        event_line,
        parse_since,
    )
    from pacs_tui.batch.interrupted import NotInterrupted, acknowledge, interrupted_in

    since = None
    if args.since:
        try:
            since = parse_since(args.since)
        except ValueError as exc:
            print(f"pacs-tui audit: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
    path = args.db or default_audit_path()
    if not path.exists():
        if args.ack:
            print(f"pacs-tui audit: error: --ack: no audit log at {path}", file=sys.stderr)
            return EXIT_USAGE
        if not args.json:
            print(f"no audit log yet ({path})", file=sys.stderr)
        return EXIT_OK
    try:
        with AuditLog(path) as log:
            if args.ack:
                try:
                    item = acknowledge(log, args.ack)
                except NotInterrupted as exc:
                    print(f"pacs-tui audit: error: --ack: {exc}", file=sys.stderr)
                    return EXIT_USAGE
                print(f"acknowledged interrupted batch {item.batch} ({item.verb})")
                return EXIT_OK
            if not args.interrupted:
                for event in log.iter_events(since, args.batch):
                    print(event_json(event) if args.json else event_line(event))
            named = [i for i in interrupted_in(log) if args.batch is None or i.batch == args.batch]
            for item in named:
                print(json.dumps(item.to_json()) if args.json else item.line())
            if args.interrupted and not named and not args.json:
                print("no interrupted batches")  # silence would read as "did it run?"
    except sqlite3.Error as exc:
        print(f"pacs-tui audit: error: {path}: not a readable audit log: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK
