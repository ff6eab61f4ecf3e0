"""pacs-tui's themes: built-in YAML themes and the user's own, as Textual themes.

``load_themes()`` returns a ``ThemeSet``; ``ThemeSet.register(app)`` makes
them available to a Textual app. Every theme defines the state colour
variables ``$state-ok``, ``$state-degraded``, ``$state-down``,
``$state-unreachable``, ``$state-stale`` and ``$state-unknown``.
"""

from pacs_tui_themes.loader import (
    REQUIRED_VARIABLES,
    THEME_DIR_ENV,
    ThemeProblem,
    ThemeSet,
    default_theme_dir,
    load_themes,
    parse_theme,
)
from pacs_tui_themes.states import STATE_GLYPHS, STATE_VARIABLES

__all__ = [
    "REQUIRED_VARIABLES",
    "STATE_GLYPHS",
    "STATE_VARIABLES",
    "THEME_DIR_ENV",
    "ThemeProblem",
    "ThemeSet",
    "default_theme_dir",
    "load_themes",
    "parse_theme",
]
