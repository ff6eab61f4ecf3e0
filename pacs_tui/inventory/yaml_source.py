"""YAML read into plain containers that remember the line of every key.

``yaml.safe_load`` throws line numbers away, and silently keeps the last of
two equal keys; this reader keeps both facts for validation messages.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from pacs_tui.inventory.problems import Problem

# libyaml's parser when present: several times faster on a 3 000-server file.
_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class LocatedMap(dict[Any, Any]):
    """A mapping that knows the line it starts on and the line of each key."""

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.key_lines: dict[Any, int] = {}

    def line_of(self, key: Any) -> int:
        """The line of ``key``, or of the mapping itself when the key is absent."""
        return self.key_lines.get(key, self.line)


class LocatedList(list[Any]):
    """A sequence that knows the line it starts on and the line of each item."""

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.item_lines: list[int] = []

    def line_of(self, index: int) -> int:
        """The line of item ``index``."""
        return self.item_lines[index] if 0 <= index < len(self.item_lines) else self.line


class _LocatedLoader(_BaseLoader):  # type: ignore[misc,valid-type]  # C or pure-Python base
    file = Path("<string>")
    problems: list[Problem]


_STR_TAG = "tag:yaml.org,2002:str"


def _value(loader: _LocatedLoader, node: yaml.Node) -> Any:
    # Plain strings are most of an inventory; skipping the generic dispatch for them
    # cuts a 3 000-server load by about a fifth.
    if node.tag == _STR_TAG and isinstance(node, yaml.ScalarNode):
        return node.value
    return loader.construct_object(node, deep=True)


def _construct_map(loader: _LocatedLoader, node: yaml.MappingNode) -> Iterator[LocatedMap]:
    loader.flatten_mapping(node)  # honour merge keys (<<: *anchor)
    data = LocatedMap(node.start_mark.line + 1)
    yield data  # two-step construction, as PyYAML does, so anchors may recurse
    for key_node, value_node in node.value:
        key = _value(loader, key_node)
        line = key_node.start_mark.line + 1
        try:
            hash(key)
        except TypeError:
            loader.problems.append(Problem(loader.file, line, "", "a key must be a plain value"))
            continue
        if key in data:
            loader.problems.append(
                Problem(
                    loader.file,
                    line,
                    str(key),
                    f"duplicate key (first on line {data.key_lines[key]})",
                )
            )
        data[key] = _value(loader, value_node)
        data.key_lines[key] = line


def _construct_seq(loader: _LocatedLoader, node: yaml.SequenceNode) -> Iterator[LocatedList]:
    data = LocatedList(node.start_mark.line + 1)
    yield data
    for item in node.value:
        data.append(_value(loader, item))
        data.item_lines.append(item.start_mark.line + 1)


_LocatedLoader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_LocatedLoader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)


def read_yaml(
    text: str, file: Path, loader_class: type[_LocatedLoader] | None = None
) -> tuple[Any, list[Problem]]:
    """Parse one YAML document; return the located data and key-level problems.

    A syntax error returns ``None`` and one problem on the parser's line.
    ``loader_class`` lets another file format (the runbook) tune the resolvers.
    """
    loader = (loader_class or _LocatedLoader)(text)
    loader.file = file
    loader.problems = []
    try:
        return loader.get_single_data(), loader.problems
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        reason = ", ".join(str(p) for p in (exc.context, exc.problem) if p) or str(exc)
        return None, [Problem(file, line, "", f"YAML syntax error: {reason}")]
    except yaml.YAMLError as exc:
        return None, [Problem(file, 0, "", f"YAML error: {exc}")]
    finally:
        loader.dispose()
