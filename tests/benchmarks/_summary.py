"""The machine-readable last line of a benchmark script, read by ``python -m tests.benchmarks``.

Every script in this folder (not starting with ``_``) declares three module
constants, read without importing it:

- ``MEASURES``: one line, what the figures are (from the user's side);
- ``LEAVES_OUT``: one line, what the figures do not include;
- ``QUICK_ARGS``: a tuple of command-line arguments for ``make bench``
  (shorter than the script's defaults where those take minutes).

and ends its run with :func:`emit`, after its own human output. A script
that fails exits non-zero; it may still emit the figures it got.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

MARKER = "BENCH-SUMMARY "


@dataclass(frozen=True)
class Figure:
    """One headline number: ``name`` (what), ``value`` in ``unit`` (an int for a count)."""

    name: str
    value: float
    unit: str


def emit(*figures: Figure) -> None:
    """Print the figures as one line: ``BENCH-SUMMARY [{"name", "value", "unit"}, ...]``."""
    rows = [asdict(f) | {"value": None if math.isnan(f.value) else f.value} for f in figures]
    print(MARKER + json.dumps(rows), flush=True)


def _value(raw: object) -> float:
    """A JSON value as a figure: counts stay ints (shown without decimals), null is NaN."""
    if raw is None:
        return float("nan")
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise TypeError(f"value {raw!r} is not a number")
    return raw


def parse(stdout: str) -> list[Figure] | None:
    """The figures of the last summary line in ``stdout``; None when there is none.

    Raises ValueError when the line is there but malformed.
    """
    lines = [line for line in stdout.splitlines() if line.startswith(MARKER)]
    if not lines:
        return None
    try:
        rows = json.loads(lines[-1][len(MARKER) :])
        return [Figure(str(r["name"]), _value(r["value"]), str(r["unit"])) for r in rows]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"malformed summary line {lines[-1]!r}: {exc}") from None
