"""FleetState: the latest reading per server × probe, its age, and a short history.

Every consumer (control room, wall, CLI, batch gates) reads from here; only
the scheduler writes. Changes are announced through ``ChangeFeed``s that
coalesce: a consumer that is busy while a server flaps sees one pending
change for that server, not a queue of hundreds.

A reading is STALE when the next one is overdue. The scheduler says how
long after a reading it expects the next one (``expect_next``: its delay,
backoff included, plus the poll's deadline), so an endpoint it backs off
stays DOWN with a growing age instead of turning STALE between two polls. Without such an
expectation (one-off sweeps, tests) a reading is STALE after
``STALE_AFTER_INTERVALS`` intervals.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from pacs_tui.flapping import Flap, HealthChange, detect_flap
from pacs_tui.plugin_api import Health, ProbeResult

STALE_AFTER_INTERVALS = 3
# How late past its due time the next reading may be before the last one is
# STALE, in intervals: room for a busy event loop and for waiting on a BMC's cap.
STALE_GRACE_INTERVALS = 1.0
HISTORY_LENGTH = 60
CHANGE_LOG_LENGTH = 16  # health changes kept per probe, for flap detection
# Fewer changes than this can hold no flap (two failures and two recoveries).
FLAP_MIN_CHANGES = 4

Key = tuple[str, str]  # (server name, probe name)


@dataclass(frozen=True)
class Reading:
    """A result as seen now: with its age, STALE when overdue, and its flap if any."""

    result: ProbeResult | None
    age_s: float | None
    stale: bool
    flap: Flap | None = None

    @property
    def health(self) -> Health:
        """The result's health; STALE when overdue; UNKNOWN before the first result.

        While the probe flaps, the worst health of the flap: a unit that
        fails every few seconds is not OK in between.
        """
        if self.result is None:
            return Health.UNKNOWN
        if self.stale:
            return Health.STALE
        if self.flap is not None and self.flap.worst.rank > self.result.health.rank:
            return self.flap.worst
        return self.result.health

    @property
    def state(self) -> str:
        """The probe's own state word, or ``unknown``/``stale``/``flapping``."""
        if self.result is None:
            return "unknown"
        if self.stale:
            return "stale"
        return "flapping" if self.flap is not None else self.result.state


class ChangeFeed:
    """Coalesced change notifications for one consumer.

    A feed made with ``every_result=True`` hears of every result and every
    expectation, not only of changes a screen would show: a mirror of the state
    elsewhere (``pacs-tui serve``'s viewers) needs each new ``observed_at``, or
    its copy of a steady reading would age into STALE.
    """

    def __init__(self, *, every_result: bool = False) -> None:
        self._pending: set[Key] = set()
        self._event = asyncio.Event()
        self.closed = False
        self.every_result = every_result

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
        self._due: dict[Key, float] = {}  # seconds after a result the next one is due
        # Only keys whose health ever changed have a log: a steady fleet costs nothing.
        self._changes: dict[Key, deque[HealthChange]] = {}
        self._feeds: list[ChangeFeed] = []
        self._mirror_feeds: list[ChangeFeed] = []
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
        self._due.pop(key, None)  # an expectation is about the reading it followed
        self.updates += 1
        if previous is not None and previous.health is not result.health:
            log = self._changes.get(key)
            if log is None:
                log = self._changes[key] = deque(maxlen=CHANGE_LOG_LENGTH)
            log.append(
                HealthChange(result.observed_at, previous.health, result.health, result.detail)
            )
        history = self._history.get(key)
        if history is None:
            history = self._history[key] = deque(maxlen=self._history_length)
        history.append(result.latency_ms)
        for feed in self._mirror_feeds:
            feed._push(key)
        if (
            previous is None
            or previous.state != result.state
            or previous.health != result.health
            or previous.detail != result.detail
            or previous.latency_ms != result.latency_ms
        ):
            for feed in self._feeds:
                feed._push(key)

    def expect_next(self, server: str, probe: str, within_s: float) -> None:
        """The next result of this probe is due ``within_s`` seconds after the latest one.

        The scheduler calls this after each poll with its delay (backoff
        included) plus the poll's deadline; the reading turns STALE only when
        its age passes ``within_s`` by more than ``STALE_GRACE_INTERVALS``
        intervals. Recording a result drops the expectation.
        """
        self._due[(server, probe)] = within_s
        for feed in self._mirror_feeds:
            feed._push((server, probe))

    def due(self, server: str, probe: str) -> float | None:
        """Seconds after the latest result that the next one is due (None: no expectation)."""
        return self._due.get((server, probe))

    def restore(
        self,
        server: str,
        probe: str,
        result: ProbeResult,
        *,
        due_s: float | None,
        history: Iterable[float | None] = (),
        changes: Iterable[HealthChange] = (),
    ) -> None:
        """Put a reading copied from another ``FleetState`` in place, as it was there.

        For mirrors (a screen attached to ``pacs-tui serve``): the history and the
        health-change log come with the reading, so sparklines and flap detection
        match the service's at once. Feeds are told as for ``record``.
        """
        key = (server, probe)
        self._latest[key] = result
        self._history[key] = deque(history, maxlen=self._history_length)
        log = list(changes)
        if log:
            self._changes[key] = deque(log, maxlen=CHANGE_LOG_LENGTH)
        else:
            self._changes.pop(key, None)
        if due_s is None:
            self._due.pop(key, None)
        else:
            self._due[key] = due_s
        for feed in (*self._feeds, *self._mirror_feeds):
            feed._push(key)

    def keys(self) -> list[Key]:
        """Every (server, probe) with a result."""
        return list(self._latest)

    def reading(self, server: str, probe: str, now: float | None = None) -> Reading:
        """The current reading of one probe on one server."""
        parts = self.reading_parts(server, probe)
        if parts is None:
            return Reading(None, None, False)
        result, stale_after_s, changes = parts
        now = now if now is not None else self.clock()
        age = max(0.0, now - result.observed_at)
        stale = age > stale_after_s
        flap = detect_flap(changes, now) if len(changes) >= FLAP_MIN_CHANGES else None
        return Reading(result, age, stale, flap)

    def reading_parts(
        self, server: str, probe: str
    ) -> tuple[ProbeResult, float, Sequence[HealthChange]] | None:
        """What ``reading`` is made of, without the clock: None before the first result.

        ``(latest result, age in s past which it is STALE, recent health changes
        oldest first)``. For a roll-up that keeps readings between seconds
        (``pacs_tui.rollup_tracker``): the STALE age tells when a fresh reading
        turns STALE with no new result. The changes are the state's own log: read
        them, never change them.
        """
        key = (server, probe)
        result = self._latest.get(key)
        if result is None:
            return None
        interval = self.intervals.get(probe, 5.0)
        due = self._due.get(key)
        if due is None:
            stale_after_s = STALE_AFTER_INTERVALS * interval
        else:
            stale_after_s = due + STALE_GRACE_INTERVALS * interval
        return result, stale_after_s, self._changes.get(key, ())

    def changes(self, server: str, probe: str) -> list[HealthChange]:
        """The recent health changes of one probe on one server, oldest first."""
        return list(self._changes.get((server, probe), ()))

    def latest(self, server: str, probe: str) -> ProbeResult | None:
        """The last result, however old (None before the first)."""
        return self._latest.get((server, probe))

    def history(self, server: str, probe: str) -> list[float | None]:
        """Recent latencies (ms, None where the probe failed), oldest first."""
        return list(self._history.get((server, probe), ()))

    def subscribe(self, *, every_result: bool = False) -> ChangeFeed:
        """A new feed that receives every later change (or every result: see ``ChangeFeed``)."""
        feed = ChangeFeed(every_result=every_result)
        (self._mirror_feeds if every_result else self._feeds).append(feed)
        return feed

    def unsubscribe(self, feed: ChangeFeed) -> None:
        """Stop notifying ``feed``."""
        feed.closed = True
        for feeds in (self._feeds, self._mirror_feeds):
            if feed in feeds:
                feeds.remove(feed)
