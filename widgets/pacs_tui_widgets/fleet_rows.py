"""Which rows the fleet grid shows, in which order: filter, sort, group, collapse.

Pure logic (no Textual): the grid asks for ``rows`` and draws only the ones
on screen. The fleet in sort order is kept (``order``) and sorted again only
when the sort changes or the grid says the sorted-by states moved
(``resort``); a filter keystroke only picks from it, O(n), and a plain-text
filter that extends the last one (``arc`` → ``arch``) picks from the last
matches only. Never per frame.
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
        self._needle: str | None = None  # a plain-text filter, lower case
        self.group_by: str | None = None
        self.collapsed: set[str] = set()
        self.sort_column = "name"
        self.reverse = False
        self.rows: list[Row] = []
        self.visible_servers: list[str] = []  # matching the filter, in sort order
        self._order: list[str] | None = None  # every server in sort order (None: sort again)
        # What ``visible_servers`` was picked with: the needle (None: not plain
        # text) and the order it was picked from.
        self._picked: tuple[str | None, list[str] | None] = (None, None)
        # Name, site, role and rack in lower case, one string per server: a
        # needle (never holding a NUL) is in it exactly when it is in one of them.
        self._haystack = {
            s.name: "\0".join(f.lower() for f in (s.name, s.site, s.role, s.rack or ""))
            for s in servers
        }
        self._natural: dict[str, tuple[Any, ...]] = {}  # natural_key, once per text

    def set_filter(self, text: str) -> None:
        """Filter by plain text (substring of name/site/role/rack) or a selector.

        Raises ``SelectorError`` for a bad selector; the old filter stays then.
        """
        text = text.strip()
        needle: str | None = None
        if not text:
            self._predicate = None
        elif is_selector(text):
            self._predicate = compile_selector(text, self.site_kinds)
        else:
            needle = text.lower()
            if "\0" in needle:
                needle, self._predicate = None, _never  # no name, site, role or rack holds one
            else:
                self._predicate = self._contains(needle)
        self._needle = needle
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
        if (column, reverse) != (self.sort_column, self.reverse):
            self._order = None
        self.sort_column = column
        self.reverse = reverse

    def resort(self) -> None:
        """The sorted-by values may have moved (states, custody): sort at the next rebuild."""
        self._order = None

    def toggle_group(self, value: str) -> None:
        """Fold or unfold one group."""
        if value in self.collapsed:
            self.collapsed.remove(value)
        else:
            self.collapsed.add(value)

    def rebuild(self, sort_value: SortValue) -> None:
        """Recompute ``rows`` and ``visible_servers`` (sorting only after a change of sort).

        ``sort_value`` is asked only when the order is sorted again (see ``resort``).
        """
        order = self._order
        if order is None:
            order = self._order = self._sorted(sort_value)
        predicate = self._predicate
        needle = self._needle
        picked_needle, picked_from = self._picked
        if predicate is None:
            names = list(order)
        elif (
            needle is not None
            and picked_needle is not None
            and picked_from is order
            and picked_needle in needle
        ):
            # A longer needle matches a subset of what the shorter one matched,
            # and those are already in order.
            haystack = self._haystack
            names = [name for name in self.visible_servers if needle in haystack[name]]
        else:
            servers = self.servers
            names = [name for name in order if predicate(servers[name])]
        self._picked = (needle, order)
        self.visible_servers = names
        by = self.group_by
        if by is None:
            self.rows = list(names)
            return
        groups: dict[str, list[str]] = {}
        for name in names:
            groups.setdefault(group_value(self.servers[name], by), []).append(name)
        rows: list[Row] = []
        for value in sorted(groups, key=self._natural_key):
            members = groups[value]
            folded = value in self.collapsed
            rows.append(GroupHeader(by, value, tuple(members), folded))
            if not folded:
                rows.extend(members)
        self.rows = rows

    def _contains(self, needle: str) -> Callable[[Server], bool]:
        haystack = self._haystack

        def contains(server: Server) -> bool:
            return needle in haystack[server.name]

        return contains

    def _natural_key(self, text: str) -> tuple[Any, ...]:
        key = self._natural.get(text)
        if key is None:
            key = self._natural[text] = natural_key(text)
        return key

    def _sorted(self, sort_value: SortValue) -> list[str]:
        """Every server in the sort order: the column's value, then the name."""
        names = list(self.servers)
        column = self.sort_column
        natural = self._natural_key
        if column in ("name", "site", "role", "rack"):

            def key(name: str) -> Any:
                server = self.servers[name]
                return (natural(group_value(server, column)), natural(name))

        else:

            def key(name: str) -> Any:
                return (sort_value(name, column), natural(name))

        names.sort(key=key, reverse=self.reverse)
        return names


def _never(server: Server) -> bool:
    return False
