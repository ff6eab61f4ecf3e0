"""ServiceMirror against a real ``pacs-tui serve`` (its own process) on a simulator.

Issue 11's acceptance: "Killing and restarting the service: screens show stale,
then recover by themselves." The mirror is what every attached screen draws from.

- after ``open()`` + ``start()`` the mirror's readings are the service's (same
  state, health, ``observed_at`` and due time per key) within a few ticks;
- it opens no BMC session: the simulator counts the same sessions per BMC with
  the mirror attached as with the service alone;
- SIGKILL of the service: ``connected`` turns False, ``data_age_s()`` grows, the
  readings are not STALE on the spot but age, and turn STALE by the state's own
  rule at the service's due times (checked in real time for the first ones);
- ``serve`` restarted on the same port with the same tokens file: the mirror
  reconnects by itself, takes the new run's snapshot and is right again;
- on a quiet service (nothing published for longer than the client's silence
  limit) the mirror stays connected: pings keep the stream alive.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from pacs_tui.credentials import Secret
from pacs_tui.remote.client import ServiceClient
from pacs_tui.remote.mirror import ServiceMirror, attach
from pacs_tui.state import STALE_AFTER_INTERVALS, STALE_GRACE_INTERVALS
from service_process import RunningService, add_token, free_port
from sim_process import RunningSim, running_sim

PACS_TUI = [sys.executable, "-m", "pacs_tui"]
Key = tuple[str, str]


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSim]:
    out = tmp_path_factory.mktemp("remote-mirror-sim") / "dc"
    with running_sim(out, "--servers", "12", "--time-scale", "0.05") as running:
        yield running


def control(sim: RunningSim, path: str) -> Any:
    with urllib.request.urlopen(sim.control_url + path, timeout=10) as answer:
        return json.loads(answer.read())


def sessions(sim: RunningSim) -> dict[str, int]:
    names = [s["name"] for s in sim.servers()]
    return {n: int(control(sim, f"/hosts/{n}/bmc")["sessions"]) for n in names}


async def eventually(predicate: Any, timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        await asyncio.sleep(interval)


class Serve:
    """``pacs-tui serve`` that can be killed and started again on the same port and tokens."""

    def __init__(self, sim: RunningSim, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.sim = sim
        self.workdir = workdir
        self.tokens_file = workdir / "tokens.yaml"
        self.tokens = {
            "lead": add_token(self.tokens_file, "lead", "operator"),
            "wall": add_token(self.tokens_file, "wall", "viewer"),
        }
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[str] | None = None
        self.runs = 0

    @property
    def api(self) -> RunningService:
        assert self.process is not None
        log = self.workdir / f"serve-{self.runs}.log"
        return RunningService(self.url, self.tokens, self.process, log, self.tokens_file)

    def spawn(self) -> subprocess.Popen[str]:
        self.runs += 1
        env = {**os.environ, "PACS_TUI_DATA_DIR": str(self.workdir / "data")}
        with (self.workdir / f"serve-{self.runs}.log").open("w") as log:
            return subprocess.Popen(
                [*PACS_TUI, "serve", "--inventory", str(self.sim.out / "inventory.yaml"),
                 "--tokens", str(self.tokens_file), "--listen", f"127.0.0.1:{self.port}"],
                stdout=log, stderr=subprocess.STDOUT, text=True, env=env,
            )  # fmt: skip

    async def start(self) -> None:
        self.process = await asyncio.to_thread(self.spawn)

        async def ready() -> bool:
            assert self.process is not None and self.process.poll() is None, self.api.log_text()
            try:
                status, _ = await asyncio.to_thread(
                    self.api.request, "GET", "/api/v1/service", self.tokens["wall"], None, 2
                )
            except OSError:
                return False
            return status == 200

        await eventually(ready, 60, "serve to answer")

    def snapshot(self) -> dict[str, Any]:
        status, body = self.api.request("GET", "/api/v1/snapshot", self.tokens["wall"])
        assert status == 200, body
        assert isinstance(body, dict)
        return body

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
async def serve(sim: RunningSim, tmp_path: Path) -> AsyncIterator[Serve]:
    running = Serve(sim, tmp_path / "serve")
    try:
        yield running
    finally:
        await asyncio.to_thread(running.stop)


def entries(snapshot: dict[str, Any]) -> dict[Key, dict[str, Any]]:
    return {(e["server"], e["probe"]): e for e in snapshot["readings"]}


def mirrored(mirror: ServiceMirror, key: Key) -> tuple[str, str, float] | None:
    result = mirror.state.latest(*key)
    return None if result is None else (result.state, result.health.value, result.observed_at)


def as_wire(entry: dict[str, Any]) -> tuple[str, str, float]:
    result = entry["result"]
    return (result["state"], result["health"], result["observed_at"])


async def assert_mirror_matches(mirror: ServiceMirror, serve: Serve) -> int:
    """The mirror holds the service's readings: wait until it caught up with snapshot A,
    then compare with A and a later B. Keys that did not change between A and B must be
    identical (result and due time); the others may be A's, B's or one in between.
    Returns how many keys were identical."""
    a = entries(await asyncio.to_thread(serve.snapshot))
    assert a, "the service has no readings yet"

    def caught_up() -> bool:
        return all((m := mirrored(mirror, k)) and m[2] >= as_wire(e)[2] for k, e in a.items())

    await eventually(caught_up, 15, "the mirror to catch up with the service's snapshot")
    b = entries(await asyncio.to_thread(serve.snapshot))
    identical = 0
    for key, entry in a.items():
        got = mirrored(mirror, key)
        assert got is not None, key
        later = b.get(key, entry)
        if as_wire(entry)[2] == as_wire(later)[2]:
            assert got == as_wire(entry), (key, got, entry)
            assert mirror.state.due(*key) == entry["due_s"], (key, entry)
            assert mirror.state.history(*key)[-len(entry["history"]) :] == entry["history"]
            identical += 1
        else:
            assert as_wire(entry)[2] <= got[2] <= as_wire(later)[2], (key, got, entry, later)
    assert identical >= len(a) // 2, (identical, len(a))  # else the comparison proved little
    return identical


def stale_at(mirror: ServiceMirror, key: Key) -> float:
    """When the state's own rule makes this reading STALE (a time.time() instant)."""
    result = mirror.state.latest(*key)
    assert result is not None
    interval = mirror.state.intervals[key[1]]
    due = mirror.state.due(*key)
    if due is None:
        return result.observed_at + STALE_AFTER_INTERVALS * interval
    return result.observed_at + due + STALE_GRACE_INTERVALS * interval


async def test_the_mirror_follows_goes_stale_when_killed_and_recovers_on_restart(
    sim: RunningSim, serve: Serve
) -> None:
    before = await asyncio.to_thread(sessions, sim)
    await serve.start()

    # The service alone: its poller's sessions, once the first sweep logged in.
    def service_logged_in() -> dict[str, int] | None:
        now = sessions(sim)
        return now if any(now[n] > before[n] for n in now) else None

    await eventually(lambda: asyncio.to_thread(service_logged_in), 60, "the service's logins")
    await asyncio.sleep(2.0)
    alone = await asyncio.to_thread(sessions, sim)

    client = ServiceClient(serve.url, Secret(serve.tokens["wall"]))
    inventory, described = await attach(client)
    mirror = ServiceMirror(client, inventory, described)
    changes: list[dict[str, Any]] = []
    mirror.listeners.append(
        lambda kind, data: changes.append(data) if kind == "connection" else None
    )
    try:
        await mirror.open()
        mirror.start()
        assert mirror.connected and mirror.data_age_s() is None
        assert mirror.state.intervals == described["probes"]
        identical = await assert_mirror_matches(mirror, serve)
        await asyncio.sleep(3.0)  # follow a while longer: still no session of its own
        attached = await asyncio.to_thread(sessions, sim)
        assert attached == alone, (alone, attached)
        assert all(n <= 2 for n in attached.values()), attached

        # -- the service dies (no logout, no goodbye) --------------------------------
        keys = list(entries(await asyncio.to_thread(serve.snapshot)))
        stale_before = {k for k in keys if mirror.state.reading(*k).stale}
        serve.kill()
        await eventually(lambda: not mirror.connected, 15, "the mirror to notice")
        killed_at = time.time()
        assert changes and changes[-1]["connected"] is False
        age = mirror.data_age_s()
        assert age is not None and age < 10
        # Not STALE on the spot: each reading ages until its own due time passes.
        deadlines = {k: stale_at(mirror, k) for k in keys}
        fresh = [k for k in keys if deadlines[k] > time.time() + 1]
        assert fresh, "every reading was about to go stale anyway?"
        assert not [k for k in fresh if mirror.state.reading(*k).stale]
        assert {k for k in keys if mirror.state.reading(*k).stale} <= stale_before | {
            k for k in keys if deadlines[k] <= time.time()
        }
        # Wait (real time) until the first few deadlines have passed; those are STALE
        # now, the later ones not yet.
        first = sorted(deadlines[k] for k in fresh)[min(2, len(fresh) - 1)]
        assert first - killed_at < 60, "no reading would go stale within a minute"
        await asyncio.sleep(max(0.0, first - time.time()) + 0.5)
        now = time.time()
        for key in fresh:
            reading = mirror.state.reading(*key)
            if deadlines[key] < now - 0.2:
                assert reading.stale, (key, deadlines[key], now)
            elif deadlines[key] > now + 0.2:
                assert not reading.stale, (key, deadlines[key], now)
        later_age = mirror.data_age_s()
        assert (
            later_age is not None and age is not None and later_age >= age + (now - killed_at) - 1
        )
        # If the service stayed away, every reading would be STALE after its deadline.
        assert all(mirror.state.reading(*k, now=deadlines[k] + 1).stale for k in keys)
        assert not mirror.connected and mirror.reconnects >= 1

        # -- the service comes back on the same port and tokens -----------------------
        stale_count = sum(mirror.state.reading(*k).stale for k in keys)
        await serve.start()
        await eventually(lambda: mirror.connected, 45, "the mirror to reconnect by itself")
        assert mirror.data_age_s() is None
        assert changes[-1]["connected"] is True

        def new_run_polled_all() -> bool:
            return set(keys) <= set(entries(serve.snapshot()))

        await eventually(lambda: asyncio.to_thread(new_run_polled_all), 60, "the new run's sweep")
        await assert_mirror_matches(mirror, serve)
        assert not [k for k in keys if mirror.state.reading(*k).stale]
        print(
            f"\nmirror: {len(keys)} readings, {identical} identical to the snapshot; "
            f"BMC sessions alone {sum(alone.values())}, with the mirror {sum(attached.values())}; "
            f"after SIGKILL {stale_count} STALE at {now - killed_at:.1f} s; "
            f"reconnected after {mirror.reconnects} attempts"
        )
    finally:
        await mirror.close()


async def test_a_quiet_service_keeps_the_mirror_connected(tmp_path: Path) -> None:
    """Nothing to publish (no probe applies to any server): only the stream's pings say
    the service is alive, and they must come before the client gives up: 25 s, more than
    the client's silence limit, in which a client deaf to pings would have dropped the
    stream (one did, when its limit equalled the ping interval)."""
    from aiohttp import web

    from pacs_tui.remote.client import STREAM_SILENCE_S
    from pacs_tui.service.api import PING_INTERVAL_S, build_app
    from pacs_tui.service.fleet_service import FleetService
    from pacs_tui.service.tokens import Role, load_tokens
    from pacs_tui.service.tokens import add_token as add_caller
    from ui_fleet import ScriptedProbe, build_inventory

    token = add_caller(tmp_path / "tokens.yaml", "wall", Role.VIEWER)
    inventory = build_inventory(8)
    quiet = ScriptedProbe("power", time.time, skip=[s.name for s in inventory.servers])
    service = FleetService(inventory, "", probes=[quiet], read_only=True)
    await service.start()
    runner = web.AppRunner(build_app(service, load_tokens(tmp_path / "tokens.yaml")),
                           shutdown_timeout=0.5)  # fmt: skip
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    client = ServiceClient(f"http://127.0.0.1:{port}", Secret(token))
    mirror = ServiceMirror(client, inventory, service.describe())
    try:
        await mirror.open()
        mirror.start()
        await eventually(lambda: mirror.connected, 10, "the stream")
        started = time.monotonic()
        dropped = 0
        assert STREAM_SILENCE_S >= 3 * PING_INTERVAL_S  # room for late pings
        while time.monotonic() - started < STREAM_SILENCE_S + 5:
            dropped += not mirror.connected
            await asyncio.sleep(0.25)
        assert mirror.reconnects == 0 and dropped == 0, (mirror.reconnects, mirror.last_error)
    finally:
        await mirror.close()
        await runner.cleanup()
        await service.stop()


def test_a_new_run_of_the_service_drops_the_old_runs_history_and_health_changes() -> None:
    """Pure logic of the mirror: two snapshots, the second from another instance.

    A key the new run has not read yet keeps its last result (it turns STALE by
    the usual rule) but loses the old run's latencies and health changes, so an
    old transition plus a new one never count as a flap; a key the new run has
    read takes the new run's history.
    """
    from pacs_tui.inventory.loader import load_inventory_text

    inventory = load_inventory_text(
        "sites: [{name: dc, kind: datacenter}]\nservers:\n"
        "  - {name: a, role: storage, site: dc}\n  - {name: b, role: storage, site: dc}\n",
        "inv.yaml", check_files=False,
    )  # fmt: skip
    client = ServiceClient("http://127.0.0.1:9", Secret("unused"))  # never opened
    mirror = ServiceMirror(client, inventory, {"probes": {"ssh": 10.0}})
    told: list[dict[str, Any]] = []
    mirror.listeners.append(lambda kind, data: told.append(data) if kind == "snapshot" else None)
    now = time.time()

    def entry(server: str, health: str, history: list[float | None]) -> dict[str, Any]:
        result = {"state": "active", "health": health, "latency_ms": 5.0, "detail": "",
                  "observed_at": now, "facts": {}}  # fmt: skip
        changes = [{"at": now - 30 + i, "before": "ok", "after": "down", "detail": ""}
                   for i in range(3)]  # fmt: skip
        return {"server": server, "probe": "ssh", "result": result, "due_s": 20.0,
                "history": history, "changes": changes}  # fmt: skip

    old = {"instance": "old", "seq": 7, "now": now,
           "readings": [entry("a", "ok", [1.0, 2.0]), entry("b", "down", [None, 3.0])]}  # fmt: skip
    mirror._apply_snapshot(old)
    assert told[-1] == {"seq": "old:7", "restarted": False}
    assert len(mirror.state.changes("b", "ssh")) == 3
    mirror._apply_snapshot({**old, "seq": 9, "readings": []})  # a resync of the same run
    assert told[-1]["restarted"] is False and len(mirror.state.changes("b", "ssh")) == 3

    new = {"instance": "new", "seq": 1, "now": now, "readings": [entry("a", "ok", [4.0])]}
    mirror._apply_snapshot(new)
    assert told[-1] == {"seq": "new:1", "restarted": True}
    assert mirror.state.history("a", "ssh") == [4.0]
    b = mirror.state.latest("b", "ssh")
    assert b is not None and b.health.value == "down"  # kept, to age into STALE
    assert mirror.state.history("b", "ssh") == [] and mirror.state.changes("b", "ssh") == []
    assert mirror.state.due("b", "ssh") == 20.0
