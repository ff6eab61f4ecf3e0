"""EventHub: numbered events for the service's viewers, with resume and bounded queues.

Every event gets the next sequence number (its SSE ``id``). The hub keeps the
last ``keep`` events, so a viewer that reconnects with ``Last-Event-ID`` gets
exactly what it missed; one whose gap is older than that is told to take a
fresh snapshot instead. Each attached viewer has a queue of at most
``queue_limit`` events: a viewer that stops reading never slows the service
or holds more than that; when its queue overflows it is emptied and marked,
and the viewer is resynchronised with a snapshot when it reads again.
(SSE: the WHATWG HTML Living Standard, "Server-sent events".)
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

DEFAULT_KEEP = 1024  # events kept for Last-Event-ID resume
DEFAULT_QUEUE_LIMIT = 256  # events queued per viewer before it must resync


@dataclass(frozen=True)
class Event:
    """One numbered event: ``kind`` is the SSE event name, ``data`` its JSON text."""

    id: int
    kind: str
    data: str


class Viewer:
    """One attached viewer's queue; ``overflowed`` once it fell ``queue_limit`` behind."""

    def __init__(self, limit: int) -> None:
        self._queue: deque[Event] = deque()
        self._limit = limit
        self._ready = asyncio.Event()
        self.overflowed = False
        self.dropped = 0  # events thrown away by overflows (for the service's own counts)

    def _put(self, event: Event) -> None:
        if self.overflowed:
            self.dropped += 1
            return
        if len(self._queue) >= self._limit:
            # Let go of everything: the viewer gets a snapshot, not a backlog.
            self.dropped += len(self._queue) + 1
            self._queue.clear()
            self.overflowed = True
        else:
            self._queue.append(event)
        self._ready.set()

    def resynced(self) -> None:
        """The viewer was sent a snapshot: queue again from here."""
        self.overflowed = False

    def __len__(self) -> int:
        return len(self._queue)

    async def next(self, timeout: float | None = None) -> list[Event]:
        """Wait for events (or ``timeout`` seconds) and take every queued one."""
        if not self._queue and not self.overflowed:
            self._ready.clear()
            try:
                await asyncio.wait_for(self._ready.wait(), timeout)
            except TimeoutError:
                return []
        events = list(self._queue)
        self._queue.clear()
        return events


class EventHub:
    """Numbers events, keeps the recent ones, fans them out to viewers."""

    def __init__(self, *, keep: int = DEFAULT_KEEP, queue_limit: int = DEFAULT_QUEUE_LIMIT) -> None:
        self.seq = 0
        self._recent: deque[Event] = deque(maxlen=keep)
        self._viewers: set[Viewer] = set()
        self._queue_limit = queue_limit

    def publish(self, kind: str, data: Any) -> Event:
        """Number ``data`` (JSON-able) as event ``kind`` and queue it for every viewer."""
        self.seq += 1
        event = Event(self.seq, kind, json.dumps(data, separators=(",", ":")))
        self._recent.append(event)
        for viewer in self._viewers:
            viewer._put(event)
        return event

    def since(self, last_id: int) -> list[Event] | None:
        """The events after ``last_id``; None when some of them are no longer kept."""
        if last_id >= self.seq:
            return [] if last_id == self.seq else None  # an id from the future: resync
        if not self._recent or self._recent[0].id > last_id + 1:
            return None
        return [event for event in self._recent if event.id > last_id]

    def attach(self) -> Viewer:
        """A new viewer that receives every later event."""
        viewer = Viewer(self._queue_limit)
        self._viewers.add(viewer)
        return viewer

    def detach(self, viewer: Viewer) -> None:
        """Stop queueing for ``viewer``."""
        self._viewers.discard(viewer)

    @property
    def viewers(self) -> Iterable[Viewer]:
        """The attached viewers."""
        return tuple(self._viewers)
