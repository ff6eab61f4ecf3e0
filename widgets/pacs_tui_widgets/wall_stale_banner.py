"""The warning that the numbers on the wall are old: polling has stalled."""

from __future__ import annotations

from textual.widgets import Static


class WallStaleBanner(Static):
    """Hidden while data is fresh; a loud block of colour when it is not.

    ``-stalled``: nothing at all was read for longer than the wall's limit
    (the numbers may be wrong). ``-partial``: polling runs, but some
    readings are older than three of their probe's intervals.
    """

    DEFAULT_CSS = """
    WallStaleBanner {
        display: none;
        width: 1fr;
        height: auto;
        padding: 0 1;
        text-style: bold;
        text-align: center;
    }
    WallStaleBanner.-stalled {
        display: block;
        padding: 1 1;
        background: $state-stale;
        color: $background;
    }
    WallStaleBanner.-partial {
        display: block;
        border: heavy $state-stale;
        color: $state-stale;
    }
    """

    def show_age(
        self,
        *,
        newest_age_s: float | None,
        waiting_s: float,
        stale_readings: int,
        oldest_age_s: float | None,
        stale_after_s: float,
    ) -> None:
        """Decide what to say from the readings' ages (``waiting_s``: since the wall started)."""
        if newest_age_s is None and waiting_s > stale_after_s:
            self._say("-stalled", f"⚠ NO DATA for {waiting_s:.0f} s — the poller has not reported")
        elif newest_age_s is not None and newest_age_s > stale_after_s:
            self._say(
                "-stalled",
                f"⚠ DATA IS {newest_age_s:.0f} s OLD — polling has stalled, the numbers may be wrong",
            )
        elif stale_readings:
            oldest = "" if oldest_age_s is None else f", oldest {oldest_age_s:.0f} s"
            plural = "s are" if stale_readings != 1 else " is"
            self._say("-partial", f"◌ {stale_readings} reading{plural} stale{oldest}")
        else:
            self._say(None, "")

    def show_unreachable(self, text: str) -> None:
        """The service the wall follows is gone: ``text`` says since when."""
        self._say("-stalled", text)

    @property
    def warning(self) -> str:
        """The text shown now ("" when hidden)."""
        return self._warning

    _warning = ""

    def _say(self, level: str | None, text: str) -> None:
        self.set_class(level == "-stalled", "-stalled")
        self.set_class(level == "-partial", "-partial")
        if text != self._warning:
            self._warning = text
            self.update(text)
