"""How the control room looks and which keys it answers to: themes and the user's keymap.

Both are read once, at mount. A broken theme package or theme file never
stops the room (it falls back to Textual's own colours, or skips the bad
theme with a toast); a keymap entry naming an unknown binding is reported,
not applied.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING

from pacs_tui_widgets.keymap import load_keymap
from pacs_tui_widgets.room_bindings import ALWAYS_KNOWN_IDS

if TYPE_CHECKING:
    from pacs_tui_widgets.app import ControlRoomApp

# The app's logger, as before the split: log configs and filters name it.
log = logging.getLogger("pacs_tui_widgets.app")

DEFAULT_THEME = "dark"
FALLBACK_THEME = "textual-dark"


def load_themes(app: ControlRoomApp) -> None:
    """Register the bundled and ``app.theme_dir``'s themes; select ``dark`` if there is one.

    Fills ``app.theme_names``; each skipped theme file becomes a warning toast.
    """
    try:
        module = importlib.import_module("pacs_tui_themes")
        load = (
            getattr(module, "load_themes", None)
            or importlib.import_module("pacs_tui_themes.loader").load_themes
        )
        themes = load(app.theme_dir)
    except Exception as exc:  # the room still works in Textual's own colours
        log.warning("themes not loaded: %s", exc)
        app.theme = FALLBACK_THEME
        return
    for theme in themes:
        app.register_theme(theme)
    app.theme_names = list(themes.names)
    for problem in themes.problems:
        app.notify(f"theme skipped: {problem}", severity="warning", timeout=8)
    app.theme = DEFAULT_THEME if DEFAULT_THEME in themes else FALLBACK_THEME


def apply_keymap(app: ControlRoomApp) -> None:
    """Check ``app.keymap_config`` (None: the user's config file) and apply it.

    Replaces ``app.keymap_config`` with the checked one; each problem (the
    file's own, or an unknown binding id, which is left out) becomes a warning toast.
    """
    config = app.keymap_config if app.keymap_config is not None else load_keymap()
    known = {row.binding_id for row in app.binding_rows({})} | ALWAYS_KNOWN_IDS
    checked = config.checked(known)
    app.keymap_config = checked
    for problem in checked.problems:
        app.notify(problem, severity="warning", timeout=8)
    if checked.keymap:
        app.set_keymap(checked.keymap)
