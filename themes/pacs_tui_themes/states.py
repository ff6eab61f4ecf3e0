"""How each health state is shown: a theme variable for its colour and a glyph.

Colour alone never carries a state (colour-blind viewers, monochrome
terminals, a washed-out wall projector), so every state also has a glyph.
"""

from __future__ import annotations

from collections.abc import Mapping

# Health value (``pacs_tui.plugin_api.Health``) -> the theme variable holding its colour.
STATE_VARIABLES: Mapping[str, str] = {
    "ok": "state-ok",
    "degraded": "state-degraded",
    "down": "state-down",
    "unreachable": "state-unreachable",
    "stale": "state-stale",
    "unknown": "state-unknown",
}

# Distinct shapes, not only distinct colours; all single-cell wide.
STATE_GLYPHS: Mapping[str, str] = {
    "ok": "●",
    "degraded": "▲",
    "down": "✖",
    "unreachable": "⊘",
    "stale": "◌",
    "unknown": "?",
}
