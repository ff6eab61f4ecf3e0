"""Hold back logins to a BMC that keeps refusing our credentials.

Real BMCs lock the account or block the source address after a few failed
logins (iDRAC: 3 in 2 minutes blocks the address; iLO and OpenBMC lock the
account). A poller that retries at poll pace — or an operator who re-runs
``pacs-tui status`` — would lock everyone out of every BMC on the night, so
failed logins (a 401 to a session POST, or to a request with HTTP Basic) are
counted per BMC and user: at most ``max_failures`` in ``window_s``; then no
login is tried until the oldest failure leaves the window.

The count is shared by every client of the process and, through a small
JSON file in the user's data directory (``bmc-login-failures.json``, no
secrets: BMC URL, user name, times), by every pacs-tui process of the user.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from pacs_tui.batch.audit import data_dir

__all__ = ["LOGIN_GUARD", "LoginGuard"]

log = logging.getLogger(__name__)

FAILURES_FILE = "bmc-login-failures.json"


@dataclass
class LoginGuard:
    """Failed logins per (BMC URL, user name); shared by probes, actions and processes."""

    max_failures: int = 3
    window_s: float = 15 * 60.0
    persist: bool = True  # False: this process only (tests of the logic)
    _failures: dict[tuple[str, str], deque[float]] = field(default_factory=dict)
    _seen: tuple[str, int] | None = None  # the record file (path, mtime) last merged

    def _file(self) -> Path:
        return data_dir() / FAILURES_FILE

    def _load(self, now: float) -> None:
        """Merge the other processes' failures (best effort: a bad file is ignored)."""
        if not self.persist:
            return
        path = self._file()
        try:
            # Basic auth checks the guard on every request: read only what changed.
            stamp = (str(path), path.stat().st_mtime_ns)
            if stamp == self._seen:
                return
            stored = json.loads(path.read_text())
        except (OSError, ValueError):
            return
        self._seen = stamp
        if not isinstance(stored, dict):
            return
        for key, times in stored.items():
            url, _, user = key.partition(" ")
            if not isinstance(times, list):
                continue
            mine = self._failures.setdefault((url, user), deque())
            merged = sorted({*mine, *(t for t in times if isinstance(t, int | float))})
            mine.clear()
            mine.extend(t for t in merged if now - t < self.window_s)

    def _save(self) -> None:
        if not self.persist:
            return
        path = self._file()
        data = {
            f"{url} {user}": list(times) for (url, user), times in self._failures.items() if times
        }
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=path.parent, prefix=".login-failures-")
            with os.fdopen(fd, "w") as handle:
                json.dump(data, handle)
            os.replace(name, path)
        except OSError as exc:
            log.debug("cannot record failed BMC logins in %s: %s", path, exc.strerror)
            with contextlib.suppress(OSError, UnboundLocalError):
                os.unlink(name)

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        times = self._failures.setdefault(key, deque())
        while times and now - times[0] >= self.window_s:
            times.popleft()
        return times

    def held_until(self, url: str, user: str, now: float | None = None) -> float | None:
        """Wall-clock time (``time.time()``) when logins may resume, or None if allowed."""
        now = time.time() if now is None else now
        self._load(now)
        times = self._recent((url, user), now)
        if len(times) < self.max_failures:
            return None
        return times[0] + self.window_s

    def record(self) -> str:
        """Where the shared record lives ("" when kept in memory only), for the operator."""
        return str(self._file()) if self.persist else ""

    def failures(self, url: str, user: str) -> int:
        """Failed logins within the window."""
        return len(self._recent((url, user), time.time()))

    def failed(self, url: str, user: str) -> None:
        """Count one refused login."""
        now = time.time()
        self._load(now)
        self._recent((url, user), now).append(now)
        self._save()

    def succeeded(self, url: str, user: str) -> None:
        """A login worked: the BMC accepts the credentials, forget the failures."""
        if self._failures.pop((url, user), None):
            self._save()

    def clear(self) -> None:
        """Forget every failure (this process and the shared file)."""
        self._failures.clear()
        self._save()


# One per process: the probe and the reset action talk to the same BMCs.
LOGIN_GUARD = LoginGuard()
