"""Flapping: a probe whose readings keep going bad and recovering.

A systemd unit that crashes and is restarted every few seconds reads
``ok``, ``degraded``, ``ok``, ``degraded``… Shown reading by reading it
looks like a string of fresh incidents and recoveries (a toast and a log
line each time) when it is one standing problem. ``detect_flap`` looks at
the health changes of one (server, probe) and names the pattern, with its
period, so the room can show one steady verdict: flapping, as bad as its
worst phase.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from pacs_tui.plugin_api import Health

# Two failures and two recoveries: one is an incident, two in a row is a pattern.
FLAP_MIN_FAILURES = 2
FLAP_MIN_RECOVERIES = 2
# Only changes this recent count; older ones are history, not a pattern now.
FLAP_WINDOW_S = 600.0
# A flap ends when no change came for this many of its own periods.
FLAP_HOLD_PERIODS = 2.0


@dataclass(frozen=True)
class HealthChange:
    """One change of a probe's health: when (``time.time()`` seconds), from, to, and why."""

    at: float
    before: Health
    after: Health
    detail: str  # the new reading's detail (e.g. ``pacs failed``)


@dataclass(frozen=True)
class Flap:
    """A probe alternating between OK and a bad health.

    ``period_s`` is the median time from one failure to the next (one full
    fail-and-recover cycle) as the polls saw it: a cycle shorter than two
    poll intervals cannot be seen as such. ``worst`` is the worst bad phase
    in the window; ``failures`` counts the OK→bad changes in it.
    """

    failures: int
    period_s: float
    worst: Health
    bad_detail: str  # what the latest bad reading said
    first_at: float  # the first change counted
    last_at: float  # the latest change

    def describe(self) -> str:
        """``flapping ok ↔ degraded about every 4 s (5 failures in 22 s): pacs failed``."""
        span = self.last_at - self.first_at
        why = f": {self.bad_detail}" if self.bad_detail else ""
        return (
            f"flapping ok ↔ {self.worst} about every {_seconds(self.period_s)} "
            f"({self.failures} failures in {_seconds(span)}){why}"
        )


def detect_flap(
    changes: Sequence[HealthChange],
    now: float,
    *,
    window_s: float = FLAP_WINDOW_S,
) -> Flap | None:
    """The flap shown by ``changes`` (oldest first) at ``now``, or None.

    A flap needs at least two OK→bad and two bad→OK changes within
    ``window_s``, and one of them no older than ``FLAP_HOLD_PERIODS`` of its
    own period: a unit that settled (up or failed) is no longer flapping,
    and then its plain reading speaks again. Changes between two bad
    healths (degraded → down) neither make nor break a flap.
    """
    recent = [c for c in changes if c.at >= now - window_s]
    failures = [c for c in recent if c.before is Health.OK and c.after is not Health.OK]
    recoveries = [c for c in recent if c.before is not Health.OK and c.after is Health.OK]
    if len(failures) < FLAP_MIN_FAILURES or len(recoveries) < FLAP_MIN_RECOVERIES:
        return None
    gaps = [b.at - a.at for a, b in itertools.pairwise(failures)]
    period = statistics.median(gaps)
    last = recent[-1].at
    if now - last > FLAP_HOLD_PERIODS * period:
        return None
    bad = [c for c in recent if c.after is not Health.OK]
    worst = max((c.after for c in bad), key=lambda h: h.rank)
    return Flap(
        failures=len(failures),
        period_s=period,
        worst=worst,
        bad_detail=bad[-1].detail,
        first_at=recent[0].at,
        last_at=last,
    )


def _seconds(value: float) -> str:
    if value < 10:
        return f"{value:.1f} s"
    if value < 120:
        return f"{value:.0f} s"
    return f"{value / 60:.0f} min"
