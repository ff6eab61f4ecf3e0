"""Rack circuit breakers of the simulated data center: the rack-over-budget fault.

On move day a rack circuit trips when thirty servers boot at once: each
draws its boot peak (``redfish_power.draw_watts``) together. A breaker is
off until a test or the rehearsal sets its rating (``set_trip``); from then
on the rack's summed draw is sampled every ``SAMPLE_S``, the highest sum is
kept (``peak_w``, the simulator's own measure, independent of what any
client read), and when the sum passes the rating every server of the rack
loses power at once (``ForceOff``: PowerState Off, OS down), as a tripped
breaker does. The trip is recorded with the draw that caused it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pacs_tui.power import PowerState, ResetType
from pacs_tui.sim.host import SimulatedHost
from pacs_tui.sim.redfish_power import draw_watts

SAMPLE_S = 0.02  # a breaker reacts in milliseconds; 20 ms sees every simulated boot peak


@dataclass
class RackBreaker:
    """One rack's breaker: its rating (W), the highest draw seen and its trips."""

    rack: str
    hosts: Sequence[SimulatedHost]
    trip_w: float | None = None
    peak_w: float = 0.0
    trips: list[dict[str, Any]] = field(default_factory=list)
    tripped: bool = False  # open until the draw is back under the rating (servers off)

    def draw_w(self) -> float:
        """The rack's summed draw now (W)."""
        return float(sum(draw_watts(h) for h in self.hosts))

    def snapshot(self) -> dict[str, Any]:
        """A JSON-able view for the control API."""
        return {
            "rack": self.rack,
            "servers": [h.name for h in self.hosts],
            "draw_w": self.draw_w(),
            "trip_w": self.trip_w,
            "peak_w": self.peak_w,
            "trips": list(self.trips),
        }


class RackBreakers:
    """Every rack's breaker, and the sampling task while any is armed."""

    def __init__(self, racks: Mapping[str, Sequence[SimulatedHost]]) -> None:
        self.racks = {name: RackBreaker(name, hosts) for name, hosts in racks.items()}
        self._task: asyncio.Task[None] | None = None

    def breaker(self, rack: str) -> RackBreaker:
        """The breaker of ``rack``; KeyError names it when unknown."""
        try:
            return self.racks[rack]
        except KeyError:
            raise KeyError(f"no simulated rack named {rack!r}") from None

    def set_trip(self, rack: str, trip_w: float | None) -> RackBreaker:
        """Arm (W > 0) or disarm (None) ``rack``'s breaker; its peak starts again from now."""
        if trip_w is not None and (
            isinstance(trip_w, bool) or not isinstance(trip_w, int | float) or trip_w <= 0
        ):
            raise ValueError(f"trip_w must be a number of watts > 0, got {trip_w!r}")
        breaker = self.breaker(rack)
        breaker.trip_w = None if trip_w is None else float(trip_w)
        breaker.peak_w = breaker.draw_w()
        breaker.trips.clear()
        breaker.tripped = False
        armed = any(b.trip_w is not None for b in self.racks.values())
        if armed and (self._task is None or self._task.done()):
            self._task = asyncio.get_running_loop().create_task(
                self._sample(), name="sim:rack-breakers"
            )
        return breaker

    async def stop(self) -> None:
        """Stop sampling."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _sample(self) -> None:
        while any(b.trip_w is not None for b in self.racks.values()):
            for breaker in self.racks.values():
                if breaker.trip_w is None:
                    continue
                draw = breaker.draw_w()
                breaker.peak_w = max(breaker.peak_w, draw)
                if draw > breaker.trip_w and not breaker.tripped:
                    self._trip(breaker, draw)
                breaker.tripped = draw > breaker.trip_w
            await asyncio.sleep(SAMPLE_S)

    @staticmethod
    def _trip(breaker: RackBreaker, draw: float) -> None:
        powered = [h for h in breaker.hosts if h.power_state is not PowerState.OFF]
        breaker.trips.append(
            {"at": time.time(), "draw_w": draw, "servers": [h.name for h in powered]}
        )
        for host in powered:
            host.reset(ResetType.FORCE_OFF)
