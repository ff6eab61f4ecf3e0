"""The fleet at a glance: counts per health, who is down, and which sites feel it.

Both the control room's summary bar and the wall display read a
``FleetRollup``; it is a pure function of the inventory and ``FleetState``
(no UI here). ``fleet_rollup`` reads every reading (~30 ms at 3 000 servers
on an idle core); the room and the wall keep it between seconds with a
``RollupTracker`` (``pacs_tui.rollup_tracker``), which reads again only the
servers with news and gives the same result.

Which hospitals and clinics are affected follows from the inventory's
``depends_on``: a site loses PACS service when one of its own servers is
down, or when one of them depends (directly or through others) on a server
that is down, such as the data-center router its edge gateway uses.

A BMC that does not answer is a fault of the management network, not of
the PACS: when every other probe of the server reads fresh and answering,
the server is listed under ``management`` and counts as DEGRADED, and no
site is affected by it. Without that proof (no other probe, or one that is
stale, unknown or down) the silent BMC still counts as DOWN.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from pacs_tui.flapping import Flap
from pacs_tui.inventory import Inventory, Server
from pacs_tui.plugin_api import Health, Probe
from pacs_tui.power import PowerState
from pacs_tui.state import FleetState, Reading

POWER_PROBE = "power"
# Probes that read the BMC, not the server's own services: a silent BMC silences them all,
# which is a management-network fault when the server itself serves (``bmc_only``).
RACK_POWER_PROBE = "rack-power"
BMC_PROBES = frozenset({POWER_PROBE, RACK_POWER_PROBE})

# Display order of the states, and the word each one has in a summary line.
HEALTH_ORDER = (
    Health.OK,
    Health.DEGRADED,
    Health.DOWN,
    Health.UNREACHABLE,
    Health.STALE,
    Health.UNKNOWN,
)
HEALTH_WORDS: Mapping[Health, str] = {
    Health.OK: "up",
    Health.DEGRADED: "degraded",
    Health.DOWN: "down",
    Health.UNREACHABLE: "unreachable",
    Health.STALE: "stale",
    Health.UNKNOWN: "unknown",
}
# Sites whose PACS service the room cares about (the data centers serve them).
SERVED_SITE_KINDS = ("hospital", "clinic")
_CUT_OFF = (Health.DOWN, Health.UNREACHABLE)
# Readings of the server's own services that prove it serves: fresh, answering.
_SERVING = (Health.OK, Health.DEGRADED)
BMC_ONLY = "BMC unreachable — service OK"
BMC_ONLY_DEGRADED = "BMC unreachable — service degraded"

ApplicableProbes = Callable[[Server], Iterable[str]]


def server_health(
    server: Server,
    state: FleetState,
    applicable_probes: Iterable[str],
    now: float | None = None,
) -> Health:
    """The worst health among the server's applicable readings (by ``Health.rank``).

    A fresh power reading of ``Off`` counts as DOWN whatever the power probe
    called it: a server that is switched off serves nobody. A silent BMC
    counts as DEGRADED, not DOWN, when the server's other probes prove it
    serves (see ``bmc_only``). A server with no applicable probe, or with no
    reading yet, is UNKNOWN.
    """
    return _assess(server, state, applicable_probes, now)[0]


def bmc_only(readings: Mapping[str, Reading]) -> bool:
    """Whether the BMC alone is silent while the server itself serves.

    ``readings`` maps each applicable probe name to its reading. True when
    the power reading is fresh and DOWN or UNREACHABLE without saying
    ``Off`` (the BMC did not answer), and there is at least one other
    reading, every one of them fresh and OK or DEGRADED.
    """
    power = readings.get(POWER_PROBE)
    if power is None or power.result is None or power.stale:
        return False
    if power.health not in _CUT_OFF or power.result.state == PowerState.OFF:
        return False
    others = [r for name, r in readings.items() if name not in BMC_PROBES]
    return bool(others) and all(r.health in _SERVING for r in others)


def _assess(
    server: Server,
    state: FleetState,
    applicable_probes: Iterable[str],
    now: float | None,
) -> tuple[Health, dict[str, Reading], Health | None]:
    """``(health, readings, service)`` of one server.

    ``service`` is the worst health of the probes other than power when the
    BMC alone is silent (``bmc_only``), else None.
    """
    readings = {probe: state.reading(server.name, probe, now) for probe in applicable_probes}
    management = bmc_only(readings)
    worst: Health | None = None
    service: Health | None = None
    for probe, reading in readings.items():
        health = reading.health
        if probe == POWER_PROBE and reading.result is not None and not reading.stale:
            if reading.result.state == PowerState.OFF:
                health = Health.DOWN
            elif management:
                health = Health.DEGRADED
        elif probe in BMC_PROBES:
            if management and health in _CUT_OFF:  # the same silent BMC, not a second fault
                health = Health.DEGRADED
        elif management and (service is None or health.rank > service.rank):
            service = health
        if worst is None or health.rank > worst.rank:
            worst = health
    return (Health.UNKNOWN if worst is None else worst), readings, service


@dataclass(frozen=True)
class HealthCounts:
    """How many servers are in each health state."""

    counts: Mapping[Health, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Number of servers counted."""
        return sum(self.counts.values())

    def __getitem__(self, health: Health) -> int:
        return self.counts.get(health, 0)

    def line(self, label: str) -> str:
        """A summary line such as ``dc-main 212 up · 3 degraded · 1 down``.

        ``up`` is always shown; the other states only when some server is in them.
        """
        return f"{label} {format_counts(self)}".strip()


def format_counts(counts: HealthCounts) -> str:
    """``212 up · 3 degraded · 1 down`` (zero counts other than ``up`` left out)."""
    parts = [f"{counts[h]} {HEALTH_WORDS[h]}" for h in HEALTH_ORDER if h is Health.OK or counts[h]]
    return " · ".join(parts)


def count_health(healths: Iterable[Health]) -> HealthCounts:
    """Tally an iterable of health values."""
    tally: dict[Health, int] = {}
    for health in healths:
        tally[health] = tally.get(health, 0) + 1
    return HealthCounts(tally)


class ServiceLevel(StrEnum):
    """What a hospital or clinic currently gets from the PACS."""

    NONE = "no service"  # every server of the site is cut off
    DEGRADED = "degraded"  # some of its servers are cut off, others still serve


@dataclass(frozen=True)
class AffectedSite:
    """A hospital or clinic that currently has no, or degraded, PACS service.

    ``causes`` maps each of the site's cut-off servers to the down servers
    that cut it off (the server itself when it is down on its own).
    """

    site: str
    kind: str
    level: ServiceLevel
    servers: int  # how many servers the site has
    causes: Mapping[str, tuple[str, ...]]

    @property
    def culprits(self) -> tuple[str, ...]:
        """Every down server behind this site's trouble, sorted, without repeats."""
        return tuple(sorted({c for names in self.causes.values() for c in names}))

    @property
    def reason(self) -> str:
        """``gw-northgate-1 behind rtr-003`` style explanation, one clause per server."""
        clauses = []
        for name, culprits in sorted(self.causes.items()):
            if culprits == (name,):
                clauses.append(f"{name} down")
            else:
                clauses.append(f"{name} behind {', '.join(culprits)}")
        return "; ".join(clauses)


@dataclass(frozen=True)
class FleetRollup:
    """Everything a summary needs, computed at one instant (``now``)."""

    now: float
    fleet: HealthCounts
    by_site: Mapping[str, HealthCounts]  # in the inventory's site order
    by_role: Mapping[str, HealthCounts]  # in order of first appearance
    health: Mapping[str, Health]  # server name -> health
    down: tuple[str, ...]  # DOWN servers, inventory order
    unreachable: tuple[str, ...]  # UNREACHABLE servers, inventory order
    affected: tuple[AffectedSite, ...]  # worst first, then by name
    oldest_age_s: float | None  # age of the oldest applicable reading (None: no reading)
    newest_age_s: float | None  # age of the newest one: large means polling stalled
    stale_readings: int  # applicable readings flagged STALE by the state
    # Servers whose BMC alone is silent while they serve, in inventory order,
    # with the health of their service (OK or DEGRADED): a management-network
    # fault, counted DEGRADED, never a cause of an affected site.
    management: Mapping[str, Health] = field(default_factory=dict)
    # Servers with a flapping probe: server -> ((probe, flap), ...), inventory order.
    flapping: Mapping[str, tuple[tuple[str, Flap], ...]] = field(default_factory=dict)

    def management_word(self, server: str) -> str:
        """``BMC unreachable — service OK`` (or ``— service degraded``) for a listed server."""
        return BMC_ONLY if self.management.get(server) is Health.OK else BMC_ONLY_DEGRADED

    def site_line(self, site: str) -> str:
        """``dc-main 212 up · 3 degraded · 1 down`` for one site."""
        return self.by_site.get(site, HealthCounts()).line(site)

    def role_line(self, role: str) -> str:
        """``archive 30 up · 1 down`` for one role."""
        return self.by_role.get(role, HealthCounts()).line(role)


def fleet_rollup(
    inventory: Inventory,
    state: FleetState,
    applicable: ApplicableProbes,
    now: float | None = None,
) -> FleetRollup:
    """Roll the fleet's readings up into counts, down lists and affected sites.

    ``applicable(server)`` names the probes that apply to a server (see
    ``applicable_probes``); readings of other probes are ignored. ``now``
    defaults to the state's clock, so a test's fake clock carries through.
    """
    now = state.clock() if now is None else now
    health: dict[str, Health] = {}
    by_site: dict[str, list[Health]] = {name: [] for name in inventory.sites}
    by_role: dict[str, list[Health]] = {}
    oldest: float | None = None
    newest: float | None = None
    stale = 0
    management: dict[str, Health] = {}
    flapping: dict[str, tuple[tuple[str, Flap], ...]] = {}
    for server in inventory.servers:
        value, readings, service = _assess(server, state, applicable(server), now)
        health[server.name] = value
        by_site.setdefault(server.site, []).append(value)
        by_role.setdefault(server.role, []).append(value)
        if service is not None:
            management[server.name] = service
        flaps = tuple(
            (p, r.flap) for p, r in readings.items() if r.flap is not None and not r.stale
        )
        if flaps:
            flapping[server.name] = flaps
        for reading in readings.values():
            if reading.age_s is None:
                continue
            stale += reading.stale
            oldest = reading.age_s if oldest is None else max(oldest, reading.age_s)
            newest = reading.age_s if newest is None else min(newest, reading.age_s)
    return FleetRollup(
        now=now,
        fleet=count_health(health.values()),
        by_site={site: count_health(values) for site, values in by_site.items()},
        by_role={role: count_health(values) for role, values in by_role.items()},
        health=health,
        down=tuple(n for n, h in health.items() if h is Health.DOWN),
        unreachable=tuple(n for n, h in health.items() if h is Health.UNREACHABLE),
        affected=affected_sites(inventory, health),
        oldest_age_s=oldest,
        newest_age_s=newest,
        stale_readings=stale,
        management=management,
        flapping=flapping,
    )


def affected_sites(
    inventory: Inventory,
    health: Mapping[str, Health],
    kinds: Sequence[str] = SERVED_SITE_KINDS,
) -> tuple[AffectedSite, ...]:
    """Sites of ``kinds`` with a server that is down or depends on a down server."""
    culprits = _culprits(inventory, health)
    servers_at: dict[str, list[str]] = {}
    for server in inventory.servers:
        servers_at.setdefault(server.site, []).append(server.name)
    found: list[AffectedSite] = []
    for site in inventory.sites.values():
        if site.kind not in kinds:
            continue
        names = servers_at.get(site.name, [])
        causes = {n: culprits[n] for n in names if culprits[n]}
        if not causes:
            continue
        level = ServiceLevel.NONE if len(causes) == len(names) else ServiceLevel.DEGRADED
        found.append(AffectedSite(site.name, site.kind, level, len(names), causes))
    found.sort(key=lambda a: (a.level is not ServiceLevel.NONE, a.site))
    return tuple(found)


def _culprits(inventory: Inventory, health: Mapping[str, Health]) -> dict[str, tuple[str, ...]]:
    """For every server, the nearest down servers that cut it off (empty: none).

    A DOWN server is its own culprit; otherwise the culprits of its
    dependencies are inherited. An UNREACHABLE server with no down server
    upstream (readings disagree for a moment) is named itself, so the trouble
    still shows. Memoised over the dependency graph, iteratively, because a
    3 000-server chain must not hit the recursion limit.
    """
    done: dict[str, tuple[str, ...]] = {}
    for start in inventory.names():
        stack, on_path = [start], {start}
        while stack:
            name = stack[-1]
            if name in done:
                on_path.discard(stack.pop())
                continue
            state = health.get(name, Health.UNKNOWN)
            parents = inventory.server(name).depends_on
            # A cycle (validated inventories have none) is cut instead of looping.
            pending = [p for p in parents if p not in done and p not in on_path]
            if state is not Health.DOWN and pending:
                # One at a time, so ``on_path`` is exactly the path being walked.
                stack.append(pending[0])
                on_path.add(pending[0])
                continue
            on_path.discard(stack.pop())
            if state is Health.DOWN:
                done[name] = (name,)
                continue
            inherited = sorted({c for p in parents for c in done.get(p, ())})
            if not inherited and state in _CUT_OFF:
                inherited = [name]
            done[name] = tuple(inherited)
    return done


def applicable_probes(probes: Sequence[Probe]) -> ApplicableProbes:
    """``applicable`` for ``fleet_rollup``: the names of ``probes`` that apply, cached.

    Applicability depends only on the (immutable) inventory entry, so it is
    asked once per server, not every second.
    """
    cache: dict[str, tuple[str, ...]] = {}

    def applicable(server: Server) -> tuple[str, ...]:
        names = cache.get(server.name)
        if names is None:
            names = cache[server.name] = tuple(p.name for p in probes if p.applies_to(server))
        return names

    return applicable


def upstream_of(inventory: Inventory, names: Iterable[str]) -> list[str]:
    """Every server that ``names`` depend on, directly or not, in inventory order."""
    seen: set[str] = set()
    stack = list(names)
    start = set(stack)
    while stack:
        for parent in inventory.server(stack.pop()).depends_on:
            if parent not in seen:
                seen.add(parent)
                stack.append(parent)
    return [n for n in inventory.names() if n in seen and n not in start]
