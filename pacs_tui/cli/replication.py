"""``pacs-tui replication check|repair``: is every study on the replica, and repair it."""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
from datetime import UTC, date, datetime, timedelta
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
    """Add ``replication check`` and ``replication repair``."""
    p = subparsers.add_parser(
        "replication",
        help="compare the remote-backup copy with the primary study by study, and repair it",
        description="Compare two archives study by study (C-FIND) and repair the replica "
        "(C-MOVE from the primary).",
    )
    sub = p.add_subparsers(dest="replication_command", metavar="ACTION", required=True)
    c = sub.add_parser(
        "check",
        help="check that every study of the primary is listed on the replica with as many instances",
        description="List every study of both archives day by day (StudyInstanceUID and "
        "NumberOfStudyRelatedInstances), split a day that an archive does not answer "
        "completely, and name the missing, partial and extra studies. SAFE only when every "
        "window is complete and every primary study is on the replica with at least as many "
        "instances. Exit 0 safe, 1 not safe, 2 bad input.",
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
        default=None,
        metavar="LIST",
        help="modalities an hour that is still too big is split by (comma list; default a "
        "broad list of common modalities)",
    )
    c.add_argument("--timeout", type=float, default=60.0, help="seconds per query (default 60)")
    c.add_argument(
        "--pause",
        type=float,
        default=0.0,
        help="seconds between two queries to the same archive (default 0; each archive is "
        "always asked one query at a time)",
    )
    c.add_argument("--no-progress", action="store_true", help="no progress lines on stderr")
    c.add_argument("--json", action="store_true", help="print the report as JSON")
    c.set_defaults(handler=run_check)

    r = sub.add_parser(
        "repair",
        help="C-MOVE the missing and partial studies of a check report from primary to replica",
        description="Read `replication check --json` output and ask the primary to C-MOVE each "
        "missing or partial study to the replica's AE title, one at a time, paced; every move "
        "is audited and each moved study is checked again on both archives. Exit 0 when every "
        "study was repaired, 1 otherwise, 2 on bad input.",
    )
    r.add_argument("report", type=Path, help="the JSON report of `replication check --json`")
    r.add_argument("--inventory", "-i", type=Path, required=True, help="inventory YAML file")
    r.add_argument(
        "--destination-ae",
        default=None,
        help="the AE title the primary sends to (default: the replica's AE in the inventory)",
    )
    r.add_argument("--dry-run", action="store_true", help="print the plan, move nothing")
    r.add_argument("--yes", "-y", action="store_true", help="do not ask for typed confirmation")
    r.add_argument("--pause", type=float, default=1.0, help="seconds between two moves (default 1)")
    r.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        help="seconds each wait of a move may take (default 120)",
    )
    r.set_defaults(handler=run_repair)


def _error(message: str) -> int:
    print(f"pacs-tui replication: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _archives(inventory: Any, pairs: list[tuple[str, str]]) -> list[Any] | str:
    servers = []
    for option, name in pairs:
        try:
            server = inventory.server(name)
        except KeyError:
            return f"{option}: no server named {name!r} in the inventory"
        if server.dicom is None:
            return f"{option}: {name} has no dicom endpoint in the inventory"
        servers.append(server)
    if pairs[0][1] == pairs[1][1]:
        return "primary and replica name the same server"
    return servers


def run_check(args: argparse.Namespace) -> int:
    """Resolve both servers, run the comparison, print the findings and the verdict."""
    from pacs_tui.replication import check_replication
    from pacs_tui.replication.progress import ProgressLine

    inventory = load_fleet(args.inventory)
    servers = _archives(inventory, [("--primary", args.primary), ("--replica", args.replica)])
    if isinstance(servers, str):
        return _error(servers)
    date_to = args.date_to or date.today()
    date_from = args.date_from or date_to - timedelta(days=DEFAULT_DAYS - 1)
    if date_to < date_from:
        return _error(f"--to {date_to} is before --from {date_from}")
    if args.timeout <= 0:
        return _error("--timeout must be > 0")
    if args.pause < 0:
        return _error("--pause must be >= 0")
    modalities = None
    if args.by_modality is not None:
        modalities = [m.strip().upper() for m in args.by_modality.split(",") if m.strip()]
        if not modalities:
            return _error("--by-modality: expected a comma list like CT,MR")
    report = asyncio.run(
        check_replication(
            servers[0],
            servers[1],
            date_from=date_from,
            date_to=date_to,
            modalities=modalities,
            timeout=args.timeout,
            pause_s=args.pause,
            progress=None if args.no_progress else ProgressLine(sys.stderr),
        )
    )
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        for finding in report.findings:
            print(finding.line())
        for window in report.incomplete:
            print(f"incomplete   {window.text()}")
        print(report.verdict())
    return EXIT_OK if report.safe_to_shutdown else EXIT_UNHEALTHY


def run_repair(args: argparse.Namespace) -> int:
    """Load the report, show the plan, confirm, move, re-check."""
    from pacs_tui.replication.report import ReportError, load_report

    try:
        wanted = load_report(args.report)
    except ReportError as exc:
        return _error(str(exc))
    if args.pause < 0:
        return _error("--pause must be >= 0")
    if args.timeout <= 0:
        return _error("--timeout must be > 0")
    inventory = load_fleet(args.inventory)
    if inventory.read_only:
        # A C-MOVE writes studies into the replica: read-only means nothing is changed anywhere.
        return _error(
            f"refused: the inventory {inventory.path} is marked read_only; "
            "repair sends C-MOVE requests and is disabled"
        )
    servers = _archives(inventory, [("primary", wanted.primary), ("replica", wanted.replica)])
    if isinstance(servers, str):
        return _error(f"{args.report}: {servers}")
    destination = args.destination_ae or servers[1].dicom.ae_title
    from pacs_tui.cli.signals import run_until_signalled

    # SIGTERM like Ctrl-C: the stop is audited (no end row would read as a crash).
    return asyncio.run(
        run_until_signalled(
            lambda _stop: _repair(args, servers[0], servers[1], destination, wanted.studies)
        )
    )


async def _repair(
    args: argparse.Namespace, primary: Any, replica: Any, destination: str, studies: Any
) -> int:
    from pacs_tui.batch.audit import AuditLog
    from pacs_tui.cli.signals import read_line
    from pacs_tui.dicom.tls import TlsSetupError, setup_context
    from pacs_tui.replication.repair import VERB, plan_text, repair_studies

    try:
        setup_context(primary.dicom)  # a broken CA or key file stops us before confirming
    except TlsSetupError as exc:
        print(f"pacs-tui replication: {primary.name}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    plan = plan_text(primary.name, replica.name, destination, studies)
    if not studies:
        print("nothing to repair: the report names no missing or partial study")
        return EXIT_OK
    if args.dry_run:
        print(f"dry run: would {plan}:")
        for study in studies:
            print(f"  {study.line()}")
        return EXIT_OK
    batch = f"repl-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(2)}"
    with AuditLog() as audit:
        audit.record(batch, "plan", verb=VERB, server=primary.name, detail=plan)
        expected = str(len(studies))
        if args.yes:
            answer, how = expected, "--yes"
        else:
            print(f"This will {plan}.", file=sys.stderr)
            print(f"Type {expected} to confirm: ", end="", file=sys.stderr, flush=True)
            try:
                answer = await read_line()
            except asyncio.CancelledError:
                audit.record(
                    batch, "confirm", verb=VERB, server=primary.name, outcome="refused",
                    detail="stopped by a signal at the prompt; nothing was moved",
                )  # fmt: skip
                raise
            how = "typed"
        accepted = answer.strip() == expected
        audit.record(
            batch,
            "confirm",
            verb=VERB,
            server=primary.name,
            outcome="accepted" if accepted else "refused",
            detail=f"{how}: {answer.strip()!r}",
        )
        if not accepted:
            print("pacs-tui replication: not confirmed; nothing was moved", file=sys.stderr)
            return EXIT_UNHEALTHY
        audit.record(batch, "batch-start", verb=VERB, server=primary.name, detail=plan)
        try:
            result = await repair_studies(
                primary,
                replica,
                studies,
                destination_ae=destination,
                audit=audit,
                batch=batch,
                pause_s=args.pause,
                timeout=args.timeout,
                say=lambda line: print(line, file=sys.stderr, flush=True),
            )
        except BaseException as exc:  # Ctrl-C or SIGTERM: the stop is on record, then it goes on
            audit.record(
                batch, "batch-end", verb=VERB, server=primary.name, outcome="aborted",
                detail=f"interrupted ({type(exc).__name__}); re-run the check to see what is left",
            )  # fmt: skip
            raise
        repaired = sum(1 for s in result.steps if s.repaired) + len(result.skipped)
        summary = f"{repaired} of {len(studies)} studies repaired" + (
            f" ({len(result.skipped)} already whole)" if result.skipped else ""
        )
        audit.record(
            batch,
            "batch-end",
            verb=VERB,
            server=primary.name,
            outcome="ok" if result.ok else "failed",
            detail=summary + (f"; stopped: {result.stopped}" if result.stopped else ""),
        )
    for step in result.steps:
        print(step.line())
    if result.stopped:
        print(f"pacs-tui replication: stopped: {result.stopped}", file=sys.stderr)
    print(f"{'REPAIRED' if result.ok else 'NOT REPAIRED'}: {summary} (audit batch {batch})")
    return EXIT_OK if result.ok else EXIT_UNHEALTHY
