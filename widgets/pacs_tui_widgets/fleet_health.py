"""Each server's overall health as the last roll-up saw it, and what changed.

The grid's group headers, the event log and the DOWN toasts need "how is
this server?" for thousands of servers. Computing it per frame would make a
frame cost depend on the fleet size, so it is taken from the roll-up that
the app computes once a second anyway (``pacs_tui.rollup``: worst applicable
probe, a powered-off server counts as DOWN).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

from pacs_tui.plugin_api import Health


class FleetHealth:
    """Overall health per server, updated from roll-ups."""

    def __init__(self, servers: Iterable[str]) -> None:
        self.by_server: dict[str, Health] = dict.fromkeys(servers, Health.UNKNOWN)

    def absorb(self, healths: Mapping[str, Health]) -> dict[str, tuple[Health, Health]]:
        """Take a roll-up's healths; return ``{server: (before, after)}`` for the changed ones."""
        changed: dict[str, tuple[Health, Health]] = {}
        by_server = self.by_server
        for server, after in healths.items():
            before = by_server.get(server)
            if before is None:
                continue  # not a server this session watches
            if after is not before:
                by_server[server] = after
                changed[server] = (before, after)
        return changed

    def counts(self, servers: Iterable[str] | None = None) -> Counter[Health]:
        """How many servers are in each health."""
        if servers is None:
            return Counter(self.by_server.values())
        by = self.by_server
        return Counter(by.get(s, Health.UNKNOWN) for s in servers)
