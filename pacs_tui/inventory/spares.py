"""The inventory's ``spares:`` list: boxes on the shelf that may take a server's place.

Read like every other block (``checker.read_block``): each problem is
reported at its own line and the run carries on; a spare with a problem is
left out and the inventory is refused as a whole. A spare's ``bmc`` block
takes the keys of a server's and is filled from ``defaults.bmc`` the same
way (port, scheme, CA, credentials), so a spare racked in a server's place
is reached as that server's BMC would be.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pacs_tui.inventory.checker import Check, mapping, read_block, read_named_list
from pacs_tui.inventory.model import BmcEndpoint, Server, Spare
from pacs_tui.inventory.values import Converter, Invalid, as_text, describe, server_name
from pacs_tui.inventory.yaml_source import LocatedMap

_MAC = re.compile(r"[0-9a-f]{2}([:-][0-9a-f]{2}){5}\Z")


def mac_list(value: Any) -> tuple[str, ...]:
    """MAC addresses as ``aa:bb:cc:dd:ee:ff`` (``-`` separators and upper case accepted)."""
    if not isinstance(value, list):
        raise Invalid(f"expected a list of MAC addresses, got {describe(value)}")
    out: list[str] = []
    for item in value:
        text = as_text(item).lower()
        if not _MAC.match(text):
            raise Invalid(f"{item!r} is not a MAC address like 02:50:ac:00:00:10")
        out.append(text.replace("-", ":"))
    return tuple(dict.fromkeys(out))


SPARE_SPEC: dict[str, Converter] = {
    "name": server_name,
    "serial": as_text,
    "model": as_text,
    "macs": mac_list,
    "location": as_text,
    "bmc": lambda value: value,  # read below, with each key at its own line
}


def read_spares(
    check: Check,
    raw: Any,
    line: int,
    bmc_spec: Mapping[str, Converter],
    default_bmc: Any,
) -> dict[str, Spare]:
    """The spares from the ``spares:`` value, by name; problems go to ``check``.

    ``bmc_spec`` is the servers' ``bmc`` spec; ``default_bmc`` the raw
    ``defaults.bmc`` mapping (already checked), whose keys fill a spare's
    ``bmc`` where it is silent.
    """
    serial_line: dict[str, tuple[str, int]] = {}  # serial -> (spare, its line)

    def one(body: LocatedMap, here: str) -> Spare | None:
        spare = _read_spare(check, body, here, bmc_spec, default_bmc)
        if spare is None or any(name == spare.name for name, _ in serial_line.values()):
            return spare  # a name taken already: read_named_list says so
        if spare.serial in serial_line:
            other, other_line = serial_line[spare.serial]
            check.problem(
                body.line_of("serial"),
                f"{here}.serial",
                f"serial {spare.serial!r} is also spare {other}'s (line {other_line})",
            )
            return None
        serial_line[spare.serial] = (spare.name, body.line_of("serial"))
        return spare

    return read_named_list(check, raw, line, "spares", "spare", one)


def _read_spare(
    check: Check,
    body: LocatedMap,
    here: str,
    bmc_spec: Mapping[str, Converter],
    default_bmc: Any,
) -> Spare | None:
    before = len(check.problems)
    values = read_block(check, body, SPARE_SPEC, here)
    for key in ("name", "serial", "bmc"):
        if body.get(key) is None:
            check.problem(body.line, f"{here}.{key}", "missing required key")
    bmc = None
    if values.get("bmc") is not None:
        bmc = _read_bmc(check, values["bmc"], body.line_of("bmc"), f"{here}.bmc", bmc_spec)
        if bmc is not None:
            bmc = _with_defaults(bmc, default_bmc, bmc_spec)
    if len(check.problems) > before or bmc is None:
        return None
    if "port" not in bmc:
        bmc["port"] = 80 if bmc.get("scheme") == "http" else 443
    return Spare(
        name=values["name"],
        serial=values["serial"],
        bmc=BmcEndpoint(**bmc),
        model=values.get("model"),
        macs=values.get("macs", ()),
        location=values.get("location"),
        line=body.line,
    )


def _read_bmc(
    check: Check, raw: Any, line: int, here: str, bmc_spec: Mapping[str, Converter]
) -> dict[str, Any] | None:
    body = mapping(check, raw, line, here)
    if body is None:
        return None
    before = len(check.problems)
    values = read_block(check, body, bmc_spec, here)
    if body.get("address") is None:
        check.problem(body.line, f"{here}.address", "missing required key")
    if "system" in values:
        check.problem(
            body.line_of("system"),
            f"{here}.system",
            "a spare is a whole box with its own BMC; a blade of an enclosure is not a spare",
        )
    return None if len(check.problems) > before else values


def _with_defaults(
    own: dict[str, Any], default_bmc: Any, bmc_spec: Mapping[str, Converter]
) -> dict[str, Any]:
    """``own`` filled from ``defaults.bmc`` (bad defaults were reported under defaults)."""
    merged = dict(own)
    if isinstance(default_bmc, LocatedMap):
        for key, value in default_bmc.items():
            if key in merged or key not in bmc_spec or value is None or key == "system":
                continue
            try:
                merged[key] = bmc_spec[key](value)
            except Invalid:
                continue
    return merged


def cross_check_spares(
    check: Check,
    spares: Mapping[str, Spare],
    servers: list[tuple[Server, str]],
    credentials: Mapping[str, Any],
) -> None:
    """A spare is not a server: its name and BMC address are its own; its credentials exist."""
    names = {s.name for s, _ in servers}
    bmc_of = {(s.bmc.address, s.bmc.port): s.name for s, _ in servers if s.bmc is not None}
    for index, spare in enumerate(spares.values()):
        here = f"spares[{index}]"
        if spare.name in names:
            check.problem(
                spare.line,
                f"{here}.name",
                f"{spare.name!r} is a server's name; a spare needs a name of its own",
            )
        owner = bmc_of.get((spare.bmc.address, spare.bmc.port))
        if owner is not None:
            check.problem(
                spare.line,
                f"{here}.bmc.address",
                f"BMC {spare.bmc.address}:{spare.bmc.port} is server {owner}'s",
            )
        ref = spare.bmc.credentials
        if ref is not None and ref not in credentials:
            check.problem(
                spare.line,
                f"{here}.bmc.credentials",
                f"unknown credential reference {ref!r}; declare it under 'credentials:'",
            )
