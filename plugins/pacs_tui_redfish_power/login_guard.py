"""Hold back logins to a BMC that keeps refusing our credentials.

Real BMCs lock the account or block the source address after a few failed
logins (iDRAC: 3 in 2 minutes blocks the address; iLO and OpenBMC lock the
account). A poller that retries at poll pace would lock the operator out of
every BMC on the night, so failed logins (a 401 to a session POST, or to a
request with HTTP Basic) are counted per BMC and user across every client of
the process: at most ``max_failures`` in ``window_s``; then no login is tried
until the oldest failure leaves the window.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

__all__ = ["LOGIN_GUARD", "LoginGuard"]


@dataclass
class LoginGuard:
    """Failed logins per (BMC URL, user name); shared by probes and actions."""

    max_failures: int = 3
    window_s: float = 15 * 60.0
    _failures: dict[tuple[str, str], deque[float]] = field(default_factory=dict)

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        times = self._failures.setdefault(key, deque())
        while times and now - times[0] >= self.window_s:
            times.popleft()
        return times

    def held_until(self, url: str, user: str, now: float | None = None) -> float | None:
        """Wall-clock time (``time.time()``) when logins may resume, or None if allowed."""
        now = time.time() if now is None else now
        times = self._recent((url, user), now)
        if len(times) < self.max_failures:
            return None
        return times[0] + self.window_s

    def failures(self, url: str, user: str) -> int:
        """Failed logins within the window."""
        return len(self._recent((url, user), time.time()))

    def failed(self, url: str, user: str) -> None:
        """Count one refused login."""
        self._recent((url, user), time.time()).append(time.time())

    def succeeded(self, url: str, user: str) -> None:
        """A login worked: the BMC accepts the credentials, forget the failures."""
        self._failures.pop((url, user), None)


# One per process: the probe and the reset action talk to the same BMCs.
LOGIN_GUARD = LoginGuard()
