"""Each server's overall health (its worst applicable probe), kept current cheaply.

The grid, the summary bar and the event log all need "how is this server?"
for thousands of servers; recomputing it per frame would make a frame cost
depend on the fleet size. This keeps one answer per server, updated for the
servers that changed and refreshed in full now and then (readings go STALE by
age alone, with no change event).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

from pacs_tui.inventory import Server
from pacs_tui.plugin_api import Health
from pacs_tui.rollup import server_health
from pacs_tui.state import FleetState


class FleetHealth:
    """Overall health per server, derived from a ``FleetState``."""

    def __init__(
        self,
        state: FleetState,
        servers: Mapping[str, Server],
        applicable: Mapping[str, frozenset[str]],
    ) -> None:
        self.state = state
        self.servers = servers
        self.applicable = applicable
        self.by_server: dict[str, Health] = dict.fromkeys(applicable, Health.UNKNOWN)
        self.refresh_all()

    def compute(self, server: str, now: float | None = None) -> Health:
        """The server's health as the roll-ups count it (worst applicable probe; Off is DOWN)."""
        return server_health(self.servers[server], self.state, self.applicable.get(server, ()), now)

    def update(self, servers: Iterable[str]) -> dict[str, tuple[Health, Health]]:
        """Recompute some servers; return ``{server: (before, after)}`` for those that changed."""
        now = self.state.clock()
        changed: dict[str, tuple[Health, Health]] = {}
        for server in servers:
            if server not in self.applicable:
                continue
            before = self.by_server.get(server, Health.UNKNOWN)
            after = self.compute(server, now)
            if after is not before:
                self.by_server[server] = after
                changed[server] = (before, after)
        return changed

    def refresh_all(self) -> dict[str, tuple[Health, Health]]:
        """Recompute every server (STALE appears by age alone)."""
        return self.update(self.applicable)

    def counts(self, servers: Iterable[str] | None = None) -> Counter[Health]:
        """How many servers are in each health."""
        if servers is None:
            return Counter(self.by_server.values())
        by = self.by_server
        return Counter(by.get(s, Health.UNKNOWN) for s in servers)
