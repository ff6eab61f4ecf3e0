"""``--power-baseline FILE`` of ``run`` and ``serve``: expected draws for rack power budgets.

The control room's and the service's power-on batches stagger racks with
budgets (``pacs_tui.batch.power_budget``); each server's expected boot peak
comes from the draw a baseline measured. This reads that baseline once at
start, so a bad file is a usage error before any screen or listener opens.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

# A baseline taken on BMCs that report no draw (power_watts null everywhere).
NO_DRAWS = (
    "pacs-tui: note: {flag} {path}: no server has a power draw in it (its BMCs reported "
    "none); racks' budgets count each server's nameplate_w"
)


def add_power_baseline_argument(parser: Any) -> None:
    """Add ``--power-baseline FILE`` to ``parser``."""
    parser.add_argument(
        "--power-baseline", type=Path, metavar="FILE",
        help="a baseline whose measured draw per server gives the expected boot peaks of "
        "power-on batches when racks have power budgets (else nameplate_w)",
    )  # fmt: skip


def power_baseline_settings(path: Path | None, command: str) -> dict[str, Any] | None:
    """``{POWER_BASELINE_SETTING: draws}`` from ``--power-baseline`` (None: bad file, said)."""
    if path is None:
        return {}
    from pacs_tui.baseline.model import BaselineError, power_draws
    from pacs_tui.session import POWER_BASELINE_SETTING

    try:
        draws = power_draws(path)
    except BaselineError as exc:
        print(f"pacs-tui {command}: error: --power-baseline: {exc}", file=sys.stderr)
        return None
    if not draws:
        print(NO_DRAWS.format(flag="--power-baseline", path=path), file=sys.stderr)
    return {POWER_BASELINE_SETTING: draws}
