"""``pacs-tui runbook check|show|mark`` and ``pacs-tui custody show|advance|correct``.

The runbook is the weekend's plan (phases, owners, planned times); custody is
where each server is in the move. Exit codes: 0 ok, 1 a refused custody
change, 2 bad input (an invalid runbook, an unknown phase or selector).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pacs_tui.cli import EXIT_OK, EXIT_UNHEALTHY, EXIT_USAGE, load_fleet, select_servers

if TYPE_CHECKING:
    from pacs_tui.custody_file import CustodyFileError


def register(subparsers: Any) -> None:
    """Add the ``runbook`` and ``custody`` subcommands."""
    rb = subparsers.add_parser(
        "runbook",
        help="check and show the move-weekend runbook (phases, owners, clock vs plan)",
        description="The move-weekend runbook: phases with owners and planned times.",
    )
    rb_sub = rb.add_subparsers(dest="runbook_command", metavar="ACTION", required=True)
    check = rb_sub.add_parser("check", help="validate a runbook file (exit 0 ok, 2 problems)")
    check.add_argument("file", type=Path)
    check.set_defaults(handler=run_check)
    show = rb_sub.add_parser("show", help="phases, the current phase and the clock against plan")
    show.add_argument("file", type=Path)
    show.add_argument("--json", action="store_true", help="print JSON")
    show.add_argument("--now", help="pretend it is this ISO time (default: now)")
    show.add_argument("--progress", type=Path, help="progress file (default: in the data dir)")
    show.set_defaults(handler=run_show)
    mark = rb_sub.add_parser("mark", help="record that a phase started or is done (audited)")
    mark.add_argument("file", type=Path)
    mark.add_argument("phase", help="phase name (case-insensitive)")
    what = mark.add_mutually_exclusive_group(required=True)
    what.add_argument("--started", action="store_true")
    what.add_argument("--done", action="store_true")
    mark.add_argument("--at", help="ISO time (default: now)")
    mark.add_argument("--progress", type=Path, help="progress file (default: in the data dir)")
    mark.set_defaults(handler=run_mark)

    cu = subparsers.add_parser(
        "custody",
        help="each server's custody in the move: running → ... → verified",
        description=(
            "Custody states: running → shut-down → in-transit → racked → powered → verified. "
            "advance moves one step forward; correct moves anywhere with a reason. Every "
            "change is written to the audit log."
        ),
    )
    cu_sub = cu.add_subparsers(dest="custody_command", metavar="ACTION", required=True)
    for name, helptext in (
        ("show", "counts per state, servers and hospitals/clinics without PACS service"),
        ("advance", "move the selected servers one step forward (or to --to)"),
        ("correct", "move the selected servers to --to against the order (needs --reason)"),
    ):
        p = cu_sub.add_parser(name, help=helptext)
        p.add_argument("--inventory", "-i", type=Path, required=True, help="inventory YAML")
        p.add_argument(
            "--select", "-s", required=name != "show", help="selector, e.g. 'site=dc-main'"
        )
        p.add_argument("--board", type=Path, help="custody file (default: in the data dir)")
        p.add_argument("--json", action="store_true", help="print JSON")
        if name != "show":
            p.add_argument("--to", required=name == "correct", help="target state")
            p.add_argument("--reason", default="", help="why (required for a correction)")
            p.add_argument(
                "--create", action="store_true",
                help="start a new board at --board when none is there (else refused)",
            )  # fmt: skip
        p.set_defaults(handler=run_custody, custody_action=name)


def _error(command: str, message: str) -> int:
    print(f"pacs-tui {command}: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _load(path: Path) -> Any:
    from pacs_tui.runbook import RunbookError, load_runbook

    try:
        return load_runbook(path)
    except RunbookError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return None


def _parse_now(text: str | None) -> datetime:
    if not text:
        return datetime.now(UTC).astimezone()
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.astimezone()


def run_check(args: argparse.Namespace) -> int:
    """``runbook check FILE``."""
    runbook = _load(args.file)
    if runbook is None:
        return EXIT_USAGE
    first, last = runbook.phases[0], runbook.phases[-1]
    print(
        f"{args.file}: ok: {len(runbook.phases)} phase(s) from "
        f"{first.planned_start:%a %H:%M} to {last.planned_end:%a %H:%M}"
    )
    return EXIT_OK


def run_show(args: argparse.Namespace) -> int:
    """``runbook show FILE [--json]``."""
    from pacs_tui.runbook import PhaseRecord, RunbookProgress

    runbook = _load(args.file)
    if runbook is None:
        return EXIT_USAGE
    try:
        now = _parse_now(args.now)
    except ValueError:
        return _error("runbook", f"--now {args.now!r} is not an ISO time")
    progress = RunbookProgress(args.progress)
    clock = runbook.clock(now, progress)
    if args.json:
        print(json.dumps({"runbook": runbook.to_json(), "clock": clock.to_json()}, indent=2))
        return EXIT_OK
    print(f"{runbook.name or args.file}")
    for phase in runbook.phases:
        record = progress.records.get(phase.name, PhaseRecord())
        status = "done" if record.finished else ("running" if record.started else "")
        marker = ">" if clock.current is phase else " "
        print(
            f"{marker} {phase.planned_start:%a %H:%M}-{phase.planned_end:%H:%M}  "
            f"{phase.name:<28} {phase.kind or '':<11} {phase.owner:<20} {status}"
        )
    current = clock.current.name if clock.current else "all phases done"
    planned = clock.planned.name if clock.planned else "no phase planned now"
    print(f"now {clock.now:%a %H:%M}: current {current}; plan says {planned}; {clock.verdict}")
    return EXIT_OK


def run_mark(args: argparse.Namespace) -> int:
    """``runbook mark FILE PHASE --started|--done``."""
    from pacs_tui.batch.audit import AuditLog
    from pacs_tui.runbook import RunbookProgress

    runbook = _load(args.file)
    if runbook is None:
        return EXIT_USAGE
    try:
        phase = runbook.phase(args.phase)
    except KeyError as exc:
        return _error("runbook", str(exc.args[0]))
    try:
        at = _parse_now(args.at)
    except ValueError:
        return _error("runbook", f"--at {args.at!r} is not an ISO time")
    with AuditLog() as audit:
        progress = RunbookProgress(args.progress, audit=audit)
        if args.started:
            progress.start(phase, at)
        else:
            progress.finish(phase, at)
    print(f"{phase.name}: {'started' if args.started else 'done'} at {at:%a %H:%M}")
    return EXIT_OK


def run_custody(args: argparse.Namespace) -> int:
    """``custody show|advance|correct``."""
    from pacs_tui.custody import CustodyBoard, CustodyError, CustodyFileError, parse_state

    inventory = load_fleet(args.inventory)
    servers = select_servers(inventory, args.select)
    names = [s.name for s in servers]
    if args.custody_action != "show":
        if inventory.read_only:
            # The board is the room's record of where every box is; read-only changes nothing.
            return _error(
                "custody",
                f"refused: the inventory {inventory.path} is marked read_only; "
                "custody changes are disabled",
            )
        if args.to:
            try:
                parse_state(args.to)
            except CustodyError as exc:
                return _error("custody", f"--to: {exc}")
        if args.custody_action == "correct" and not args.reason.strip():
            return _error("custody", "--reason is required for a correction")
    if args.board is not None and not args.board.exists():
        # A typo in --board must not start a private board the team never sees.
        if args.custody_action == "show" or not args.create:
            return _error(
                "custody",
                f"no custody board at {args.board}"
                + ("" if args.custody_action == "show" else " (add --create to start one there)"),
            )
        if not args.board.parent.is_dir():
            return _error("custody", f"--board: no directory {args.board.parent}")
        print(f"pacs-tui custody: starting a new board at {args.board}", file=sys.stderr)
    try:
        board = CustodyBoard.open(inventory, path=args.board)
    except CustodyFileError as exc:
        return _board_error(exc)
    try:
        if args.custody_action == "show":
            return _show_custody(args, board, inventory, names)
        try:
            if args.custody_action == "advance":
                changes = board.advance(names, args.to or None, reason=args.reason)
            else:
                changes = board.correct(names, args.to, reason=args.reason)
        except CustodyFileError as exc:  # broken by someone else since it was opened
            return _board_error(exc)
        except CustodyError as exc:
            print(f"pacs-tui custody: refused: {exc}", file=sys.stderr)
            print("pacs-tui custody: nothing was changed", file=sys.stderr)
            return EXIT_UNHEALTHY
        if args.json:
            print(json.dumps([c.to_json() for c in changes], indent=2))
        else:
            for change in changes:
                print(f"{change.server}: {change.before} -> {change.after}")
            print(f"{len(changes)} server(s) changed; {len(names) - len(changes)} already there")
        return EXIT_OK
    finally:
        board.close()


def _board_error(exc: CustodyFileError) -> int:
    """A custody board file that cannot be used: each problem on its own line, exit 2."""
    for problem in str(exc).splitlines():
        _error("custody", problem)
    print("pacs-tui custody: nothing was changed; fix or move the board file", file=sys.stderr)
    return EXIT_USAGE


def _show_custody(args: argparse.Namespace, board: Any, inventory: Any, names: list[str]) -> int:
    counts = board.counts()
    affected = board.affected_sites(inventory)
    if args.json:
        print(
            json.dumps(
                {
                    "counts": {str(k): v for k, v in counts.items()},
                    "servers": {n: str(board.state(n)) for n in names},
                    "no_service": [
                        {"site": a.site, "kind": a.kind, "level": str(a.level)} for a in affected
                    ],
                },
                indent=2,
            )
        )
        return EXIT_OK
    print("  ".join(f"{state}: {count}" for state, count in counts.items()))
    if args.select:
        for name in names:
            since = board.since(name)
            print(f"  {name:<20} {board.state(name)!s:<11} {since}")
    if affected:
        print("hospitals/clinics without full PACS service:")
        for site in affected:
            print(f"  {site.site} ({site.kind}): {site.level}")
    else:
        print("every hospital and clinic has PACS service")
    return EXIT_OK
