"""When each probe runs: intervals with jitter, backoff, and concurrency caps.

One scheduler per fleet: screens and the CLI read ``FleetState`` and never
poll on their own, because BMCs allow only a handful of sessions. Each
(server, probe) pair has one loop that schedules its next poll when the last
one finished, so polls never pile up behind a slow endpoint.

The first poll of each pair is the expensive one (TLS handshake and login at a
BMC, SSH key exchange, a DICOM association and the first C-FIND): at most
``ConcurrencyCaps.first_polls`` of them run at once, each holding its slot for
at most ``first_poll_hold_s``, so a first sweep ramps up instead of opening every
connection of the fleet at once and congesting our own event loop (which made
healthy peers read "slow"). A dead endpoint therefore delays the ramp by at most
the hold, never by its timeout. Probes see ``plugin_api.first_poll()`` during a
first poll and may leave an expensive check (the DICOM C-FIND) for the next
poll (``ProbeResult.follow_up``), which comes once the ramp is over: at the end
of a one-off sweep, or after the first polls' spread in the continuous loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pacs_tui.inventory import Server
from pacs_tui.loop_lag import lag_explains_timeout, measure_loop_lag, unreliable_detail
from pacs_tui.plugin_api import FIRST_POLL, Health, Probe, ProbeResult
from pacs_tui.state import FleetState

log = logging.getLogger(__name__)

NETWORK_PROBE = "network"
FIRST_POLLS_PER_S = 100


@dataclass(frozen=True)
class ConcurrencyCaps:
    """How many probes may run at once: in total, per device, per BMC, per SSH host."""

    total: int = 256
    per_endpoint: int = 4
    per_bmc: int = 2  # real BMCs allow few sessions and serialise requests
    per_ssh_host: int = 2  # sshd's MaxStartups drops bursts of new connections
    # First polls (handshakes, logins) in flight at once, each holding its slot
    # at most first_poll_hold_s (s): the ramp of a first sweep.
    first_polls: int = 32
    first_poll_hold_s: float = 0.5
    # Readings our own lag or queue spoiled, and first polls that left a check
    # for later, polled again at the end of a one-off sweep, this many at once.
    remeasure: int = 8

    def limit_for(self, endpoint: str) -> int:
        """The cap of one endpoint key (``bmc:…``, ``ssh:…``, anything else)."""
        if endpoint.startswith("bmc:"):
            return self.per_bmc
        if endpoint.startswith("ssh:"):
            return self.per_ssh_host
        return self.per_endpoint


def poll_deadline_s(probe: Probe) -> float:
    """Seconds one poll of ``probe`` may take before it is cut off and read as DOWN."""
    return probe.timeout_s * 2 + 1


class Scheduler:
    """Runs the probes of a fleet and records their results in a ``FleetState``."""

    def __init__(
        self,
        servers: Sequence[Server],
        probes: Sequence[Probe],
        state: FleetState,
        caps: ConcurrencyCaps | None = None,
        *,
        jitter: float = 0.1,
        max_backoff_s: float | None = None,
        seed: int | None = None,
    ) -> None:
        self.servers = {s.name: s for s in servers}
        self.probes = list(probes)
        self.state = state
        self.caps = caps or ConcurrencyCaps()
        self.jitter = jitter
        # Default cap: 4 intervals (±jitter), so a server coming back shows
        # within seconds; there is no fixed cap in seconds.
        self.max_backoff_s = max_backoff_s
        self._rng = random.Random(seed)
        self._total = asyncio.Semaphore(self.caps.total)
        self._endpoints: dict[str, asyncio.Semaphore] = {}
        self._failures: dict[tuple[str, str], int] = {}
        self.in_flight = 0
        self.peak_in_flight = 0
        self.peak_per_endpoint: dict[str, int] = {}
        self._per_endpoint_now: dict[str, int] = {}
        self._first_polls = asyncio.Semaphore(self.caps.first_polls)
        self._polled: set[tuple[str, str]] = set()  # pairs past their first poll
        self.first_polls_in_flight = 0
        self.peak_first_polls = 0
        self.remeasured = 0  # readings taken again by sweeps (our lag spoiled them)
        self.followed_up = 0  # first polls that left a check for later, polled again

    def pairs(self, names: Iterable[str] | None = None) -> list[tuple[Server, Probe]]:
        """Every (server, probe) pair that applies, for the given servers or all."""
        chosen = [self.servers[n] for n in names] if names is not None else self.servers.values()
        return [(s, p) for s in chosen for p in self.probes if p.applies_to(s)]

    # -- one poll ---------------------------------------------------------------

    async def poll(self, server: Server, probe: Probe) -> ProbeResult:
        """Run one probe on one server under the caps and record the result.

        A pair's first poll waits for a first-poll slot (the ramp) before the caps.
        """
        key = (server.name, probe.name)
        if key in self._polled:
            return await self._poll(server, probe)
        self._polled.add(key)
        await self._first_polls.acquire()
        self.first_polls_in_flight += 1
        self.peak_first_polls = max(self.peak_first_polls, self.first_polls_in_flight)
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self.first_polls_in_flight -= 1
                self._first_polls.release()

        # The slot is held until the poll ends or first_poll_hold_s passes: a
        # silent endpoint must not hold the ramp for its whole timeout.
        timer = asyncio.get_running_loop().call_later(self.caps.first_poll_hold_s, release)
        first = FIRST_POLL.set(True)  # the probe may keep expensive checks off this poll
        try:
            return await self._poll(server, probe)
        finally:
            FIRST_POLL.reset(first)
            timer.cancel()
            release()

    async def _poll(self, server: Server, probe: Probe) -> ProbeResult:
        endpoint = probe.endpoint(server)
        gate = self._endpoints.get(endpoint)
        if gate is None:
            gate = self._endpoints[endpoint] = asyncio.Semaphore(self.caps.limit_for(endpoint))
        async with gate, self._total:
            self._enter(endpoint)
            started = time.perf_counter()
            deadline = poll_deadline_s(probe)
            # Measured from here, after our own caps: waiting for them is not the peer's time.
            with measure_loop_lag() as lag:
                try:
                    result = await asyncio.wait_for(probe.probe(server), deadline)
                except TimeoutError:
                    if lag_explains_timeout(lag.late_ms, deadline):
                        result = ProbeResult.unreliable(
                            "timeout",
                            unreliable_detail(
                                lag.late_ms, f"a poll cut off after {deadline:.0f} s"
                            ),
                            lag.late_ms,
                        )
                    else:
                        result = ProbeResult.make(
                            "timeout", Health.DOWN, detail=f"no answer in {deadline:.0f} s"
                        )
                except Exception as exc:  # a plugin bug must not stop the other probes
                    log.exception("probe %s failed on %s", probe.name, server.name)
                    result = ProbeResult.make(
                        "error", Health.UNKNOWN, detail=f"probe error: {type(exc).__name__}: {exc}"
                    )
                finally:
                    self._leave(endpoint)
            if result.latency_ms is None and result.health is Health.OK:
                elapsed = (time.perf_counter() - started) * 1000
                result = ProbeResult(
                    result.state, result.health, elapsed, result.detail, result.observed_at,
                    result.facts,
                )  # fmt: skip
        result = self._behind_parent(server, result)
        key = (server.name, probe.name)
        self._failures[key] = self._failures.get(key, 0) + 1 if result.endpoint_failed else 0
        self.state.record(server.name, probe.name, result)
        return result

    def _enter(self, endpoint: str) -> None:
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        now = self._per_endpoint_now.get(endpoint, 0) + 1
        self._per_endpoint_now[endpoint] = now
        self.peak_per_endpoint[endpoint] = max(self.peak_per_endpoint.get(endpoint, 0), now)

    def _leave(self, endpoint: str) -> None:
        self.in_flight -= 1
        self._per_endpoint_now[endpoint] -= 1

    def _behind_parent(self, server: Server, result: ProbeResult) -> ProbeResult:
        """A failing server whose parent is down cannot be judged: UNREACHABLE, not DOWN.

        Only a failure: an endpoint that answered (a BMC saying PowerState Off) was
        judged, whatever its parent's state; a batch must see that Off, not "unreachable".
        """
        if result.health is not Health.DOWN or not result.endpoint_failed:
            return result
        for parent in server.depends_on:
            reading = self.state.reading(parent, NETWORK_PROBE)
            if reading.health in (Health.DOWN, Health.UNREACHABLE):
                return ProbeResult(
                    "unreachable",
                    Health.UNREACHABLE,
                    result.latency_ms,
                    f"behind {parent} ({reading.state}); {result.detail}",
                    result.observed_at,
                    result.facts,
                )
        return result

    # -- sweeps and the continuous loop ------------------------------------------

    async def sweep(self, names: Iterable[str] | None = None) -> None:
        """Poll every applicable (server, probe) pair once, as fast as the caps allow.

        Network probes run first so that the others can tell DOWN from UNREACHABLE.
        Readings our own lag or queue spoiled (``ProbeResult.measurement_unreliable``)
        and first polls that left a check for later (``ProbeResult.wants_follow_up``)
        are taken once more at the end, ``ConcurrencyCaps.remeasure`` at a time,
        when the sweep's rush is over; what is still unreliable stays UNKNOWN.
        """
        pairs = self.pairs(names)
        first = [(s, p) for s, p in pairs if p.name == NETWORK_PROBE]
        rest = [(s, p) for s, p in pairs if p.name != NETWORK_PROBE]
        await asyncio.gather(*(self.poll(s, p) for s, p in first))
        # Parents and children were polled at once: judge children again now
        # that every parent's reading is in.
        for server, probe in first:
            latest = self.state.latest(server.name, probe.name)
            if latest is not None and latest.health is Health.DOWN:
                judged = self._behind_parent(server, latest)
                if judged is not latest:
                    self.state.record(server.name, probe.name, judged)
        await asyncio.gather(*(self.poll(s, p) for s, p in rest))
        await self._remeasure(pairs)

    async def _remeasure(self, pairs: list[tuple[Server, Probe]]) -> None:
        latest = [(s, p, self.state.latest(s.name, p.name)) for s, p in pairs]
        spoiled = [(s, p) for s, p, r in latest if r is not None and r.measurement_unreliable]
        follow = [(s, p) for s, p, r in latest if r is not None and r.wants_follow_up]
        if not spoiled and not follow:
            return
        log.info(
            "polling again: %d reading(s) our own lag spoiled, %d left a check for later",
            len(spoiled), len(follow),
        )  # fmt: skip
        gate = asyncio.Semaphore(self.caps.remeasure)

        async def again(server: Server, probe: Probe) -> None:
            async with gate:
                await self.poll(server, probe)

        self.remeasured += len(spoiled)
        self.followed_up += len(follow)
        await asyncio.gather(*(again(s, p) for s, p in [*spoiled, *follow]))

    def next_delay(self, server: str, probe: Probe) -> float:
        """Seconds until the next poll: the interval, doubled per failure, with jitter."""
        failures = self._failures.get((server, probe.name), 0)
        base = probe.interval_s * (2 ** min(failures, 10)) if failures else probe.interval_s
        cap = self.max_backoff_s if self.max_backoff_s is not None else 4 * probe.interval_s
        base = min(base, max(cap, probe.interval_s))
        return base * self._rng.uniform(1 - self.jitter, 1 + self.jitter)

    async def _loop(self, server: Server, probe: Probe, spread_s: float) -> None:
        # Spread the first polls so a fleet neither polls in lock-step nor bursts
        # hundreds of new connections (TLS, SSH) at one device class at once.
        await asyncio.sleep(self._rng.uniform(0, spread_s))
        while True:
            result = await self.poll(server, probe)
            delay = self.next_delay(server.name, probe)
            if result.wants_follow_up:
                # The check it left comes once the first polls' spread is over.
                delay = min(delay, (spread_s + 1.0) * self._rng.uniform(1, 1 + self.jitter))
            # The next reading is due after the delay (backoff included) and the
            # poll's own deadline: until then the last one is not overdue.
            self.state.expect_next(server.name, probe.name, delay + poll_deadline_s(probe))
            await asyncio.sleep(delay)

    async def run(self) -> None:
        """Poll forever (until cancelled)."""
        pairs = self.pairs()
        per_probe: dict[str, int] = {}
        for _, p in pairs:
            per_probe[p.name] = per_probe.get(p.name, 0) + 1
        # At most ~FIRST_POLLS_PER_S first polls per probe and second, within one interval.
        spread = {
            p.name: min(p.interval_s, max(1.0, per_probe[p.name] / FIRST_POLLS_PER_S))
            for _, p in pairs
        }
        tasks = [
            asyncio.create_task(self._loop(s, p, spread[p.name]), name=f"probe:{p.name}:{s.name}")
            for s, p in pairs
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*tasks, return_exceptions=True)
