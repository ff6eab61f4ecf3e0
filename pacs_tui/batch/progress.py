"""Progress of a running batch, as plain objects any front-end can draw.

The runner sends a ``BatchProgress`` to every subscriber after each step,
server result, wave boundary, pause and abort; a UI draws bars from
``wave_done/wave_total`` and ``done/total``, the CLI prints lines. The ETA
is a rough linear estimate from the servers finished so far.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class BatchProgress:
    """One progress event; every field is plain data."""

    # The audit row's kind: batch-start, wave-start, step, retry, units-stopped, server,
    # wave-end, pause, resume, abort, halt, batch-end (the words of the audit log).
    kind: str
    batch: str
    verb: str
    wave: int | None
    waves: int
    wave_done: int
    wave_total: int
    done: int
    total: int
    elapsed_s: float
    eta_s: float | None
    server: str = ""
    call: str = ""
    outcome: str = ""
    detail: str = ""

    @property
    def fraction(self) -> float:
        """Overall share done, 0..1."""
        return self.done / self.total if self.total else 1.0

    def to_json(self) -> dict[str, Any]:
        """The event as a JSON-able dict."""
        return asdict(self)


Subscriber = Callable[[BatchProgress], None]


def estimate_eta(elapsed_s: float, done: int, total: int) -> float | None:
    """Seconds left, assuming the rest goes as fast as what is done (None before any)."""
    if done <= 0 or total <= 0:
        return None
    if done >= total:
        return 0.0
    return elapsed_s * (total - done) / done
