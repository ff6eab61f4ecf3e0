"""Which rows the fleet grid shows, in which order: filter, sort, group, collapse.

Pure logic (no Textual): the grid asks for ``rows`` and draws only the ones
on screen. Rebuilding is O(n log n) in the fleet size and happens only when
the filter, sort, grouping or a sorted-by state changes, never per frame.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pacs_tui.inventory import Server
from pacs_tui.selector import compile_selector

COLUMNS = ("name", "site", "role", "rack", "power", "network", "dicom", "ssh", "age")
CUSTODY_COLUMN = "custody"
# With a custody board the grid shows where each server is in the move, before AGE.
CUSTODY_COLUMNS = (*COLUMNS[:-1], CUSTODY_COLUMN, COLUMNS[-1])
STATE_COLUMNS = ("power", "network", "dicom", "ssh")
GROUP_KEYS = ("site", "role", "rack")
# A filter containing one of these is a selector expression; otherwise plain text.
_SELECTOR_CHARS = set("=&,!()*?[")
_DIGITS = re.compile(r"(\d+)")


@dataclass(frozen=True)
class GroupHeader:
    """A group's header row: its value, its servers (in sort order), folded or not."""

    by: str
    value: str
    servers: tuple[str, ...]
    collapsed: bool


Row = str | GroupHeader  # a server name, or a group header
SortValue = Callable[[str, str], Any]  # (server, column) -> comparable


def natural_key(text: str) -> tuple[Any, ...]:
    """Sort ``arch-2`` before ``arch-10``."""
    return tuple(int(part) if part.isdigit() else part for part in _DIGITS.split(text))


def is_selector(text: str) -> bool:
    """Whether a filter should be read as a selector expression rather than text."""
    return any(ch in _SELECTOR_CHARS for ch in text)


def group_value(server: Server, by: str) -> str:
    """The value a server is grouped under (``-`` when it has no rack)."""
    value = getattr(server, by)
    return str(value) if value else "-"


class FleetRows:
    """The grid's row list, derived from the inventory and the current view settings."""

    def __init__(
        self,
        servers: Sequence[Server],
        site_kinds: Mapping[str, str],
        columns: Sequence[str] = COLUMNS,
    ) -> None:
        self.columns = tuple(columns)
        self.servers = {s.name: s for s in servers}
        self.site_kinds = dict(site_kinds)
        self.filter_text = ""
        self._predicate: Callable[[Server], bool] | None = None
        self.group_by: str | None = None
        self.collapsed: set[str] = set()
        self.sort_column = "name"
        self.reverse = False
        self.rows: list[Row] = []
        self.visible_servers: list[str] = []  # matching the filter, in sort order

    def set_filter(self, text: str) -> None:
        """Filter by plain text (substring of name/site/role/rack) or a selector.

        Raises ``SelectorError`` for a bad selector; the old filter stays then.
        """
        text = text.strip()
        if not text:
            self._predicate = None
        elif is_selector(text):
            self._predicate = compile_selector(text, self.site_kinds)
        else:
            needle = text.lower()

            def contains(server: Server) -> bool:
                fields = (server.name, server.site, server.role, server.rack or "")
                return any(needle in f.lower() for f in fields)

            self._predicate = contains
        self.filter_text = text

    def set_group(self, by: str | None) -> None:
        """Group by ``site``, ``role`` or ``rack``; ``None`` for a flat list."""
        if by is not None and by not in GROUP_KEYS:
            raise ValueError(f"cannot group by {by!r}; use {', '.join(GROUP_KEYS)} or none")
        if by != self.group_by:
            self.collapsed.clear()
        self.group_by = by

    def set_sort(self, column: str, reverse: bool = False) -> None:
        """Sort by one of ``columns``."""
        if column not in self.columns:
            raise ValueError(f"no column {column!r}; columns: {', '.join(self.columns)}")
        self.sort_column = column
        self.reverse = reverse

    def toggle_group(self, value: str) -> None:
        """Fold or unfold one group."""
        if value in self.collapsed:
            self.collapsed.remove(value)
        else:
            self.collapsed.add(value)

    def rebuild(self, sort_value: SortValue) -> None:
        """Recompute ``rows`` and ``visible_servers``."""
        predicate = self._predicate
        names = [name for name, s in self.servers.items() if predicate is None or predicate(s)]
        column = self.sort_column
        if column in ("name", "site", "role", "rack"):

            def key(name: str) -> Any:
                server = self.servers[name]
                return (natural_key(group_value(server, column)), natural_key(name))

        else:

            def key(name: str) -> Any:
                return (sort_value(name, column), natural_key(name))

        names.sort(key=key, reverse=self.reverse)
        self.visible_servers = names
        by = self.group_by
        if by is None:
            self.rows = list(names)
            return
        groups: dict[str, list[str]] = {}
        for name in names:
            groups.setdefault(group_value(self.servers[name], by), []).append(name)
        rows: list[Row] = []
        for value in sorted(groups, key=natural_key):
            members = groups[value]
            folded = value in self.collapsed
            rows.append(GroupHeader(by, value, tuple(members), folded))
            if not folded:
                rows.extend(members)
        self.rows = rows
