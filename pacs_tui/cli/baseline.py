"""``pacs-tui baseline capture|compare``: the move-weekend performance baseline."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from pacs_tui.cli import EXIT_OK, EXIT_UNHEALTHY, EXIT_USAGE, load_fleet, select_servers


def register(subparsers: Any) -> None:
    """Add ``baseline capture`` and ``baseline compare``."""
    p = subparsers.add_parser(
        "baseline",
        help="capture a performance baseline, or compare two",
        description="Record the fleet's performance and identity before a move; prove after it "
        "that the same or better level was reached.",
    )
    sub = p.add_subparsers(dest="baseline_command", metavar="ACTION", required=True)

    c = sub.add_parser(
        "capture",
        help="measure the fleet and write a baseline file",
        description="Sample C-ECHO, C-FIND and Redfish latency, count each archive's studies, "
        "read Redfish inventory facts and unit states over SSH. Exit 0 when the file was "
        "written (servers that failed are recorded in it), 2 on bad input.",
    )
    c.add_argument("--inventory", "-i", type=Path, required=True, help="inventory YAML file")
    c.add_argument("--out", "-o", type=Path, required=True, help="baseline file to write (JSON)")
    c.add_argument("--samples", "-n", type=int, default=20, help="samples per metric (default 20)")
    c.add_argument("--select", "-s", default=None, help="selector expression, e.g. 'role=archive'")
    c.add_argument("--label", default="", help="a name for this capture, e.g. 'before move'")
    c.add_argument(
        "--like",
        type=Path,
        default=None,
        help="an earlier baseline whose study window and C-FIND query to reuse "
        "(use it for the AFTER capture, so the counts cover the same days)",
    )
    c.add_argument(
        "--study-days",
        type=int,
        default=None,
        help="count the studies of this many full days ending yesterday (default 7)",
    )
    c.set_defaults(handler=run_capture)

    m = sub.add_parser(
        "compare",
        help="compare two baseline files",
        description="Classify every metric per server, per role and for the fleet as better, "
        "same or worse (and missing, changed, new). Exit 0 only when everything is the same "
        "or better, 1 otherwise, 2 on bad input.",
    )
    m.add_argument("before", type=Path, help="baseline captured before the move")
    m.add_argument("after", type=Path, help="baseline captured after the move")
    m.add_argument("--report", type=Path, default=None, help="write report.md and report.html here")
    m.add_argument("--json", action="store_true", help="print the comparison as JSON")
    m.add_argument(
        "--replacements",
        type=Path,
        default=None,
        help="replacements recorded by 'pacs-tui replace' (default: the data directory's "
        "replacements.json, when there is one): a server whose new serial is its recorded "
        "spare's is 'replaced', not 'changed'",
    )
    m.add_argument(
        "--runbook",
        type=Path,
        default=None,
        help="the weekend's runbook: BIOS/BMC firmware versions its 'firmware' phases plan "
        "are 'planned', not 'changed'",
    )
    m.add_argument(
        "--inventory",
        "-i",
        type=Path,
        default=None,
        help="the inventory the runbook's 'servers:' selectors choose from "
        "(default: the one AFTER was captured with)",
    )
    m.set_defaults(handler=run_compare)


def _error(message: str) -> int:
    print(f"pacs-tui baseline: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def run_capture(args: argparse.Namespace) -> int:
    """Load, select, capture, save."""
    from pacs_tui.baseline import BaselineError, capture_baseline, load_baseline, save_baseline

    if args.samples < 1:
        return _error("--samples must be at least 1")
    inventory = load_fleet(args.inventory)
    servers = select_servers(inventory, args.select)
    settings: dict[str, Any] = {}
    find_query = None
    if args.like is not None:
        try:
            earlier = load_baseline(args.like)
        except BaselineError as exc:
            return _error(f"--like: {exc}")
        find_query = dict(earlier.find_query) or None
        if earlier.study_window is not None:
            settings["study_window"] = [d.isoformat() for d in earlier.study_window]
    if args.study_days is not None:
        if args.study_days < 1:
            return _error("--study-days must be at least 1")
        if args.like is not None:
            return _error("--study-days and --like exclude each other")
        settings["study_window_days"] = args.study_days
    baseline = asyncio.run(
        capture_baseline(
            inventory,
            servers=servers,
            samples=args.samples,
            label=args.label,
            settings=settings,
            find_query=find_query,
        )
    )
    try:
        save_baseline(baseline, args.out)
    except OSError as exc:
        return _error(f"cannot write {args.out}: {exc.strerror or exc}")
    troubled = [s for s in baseline.servers.values() if s.errors]
    for server in troubled:
        for error in server.errors:
            print(f"{server.name}: {error}", file=sys.stderr)
    bmcs = [s.name for s in servers if s.bmc is not None and s.name in baseline.servers]
    drawn = sum(1 for name in bmcs if baseline.servers[name].power_watts is not None)
    print(
        f"baseline of {len(baseline.servers)} servers written to {args.out}"
        + (f" ({len(troubled)} with errors)" if troubled else "")
        + (f"; power draw recorded for {drawn} of {len(bmcs)} with a BMC" if bmcs else "")
    )
    return EXIT_OK


def _planned(path: Path | None, inventory: str) -> dict[str, Any]:
    """Server -> PlannedIdentity of the replacements recorded against ``inventory``
    (the AFTER capture's inventory file); the last one per server is in force."""
    from pacs_tui.baseline.compare import PlannedIdentity
    from pacs_tui.replacements import read_replacements

    if path is not None and not path.exists():
        raise ValueError(f"--replacements: no file {path}")
    planned: dict[str, Any] = {}
    for entry in read_replacements(path):
        if entry.inventory == str(Path(inventory).absolute()):
            planned[entry.server] = PlannedIdentity(
                spare=entry.spare,
                serial=entry.serial,
                macs=entry.macs,
                note=f"recorded {entry.at} by {entry.operator}",
            )
    return planned


def _firmware(runbook_path: Path, inventory_path: Path | None, after: Any) -> dict[str, Any]:
    """Server -> PlannedFirmware from the runbook's ``firmware`` phases (later phases add
    to and override earlier ones). Bad input raises ``UsageError``."""
    from pacs_tui.baseline.compare import PlannedFirmware
    from pacs_tui.cli import UsageError
    from pacs_tui.runbook import RunbookError, load_runbook

    try:
        runbook = load_runbook(runbook_path)
    except RunbookError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        raise UsageError("") from None
    phases = [p for p in runbook.phases if p.firmware]
    inventory = None
    if any(p.servers for p in phases):
        inventory = load_fleet(inventory_path or Path(after.inventory))
    versions: dict[str, dict[str, str]] = {}
    named: dict[str, str] = {}
    for phase in phases:
        if phase.servers and inventory is not None:
            names = [s.name for s in select_servers(inventory, phase.servers)]
        else:
            names = list(after.servers)
        for name in names:
            versions.setdefault(name, {}).update(phase.firmware)
            named[name] = phase.name
    return {n: PlannedFirmware(named[n], v) for n, v in versions.items()}


def run_compare(args: argparse.Namespace) -> int:
    """Load both files, compare, print, optionally write the report."""
    from pacs_tui.baseline.compare import compare_baselines
    from pacs_tui.baseline.model import BaselineError, load_baseline
    from pacs_tui.baseline.report import write_report

    try:
        before = load_baseline(args.before)
        after = load_baseline(args.after)
    except BaselineError as exc:
        return _error(str(exc))
    try:
        planned = _planned(args.replacements, after.inventory)
    except ValueError as exc:  # ReplacementsError: the file names itself and the entry
        return _error(str(exc))
    firmware = (
        {}
        if getattr(args, "runbook", None) is None
        else _firmware(args.runbook, getattr(args, "inventory", None), after)
    )
    comparison = compare_baselines(before, after, planned=planned, firmware=firmware)
    paths = None
    if args.report is not None:
        try:
            paths = write_report(comparison, before, after, args.report)
        except OSError as exc:
            return _error(f"cannot write the report to {args.report}: {exc.strerror or exc}")
    if args.json:
        print(json.dumps(comparison.to_json(), indent=2))
    else:
        from pacs_tui.baseline.compare import problem_line, verdict_counts_text

        problems = comparison.problems()
        for finding in problems:
            print(problem_line(finding))
        verdict = "same or better" if comparison.ok else f"{len(problems)} problem(s)"
        print(f"{verdict} ({verdict_counts_text(comparison)})")
    if paths is not None:
        print(f"report: {paths[0]} and {paths[1]}", file=sys.stderr)
    return EXIT_OK if comparison.ok else EXIT_UNHEALTHY
