"""The wall's bottom line: how old the data is, which page this is, and that it is read-only."""

from __future__ import annotations

from textual.widgets import Static


class WallStatusLine(Static):
    """``newest reading 1 s old · oldest 28 s · ● ○ ○ page 1/3 · READ-ONLY``."""

    DEFAULT_CSS = """
    WallStatusLine {
        dock: bottom;
        width: 1fr;
        height: 1;
        padding: 0 1;
        background: $panel;
        color: $foreground;
    }
    """

    def show(
        self, *, newest_age_s: float | None, oldest_age_s: float | None, page: int, pages: int
    ) -> None:
        """Show the reading ages and the page position (``page`` counts from 0)."""
        if newest_age_s is None or oldest_age_s is None:
            ages = "no reading yet"
        else:
            ages = f"newest reading {newest_age_s:.0f} s old · oldest {oldest_age_s:.0f} s"
        dots = " ".join("●" if i == page else "○" for i in range(pages))
        self.update(f"{ages} · {dots} page {page + 1}/{pages} · READ-ONLY wall display")
