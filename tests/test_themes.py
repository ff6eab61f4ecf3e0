"""Themes: built-ins load and register; broken user themes are reported once and skipped."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest
from textual.app import App, ComposeResult
from textual.color import Color
from textual.widgets import Static

from pacs_tui.inventory import Inventory, Server, Site
from pacs_tui.monitor import FleetMonitor
from pacs_tui.plugin_api import Health, Probe, ProbeResult
from pacs_tui_themes import REQUIRED_VARIABLES, ThemeSet, default_theme_dir, load_themes
from pacs_tui_widgets.wall import WallApp

BUILTINS = ("dark", "light", "wall")

GOOD_USER_THEME = """\
name: night-shift
description: dim, for the small hours
dark: true
primary: "#5B8DEF"
background: "#05070A"
luminosity_spread: 0.1
variables:
  state-ok: "#56B4E9"
  state-degraded: "#F0E442"
  state-down: "#FF6A3D"
  state-unreachable: "#CC79A7"
  state-stale: "#B8A88A"
  state-unknown: "#8A93A6"
  input-selection-background: "#5B8DEF 35%"
  block-cursor-text-style: bold
"""


def user_theme(**changes: str | None) -> str:
    """GOOD_USER_THEME with some lines replaced (``None`` drops the key)."""
    lines = []
    for line in GOOD_USER_THEME.splitlines():
        key = line.strip().split(":", 1)[0]
        if key in changes:
            if changes[key] is not None:
                lines.append(line.split(key)[0] + f"{key}: {changes[key]}")
            continue
        lines.append(line)
    return "\n".join(lines) + "\n"


# file name -> (text, expected line, expected key, words expected in the reason)
BROKEN: dict[str, tuple[str, int | None, str | None, str]] = {
    "syntax.yaml": ("name: x\nprimary: [unclosed\nvariables: {}\n", 3, None, "not valid YAML"),
    "unknown-key.yaml": (
        user_theme(name="unknown-key") + "colour_of_the_day: blue\n",
        16,
        "colour_of_the_day",
        "unknown key",
    ),
    "bad-colour.yaml": (user_theme(name="bad-colour", primary='"#12345Z"'), 4, "primary", "colour"),
    "unquoted-hash.yaml": (
        user_theme(name="unquoted-hash", background="#05070A"),
        5,
        "background",
        "unquoted #",
    ),
    "missing-state.yaml": (
        user_theme(name="missing-state", **{"state-stale": None}),
        7,
        "variables.state-stale",
        "required",
    ),
    "bad-state-colour.yaml": (
        user_theme(name="bad-state-colour", **{"state-down": "reddish"}),
        10,
        "variables.state-down",
        "not a colour",
    ),
    "bad-text-style.yaml": (
        user_theme(name="bad-text-style", **{"block-cursor-text-style": "sparkly"}),
        15,
        "variables.block-cursor-text-style",
        "text style",
    ),
    "clash-builtin.yaml": (user_theme(name="dark"), 1, "name", "already defined by built-in"),
    "clash-textual.yaml": (user_theme(name="nord"), 1, "name", "Textual's built-in theme"),
    "bad-name.yaml": (user_theme(name='"Night Shift"'), 1, "name", "lower-case"),
    "not-a-mapping.yaml": ("- just\n- a list\n", 1, None, "mapping"),
    "empty.yaml": ("", 1, None, "empty"),
    "twice.yaml": (user_theme(name="twice") + 'primary: "#000000"\n', 16, "primary", "twice"),
    "dark-not-bool.yaml": (user_theme(name="dark-not-bool", dark="maybe"), 3, "dark", "true or"),
}


@pytest.fixture
def theme_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "themes"
    folder.mkdir()
    return folder


def contrast(a: Color, b: Color) -> float:
    """WCAG 2 contrast ratio."""

    def luminance(c: Color) -> float:
        def channel(v: int) -> float:
            s = v / 255
            return s / 12.92 if s <= 0.03928 else ((s + 0.055) / 1.055) ** 2.4

        return 0.2126 * channel(c.r) + 0.7152 * channel(c.g) + 0.0722 * channel(c.b)

    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


# -- built-ins --------------------------------------------------------------------


def test_builtin_theme_files_are_package_data() -> None:
    files = {e.name for e in resources.files("pacs_tui_themes").iterdir()}
    assert {f"{name}.yaml" for name in BUILTINS} <= files


def test_builtins_load_with_every_state_colour(theme_dir: Path) -> None:
    themes = load_themes(theme_dir)
    assert themes.names == list(BUILTINS)
    assert themes.problems == [] and themes.skipped == []
    assert all(themes.sources[name] == "built-in" for name in BUILTINS)
    assert themes["light"].dark is False and themes["wall"].dark is True
    for theme in themes:
        states = [theme.variables[name] for name in REQUIRED_VARIABLES]
        assert len({Color.parse(c) for c in states}) == len(states), theme.name


@pytest.mark.parametrize("name", BUILTINS)
def test_state_colours_are_readable_on_the_theme_background(theme_dir: Path, name: str) -> None:
    theme = load_themes(theme_dir)[name]
    assert theme.background is not None
    background = Color.parse(theme.background)
    # Wall: 7:1 (WCAG AAA), seen from across a room; the others: 4.5:1 (AA).
    needed = 7.0 if name == "wall" else 4.5
    for variable in REQUIRED_VARIABLES:
        ratio = contrast(Color.parse(theme.variables[variable]), background)
        assert ratio >= needed, f"{name} {variable}: {ratio:.2f}:1"


class Swatches(App[None]):
    """One line per state, coloured by the theme's state variable."""

    CSS = "\n".join(f"#{v} {{ color: ${v}; }}" for v in REQUIRED_VARIABLES)

    def __init__(self, themes: ThemeSet, theme: str) -> None:
        super().__init__()
        themes.register(self)
        self.theme = theme

    def compose(self) -> ComposeResult:
        for variable in REQUIRED_VARIABLES:
            yield Static(variable, id=variable)


@pytest.mark.parametrize("name", BUILTINS)
async def test_each_builtin_registers_and_colours_widgets(theme_dir: Path, name: str) -> None:
    themes = load_themes(theme_dir)
    app = Swatches(themes, name)
    async with app.run_test() as pilot:
        assert app.theme == name
        for variable in REQUIRED_VARIABLES:
            expected = Color.parse(themes[name].variables[variable])
            assert app.query_one(f"#{variable}").styles.color == expected, variable
        # Switching at run time re-colours the same widgets.
        other = "light" if name != "light" else "dark"
        app.theme = other
        await pilot.pause()
        expected = Color.parse(themes[other].variables["state-down"])
        assert app.query_one("#state-down").styles.color == expected


# -- user themes ------------------------------------------------------------------


def test_a_valid_user_theme_loads_after_the_builtins(theme_dir: Path) -> None:
    (theme_dir / "night.yaml").write_text(GOOD_USER_THEME)
    (theme_dir / "notes.txt").write_text("not a theme")
    themes = load_themes(theme_dir)
    assert themes.names == [*BUILTINS, "night-shift"]
    assert themes.sources["night-shift"] == str(theme_dir / "night.yaml")
    theme = themes["night-shift"]
    assert theme.primary == "#5B8DEF" and theme.luminosity_spread == 0.1
    assert theme.variables["input-selection-background"] == "#5B8DEF 35%"


def test_each_broken_user_theme_is_reported_once_and_skipped(theme_dir: Path) -> None:
    for file_name, (text, *_) in BROKEN.items():
        (theme_dir / file_name).write_text(text)
    (theme_dir / "night.yaml").write_text(GOOD_USER_THEME)
    themes = load_themes(theme_dir)
    assert themes.names == [*BUILTINS, "night-shift"]
    assert sorted(p.name for p in themes.skipped) == sorted(BROKEN)
    assert len(themes.skipped) == len(set(themes.skipped))  # each file once
    for file_name, (_, line, key, words) in BROKEN.items():
        path = theme_dir / file_name
        problems = themes.problems_of(path)
        assert problems, file_name
        first = problems[0]
        assert (first.line, first.key) == (line, key), (file_name, str(first))
        assert words in first.message, (file_name, first.message)
        where = f"{path}:{line}: " if line else f"{path}: "
        assert str(first).startswith(where + (f"{key}: " if key else ""))


def test_a_missing_or_wrong_theme_folder(tmp_path: Path) -> None:
    assert load_themes(tmp_path / "absent").names == list(BUILTINS)
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    themes = load_themes(not_a_folder)
    assert themes.names == list(BUILTINS)
    assert [str(p) for p in themes.problems] == [f"{not_a_folder}: is not a folder"]


def test_default_theme_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PACS_TUI_THEME_DIR", str(tmp_path / "mine"))
    assert default_theme_dir() == tmp_path / "mine"
    monkeypatch.delenv("PACS_TUI_THEME_DIR")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    assert default_theme_dir() == tmp_path / "config" / "pacs-tui" / "themes"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_theme_dir() == tmp_path / "home" / ".config" / "pacs-tui" / "themes"


class QuietProbe(Probe):
    name = "network"
    interval_s = 5.0

    def applies_to(self, server: Server) -> bool:
        return True

    async def probe(self, server: Server) -> ProbeResult:
        return ProbeResult.make("ok", Health.OK)


async def test_the_wall_starts_with_broken_user_themes_and_says_so_once(
    theme_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for file_name in ("syntax.yaml", "clash-builtin.yaml", "missing-state.yaml"):
        (theme_dir / file_name).write_text(BROKEN[file_name][0])
    (theme_dir / "night.yaml").write_text(GOOD_USER_THEME)
    monkeypatch.setenv("PACS_TUI_THEME_DIR", str(theme_dir))
    inventory = Inventory(
        Path("/t.yaml"), {"dc": Site("dc", "datacenter")}, (Server("a", "dc", "storage"),), {}
    )
    monitor = FleetMonitor(inventory, probes=[QuietProbe()])
    app = WallApp(inventory, monitor=monitor, theme="night-shift", page_seconds=1000)
    async with app.run_test() as pilot:
        await pilot.pause()
        assert app.theme == "night-shift"
        notices = [n for n in app._notifications if n.title == "Theme skipped"]
        assert len(notices) == 3
        assert all(str(theme_dir) in n.message for n in notices)
        assert any(
            "missing-state.yaml" in n.message and "state-stale" in n.message for n in notices
        )
