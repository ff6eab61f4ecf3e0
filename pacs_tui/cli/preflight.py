"""``pacs-tui preflight``: measure every site's WAN link(s) from here, before a move step.

Exit 0 when every link is ok (and, with ``--baseline``, the same or better),
1 when one is unreachable, degraded, unknown, worse or missing, 2 on bad input.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pacs_tui.cli import EXIT_OK, EXIT_UNHEALTHY, UsageError, load_fleet
from pacs_tui.inventory.checker import suggest

if TYPE_CHECKING:
    from pacs_tui.links.baseline import LinkComparison
    from pacs_tui.links.verdict import LinkReport

MAX_SAMPLES = 1000


def register(subparsers: Any) -> None:
    """Add ``preflight``."""
    p = subparsers.add_parser(
        "preflight",
        help="measure each hospital's and clinic's WAN link(s) from here",
        description="Per site link of the inventory: TCP connect and C-ECHO latency, jitter and "
        "loss over N samples, and one C-FIND round trip to the site's gateway; a verdict per "
        "link (ok, degraded, unreachable, unknown) and, with --baseline, better/same/worse. "
        "Exit 0 when every link is ok (and same or better), 1 otherwise, 2 on bad input.",
    )
    p.add_argument("--inventory", "-i", type=Path, required=True, help="inventory YAML file")
    p.add_argument(
        "--samples", "-n", type=int, default=10, help="samples per link and kind (default 10)"
    )
    p.add_argument("--json", action="store_true", help="print the reports as JSON")
    p.add_argument("--baseline-out", type=Path, default=None, help="write a link baseline here")
    p.add_argument("--baseline", type=Path, default=None, help="compare with this link baseline")
    p.add_argument(
        "--site", action="append", default=[], metavar="NAME", help="only this site (repeatable)"
    )
    p.add_argument(
        "--parallel", type=int, default=4, help="links measured at once (default 4; 1-64)"
    )
    p.add_argument(
        "--timeout", type=float, default=3.0, help="seconds per TCP connect or C-ECHO (default 3)"
    )
    p.set_defaults(handler=run_preflight)


def run_preflight(args: argparse.Namespace) -> int:
    """Check the flags and files, measure, print, write or compare the baseline."""
    from pacs_tui.links import Sampling, measure_links, site_links
    from pacs_tui.links.baseline import LinkBaselineError, capture, compare_all, load, save
    from pacs_tui.links.verdict import Thresholds

    if not 1 <= args.samples <= MAX_SAMPLES:
        raise UsageError(f"--samples must be 1..{MAX_SAMPLES}")
    if not 1 <= args.parallel <= 64:
        raise UsageError("--parallel must be 1..64")
    if not 0 < args.timeout <= 60:
        raise UsageError("--timeout must be in (0, 60] seconds")
    before = None
    if args.baseline is not None:
        try:
            before = load(args.baseline)
        except LinkBaselineError as exc:
            raise UsageError(f"--baseline: {exc}") from None
    inventory = load_fleet(args.inventory)
    pairs = site_links(inventory)
    if args.site:
        unknown = [s for s in args.site if s not in inventory.sites]
        if unknown:
            hints = "".join(suggest(s, inventory.sites) for s in unknown)
            raise UsageError(
                f"--site: no site {', '.join(map(repr, unknown))} in the inventory{hints}"
            )
        pairs = [(site, link) for site, link in pairs if site.name in args.site]
    if not pairs:
        where = f"site(s) {', '.join(args.site)}" if args.site else str(args.inventory)
        raise UsageError(f"no site links to measure in {where}; declare them under sites[].links")
    thresholds = Thresholds()
    sampling = Sampling(samples=args.samples, timeout_s=args.timeout, parallel=args.parallel)
    reports = asyncio.run(measure_links(pairs, sampling, thresholds))
    compared: dict[str, LinkComparison] = {}
    gone: list[LinkComparison] = []
    if before is not None:
        if args.site:  # the sites left out were not measured: not "missing"
            before = {k: v for k, v in before.items() if v.site in args.site}
        compared, gone = compare_all(before, reports, thresholds)
    if args.baseline_out is not None:
        try:
            save(capture(reports, args.samples), args.baseline_out)
        except OSError as exc:
            raise UsageError(f"cannot write {args.baseline_out}: {exc.strerror or exc}") from None
    ok = all(r.verdict == "ok" for r in reports) and not any(
        c.problem for c in [*compared.values(), *gone]
    )
    if args.json:
        print(json.dumps(_json(reports, compared, gone, thresholds, ok), indent=2))
    else:
        _print_table(reports, compared, gone)
    if args.baseline_out is not None:
        print(f"link baseline written to {args.baseline_out}", file=sys.stderr)
    return EXIT_OK if ok else EXIT_UNHEALTHY


def _json(
    reports: list[LinkReport],
    compared: dict[str, LinkComparison],
    gone: list[LinkComparison],
    thresholds: Any,
    ok: bool,
) -> dict[str, Any]:
    rows = []
    for report in reports:
        row = report.to_json()
        comparison = compared.get(report.key)
        row["baseline"] = None if comparison is None else comparison.to_json()
        rows.append(row)
    return {
        "ok": ok,
        "thresholds": thresholds.to_json(),
        "links": rows,
        "baseline_missing": [{"link": c.key, **c.to_json()} for c in gone],
    }


def _ms(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _print_table(
    reports: list[LinkReport], compared: dict[str, LinkComparison], gone: list[LinkComparison]
) -> None:
    header = (
        "site",
        "kind",
        "link",
        "tcp p50/p90 ms",
        "echo ms",
        "jitter",
        "loss %",
        "find ms",
        "verdict",
        "vs baseline",
    )
    rows: list[tuple[str, ...]] = [header]
    for r in reports:
        tcp = "-" if r.tcp is None else f"{_ms(r.tcp.p50, 2)}/{_ms(r.tcp.p90, 2)}"
        echo = "-" if r.echo is None else _ms(r.echo.p50)
        find = "-" if r.find is None else (_ms(r.find.latency_ms) if r.find.state == "ok" else "?")
        loss = r.loss_percent
        comparison = compared.get(r.key)
        rows.append(
            (
                r.site,
                r.site_kind,
                f"{r.link.name} ({r.link.kind})",
                tcp,
                echo,
                _ms(r.jitter_ms, 2),
                "-" if loss is None else f"{loss:.0f}",
                find,
                r.verdict,
                "-" if comparison is None else comparison.verdict,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    for r in reports:
        for reason in r.reasons:
            print(f"{r.key}: {r.verdict}: {reason}")
        comparison = compared.get(r.key)
        if comparison is not None and comparison.verdict not in ("same", "new"):
            for detail in comparison.details:
                print(f"{r.key}: {comparison.verdict} than baseline: {detail}")
    for comparison in gone:
        print(f"{comparison.key}: missing: {comparison.details[0]}")
    counts: dict[str, int] = {}
    for r in reports:
        counts[r.verdict] = counts.get(r.verdict, 0) + 1
    summary = ", ".join(f"{n} {v}" for v, n in sorted(counts.items()))
    worse = sum(1 for c in [*compared.values(), *gone] if c.problem)
    tail = f"; {worse} worse or missing than baseline" if compared or gone else ""
    sites = len({r.site for r in reports})
    print(f"{len(reports)} link(s) of {sites} site(s): {summary}{tail}")
