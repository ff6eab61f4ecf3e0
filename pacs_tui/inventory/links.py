"""A site's ``links:`` list: each WAN link, its endpoints and its expected latency.

Read like every other block (``checker.read_block``): each problem is
reported at its own line and the run carries on; a link with a problem is
left out and the inventory is refused as a whole.
"""

from __future__ import annotations

from typing import Any

from pacs_tui.inventory.checker import Check, mapping, read_block, read_named_list
from pacs_tui.inventory.model import DEFAULT_CALLING_AE_TITLE, LinkDicom, LinkTcp, SiteLink
from pacs_tui.inventory.values import (
    Converter,
    Invalid,
    ae_title,
    as_text,
    describe,
    flag,
    host,
    port,
    server_name,
)
from pacs_tui.inventory.yaml_source import LocatedMap

MAX_EXPECTED_LATENCY_MS = 60_000.0  # a minute: beyond it, a typo rather than a link


def expected_latency(value: Any) -> float:
    """A round-trip time in ms: a number in (0, 60000]."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Invalid(f"expected a number of milliseconds, got {describe(value)}")
    if not 0 < value <= MAX_EXPECTED_LATENCY_MS:
        raise Invalid(f"{value!r} ms is out of range (0, {MAX_EXPECTED_LATENCY_MS:g}]")
    return float(value)


def tcp_endpoint(value: Any) -> LinkTcp:
    """``HOST:PORT`` (``[IPv6]:PORT`` for an IPv6 literal) as a ``LinkTcp``."""
    text = as_text(value)
    if text.startswith("["):
        address, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise Invalid(f"{text!r} is not [IPv6]:PORT")
        port_text = rest[1:]
    else:
        address, sep, port_text = text.rpartition(":")
        if not sep or ":" in address:
            raise Invalid(f"{text!r} is not HOST:PORT (write an IPv6 address as [ADDR]:PORT)")
    if not port_text.isdigit():
        raise Invalid(f"{text!r}: the port must be a number 1-65535")
    return LinkTcp(host=host(address), port=port(int(port_text)))


LINK_DICOM_SPEC: dict[str, Converter] = {
    "host": host,
    "port": port,
    "ae_title": ae_title,
    "calling_ae_title": ae_title,
    "find": flag,
}
LINK_SPEC: dict[str, Converter] = {
    "name": server_name,
    "kind": as_text,
    "expected_latency_ms": expected_latency,
    "dicom": lambda value: value,  # read below, with each key at its own line
    "tcp": tcp_endpoint,
}


def read_links(check: Check, raw: Any, line: int, key_path: str) -> tuple[SiteLink, ...]:
    """The links of one site from its ``links:`` value; problems go to ``check``."""
    links = read_named_list(
        check, raw, line, key_path, "link", lambda body, here: _read_link(check, body, here)
    )
    return tuple(links.values())


def _read_link(check: Check, body: LocatedMap, here: str) -> SiteLink | None:
    before = len(check.problems)
    values = read_block(check, body, LINK_SPEC, here)
    for key in ("name", "expected_latency_ms"):
        if body.get(key) is None:
            check.problem(body.line, f"{here}.{key}", "missing required key")
    dicom = None
    if values.get("dicom") is not None:
        dicom = _read_dicom(check, values["dicom"], body.line_of("dicom"), f"{here}.dicom")
    if "dicom" not in values and "tcp" not in body:
        check.problem(
            body.line, here, "a link needs an endpoint that proves it: dicom, tcp or both"
        )
    if len(check.problems) > before:
        return None
    return SiteLink(
        name=values["name"],
        kind=values.get("kind", "wan"),
        expected_latency_ms=values["expected_latency_ms"],
        dicom=dicom,
        tcp=values.get("tcp"),
        line=body.line,
    )


def _read_dicom(check: Check, raw: Any, line: int, here: str) -> LinkDicom | None:
    body = mapping(check, raw, line, here)
    if body is None:
        return None
    before = len(check.problems)
    values = read_block(check, body, LINK_DICOM_SPEC, here)
    for key in ("host", "ae_title"):
        if body.get(key) is None:
            check.problem(body.line, f"{here}.{key}", "missing required key")
    if len(check.problems) > before:
        return None
    values.setdefault("calling_ae_title", DEFAULT_CALLING_AE_TITLE)
    return LinkDicom(**values)
