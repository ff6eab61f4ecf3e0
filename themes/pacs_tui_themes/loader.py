"""Theme files: YAML, validated, turned into Textual themes.

A theme file names its colours and the six state colours the grid and the
wall use::

    name: night-shift
    dark: true
    primary: "#4FC3F7"
    background: "#000000"
    variables:
      state-ok: "#56B4E9"
      state-degraded: "#F0E442"
      state-down: "#FF6A3D"
      state-unreachable: "#CC79A7"
      state-stale: "#B8A88A"
      state-unknown: "#8A93A6"

The built-in themes ship inside this package; a user's themes live in
``$PACS_TUI_THEME_DIR`` or ``~/.config/pacs-tui/themes/`` (``$XDG_CONFIG_HOME``
is honoured). A broken file is reported once, in ``ThemeSet.problems``, and
skipped: the app starts with the themes that are fine.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import yaml
from textual.color import Color, ColorParseError
from textual.theme import BUILTIN_THEMES, Theme

from pacs_tui.input_file import CONFIG, InputFileError, read_text
from pacs_tui_themes.states import STATE_VARIABLES

THEME_DIR_ENV = "PACS_TUI_THEME_DIR"
BUILTIN_SOURCE = "built-in"
DEFAULTS_THEME = "dark"

COLOUR_KEYS = (
    "primary",
    "secondary",
    "accent",
    "foreground",
    "background",
    "surface",
    "panel",
    "boost",
    "warning",
    "error",
    "success",
)
FLOAT_KEYS = ("luminosity_spread", "text_alpha")
TEXT_KEYS = ("author", "description")
KNOWN_KEYS = frozenset(
    ("name", "dark", "variables", *COLOUR_KEYS, *FLOAT_KEYS, *TEXT_KEYS),
)
REQUIRED_KEYS = ("name", "primary", "variables")
REQUIRED_VARIABLES = tuple(STATE_VARIABLES.values())

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_VARIABLE = re.compile(r"^[a-z][a-z0-9-]*$")
_ALPHA_SUFFIX = re.compile(r"^(?P<colour>.+?)\s+(?P<percent>\d{1,3})%$")
_TEXT_STYLES = frozenset(
    ("none", "not", "bold", "dim", "italic", "underline", "reverse", "strike", "blink")
)


@dataclass(frozen=True)
class ThemeProblem:
    """Why a theme file was skipped: ``FILE:LINE: KEY: reason``."""

    path: Path
    line: int | None
    key: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else str(self.path)
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class ThemeHost(Protocol):
    """What ``ThemeSet.register`` needs of an app (``textual.app.App`` has it)."""

    def register_theme(self, theme: Theme) -> None: ...


@dataclass
class ThemeSet:
    """The usable themes (built-ins first, then the user's) and the skipped files."""

    themes: dict[str, Theme] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)  # name -> "built-in" or file path
    problems: list[ThemeProblem] = field(default_factory=list)  # every problem of every file
    skipped: list[Path] = field(default_factory=list)  # files not loaded, each once

    def __contains__(self, name: object) -> bool:
        return name in self.themes

    def __getitem__(self, name: str) -> Theme:
        return self.themes[name]

    def __iter__(self) -> Iterator[Theme]:
        return iter(self.themes.values())

    @property
    def names(self) -> list[str]:
        """Theme names in load order."""
        return list(self.themes)

    def problems_of(self, path: Path) -> list[ThemeProblem]:
        """The problems of one skipped file."""
        return [p for p in self.problems if p.path == path]

    def state_defaults(self) -> dict[str, str]:
        """The state variables of the ``dark`` built-in, for ``App.get_theme_variable_defaults``.

        With them, a theme without state colours (one of Textual's own, such
        as ``nord``) still renders instead of failing on ``$state-down``.
        """
        theme = self.themes.get(DEFAULTS_THEME)
        if theme is None:
            return {}
        return {name: theme.variables[name] for name in REQUIRED_VARIABLES}

    def register(self, app: ThemeHost) -> None:
        """Register every theme with ``app`` (then set ``app.theme = name``)."""
        for theme in self.themes.values():
            app.register_theme(theme)


def default_theme_dir() -> Path:
    """``$PACS_TUI_THEME_DIR``, else ``$XDG_CONFIG_HOME/pacs-tui/themes`` (``~/.config``)."""
    explicit = os.environ.get(THEME_DIR_ENV)
    if explicit:
        return Path(explicit).expanduser()
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config).expanduser() / "pacs-tui" / "themes"


def load_themes(user_dir: Path | None = None) -> ThemeSet:
    """The built-in themes plus every valid ``*.yaml`` theme in ``user_dir``.

    ``user_dir`` defaults to ``default_theme_dir()``; a missing folder is
    fine (no user themes). Each broken file, and each file whose theme name
    is already taken (by a built-in, one of Textual's themes, or an earlier
    file in name order), becomes one ``ThemeProblem`` and is skipped.
    """
    found = ThemeSet()
    builtin = resources.files(__package__ or "pacs_tui_themes")
    for entry in sorted(builtin.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            path = Path(str(entry))
            _add(found, path, entry.read_text(encoding="utf-8"), BUILTIN_SOURCE)
    folder = default_theme_dir() if user_dir is None else user_dir
    if folder.exists() and not folder.is_dir():
        found.problems.append(ThemeProblem(folder, None, None, "is not a folder"))
        found.skipped.append(folder)
    elif folder.is_dir():
        for path in sorted(folder.glob("*.yaml")):
            try:
                text = read_text(path, CONFIG)  # a FIFO named *.yaml must not hang the UI
            except InputFileError as exc:
                reason = f"{exc.reason} (column {exc.column})" if exc.column else exc.reason
                found.problems.append(ThemeProblem(path, exc.line or None, None, reason))
                found.skipped.append(path)
                continue
            _add(found, path, text, str(path))
    return found


def _add(found: ThemeSet, path: Path, text: str, source: str) -> None:
    theme, problems = parse_theme(text, path)
    if theme is not None and (theme.name in found.themes or theme.name in BUILTIN_THEMES):
        taken_by = found.sources.get(theme.name, "Textual's built-in theme")
        line = _Document.read(text, path).line_of("name")
        problems.append(
            ThemeProblem(
                path, line, "name", f"theme {theme.name!r} is already defined by {taken_by}"
            )
        )
    if problems or theme is None:
        found.problems.extend(problems)
        found.skipped.append(path)
        return
    found.themes[theme.name] = theme
    found.sources[theme.name] = source


def parse_theme(text: str, path: Path) -> tuple[Theme | None, list[ThemeProblem]]:
    """Validate one theme file's text; a Theme when it is fine, else the problems."""
    document = _Document.read(text, path)
    if document.problems:
        return None, document.problems
    data, problems = document.data, document.problems
    assert isinstance(data, dict)

    def problem(key: str, message: str, line: int | None = None) -> None:
        problems.append(ThemeProblem(path, line or document.line_of(key), key, message))

    for key in data:
        if key not in KNOWN_KEYS:
            problem(str(key), f"unknown key (known: {', '.join(sorted(KNOWN_KEYS))})")
    for key in REQUIRED_KEYS:
        if key not in data:
            problem(key, "is required", 1)
    name = data.get("name")
    if "name" in data and not (isinstance(name, str) and _NAME.match(name)):
        problem("name", "must be lower-case letters, digits and '-', e.g. night-shift")
    if "dark" in data and not isinstance(data["dark"], bool):
        problem("dark", "must be true or false")
    colours: dict[str, str] = {}
    for key in COLOUR_KEYS:
        if key in data:
            error = _colour_error(data[key])
            if error:
                problem(key, error)
            else:
                colours[key] = data[key]
    floats: dict[str, float] = {}
    for key in FLOAT_KEYS:
        if key in data:
            value = data[key]
            if isinstance(value, bool) or not isinstance(value, int | float):
                problem(key, "must be a number")
            else:
                floats[key] = float(value)
    for key in TEXT_KEYS:
        if key in data and not isinstance(data[key], str):
            problem(key, "must be text")
    variables = _variables(data.get("variables"), "variables" in data, problem, document)
    if problems:
        return None, problems
    assert isinstance(name, str)
    options: dict[str, Any] = {**colours, **floats}
    theme = Theme(name=name, dark=bool(data.get("dark", True)), variables=variables, **options)
    try:
        theme.to_color_system().generate()  # the same work Textual does when it applies it
    except Exception as exc:  # any failure here would otherwise surface mid-render
        return None, [ThemeProblem(path, None, None, f"Textual rejects the theme: {exc}")]
    return theme, []


class _Problem(Protocol):
    def __call__(self, key: str, message: str, line: int | None = None) -> None: ...


def _variables(value: Any, present: bool, problem: _Problem, document: _Document) -> dict[str, str]:
    if not present:
        return {}
    if not isinstance(value, dict):
        problem("variables", "must be a mapping of variable name to value")
        return {}
    variables: dict[str, str] = {}
    for name, raw in value.items():
        key = f"variables.{name}"
        line = document.line_of("variables", str(name))
        if not isinstance(name, str) or not _VARIABLE.match(name):
            problem(key, "variable names are lower-case words joined by '-'", line)
            continue
        error = _variable_error(name, raw)
        if error:
            problem(key, error, line)
            continue
        variables[name] = str(raw)
    for name in REQUIRED_VARIABLES:
        if name not in value:
            problem(
                f"variables.{name}",
                "is required (every theme colours every state)",
                document.line_of("variables"),
            )
    return variables


def _colour_error(value: Any) -> str | None:
    if value is None:
        return 'is empty (quote colours: "#4FC3F7"; an unquoted # starts a YAML comment)'
    if not isinstance(value, str):
        return f"must be a colour such as '#4FC3F7', not {value!r}"
    try:
        Color.parse(value)
    except ColorParseError:
        return f"{value!r} is not a colour (use '#RRGGBB', 'rgb(r,g,b)' or a colour name)"
    return None


def _variable_error(name: str, value: Any) -> str | None:
    """Values Textual would choke on when it builds the stylesheet are caught here."""
    if name in REQUIRED_VARIABLES or _colour_error(value) is None:
        return _colour_error(value)
    if not isinstance(value, str):
        return f"must be text, not {value!r}"
    if name.endswith("text-style"):
        words = value.split()
        if words and all(w in _TEXT_STYLES for w in words):
            return None
        return f"{value!r} is not a text style (e.g. 'bold', 'reverse', 'none')"
    translucent = _ALPHA_SUFFIX.match(value)
    if (
        translucent
        and int(translucent["percent"]) <= 100
        and _colour_error(translucent["colour"]) is None
    ):
        return None
    return f"{value!r} is not a colour (use '#RRGGBB', or '#RRGGBB 40%')"


@dataclass
class _Document:
    """A YAML mapping with the line of each key (1-based) for messages."""

    data: Any
    problems: list[ThemeProblem]
    lines: dict[tuple[str, ...], int]

    def line_of(self, *keys: str) -> int | None:
        return self.lines.get(keys)

    @classmethod
    def read(cls, text: str, path: Path) -> _Document:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            data = None if node is None else loader.construct_document(node)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = None if mark is None else mark.line + 1
            reason = exc.problem or str(exc)
            return cls(None, [ThemeProblem(path, line, None, f"not valid YAML: {reason}")], {})
        except yaml.YAMLError as exc:
            return cls(None, [ThemeProblem(path, None, None, f"not valid YAML: {exc}")], {})
        finally:
            loader.dispose()
        if not isinstance(data, dict) or not isinstance(node, yaml.MappingNode):
            message = "is empty" if data is None else "must be a mapping of keys to values"
            return cls(None, [ThemeProblem(path, 1, None, message)], {})
        lines: dict[tuple[str, ...], int] = {}
        problems: list[ThemeProblem] = []
        for keys, key_node in _keys(node, ()):
            if keys in lines:
                problems.append(
                    ThemeProblem(
                        path,
                        key_node.start_mark.line + 1,
                        ".".join(keys),
                        f"is given twice (first on line {lines[keys]})",
                    )
                )
            else:
                lines[keys] = key_node.start_mark.line + 1
        return cls(data, problems, lines)


def _keys(
    node: yaml.MappingNode, prefix: tuple[str, ...]
) -> Iterable[tuple[tuple[str, ...], yaml.Node]]:
    for key_node, value_node in node.value:
        keys = (*prefix, str(key_node.value))
        yield keys, key_node
        if isinstance(value_node, yaml.MappingNode) and not prefix:
            yield from _keys(value_node, keys)
