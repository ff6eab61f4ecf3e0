"""Run every benchmark script in this folder, then print one table of headline figures.

    .venv/bin/python -m tests.benchmarks [--list] [--only NAME ...] [--timeout S]

Each script runs as its own process (``python tests/benchmarks/NAME.py``) with
its ``QUICK_ARGS``, its human output passed through; its last ``BENCH-SUMMARY``
line gives the figures (see ``_summary.py``). A script that exits non-zero,
prints no summary, or outlives ``--timeout`` shows as FAILED, and the run exits 1.
Exit 2: a script does not declare what it measures (file and constant named).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import math
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ._summary import MARKER, Figure, parse

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DECLARED = ("MEASURES", "LEAVES_OUT", "QUICK_ARGS")
DEFAULT_TIMEOUT_S = 600.0


class DeclarationError(Exception):
    """A benchmark script lacks, or misdeclares, one of ``DECLARED``; the message names it."""


@dataclass(frozen=True)
class Script:
    """One benchmark script and what it declares about itself."""

    name: str
    path: Path
    measures: str
    leaves_out: str
    quick_args: tuple[str, ...]


@dataclass
class Outcome:
    """How one script's run went: its figures, or why it failed; ``seconds`` of wall time."""

    script: Script
    figures: list[Figure] = field(default_factory=list)
    failure: str | None = None
    seconds: float = 0.0


def scripts(folder: Path = HERE) -> list[Script]:
    """Every ``*.py`` in ``folder`` not starting with ``_``, sorted by name.

    Reads the declarations with ``ast`` (no import, so no side effects); raises
    DeclarationError naming file, line and constant when one is missing or not a literal.
    """
    found = []
    for path in sorted(folder.glob("*.py")):
        if path.name.startswith("_"):
            continue
        values: dict[str, object] = {}
        for node in ast.parse(path.read_text(), str(path)).body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target, value = node.targets[0], node.value
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                target, value = node.target, node.value
            else:
                continue
            if isinstance(target, ast.Name) and target.id in DECLARED:
                name = target.id
                try:
                    values[name] = ast.literal_eval(value)
                except ValueError:
                    raise DeclarationError(
                        f"{path}:{node.lineno}: {name} must be a literal (it is read without importing)"
                    ) from None
        for name in DECLARED:
            if name not in values:
                raise DeclarationError(
                    f"{path}: no module constant {name} (every benchmark declares {', '.join(DECLARED)})"
                )
        measures, leaves_out, quick = (values[n] for n in DECLARED)
        if not isinstance(measures, str) or not isinstance(leaves_out, str):
            raise DeclarationError(f"{path}: MEASURES and LEAVES_OUT must be strings")
        if not isinstance(quick, tuple) or not all(isinstance(a, str) for a in quick):
            raise DeclarationError(f"{path}: QUICK_ARGS must be a tuple of strings")
        found.append(Script(path.stem, path, measures, leaves_out, quick))
    return found


def run(script: Script, timeout_s: float) -> Outcome:
    """Run ``script`` with its quick arguments; its stdout is echoed and kept for the summary."""
    command = [sys.executable, str(script.path), *script.quick_args]
    print(f"\n== {script.name}: {' '.join([Path(sys.executable).name, *command[1:]])}", flush=True)
    outcome = Outcome(script)
    began = time.monotonic()
    # Its own session, so a timeout ends the script and the simulators it started, nothing else.
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    timed_out = threading.Event()

    def stop() -> None:
        # SIGTERM first: the simulators stop cleanly on it; SIGKILL what is left after 10 s.
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)
                return

    def expire() -> None:
        timed_out.set()
        stop()

    timer = threading.Timer(timeout_s, expire)
    timer.start()
    lines = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if not line.startswith(MARKER):
                print(line, end="", flush=True)
        returncode = process.wait()
    except BaseException:
        stop()
        process.wait()
        raise
    finally:
        timer.cancel()
    outcome.seconds = time.monotonic() - began
    try:
        figures = parse("".join(lines))
    except ValueError as exc:
        figures, outcome.failure = None, str(exc)
    outcome.figures = figures or []
    if timed_out.is_set():
        outcome.failure = f"no result within {timeout_s:.0f} s (killed)"
    elif returncode != 0:
        outcome.failure = f"exit status {returncode}"
    elif figures is None and outcome.failure is None:
        outcome.failure = "printed no BENCH-SUMMARY line"
    return outcome


def number(value: float) -> str:
    """A figure as people read it: thousands separated, decimals only where they matter."""
    if isinstance(value, int):  # a count
        return f"{value:,}"
    if math.isnan(value):
        return "n/a"
    size = abs(value)
    if size >= 1000:
        return f"{value:,.0f}"
    if size >= 100:
        return f"{value:.0f}"
    if size >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}" if size >= 0.1 or value == 0 else f"{value:.2g}"


COLUMNS = (
    ("benchmark", 17),
    ("measures", 30),
    ("figure", 36),
    ("value", 9),
    ("unit", 9),
    ("leaves out", 36),
)


def table(outcomes: Sequence[Outcome]) -> str:
    """One text table: a row per figure, the script's declarations on its first row."""
    rows: list[tuple[str, ...]] = []
    for o in outcomes:
        cells: list[tuple[str, str, str]] = [(f.name, number(f.value), f.unit) for f in o.figures]
        if o.failure is not None:
            cells.insert(0, (f"FAILED: {o.failure}", "", ""))
        for i, (figure, value, unit) in enumerate(cells or [("(no figures)", "", "")]):
            first = i == 0
            rows.append(
                (
                    o.script.name if first else "",
                    o.script.measures if first else "",
                    figure,
                    value,
                    unit,
                    o.script.leaves_out if first else "",
                )
            )
    widths = [w for _, w in COLUMNS]
    rule = "-+-".join("-" * w for w in widths)
    out = [" | ".join(h.ljust(w) for h, w in COLUMNS).rstrip(), rule]
    for row in rows:
        if row[0] and len(out) > 2:  # a rule between benchmarks
            out.append(rule)
        wrapped = [textwrap.wrap(c, w) or [""] for c, w in zip(row, widths, strict=True)]
        for k in range(max(map(len, wrapped))):
            parts = []
            for col, (lines, w) in enumerate(zip(wrapped, widths, strict=True)):
                text = lines[k] if k < len(lines) else ""
                parts.append(text.rjust(w) if col == 3 else text.ljust(w))
            out.append(" | ".join(parts).rstrip())
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.benchmarks", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--list", action="store_true", help="name every benchmark and what it measures"
    )
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these benchmarks")
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds per script"
    )
    parser.add_argument("--folder", type=Path, default=HERE, help=argparse.SUPPRESS)  # its tests
    args = parser.parse_args(argv)
    try:
        found = scripts(args.folder)
    except DeclarationError as exc:
        print(f"benchmarks: {exc}", file=sys.stderr)
        return 2
    if args.list:
        for s in found:
            print(f"{s.name}\t{s.measures}")
        return 0
    if args.only:
        unknown = sorted(set(args.only) - {s.name for s in found})
        if unknown:
            print(
                f"benchmarks: no benchmark named {', '.join(unknown)} "
                f"(there are: {', '.join(s.name for s in found)})",
                file=sys.stderr,
            )
            return 2
        found = [s for s in found if s.name in args.only]
    began = time.monotonic()
    outcomes = [run(s, args.timeout) for s in found]
    failed = [o for o in outcomes if o.failure is not None]
    print(f"\n{len(outcomes)} benchmarks in {time.monotonic() - began:.0f} s; machine: "
          f"{os.cpu_count()} cores, python {sys.version.split()[0]}\n")  # fmt: skip
    print(table(outcomes))
    if failed:
        print("", file=sys.stderr)
        for o in failed:
            print(f"benchmark {o.script.name} FAILED: {o.failure}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
