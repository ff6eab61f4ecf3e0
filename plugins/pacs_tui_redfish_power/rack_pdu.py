"""A rack PDU's measured draw, per mains input, branch circuit and outlet, over Redfish.

Resources (DSP0268, Redfish Resource and Schema Guide; Redfish 2019.4+ power
equipment): the service root's ``PowerEquipment`` (``PowerEquipment.v1``)
links ``RackPDUs``, a collection of ``PowerDistribution.v1`` resources
(``EquipmentType: RackPDU``). Each PDU links ``Metrics``
(``PowerDistributionMetrics.v1``: ``PowerWatts``, the whole PDU's input),
``Mains`` and ``Branches`` (collections of ``Circuit.v1``: ``BreakerState``
Normal / Tripped / Off, ``RatedCurrentAmps``, ``CurrentAmps``, ``PowerWatts``)
and ``Outlets`` (``Outlet.v1``: ``PowerState``, ``CurrentAmps``,
``PowerWatts``, ``Links.BranchCircuit``).

Watts are W, currents A. A value the PDU did not give is None, never 0.
``RackPduReading.faults`` names what a move crew must act on: a tripped or
open breaker, a circuit or outlet whose Health is Warning/Critical, and a
circuit drawing more than ``LOAD_LIMIT`` of its rated current (the 80 %
continuous-load rule of NEC 210.19/210.20, which PDU vendors' alarms follow).
Only GETs; at most ``3 + circuits + outlets`` per PDU.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pacs_tui_redfish_power.bounded_http import link
from pacs_tui_redfish_power.chassis_power import BAD_HEALTH
from pacs_tui_redfish_power.errors import BmcBadAnswer
from pacs_tui_redfish_power.excerpts import (
    MAX_MEMBERS,
    Getter,
    excerpt,
    get_optional,
    number,
    status,
    text,
)

__all__ = [
    "LOAD_LIMIT",
    "CircuitReading",
    "OutletReading",
    "RackPduReading",
    "read_rack_pdu",
    "read_rack_pdus",
]

SERVICE_ROOT = "/redfish/v1"
LOAD_LIMIT = 0.8  # of a circuit's rated current

_Part = TypeVar("_Part")


@dataclass(frozen=True)
class CircuitReading:
    """One mains input or branch circuit (``Circuit.v1``)."""

    member: str  # Id: "AC1", "A"
    name: str
    kind: str | None  # CircuitType: Mains, Branch, ...
    state: str | None
    health: str | None
    breaker: str | None  # BreakerState: Normal, Tripped, Off
    rated_amps: float | None
    amps: float | None  # CurrentAmps.Reading
    watts: float | None  # PowerWatts.Reading

    @property
    def load(self) -> float | None:
        """Current over rated current (0.32 for 5.19 A of 16 A), when both are known."""
        if self.amps is None or not self.rated_amps:
            return None
        return self.amps / self.rated_amps


@dataclass(frozen=True)
class OutletReading:
    """One outlet (``Outlet.v1``); ``branch`` is the Id of its branch circuit."""

    member: str
    name: str
    state: str | None
    health: str | None
    power_state: str | None  # On, Off
    rated_amps: float | None
    amps: float | None
    watts: float | None
    branch: str | None


@dataclass(frozen=True)
class RackPduReading:
    """One rack PDU: its total draw (``watts``, from ``Metrics.PowerWatts``) and parts."""

    path: str
    name: str
    model: str | None
    health: str | None
    watts: float | None
    mains: tuple[CircuitReading, ...]
    branches: tuple[CircuitReading, ...]
    outlets: tuple[OutletReading, ...]
    why: list[str] = field(default_factory=list)  # what could not be read, and why

    @property
    def faults(self) -> list[str]:
        """Breakers tripped or off, parts in Warning/Critical, circuits over ``LOAD_LIMIT``."""
        found = []
        for circuit in (*self.mains, *self.branches):
            label = f"{circuit.kind or 'circuit'} {circuit.member}"
            if circuit.breaker in ("Tripped", "Off"):
                found.append(f"{label} breaker {circuit.breaker}")
            if circuit.health in BAD_HEALTH:
                found.append(f"{label} health {circuit.health}")
            load = circuit.load
            if load is not None and load > LOAD_LIMIT:
                found.append(f"{label} at {load:.0%} of its {circuit.rated_amps:g} A rating")
        found.extend(
            f"outlet {o.member} health {o.health}" for o in self.outlets if o.health in BAD_HEALTH
        )
        return found


async def read_rack_pdus(get: Getter) -> list[RackPduReading]:
    """Every rack PDU of a service: root → ``PowerEquipment`` → ``RackPDUs`` → members.

    Raises ``BmcError`` when the service does not answer or has no rack PDUs
    (``BmcBadAnswer``: it is not a PDU).
    """
    _, root = await get(SERVICE_ROOT)
    equipment = link(root.get("PowerEquipment"))
    if equipment is None:
        raise BmcBadAnswer("the service root links no PowerEquipment: not a PDU")
    _, body = await get(equipment)
    collection = link(body.get("RackPDUs"))
    if collection is None:
        raise BmcBadAnswer("PowerEquipment links no RackPDUs")
    _, members = await get(collection)
    paths = _members(members) or []
    return list(await asyncio.gather(*(read_rack_pdu(get, p) for p in paths)))


async def read_rack_pdu(get: Getter, path: str) -> RackPduReading:
    """One ``PowerDistribution`` resource and what it links. Raises ``BmcError`` only
    when the PDU resource itself cannot be read."""
    _, pdu = await get(path)
    why: list[str] = []
    _, health = status(pdu)
    watts = None
    metrics = link(pdu.get("Metrics"))
    if metrics is None:
        why.append("the PDU links no Metrics")
    else:
        body, reason = await get_optional(get, metrics)
        watts = excerpt(body.get("PowerWatts")) if body else None
        if watts is None:
            why.append(reason or "Metrics has no PowerWatts reading")
    mains, branches, outlets = await asyncio.gather(
        _read_all(get, pdu, "Mains", _circuit, why),
        _read_all(get, pdu, "Branches", _circuit, why),
        _read_all(get, pdu, "Outlets", _outlet, why),
    )
    return RackPduReading(
        path=path,
        name=text(pdu.get("Name")) or path.rsplit("/", 1)[-1],
        model=text(pdu.get("Model")),
        health=health,
        watts=watts,
        mains=tuple(mains),
        branches=tuple(branches),
        outlets=tuple(outlets),
        why=why,
    )


async def _read_all(
    get: Getter,
    pdu: dict[str, Any],
    key: str,
    build: Callable[[dict[str, Any]], _Part],
    why: list[str],
) -> list[_Part]:
    collection = link(pdu.get(key))
    if collection is None:
        return []
    body, reason = await get_optional(get, collection)
    paths = _members(body)
    if paths is None:
        why.append(reason or f"{collection} is not a collection")
        return []
    read = await asyncio.gather(*(get_optional(get, p) for p in paths))
    why.extend(reason for body, reason in read if body is None)
    return [build(body) for body, _ in read if body is not None]


def _members(collection: dict[str, Any] | None) -> list[str] | None:
    members = collection.get("Members") if collection is not None else None
    if not isinstance(members, list):
        return None
    return [p for p in (link(m) for m in members[:MAX_MEMBERS]) if p is not None]


def _circuit(body: dict[str, Any]) -> CircuitReading:
    state, health = status(body)
    member = text(body.get("Id")) or "?"
    return CircuitReading(
        member=member,
        name=text(body.get("Name")) or member,
        kind=text(body.get("CircuitType")),
        state=state,
        health=health,
        breaker=text(body.get("BreakerState")),
        rated_amps=number(body.get("RatedCurrentAmps")),
        amps=excerpt(body.get("CurrentAmps")),
        watts=excerpt(body.get("PowerWatts")),
    )


def _outlet(body: dict[str, Any]) -> OutletReading:
    state, health = status(body)
    member = text(body.get("Id")) or "?"
    links = body.get("Links")
    branch = link(links.get("BranchCircuit")) if isinstance(links, dict) else None
    return OutletReading(
        member=member,
        name=text(body.get("Name")) or member,
        state=state,
        health=health,
        power_state=text(body.get("PowerState")),
        rated_amps=number(body.get("RatedCurrentAmps")),
        amps=excerpt(body.get("CurrentAmps")),
        watts=excerpt(body.get("PowerWatts")),
        branch=branch.rsplit("/", 1)[-1] if branch else None,
    )
