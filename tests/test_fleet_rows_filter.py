"""The grid's filter picks from the kept order: the same rows as a fresh sort, keystroke by keystroke."""

from __future__ import annotations

import contextlib
import random

import pytest

from pacs_tui.selector import SelectorError
from pacs_tui_widgets.fleet_rows import FleetRows
from ui_fleet import build_inventory

WORDS = ("arch", "rtr-00", "web", "r0", "dc-main", "gw", "north", "img-01", "R02", "zz")
SELECTORS = ("role=archive", "site=dc-*", "role=web-viewer , rack=R03", "name=*-01?")


def fresh(rows: FleetRows, text: str, values: dict[str, int]) -> FleetRows:
    """A new FleetRows with the same settings: sorted and filtered from scratch."""
    other = FleetRows(list(rows.servers.values()), rows.site_kinds, rows.columns)
    other.set_sort(rows.sort_column, rows.reverse)
    other.set_group(rows.group_by)
    other.collapsed = set(rows.collapsed)
    other.set_filter(text)
    other.rebuild(lambda name, _column: values[name])
    return other


@pytest.mark.parametrize("seed", range(6))
def test_typed_filters_match_a_fresh_sort(seed: int) -> None:
    rng = random.Random(seed)
    inventory = build_inventory(120)
    kinds = {name: site.kind for name, site in inventory.sites.items()}
    rows = FleetRows(inventory.servers, kinds)
    values = {name: rng.randint(0, 3) for name in inventory.names()}
    asked: list[str] = []

    def sort_value(name: str, column: str) -> int:
        asked.append(name)
        return values[name]

    rows.rebuild(sort_value)
    text = ""
    for _step in range(150):
        action = rng.random()
        if action < 0.5:
            word = rng.choice(WORDS)
            text = word[: len(text) + 1] if word.startswith(text) else text + rng.choice(word)
        elif action < 0.65:
            text = text[:-1]
        elif action < 0.72:
            text = rng.choice(SELECTORS)
        elif action < 0.8:
            text = rng.choice(("", "  ", rng.choice(WORDS).upper()))
        elif action < 0.87:
            rows.set_sort(rng.choice(("name", "site", "role", "rack", "power")), rng.random() < 0.3)
        elif action < 0.93:
            rows.set_group(rng.choice((None, "site", "role", "rack")))
            if rows.group_by is not None and rng.random() < 0.5:
                rows.toggle_group(rng.choice(["R01", "R02", "dc-main", "archive"]))
        else:
            values = {name: rng.randint(0, 3) for name in values}
            rows.resort()  # what the grid says when sorted-by states moved
        with contextlib.suppress(SelectorError):  # cut short: the old filter stays, as in the room
            rows.set_filter(text)
        rows.rebuild(sort_value)
        expected = fresh(rows, rows.filter_text, values)
        assert rows.visible_servers == expected.visible_servers, text
        assert rows.rows == expected.rows, text


def test_a_keystroke_does_not_sort_again() -> None:
    inventory = build_inventory(60)
    rows = FleetRows(inventory.servers, {})
    rows.set_sort("power")
    asked: list[str] = []

    def sort_value(name: str, column: str) -> int:
        asked.append(name)
        return 0

    rows.rebuild(sort_value)
    assert len(asked) == 60
    asked.clear()
    for text in ("a", "ar", "arc", "ar", "role=archive", ""):
        rows.set_filter(text)
        rows.rebuild(sort_value)
    assert asked == []
    rows.resort()
    rows.rebuild(sort_value)
    assert len(asked) == 60
