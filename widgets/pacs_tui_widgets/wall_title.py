"""The wall's title bar: what this page shows."""

from __future__ import annotations

from textual.widgets import Static


class WallTitle(Static):
    """``PACS · hosp-northgate`` in a bar across the top."""

    DEFAULT_CSS = """
    WallTitle {
        dock: top;
        width: 1fr;
        height: 1;
        padding: 0 1;
        text-style: bold;
        background: $primary;
        color: $background;
    }
    """
