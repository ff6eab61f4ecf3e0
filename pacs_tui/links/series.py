"""The samples of one kind (TCP connects or C-ECHOs) of one link, and their figures.

Pure arithmetic: no I/O. All times are milliseconds. Percentiles are nearest
rank (as the baseline's), jitter is the mean absolute difference of
consecutive successful samples in the order they were taken (the idea of RFC
3550 §6.4.1's interarrival jitter, without its smoothing), so one slow sample
between fast ones counts twice and a steady slope counts little.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of non-empty ``values`` (``fraction`` in (0, 1])."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def mean_abs_diff(values: Sequence[float]) -> float | None:
    """Mean |v[i] - v[i-1]| over consecutive values; None with fewer than two."""
    if len(values) < 2:
        return None
    return sum(abs(b - a) for a, b in itertools.pairwise(values)) / (len(values) - 1)


@dataclass(frozen=True)
class SampleSeries:
    """What N samples of one kind found.

    ``values_ms`` are the successful samples' latencies in the order taken;
    ``failures`` says why each lost sample failed; ``unreliable`` counts
    failures our own event loop explains (late for half the timeout or more,
    ``pacs_tui.loop_lag``): they are neither lost nor answered. ``lag_ms`` is
    the worst lateness of our loop during a successful sample.
    """

    attempted: int
    values_ms: tuple[float, ...] = ()
    failures: tuple[str, ...] = ()
    unreliable: int = 0
    lag_ms: float = 0.0

    @property
    def answered(self) -> int:
        """Samples that succeeded."""
        return len(self.values_ms)

    @property
    def lost(self) -> int:
        """Samples that failed for a reason that is not ours."""
        return len(self.failures)

    @property
    def judged(self) -> int:
        """Samples that say something about the link: answered plus lost."""
        return self.answered + self.lost

    @property
    def loss_percent(self) -> float | None:
        """Lost samples as a percentage of the judged ones; None when none was judged."""
        return 100.0 * self.lost / self.judged if self.judged else None

    @property
    def p50(self) -> float | None:
        """The median latency (ms) of the answered samples."""
        return percentile(self.values_ms, 0.5) if self.values_ms else None

    @property
    def p90(self) -> float | None:
        """The 90th percentile (ms), nearest rank: with fewer than 10 samples, the maximum."""
        return percentile(self.values_ms, 0.9) if self.values_ms else None

    @property
    def jitter_ms(self) -> float | None:
        """Mean absolute difference of consecutive answered samples (ms)."""
        return mean_abs_diff(self.values_ms)

    def to_json(self) -> dict[str, Any]:
        """The series and its figures, rounded to µs."""

        def ms(value: float | None) -> float | None:
            return None if value is None else round(value, 3)

        return {
            "attempted": self.attempted,
            "answered": self.answered,
            "lost": self.lost,
            "unreliable": self.unreliable,
            "loss_percent": ms(self.loss_percent),
            "p50_ms": ms(self.p50),
            "p90_ms": ms(self.p90),
            "jitter_ms": ms(self.jitter_ms),
            "loop_lag_ms": ms(self.lag_ms),
            "values_ms": [round(v, 3) for v in self.values_ms],
            "failures": list(dict.fromkeys(self.failures)),
        }
