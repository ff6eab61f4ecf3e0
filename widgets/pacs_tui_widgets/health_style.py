"""How a health is drawn: a glyph that reads without colour, and a theme colour.

Colour alone fails on a monochrome terminal and for colour-blind operators,
so every state has its own shape; STALE and UNKNOWN never look like DOWN.
"""

from __future__ import annotations

from pacs_tui.plugin_api import Health
from pacs_tui_themes import STATE_GLYPHS

NOT_APPLICABLE = "n/a"

# One glyph table for the control room and the wall (the themes package owns it).
GLYPHS: dict[str, str] = {**STATE_GLYPHS, NOT_APPLICABLE: "–"}
assert all(str(h) in GLYPHS for h in Health)

# Fallback colours for the state variables, used when a theme does not set them.
STATE_VARIABLE_DEFAULTS: dict[str, str] = {
    "state-ok": "#4caf50",
    "state-degraded": "#e0a000",
    "state-down": "#e53935",
    "state-unreachable": "#b06ad8",
    "state-stale": "#8a8f98",
    "state-unknown": "#6b9bd1",
}


def glyph(health: str) -> str:
    """The glyph of a health word (``n/a`` included)."""
    return GLYPHS.get(health, "?")


def state_class(health: str) -> str:
    """The CSS class/component-class suffix of a health word: ``ok``, ``down``, ``na``."""
    return "na" if health == NOT_APPLICABLE else str(health)


def format_latency(latency_ms: float | None) -> str:
    """Latency in a few characters: ``0.4ms``, ``12ms``, ``1.2s``."""
    if latency_ms is None:
        return ""
    if latency_ms < 10:
        return f"{latency_ms:.1f}ms"
    if latency_ms < 1000:
        return f"{latency_ms:.0f}ms"
    return f"{latency_ms / 1000:.1f}s"


def format_age(age_s: float | None) -> str:
    """An age in a few characters: ``4s``, ``3m``, ``2h``; ``–`` when never read."""
    if age_s is None:
        return "–"
    if age_s < 60:
        return f"{age_s:.0f}s"
    if age_s < 3600:
        return f"{age_s / 60:.0f}m"
    return f"{age_s / 3600:.0f}h"
