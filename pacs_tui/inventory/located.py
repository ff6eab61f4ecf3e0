"""YAML and CSV read into plain containers that remember where each key was.

Validation needs ``file:line`` for every message, which ``yaml.safe_load``
throws away; these readers keep it without changing the values' types.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

import yaml

from pacs_tui.inventory.problems import Problem, SourceLocation

# libyaml's parser when present (several times faster on 3 000-server files).
_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class LocatedMap(dict[Any, Any]):
    """A mapping that knows its own location and each key's location."""

    def __init__(self, location: SourceLocation) -> None:
        super().__init__()
        self.location = location
        self.key_locations: dict[Any, SourceLocation] = {}

    def where(self, key: Any) -> SourceLocation:
        """Where ``key`` was written, or where the mapping starts when it is absent."""
        return self.key_locations.get(key, self.location)


class LocatedList(list[Any]):
    """A sequence that knows its own location and each item's location."""

    def __init__(self, location: SourceLocation) -> None:
        super().__init__()
        self.location = location
        self.item_locations: list[SourceLocation] = []

    def where(self, index: int) -> SourceLocation:
        """Where item ``index`` was written."""
        if 0 <= index < len(self.item_locations):
            return self.item_locations[index]
        return self.location


def _mark(path: str, mark: Any) -> SourceLocation:
    return SourceLocation(path, mark.line + 1, mark.column + 1)


class _LocatedLoader(_BaseLoader):  # type: ignore[misc,valid-type]  # C or pure base
    path = "<string>"
    problems: list[Problem]


def _construct_map(loader: _LocatedLoader, node: yaml.MappingNode) -> Iterator[LocatedMap]:
    loader.flatten_mapping(node)  # honour YAML merge keys (<<: *defaults)
    data = LocatedMap(_mark(loader.path, node.start_mark))
    yield data  # two-step construction, as PyYAML does, so anchors can recurse
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        where = _mark(loader.path, key_node.start_mark)
        try:
            hash(key)
        except TypeError:
            loader.problems.append(Problem(where, "a mapping key must be a plain value"))
            continue
        if key in data:
            first = data.key_locations[key]
            loader.problems.append(
                Problem(where, f"duplicate key {key!r} (first at line {first.line})")
            )
        data[key] = loader.construct_object(value_node, deep=True)
        data.key_locations[key] = where


def _construct_seq(loader: _LocatedLoader, node: yaml.SequenceNode) -> Iterator[LocatedList]:
    data = LocatedList(_mark(loader.path, node.start_mark))
    yield data
    for item in node.value:
        data.append(loader.construct_object(item, deep=True))
        data.item_locations.append(_mark(loader.path, item.start_mark))


_LocatedLoader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_LocatedLoader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)


def read_yaml(text: str, path: str) -> tuple[Any, list[Problem]]:
    """Parse one YAML document; return the located data and syntax-level problems."""
    loader = _LocatedLoader(text)
    loader.path = path
    loader.problems = []
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = _mark(path, mark) if mark is not None else SourceLocation(path)
        reason = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        return None, [Problem(where, f"YAML syntax: {reason or exc}")]
    except yaml.YAMLError as exc:
        return None, [Problem(SourceLocation(path), f"YAML: {exc}")]
    finally:
        loader.dispose()
    return data, loader.problems


def read_csv(text: str, path: str) -> tuple[LocatedList, list[Problem]]:
    """Read server rows; a dotted column (``bmc.address``) fills a nested section.

    Empty cells are left out, so defaults apply to them as to a missing YAML key.
    """
    problems: list[Problem] = []
    rows = LocatedList(SourceLocation(path, 1))
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] = []
    for fields in reader:
        line = reader.line_num
        if not header:
            header = [h.strip() for h in fields]
            if not any(header):
                header = []
                continue
            seen: set[str] = set()
            for number, name in enumerate(header, 1):
                if not name:
                    problems.append(
                        Problem(SourceLocation(path, line, 0), f"column {number} has no name")
                    )
                if name in seen:
                    problems.append(
                        Problem(SourceLocation(path, line), f"duplicate column {name!r}")
                    )
                seen.add(name)
            continue
        if not any(f.strip() for f in fields) or fields[0].lstrip().startswith("#"):
            continue  # blank lines and comment rows
        where = SourceLocation(path, line)
        if len(fields) > len(header):
            problems.append(
                Problem(where, f"row has {len(fields)} cells but the header names {len(header)}")
            )
        row = LocatedMap(where)
        for name, cell in zip(header, fields, strict=False):
            value = cell.strip()
            if not name or not value:
                continue
            section, dot, key = name.partition(".")
            target = row
            if dot:
                if section not in row or not isinstance(row[section], LocatedMap):
                    row[section] = LocatedMap(where)
                    row.key_locations[section] = where
                target = row[section]
            else:
                key = section
            target[key] = value
            target.key_locations[key] = where
        rows.append(row)
        rows.item_locations.append(where)
    return rows, problems
