"""A small deterministic fleet and scripted probes for the control-room tests.

The probes are real ``Probe`` plugins run by the real scheduler; only their
answers are scripted, so a test can set a server DOWN and watch the screen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import ClassVar

from pacs_tui.inventory import Inventory, Server, Site
from pacs_tui.plugin_api import Health, Probe, ProbeResult

FIXED_NOW = 1_750_000_000.0  # a fixed instant: ages and timestamps never move
PROBE_NAMES = ("power", "network", "dicom", "ssh")

SITES = {
    "dc-main": Site("dc-main", "datacenter"),
    "hosp-north": Site("hosp-north", "hospital"),
    "clinic-east": Site("clinic-east", "clinic"),
}


_PREFIX = {
    "archive": "arch",
    "database": "db",
    "dicom-router": "rtr",
    "image-server": "img",
    "web-viewer": "web",
    "storage": "stor",
}


def build_inventory(servers: int = 24) -> Inventory:
    """``servers`` servers: archives, routers, viewers in racks R01..; edge sites depend on dc."""
    roles = ("archive", "database", "dicom-router", "image-server", "web-viewer", "storage")
    made: list[Server] = []
    for i in range(servers - 2):
        role = roles[i % len(roles)]
        made.append(
            Server(
                name=f"{_PREFIX[role]}-{i + 1:03d}",
                site="dc-main",
                role=role,
                rack=f"R{i // 8 + 1:02d}",
            )
        )
    router = next(s.name for s in made if s.role == "dicom-router")
    made.append(Server("gw-north", "hosp-north", "edge-gateway", depends_on=(router,)))
    made.append(Server("view-east", "clinic-east", "web-viewer", depends_on=(router,)))
    return Inventory(Path("/fleet/inventory.yaml"), dict(SITES), tuple(made), {})


class ScriptedProbe(Probe):
    """Answers with whatever ``answers[server]`` holds (default: OK); no network."""

    interval_s: ClassVar[float] = 0.05
    timeout_s: ClassVar[float] = 1.0

    def __init__(
        self,
        name: str,
        clock: Callable[[], float] = lambda: FIXED_NOW,
        skip: Iterable[str] = (),
        interval_s: float = 0.05,
    ) -> None:
        self.name = name  # type: ignore[misc]
        self.interval_s = interval_s  # type: ignore[misc]
        self.clock = clock
        self.skip = set(skip)
        self.answers: dict[str, ProbeResult] = {}
        self.calls = 0

    def applies_to(self, server: Server) -> bool:
        return server.name not in self.skip

    def ok(self, server: str) -> ProbeResult:
        """The default healthy answer, with a latency that depends on the name."""
        state = "On" if self.name == "power" else "ok"
        latency = 1.0 + (sum(map(ord, server)) % 40) / 10
        facts = {"tls": "verified"} if self.name == "power" else {}
        return ProbeResult(state, Health.OK, latency, "", self.clock(), facts)

    def set(
        self,
        server: str,
        state: str,
        health: Health,
        detail: str = "",
        *,
        latency_ms: float | None = 2.0,
        age_s: float = 0.0,
        **facts: object,
    ) -> None:
        """Script the next answers for one server (``age_s``: observed that long ago)."""
        self.answers[server] = ProbeResult(state, health, latency_ms, detail, -age_s, facts)

    async def probe(self, server: Server) -> ProbeResult:
        self.calls += 1
        answer = self.answers.get(server.name)
        if answer is None:
            return self.ok(server.name)
        # observed_at holds minus the scripted age: the reading is that old now.
        return ProbeResult(
            answer.state,
            answer.health,
            answer.latency_ms,
            answer.detail,
            self.clock() + answer.observed_at,
            answer.facts,
        )


def scripted_probes(clock: Callable[[], float] = lambda: FIXED_NOW) -> dict[str, ScriptedProbe]:
    """One scripted probe per standard probe name; DICOM skips storage servers."""
    probes = {name: ScriptedProbe(name, clock) for name in PROBE_NAMES}
    probes["dicom"].skip = {f"stor-{i:03d}" for i in range(1, 1000)}
    return probes
