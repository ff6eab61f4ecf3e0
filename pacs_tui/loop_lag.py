"""How late our own event loop runs: the part of a measured latency that is ours, not the peer's.

A probe times an exchange with ``time.perf_counter()`` around an ``await``. When the
loop is busy (a first sweep's hundreds of TLS handshakes, a C-FIND being counted,
another process on the same cores), the answer may sit in the socket while the loop
runs other callbacks, and the measured time grows by our own delay. Such a reading
says nothing about the peer.

A ticker measures that delay: while anyone measures, it asks the loop to wake it
every ``TICK_S`` and notes how late it wakes. ``LagAccount`` turns those wake-ups
into a running total, in seconds, of the time the loop was overdue (a wake-up
counts only past ``TOLERANCE_S``, the timer's own jitter). The total is a
continuous, non-decreasing function of time — while the ticker is overdue it grows
at the clock's rate — so the lag over a window is the difference of two readings:

    with loop_lag().window() as lag:
        answer = await exchange()
    judge_latency(answer.latency_ms, limit_ms=1000, lag_ms=lag.late_ms)

The lag of a window is an upper bound of our delay only approximately: a
multi-step exchange (connect, handshake, request) waits about one loop iteration
per step, which the ticker sees when it is due in that iteration, so delays
shorter than ``TICK_S`` between two ticks may go unseen. At the thresholds it
guards (hundreds of ms and more) that is noise.

Verdicts (``judge_latency``) are never optimistic: a latency within its limit is
``ok`` (our lag only ever adds to it); one over its limit even after taking away
all our lag is ``slow``; one over its limit only because of our lag is
``unreliable`` — not the peer's fault, but no proof it is fine either, so probes
report it as UNKNOWN (never DEGRADED), and a one-off sweep measures it again.
"""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass
from types import TracebackType
from typing import Literal

TICK_S = 0.02
TOLERANCE_S = 0.002  # a timer wakes a fraction of a ms late on an idle loop
# A timeout is our doing, not the peer's, when our loop was late for at least
# this part of the deadline: a peer that answers in time is noticed by the next
# loop iteration, so a spurious timeout needs the loop stuck for most of it.
TIMEOUT_LAG_FRACTION = 0.5
# Readings a probe could not take because of ourselves carry this fact (its value
# says why); the scheduler measures them again at the end of a one-off sweep.
UNRELIABLE_FACT = "measurement_unreliable"
LAG_FACT = "loop_lag_ms"


class LagAccount:
    """The running total of a ticker's lateness, as pure arithmetic (seconds, one clock).

    ``scheduled(due)`` says when the ticker should next wake; ``woke(at)`` that it
    did; ``late_s(now)`` is the total lateness up to ``now``, counting a wake-up
    that is overdue now as late until ``now``. Times are any monotonic clock's.
    """

    def __init__(self, tolerance_s: float = TOLERANCE_S) -> None:
        """An account with nothing late yet, no wake-up due."""
        self.tolerance_s = tolerance_s
        self._committed = 0.0
        self._due: float | None = None
        self.worst_s = 0.0  # the latest single wake-up seen (s)
        self.ticks = 0

    def scheduled(self, due: float) -> None:
        """The ticker asked to wake at ``due``."""
        self._due = due

    def woke(self, at: float) -> None:
        """The ticker woke at ``at``: what it was late (beyond the tolerance) is committed."""
        if self._due is None:
            return
        late = max(0.0, at - self._due - self.tolerance_s)
        self._committed += late
        self.worst_s = max(self.worst_s, late)
        self.ticks += 1
        self._due = None

    def stopped(self) -> None:
        """No wake-up is due any more (the ticker was cancelled)."""
        self._due = None

    def late_s(self, now: float) -> float:
        """Total lateness (s) up to ``now``, the overdue wake-up included."""
        pending = 0.0 if self._due is None else max(0.0, now - self._due - self.tolerance_s)
        return self._committed + pending


class LagWindow:
    """Our loop's lateness during one measurement: a context manager.

    ``late_ms`` is the lag since the window opened (ms, >= 0), read live inside
    the ``with`` block and frozen when it exits.
    """

    def __init__(self, lag: LoopLag) -> None:
        self._lag = lag
        self._start = 0.0
        self._end: float | None = None

    def __enter__(self) -> LagWindow:
        self._lag._acquire()
        self._start = self._lag.late_s()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._end = self._lag.late_s()
        self._lag._release()

    @property
    def late_ms(self) -> float:
        """How late our loop ran during the window (ms)."""
        end = self._end if self._end is not None else self._lag.late_s()
        return max(0.0, end - self._start) * 1000.0


class LoopLag:
    """The ticker of one event loop: runs while at least one window is open.

    Made and owned by ``loop_lag()`` (one per loop); ``tick_s`` and
    ``tolerance_s`` in seconds. Must be used from the loop's own thread.
    """

    def __init__(
        self, loop: asyncio.AbstractEventLoop, *, tick_s: float = TICK_S,
        tolerance_s: float = TOLERANCE_S,
    ) -> None:  # fmt: skip
        self._loop = loop
        self.tick_s = tick_s
        self.account = LagAccount(tolerance_s)
        self._users = 0
        self._handle: asyncio.TimerHandle | None = None

    def window(self) -> LagWindow:
        """A window over the next measurement (``with lag.window() as w: ...``)."""
        return LagWindow(self)

    def late_s(self) -> float:
        """The running total (s) of the loop's lateness while measured."""
        return self.account.late_s(self._loop.time())

    @property
    def running(self) -> bool:
        """Whether the ticker is ticking (some window is open)."""
        return self._handle is not None

    def _acquire(self) -> None:
        self._users += 1
        if self._handle is None:
            self._schedule()

    def _release(self) -> None:
        self._users -= 1
        if self._users <= 0 and self._handle is not None:
            self._users = 0
            self._handle.cancel()
            self._handle = None
            self.account.stopped()

    def _schedule(self) -> None:
        due = self._loop.time() + self.tick_s
        self.account.scheduled(due)
        self._handle = self._loop.call_at(due, self._tick)

    def _tick(self) -> None:
        self.account.woke(self._loop.time())
        self._schedule()


_LAGS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopLag] = weakref.WeakKeyDictionary()


def loop_lag() -> LoopLag:
    """The ``LoopLag`` of the running loop (made on first use). ``RuntimeError`` outside one."""
    loop = asyncio.get_running_loop()
    lag = _LAGS.get(loop)
    if lag is None:
        lag = _LAGS[loop] = LoopLag(loop)
    return lag


def measure_loop_lag() -> LagWindow:
    """A window over the running loop's lateness: ``with measure_loop_lag() as lag: ...``."""
    return loop_lag().window()


Verdict = Literal["ok", "slow", "unreliable"]


@dataclass(frozen=True)
class LatencyVerdict:
    """A latency judged against its limit net of our own lag (all in ms)."""

    verdict: Verdict
    latency_ms: float  # as measured, our lag included
    lag_ms: float  # how late our loop ran meanwhile
    limit_ms: float

    @property
    def net_ms(self) -> float:
        """The latency less our lag: the least the peer can have taken (ms, >= 0)."""
        return max(0.0, self.latency_ms - self.lag_ms)

    def describe(self, what: str) -> str:
        """The verdict as a phrase about ``what`` (e.g. ``echo``), "" when ``ok``.

        ``slow: echo over 1000 ms (1850 ms, of which up to 300 ms our event loop's lag)``
        or ``measurement unreliable: event loop 900 ms late during the echo (1400 ms measured)``.
        """
        if self.verdict == "ok":
            return ""
        if self.verdict == "slow":
            ours = (
                f", of which up to {self.lag_ms:.0f} ms our event loop's lag" if self.lag_ms else ""
            )
            return f"slow: {what} over {self.limit_ms:g} ms ({self.latency_ms:.0f} ms{ours})"
        return unreliable_detail(self.lag_ms, f"the {what} ({self.latency_ms:.0f} ms measured)")


def judge_latency(latency_ms: float, limit_ms: float, lag_ms: float) -> LatencyVerdict:
    """``ok`` within the limit; ``slow`` over it even net of ``lag_ms``; else ``unreliable``."""
    lag_ms = max(0.0, lag_ms)
    if latency_ms <= limit_ms:
        verdict: Verdict = "ok"
    elif latency_ms - lag_ms > limit_ms:
        verdict = "slow"
    else:
        verdict = "unreliable"
    return LatencyVerdict(verdict, latency_ms, lag_ms, limit_ms)


def lag_explains_timeout(lag_ms: float, timeout_s: float) -> bool:
    """Whether a timeout of ``timeout_s`` may be ours: the loop was late for half of it or more."""
    return lag_ms >= TIMEOUT_LAG_FRACTION * timeout_s * 1000.0


def unreliable_detail(lag_ms: float, during: str) -> str:
    """``measurement unreliable: event loop N ms late during <during>``."""
    return f"measurement unreliable: event loop {lag_ms:.0f} ms late during {during}"
