"""FleetState: the latest reading per server × probe, its age, and a short history.

Every consumer (control room, wall, CLI, batch gates) reads from here; only
the scheduler writes. Changes are announced through ``ChangeFeed``s that
coalesce: a consumer that is busy while a server flaps sees one pending
change for that server, not a queue of hundreds.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from pacs_tui.plugin_api import Health, ProbeResult

STALE_AFTER_INTERVALS = 3
HISTORY_LENGTH = 60

Key = tuple[str, str]  # (server name, probe name)


@dataclass(frozen=True)
class Reading:
    """A result as seen now: with its age, and STALE when it is too old."""

    result: ProbeResult | None
    age_s: float | None
    stale: bool

    @property
    def health(self) -> Health:
        """The result's health, STALE when too old, UNKNOWN before the first result."""
        if self.result is None:
            return Health.UNKNOWN
        return Health.STALE if self.stale else self.result.health

    @property
    def state(self) -> str:
        """The probe's own state word, or ``unknown``/``stale``."""
        if self.result is None:
            return "unknown"
        return "stale" if self.stale else self.result.state


class ChangeFeed:
    """Coalesced change notifications for one consumer."""

    def __init__(self) -> None:
        self._pending: set[Key] = set()
        self._event = asyncio.Event()
        self.closed = False

    def _push(self, key: Key) -> None:
        self._pending.add(key)
        self._event.set()

    def drain(self) -> set[Key]:
        """Take every change pending now (possibly none)."""
        keys, self._pending = self._pending, set()
        self._event.clear()
        return keys

    async def next(self, timeout: float | None = None) -> set[Key]:
        """Wait for at least one change (or ``timeout``), then take them all."""
        if not self._pending:
            try:
                await asyncio.wait_for(self._event.wait(), timeout)
            except TimeoutError:
                return set()
        return self.drain()


class FleetState:
    """Latest result per (server, probe), with freshness and latency history."""

    def __init__(
        self,
        servers: Iterable[str],
        intervals: Mapping[str, float],
        *,
        history_length: int = HISTORY_LENGTH,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.clock = clock
        self.servers = list(servers)
        self.intervals = dict(intervals)  # probe name -> seconds between polls
        self._latest: dict[Key, ProbeResult] = {}
        self._history: dict[Key, deque[float | None]] = {}
        self._history_length = history_length
        self._feeds: list[ChangeFeed] = []
        self.updates = 0  # results recorded (benchmarks read it)

    @property
    def probes(self) -> list[str]:
        """Names of the probes this state tracks."""
        return list(self.intervals)

    def record(self, server: str, probe: str, result: ProbeResult) -> None:
        """Store a result; notify feeds when what a consumer shows changed."""
        key = (server, probe)
        previous = self._latest.get(key)
        self._latest[key] = result
        self.updates += 1
        history = self._history.get(key)
        if history is None:
            history = self._history[key] = deque(maxlen=self._history_length)
        history.append(result.latency_ms)
        if (
            previous is None
            or previous.state != result.state
            or previous.health != result.health
            or previous.detail != result.detail
            or previous.latency_ms != result.latency_ms
        ):
            for feed in self._feeds:
                feed._push(key)

    def reading(self, server: str, probe: str, now: float | None = None) -> Reading:
        """The current reading of one probe on one server."""
        result = self._latest.get((server, probe))
        if result is None:
            return Reading(None, None, False)
        age = max(0.0, (now if now is not None else self.clock()) - result.observed_at)
        interval = self.intervals.get(probe, 5.0)
        return Reading(result, age, age > STALE_AFTER_INTERVALS * interval)

    def latest(self, server: str, probe: str) -> ProbeResult | None:
        """The last result, however old (None before the first)."""
        return self._latest.get((server, probe))

    def history(self, server: str, probe: str) -> list[float | None]:
        """Recent latencies (ms, None where the probe failed), oldest first."""
        return list(self._history.get((server, probe), ()))

    def subscribe(self) -> ChangeFeed:
        """A new feed that receives every later change."""
        feed = ChangeFeed()
        self._feeds.append(feed)
        return feed

    def unsubscribe(self, feed: ChangeFeed) -> None:
        """Stop notifying ``feed``."""
        feed.closed = True
        if feed in self._feeds:
            self._feeds.remove(feed)
