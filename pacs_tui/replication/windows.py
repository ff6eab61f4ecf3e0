"""Query windows: a day, an hour of it, an hour of one modality, a quarter of that.

The replication proof lists studies window by window, so memory stays bounded
and an archive that stops answering early (a result limit) can be asked again
in smaller parts until each part's answer is complete (PS3.4 C.4.1: only a
final Success closes an answer).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

DAY_MINUTES = 24 * 60


@dataclass(frozen=True, order=True)
class Window:
    """Studies of ``day`` with StudyTime in [start, end) minutes, of ``modality`` (None = all)."""

    day: date
    start: int = 0  # minutes after midnight, inclusive
    end: int = DAY_MINUTES  # minutes after midnight, exclusive
    modality: str | None = None

    @property
    def whole_day(self) -> bool:
        """True when the window has no StudyTime bound."""
        return self.start == 0 and self.end == DAY_MINUTES

    def query(self) -> dict[str, str]:
        """C-FIND matching keys for this window (StudyDate, StudyTime range, modality)."""
        keys = {"StudyDate": self.day.strftime("%Y%m%d"), "StudyTime": ""}
        if not self.whole_day:
            last = self.end - 1
            keys["StudyTime"] = (
                f"{self.start // 60:02d}{self.start % 60:02d}00-{last // 60:02d}{last % 60:02d}59"
            )
        keys["ModalitiesInStudy"] = self.modality or ""
        return keys

    def label(self) -> str:
        """``2026-01-05``, ``2026-01-05 08:00–09:00`` or ``2026-01-05 08:00–09:00 CT``."""
        text = self.day.isoformat()
        if not self.whole_day:
            text += f" {self.start // 60:02d}:{self.start % 60:02d}–{self.end // 60:02d}:{self.end % 60:02d}"
        if self.modality:
            text += f" {self.modality}"
        return text

    def split(self, modalities: Sequence[str], min_minutes: int = 15) -> list[Window] | None:
        """Smaller windows covering this one, or None when it cannot be split further.

        A day splits into hours, an hour into its modalities, a modality's
        hour into quarters (``min_minutes``); the modality split only covers
        the listed modalities, which the caller checks.
        """
        span = self.end - self.start
        if self.modality is None and span > 60:
            return [
                Window(self.day, m, min(m + 60, self.end)) for m in range(self.start, self.end, 60)
            ]
        if self.modality is None:
            return [Window(self.day, self.start, self.end, m) for m in modalities]
        if span > min_minutes:
            step = max(min_minutes, span // 4)
            return [
                Window(self.day, m, min(m + step, self.end), self.modality)
                for m in range(self.start, self.end, step)
            ]
        return None
