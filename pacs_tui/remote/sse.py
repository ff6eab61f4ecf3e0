"""A Server-Sent Events parser for the service's stream (WHATWG HTML, "Server-sent events").

Fed raw bytes as they arrive; yields ``SseEvent``s. Lines may end in LF, CR
or CRLF; ``data`` lines join with LF; a comment (``: ping``) only proves the
stream is alive. One event may be large (a snapshot of thousands of
servers), so the parser does its own line splitting with a size cap
instead of relying on a reader's line limit.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

MAX_EVENT_BYTES = 256 * 1024 * 1024  # a snapshot of 30 000 servers is far below this


class SseError(ValueError):
    """The stream broke the format or an event exceeded ``MAX_EVENT_BYTES``."""


@dataclass(frozen=True)
class SseEvent:
    """One dispatched event: its name (default ``message``), data and id (or None)."""

    kind: str
    data: str
    id: str | None


class SseParser:
    """Incremental parser: ``feed(chunk)`` yields the events completed by ``chunk``."""

    def __init__(self, max_event_bytes: int = MAX_EVENT_BYTES) -> None:
        self._buffer = bytearray()
        self._data: list[str] = []
        self._size = 0
        self._kind = ""
        self._id: str | None = None
        self._max = max_event_bytes
        self._after_cr = False

    def feed(self, chunk: bytes) -> Iterator[SseEvent]:
        """Parse ``chunk``; yield each event whose blank line it contains."""
        if not chunk:
            # Why: an empty chunk must not forget a CR that ended the last one, or the LF
            # that follows would read as a blank line and dispatch half an event.
            return
        if self._after_cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]  # the LF of a CRLF split across chunks
        self._after_cr = False
        self._buffer += chunk
        while True:
            cut = _line_end(self._buffer)
            if cut is None:
                if len(self._buffer) + self._size > self._max:
                    raise SseError(f"an event is larger than {self._max} bytes")
                return
            end, width = cut
            line = bytes(self._buffer[:end]).decode("utf-8", errors="replace")
            if width == 1 and self._buffer[end] == 0x0D and end + 1 == len(self._buffer):
                self._after_cr = True
            del self._buffer[: end + width]
            event = self._line(line)
            if event is not None:
                yield event

    def _line(self, line: str) -> SseEvent | None:
        if not line:
            if not self._data:
                self._kind = ""
                return None
            event = SseEvent(self._kind or "message", "\n".join(self._data), self._id)
            self._data, self._size, self._kind = [], 0, ""
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            self._data.append(value)
            self._size += len(value) + 1
            if self._size > self._max:
                raise SseError(f"an event is larger than {self._max} bytes")
        elif name == "event":
            self._kind = value
        elif name == "id" and "\0" not in value:
            self._id = value
        return None


def _line_end(buffer: bytearray) -> tuple[int, int] | None:
    """Index and width of the first line break (CRLF is 2), or None."""
    lf, cr = buffer.find(b"\n"), buffer.find(b"\r")
    if cr == -1 and lf == -1:
        return None
    if cr == -1 or (lf != -1 and lf < cr):
        return lf, 1
    if cr + 1 < len(buffer) and buffer[cr + 1] == 0x0A:
        return cr, 2
    return cr, 1
