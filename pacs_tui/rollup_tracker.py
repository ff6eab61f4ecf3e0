"""The roll-up kept from one second to the next: only servers that changed are read again.

``fleet_rollup`` reads every server's every reading; at 3 000 servers that is
~0.1 s of CPU, once a second, in the control room and on the wall (issue 14).
A ``RollupTracker`` keeps each server's part of the roll-up and reads a
server again only when

- the state has news of it (a result, an expectation, a restored reading:
  a ``ChangeFeed`` that hears of every one), or
- time alone changes its part: a fresh reading reaches its STALE age, or a
  probe with enough health changes to flap is still inside the flap window
  (a flap starts and ends with the clock, so such a server is read every
  time until its last change leaves the window), or
- the clock went back, or the probe intervals (which set STALE ages) changed:
  then every server is read again.

The counts, lists and affected sites are built again only when some server's
part changed; the ages of the oldest and newest reading follow from each
server's oldest and newest ``observed_at``. The result equals
``fleet_rollup``'s at the same instant (``tests/test_rollup_tracker.py``
checks it on random histories).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import NamedTuple

from pacs_tui.flapping import FLAP_WINDOW_S, Flap, detect_flap
from pacs_tui.inventory import Inventory
from pacs_tui.plugin_api import Health
from pacs_tui.power import PowerState
from pacs_tui.rollup import (
    _CUT_OFF,
    _SERVING,
    BMC_PROBES,
    POWER_PROBE,
    ApplicableProbes,
    FleetRollup,
    HealthCounts,
    affected_sites,
    count_health,
)
from pacs_tui.state import FLAP_MIN_CHANGES, FleetState

# A server is read again this long (s) before a reading of it may turn STALE,
# and after its last health change leaves the flap window: far above the float
# rounding of ``observed_at + STALE age`` (~1e-6 s at today's epoch).
MARGIN_S = 1e-3
_NEVER = float("inf")
_RANK = {health: health.rank for health in Health}  # ``Health.rank`` without a property call
_BY_RANK = {rank: health for health, rank in _RANK.items()}


class ServerPart(NamedTuple):
    """One server's part of a roll-up, and until when it holds without news.

    ``oldest_at``/``newest_at`` are the ``observed_at`` (epoch s) of its
    oldest and newest applicable reading (None: no reading). ``until`` is the
    instant (epoch s) before which time alone cannot change the part.
    A named tuple: thousands are made each second.
    """

    names: Collection[str]  # the applicable probes it was read with
    health: Health
    service: Health | None  # the service's health while the BMC alone is silent
    flaps: tuple[tuple[str, Flap], ...]
    stale: int  # applicable readings that are STALE
    oldest_at: float | None
    newest_at: float | None
    until: float


def server_part(server: str, names: Collection[str], state: FleetState, now: float) -> ServerPart:
    """Read one server as ``fleet_rollup`` does (``_assess``), with the instant it holds until.

    The same rules, written out over ``FleetState.reading_parts`` instead of
    building a ``Reading`` per probe (that was most of the roll-up's time):
    the worst health; a fresh power ``Off`` is DOWN; a fresh power reading
    that is DOWN or UNREACHABLE without ``Off`` while every other reading is
    fresh and serving (``bmc_only``) makes the server DEGRADED, with the
    others' worst as its service.
    """
    until = _NEVER
    oldest: float | None = None
    newest: float | None = None
    stale_count = 0
    flaps: list[tuple[str, Flap]] = []
    # Power: its health as ``fleet_rollup`` counts it, and whether the BMC alone is silent.
    power: Health | None = None
    power_cut = False
    others = 0
    others_serve = True
    worst_other = -1  # rank of the worst reading other than the BMC's
    bmc_healths: list[Health] = []  # other BMC probes' (rack-power)
    for probe in names:
        parts = state.reading_parts(server, probe)
        if parts is None:
            health = Health.UNKNOWN
            fresh = False
            word = None
        else:
            result, stale_after_s, changes = parts
            observed = result.observed_at
            word = result.state
            if oldest is None or observed < oldest:
                oldest = observed
            if newest is None or observed > newest:
                newest = observed
            if max(0.0, now - observed) > stale_after_s:
                health = Health.STALE
                fresh = False
                stale_count += 1
            else:
                # Fresh until its STALE age; a stale one stays stale until news.
                fresh = True
                until = min(until, observed + stale_after_s)
                health = result.health
                if len(changes) >= FLAP_MIN_CHANGES:
                    # A copy in one step: the room rolls up in a thread while the
                    # loop may append to this log, and a deque must not change
                    # while it is iterated.
                    changes = tuple(changes)
                    if max(c.at for c in changes) + FLAP_WINDOW_S + MARGIN_S >= now:
                        until = now  # inside the flap window: read again every time
                    flap = detect_flap(changes, now)
                    if flap is not None:
                        flaps.append((probe, flap))
                        if _RANK[flap.worst] > _RANK[health]:
                            health = flap.worst
        if probe == POWER_PROBE:
            power = health
            if fresh:
                if word == PowerState.OFF:
                    power = Health.DOWN
                else:
                    power_cut = health in _CUT_OFF
        elif probe in BMC_PROBES:  # rack-power: the same BMC, judged with power below
            bmc_healths.append(health)
        else:
            others += 1
            others_serve = others_serve and health in _SERVING
            worst_other = max(worst_other, _RANK[health])
    management = power_cut and others > 0 and others_serve
    if management:
        power = Health.DEGRADED
    worst = max(worst_other, -1 if power is None else _RANK[power])
    for health in bmc_healths:  # a silent BMC is one management fault, not two
        if management and health in _CUT_OFF:
            health = Health.DEGRADED
        worst = max(worst, _RANK[health])
    return ServerPart(
        names=names,
        health=Health.UNKNOWN if worst < 0 else _BY_RANK[worst],
        service=_BY_RANK[worst_other] if management else None,
        flaps=tuple(flaps),
        stale=stale_count,
        oldest_at=oldest,
        newest_at=newest,
        until=until,
    )


class RollupTracker:
    """``fleet_rollup`` of one inventory and state, kept between calls.

    ``applicable`` is as for ``fleet_rollup``. The tracker subscribes to the
    state (a feed that hears of every result); ``close`` unsubscribes. Calls
    of ``rollup`` must not overlap; ``pending`` may run on another thread than
    ``rollup`` (the one that writes the state), so that a roll-up in a thread
    never reads the feed while the state writes to it.
    """

    def __init__(self, inventory: Inventory, state: FleetState, applicable: ApplicableProbes):
        self.inventory = inventory
        self.state = state
        self.applicable = applicable
        self._feed = state.subscribe(every_result=True)
        self._parts: dict[str, ServerPart] = {}
        self._last: FleetRollup | None = None
        self._intervals: dict[str, float] = {}
        self.reread = 0  # servers read again by the last roll-up (benchmarks, tests)

    def close(self) -> None:
        """Stop hearing of the state's changes."""
        self.state.unsubscribe(self._feed)

    def pending(self) -> set[str]:
        """Take the servers the state has news of since the last call (or roll-up)."""
        return {server for server, _probe in self._feed.drain()}

    def rollup(
        self, now: float | None = None, changed: Collection[str] | None = None
    ) -> FleetRollup:
        """The roll-up at ``now`` (default: the state's clock), equal to ``fleet_rollup``'s.

        ``changed``: the servers ``pending()`` returned on the state's thread
        since the last roll-up; None takes them here.
        """
        state = self.state
        now = state.clock() if now is None else now
        if changed is None:
            changed = self.pending()
        try:
            return self._rollup(now, changed)
        except BaseException:
            # The news taken for this roll-up is gone with it: read every server next time.
            self._parts.clear()
            self._last = None
            raise

    def _rollup(self, now: float, changed: Collection[str]) -> FleetRollup:
        state = self.state
        last = self._last
        if last is None or now < last.now or state.intervals != self._intervals:
            self._parts.clear()  # the clock went back, or STALE ages moved: read all
            self._intervals = dict(state.intervals)
        parts = self._parts
        applicable = self.applicable
        moved: list[tuple[str, ServerPart | None, ServerPart]] = []
        for server in self.inventory.servers:
            name = server.name
            given = applicable(server)
            # Kept to compare next time: a one-shot iterable is kept as a tuple.
            names = given if isinstance(given, tuple | frozenset) else tuple(given)
            part = parts.get(name)
            if (
                part is None
                or name in changed
                or now + MARGIN_S >= part.until
                or (names is not part.names and tuple(names) != tuple(part.names))
            ):
                new = server_part(name, names, state, now)
                parts[name] = new
                moved.append((name, part, new))
        self.reread = len(moved)
        rollup = self._build(now, moved, last)
        self._last = rollup
        return rollup

    def _build(
        self,
        now: float,
        moved: list[tuple[str, ServerPart | None, ServerPart]],
        last: FleetRollup | None,
    ) -> FleetRollup:
        parts = self._parts
        oldest_at = min(
            (p.oldest_at for p in parts.values() if p.oldest_at is not None), default=None
        )
        newest_at = max(
            (p.newest_at for p in parts.values() if p.newest_at is not None), default=None
        )
        oldest = None if oldest_at is None else max(0.0, now - oldest_at)
        newest = None if newest_at is None else max(0.0, now - newest_at)
        stale = sum(p.stale for p in parts.values())
        if last is not None and all(
            old is not None
            and old.health is new.health
            and old.service is new.service
            and old.flaps == new.flaps
            for _name, old, new in moved
        ):
            # No server's health, service or flaps moved: only the ages and STALE count.
            # The mappings are shared with the last roll-up; neither is ever changed.
            return FleetRollup(
                now=now,
                fleet=last.fleet,
                by_site=last.by_site,
                by_role=last.by_role,
                health=last.health,
                down=last.down,
                unreachable=last.unreachable,
                affected=last.affected,
                oldest_age_s=oldest,
                newest_age_s=newest,
                stale_readings=stale,
                management=last.management,
                flapping=last.flapping,
            )
        return self._full(now, oldest, newest, stale, last)

    def _full(
        self,
        now: float,
        oldest: float | None,
        newest: float | None,
        stale: int,
        last: FleetRollup | None,
    ) -> FleetRollup:
        inventory = self.inventory
        parts = self._parts
        health: dict[str, Health] = {}
        by_site: dict[str, list[Health]] = {name: [] for name in inventory.sites}
        by_role: dict[str, list[Health]] = {}
        management: dict[str, Health] = {}
        flapping: dict[str, tuple[tuple[str, Flap], ...]] = {}
        for server in inventory.servers:
            part = parts[server.name]
            value = part.health
            health[server.name] = value
            by_site.setdefault(server.site, []).append(value)
            by_role.setdefault(server.role, []).append(value)
            if part.service is not None:
                management[server.name] = part.service
            if part.flaps:
                flapping[server.name] = part.flaps
        down = tuple(n for n, h in health.items() if h is Health.DOWN)
        unreachable = tuple(n for n, h in health.items() if h is Health.UNREACHABLE)
        # Affected sites follow from who is DOWN or UNREACHABLE only (``_culprits``).
        if last is not None and down == last.down and unreachable == last.unreachable:
            affected = last.affected
        else:
            affected = affected_sites(inventory, health)
        return FleetRollup(
            now=now,
            fleet=count_health(health.values()),
            by_site=_counts(by_site),
            by_role=_counts(by_role),
            health=health,
            down=down,
            unreachable=unreachable,
            affected=affected,
            oldest_age_s=oldest,
            newest_age_s=newest,
            stale_readings=stale,
            management=management,
            flapping=flapping,
        )


def _counts(groups: Mapping[str, list[Health]]) -> dict[str, HealthCounts]:
    return {key: count_health(values) for key, values in groups.items()}
