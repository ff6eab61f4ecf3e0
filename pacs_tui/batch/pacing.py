"""When the batch reads again while it waits for a server: learnt within the batch.

A wait re-reads every ``poll_s`` seconds, so it sees a change up to
``poll_s`` late, and a wave ends with its slowest server: at 0.25 s steps a
0.8 s shutdown is seen at 1.0 s, a quarter more. Polling faster all the way
would multiply the requests to every BMC, sshd and DICOM node.

``Pacer`` instead remembers, per kind of wait (``wait:Off``, ``gate:power+ssh``),
the shortest wait that ended so far in this batch, as the read that saw it
and the read before (the change happened in between): servers of one batch
are mostly alike, so the others are likely to end there too. Each wait then
reads at the normal step until just before that interval, at a fine step
(``fine_s``) from there until a normal step past it, and at the normal step
again after (a slower server costs a few extra reads, never a verdict: a
wait still ends only on a reading). The first waits of a batch, with
nothing learnt, read at the normal step; once a wait was seen at the fine
step, the interval is one fine step wide.
"""

from __future__ import annotations

_MIN_FINE_S = 0.05  # finer than this, the reads themselves would be the load


class Pacer:
    """Read intervals for the waits of one batch (all times in seconds)."""

    def __init__(self, poll_s: float, fine_s: float | None = None) -> None:
        """Normal step ``poll_s`` (> 0); fine step ``fine_s`` (default ``poll_s``/5, ≥ 0.05 s)."""
        if poll_s <= 0:
            raise ValueError("poll_s must be > 0")
        self.poll_s = poll_s
        self.fine_s = min(poll_s, fine_s if fine_s is not None else max(_MIN_FINE_S, poll_s / 5))
        # kind -> (the read before, the read that saw the shortest wait end), in s.
        self._shortest: dict[str, tuple[float, float]] = {}

    def expected(self, kind: str) -> float | None:
        """The shortest wait of ``kind`` that ended in this batch (as read), or None."""
        seen = self._shortest.get(kind)
        return seen[1] if seen is not None else None

    def learn(self, kind: str, waited_s: float, previous_s: float) -> None:
        """A wait of ``kind`` read its condition true after ``waited_s``, false at ``previous_s``.

        Callers teach only waits that read more than once: one whose condition
        held at the first read (a BMC task already followed to its end) says
        nothing of how long the change takes.
        """
        current = self._shortest.get(kind)
        if current is None or waited_s < current[1]:
            self._shortest[kind] = (min(previous_s, waited_s), waited_s)

    def next_read_in(self, kind: str, elapsed_s: float) -> float:
        """How long to sleep before the next read, ``elapsed_s`` into a wait of ``kind``."""
        seen = self._shortest.get(kind)
        if seen is None:
            return self.poll_s
        start = seen[0] - self.fine_s  # a fine step early: servers vary a little
        end = seen[1] + self.poll_s
        if elapsed_s + self.poll_s < start:
            return self.poll_s
        if elapsed_s < start:
            return max(start - elapsed_s, self.fine_s / 2)
        if elapsed_s < end:
            return self.fine_s
        return self.poll_s
