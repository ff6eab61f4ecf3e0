"""The user's keymap: ``keymap: {binding_id: "keys"}`` in the pacs-tui config file.

The file is ``$PACS_TUI_CONFIG`` if set, else ``$XDG_CONFIG_HOME/pacs-tui/config.yaml``
(``~/.config/pacs-tui/config.yaml``). A missing file is normal; a broken file,
an unknown binding id or a value that is not a key string is reported and
skipped, never fatal: the control room must open on Saturday morning whatever
somebody typed into the config on Friday.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from pacs_tui.input_file import CONFIG, InputFileError, read_text

CONFIG_ENV = "PACS_TUI_CONFIG"


def default_config_path() -> Path:
    """Where the config file is looked for."""
    explicit = os.environ.get(CONFIG_ENV)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "pacs-tui" / "config.yaml"


@dataclass
class KeymapConfig:
    """Key overrides by binding id, and what was wrong with the file."""

    keymap: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    path: Path | None = None

    def checked(self, known_ids: Iterable[str]) -> KeymapConfig:
        """A copy without unknown binding ids, each reported as a problem."""
        known = set(known_ids)
        keymap: dict[str, str] = {}
        problems = list(self.problems)
        where = f"{self.path}: " if self.path else ""
        for binding_id, keys in self.keymap.items():
            if binding_id in known:
                keymap[binding_id] = keys
            else:
                problems.append(f"{where}keymap: unknown binding id {binding_id!r} (ignored)")
        return KeymapConfig(keymap, problems, self.path)


def load_keymap(path: Path | None = None) -> KeymapConfig:
    """Read the ``keymap`` section of the config file (missing file: empty keymap)."""
    path = default_config_path() if path is None else path
    try:
        text = read_text(path, CONFIG)  # a FIFO or /dev/zero here must not stop the UI
    except InputFileError as exc:
        if exc.reason == "no such file":
            return KeymapConfig(path=path)
        return KeymapConfig(problems=[str(exc)], path=path)
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        return KeymapConfig(problems=[f"{path}{line}: not valid YAML"], path=path)
    if document is None:
        return KeymapConfig(path=path)
    if not isinstance(document, Mapping):
        return KeymapConfig(problems=[f"{path}: expected a mapping at the top"], path=path)
    section = document.get("keymap")
    if section is None:
        return KeymapConfig(path=path)
    if not isinstance(section, Mapping):
        return KeymapConfig(
            problems=[f"{path}: keymap: expected a mapping of binding id to keys"], path=path
        )
    keymap: dict[str, str] = {}
    problems: list[str] = []
    for binding_id, keys in section.items():
        if not isinstance(keys, str) or not keys.strip():
            problems.append(f'{path}: keymap: {binding_id}: expected keys like "n,down"')
            continue
        keymap[str(binding_id)] = keys.replace(" ", "")
    return KeymapConfig(keymap, problems, path)
