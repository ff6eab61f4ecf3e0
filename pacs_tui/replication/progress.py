"""The check's progress on stderr: days done, studies compared, ETA.

On a terminal one line is rewritten in place; in a log (not a TTY) a line
is written at most every ``interval_s`` seconds, so a year's check does not
fill the log with 365 lines.
"""

from __future__ import annotations

import time
from typing import TextIO

from pacs_tui.replication.check import Progress


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def progress_text(p: Progress) -> str:
    """``days 120/365  studies compared 576000  elapsed 0:01:10  ETA 0:02:23``."""
    eta = p.eta_s
    return (
        f"days {p.days_done}/{p.days_total}  studies compared {p.studies}  "
        f"elapsed {_clock(p.elapsed_s)}  ETA {_clock(eta) if eta is not None else '?'}"
    )


class ProgressLine:
    """A ``progress`` callback for ``check_replication`` writing to ``stream``."""

    def __init__(self, stream: TextIO, interval_s: float = 5.0) -> None:
        self.stream = stream
        self.interval_s = interval_s
        self.tty = stream.isatty()
        self._last = 0.0

    def __call__(self, p: Progress) -> None:
        now = time.monotonic()
        last_day = p.days_done == p.days_total
        if self.tty:
            self.stream.write("\r" + progress_text(p) + ("\n" if last_day else ""))
        elif last_day or now - self._last >= self.interval_s:
            self.stream.write(progress_text(p) + "\n")
        else:
            return
        self._last = now
        self.stream.flush()
