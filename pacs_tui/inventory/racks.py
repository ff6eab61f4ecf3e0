"""The inventory's ``racks:`` list: each rack's power budget and its PDU circuits.

A power-on batch staggers its waves so that no rack or circuit is expected
to draw more than its budget (``pacs_tui.batch.power_budget``). Read like
every other block (``checker.read_block``): each problem is reported at its
own line and the run carries on; the inventory is refused as a whole.

A server joins a rack by its own ``rack:`` key and a circuit by ``circuit:``
(a circuit of that rack); ``cross_check_racks`` refuses a server naming a
rack or circuit the list lacks, since a typo there would leave the server
out of its rack's budget without a word.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pacs_tui.inventory.checker import Check, read_block, read_named_list, suggest
from pacs_tui.inventory.model import Circuit, Rack, Server
from pacs_tui.inventory.values import Converter, as_text, watts
from pacs_tui.inventory.yaml_source import LocatedMap

RACK_SPEC: dict[str, Converter] = {
    "name": as_text,
    "budget_w": watts,
    "circuits": lambda value: value,  # read below, with each key at its own line
}
CIRCUIT_SPEC: dict[str, Converter] = {"name": as_text, "budget_w": watts}


def read_racks(check: Check, raw: Any, line: int) -> dict[str, Rack]:
    """The racks from the ``racks:`` value, by name; problems go to ``check``."""
    return read_named_list(
        check, raw, line, "racks", "rack", lambda body, here: _read_rack(check, body, here)
    )


def _read_rack(check: Check, body: LocatedMap, here: str) -> Rack | None:
    before = len(check.problems)
    values = read_block(check, body, RACK_SPEC, here)
    if body.get("name") is None:
        check.problem(body.line, f"{here}.name", "missing required key")
    circuits: dict[str, Circuit] = {}
    if values.get("circuits") is not None:
        circuits = read_named_list(
            check, values["circuits"], body.line_of("circuits"), f"{here}.circuits", "circuit",
            lambda item, where: _read_circuit(check, item, where),
        )  # fmt: skip
    if "budget_w" not in body and not circuits and len(check.problems) == before:
        check.problem(
            body.line, here, "a rack needs a budget: budget_w, or circuits with their budget_w"
        )
    if len(check.problems) > before:
        return None
    return Rack(values["name"], values.get("budget_w"), circuits, body.line)


def _read_circuit(check: Check, body: LocatedMap, here: str) -> Circuit | None:
    before = len(check.problems)
    values = read_block(check, body, CIRCUIT_SPEC, here)
    for key in ("name", "budget_w"):
        if body.get(key) is None:
            check.problem(body.line, f"{here}.{key}", "missing required key")
    if len(check.problems) > before:
        return None
    return Circuit(values["name"], values["budget_w"], body.line)


def cross_check_racks(
    check: Check, racks: Mapping[str, Rack], servers: list[tuple[Server, str]]
) -> None:
    """A server's rack and circuit exist when ``racks:`` is given; a circuit needs a rack."""
    for server, key_path in servers:
        if server.circuit is not None and server.rack is None:
            check.problem(
                server.line_of("circuit"),
                f"{key_path}.circuit",
                "a circuit belongs to a rack: set rack too",
            )
            continue
        if not racks or server.rack is None:
            continue
        rack = racks.get(server.rack)
        if rack is None:
            check.problem(
                server.line_of("rack"),
                f"{key_path}.rack",
                f"rack {server.rack!r} is not under 'racks:'{suggest(server.rack, racks)}",
            )
            continue
        if server.circuit is not None and server.circuit not in rack.circuits:
            known = ", ".join(rack.circuits) or "none"
            check.problem(
                server.line_of("circuit"),
                f"{key_path}.circuit",
                f"rack {rack.name} has no circuit {server.circuit!r} (its circuits: {known})",
            )
