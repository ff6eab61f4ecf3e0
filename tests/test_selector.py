"""Selector expressions over servers (pure logic)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from pacs_tui.selector import SelectorError, compile_selector, select


@dataclass(frozen=True)
class Box:
    name: str
    site: str
    role: str
    rack: str | None = None
    tags: tuple[str, ...] = ()


FLEET = [
    *(Box(f"arch-{i:02d}", "dc-main", "archive", "R01", ("tier1",)) for i in range(1, 7)),
    *(Box(f"img-{i:03d}", "dc-main", "image-manager", "R02") for i in range(1, 13)),
    Box("gw-northgate-1", "hosp-northgate", "edge-gateway"),
    Box("gw-oakwood-1", "clinic-oakwood", "edge-gateway", tags=("edge", "tier2")),
]
KINDS = {"dc-main": "datacenter", "hosp-northgate": "hospital", "clinic-oakwood": "clinic"}


def names(expression: str) -> list[str]:
    return [b.name for b in select(FLEET, expression, KINDS)]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("arch-0[1-4]", ["arch-01", "arch-02", "arch-03", "arch-04"]),
        ("img-[009-011]", ["img-009", "img-010", "img-011"]),
        ("gw-*", ["gw-northgate-1", "gw-oakwood-1"]),
        ("role=edge-gateway & !site=hosp-*", ["gw-oakwood-1"]),
        ("kind=hospital, kind=clinic", ["gw-northgate-1", "gw-oakwood-1"]),
        ("tag=tier1 & (arch-01, arch-06)", ["arch-01", "arch-06"]),
        ("rack=R02 & img-00?", [f"img-00{i}" for i in range(1, 10)]),
        ("!(role=archive, role=image-manager)", ["gw-northgate-1", "gw-oakwood-1"]),
        ("  tag = edge ", ["gw-oakwood-1"]),
        ("name=arch-05", ["arch-05"]),
        ("rack=*", [b.name for b in FLEET if b.rack]),
    ],
)
def test_selects(expression: str, expected: list[str]) -> None:
    assert names(expression) == expected


def test_and_binds_tighter_than_or() -> None:
    assert names("arch-01, arch-02 & role=image-manager") == ["arch-01"]


@pytest.mark.parametrize(
    ("expression", "column", "reason"),
    [
        ("", 0, "empty selector"),
        ("role=archive & (site=x", 22, "expected ')'"),
        ("colour=red", 0, "unknown key 'colour'"),
        ("a & & b", 4, "expected a name or key=value"),
        ("arch-01 )", 8, "expected end of expression"),
        ("role=", 5, "expected a name or key=value"),
        ("arch#1", 4, "unexpected character '#'"),
    ],
)
def test_errors_point_at_the_offending_character(expression: str, column: int, reason: str) -> None:
    with pytest.raises(SelectorError) as caught:
        compile_selector(expression)
    assert caught.value.position == column
    assert reason in str(caught.value) or reason in caught.value.reason
    assert caught.value.pointer().splitlines()[1].index("^") == column
