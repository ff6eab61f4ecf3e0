"""The session table of one simulated BMC.

Real BMCs keep a handful of sessions (8 is common) and drop a session after
some idle minutes. A poller that logs in per poll and never logs out fills
the table and locks everybody out; the simulator reproduces exactly that.
"""

from __future__ import annotations

import hmac
import itertools
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class RedfishSession:
    """One login. ``token`` is secret: never log it or put it in a body."""

    session_id: str
    username: str
    token: str = field(repr=False)
    last_used: float


class SessionTable:
    """Sessions of one BMC, bounded in number and expiring when idle."""

    def __init__(
        self,
        limit: int,
        idle_timeout_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.idle_timeout_s = idle_timeout_s
        self._clock = clock
        self._sessions: dict[str, RedfishSession] = {}
        self._ids = itertools.count(1)

    def open(self, username: str) -> RedfishSession | None:
        """A new session, or None when the table is full."""
        self._expire()
        if len(self._sessions) >= self.limit:
            return None
        session = RedfishSession(
            session_id=f"{next(self._ids)}{secrets.token_hex(4)}",
            username=username,
            token=secrets.token_urlsafe(24),
            last_used=self._clock(),
        )
        self._sessions[session.session_id] = session
        return session

    def authenticate(self, token: str) -> RedfishSession | None:
        """The live session holding ``token`` (its idle timer restarts), or None."""
        self._expire()
        for session in self._sessions.values():
            if hmac.compare_digest(session.token, token):
                session.last_used = self._clock()
                return session
        return None

    def get(self, session_id: str) -> RedfishSession | None:
        """The live session with id ``session_id``, or None."""
        self._expire()
        return self._sessions.get(session_id)

    def close(self, session_id: str) -> bool:
        """End a session (logout); False when there was none with that id."""
        self._expire()
        return self._sessions.pop(session_id, None) is not None

    def sessions(self) -> list[RedfishSession]:
        """The live sessions, oldest first."""
        self._expire()
        return list(self._sessions.values())

    def __len__(self) -> int:
        self._expire()
        return len(self._sessions)

    def _expire(self) -> None:
        deadline = self._clock() - self.idle_timeout_s
        stale = [sid for sid, s in self._sessions.items() if s.last_used < deadline]
        for sid in stale:
            del self._sessions[sid]
