"""Content markup shared by the wall's widgets: state colours come from theme variables."""

from __future__ import annotations

from pacs_tui.plugin_api import Health
from pacs_tui.rollup import HEALTH_ORDER, HealthCounts
from pacs_tui_themes import STATE_GLYPHS, STATE_VARIABLES


def state_markup(health: Health, text: str, *, bold: bool = False) -> str:
    """``text`` (already escaped) in the state's colour, led by its glyph."""
    style = f"{'b ' if bold else ''}${STATE_VARIABLES[health.value]}"
    return f"[{style}]{STATE_GLYPHS[health.value]} {text}[/]"


def worst(counts: HealthCounts) -> Health:
    """The most severe state any counted server is in (UNKNOWN when none counted)."""
    present = [h for h in HEALTH_ORDER if counts[h]]
    return max(present, key=lambda h: h.rank) if present else Health.UNKNOWN
