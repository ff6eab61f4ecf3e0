"""``pacs-tui serve`` starts and stops cleanly: SIGTERM never leaves a BMC session open.

Counted at the simulator (its own process): each BMC's live Redfish sessions
and the resets it received. A service killed without logging out leaves one
session per BMC until the BMC's idle timeout (BMCs allow a handful).

- SIGTERM while idle, with a screen's event stream attached: exit 0 well
  within 30 s (an attached stream must not hold the exit), sessions logged out;
- SIGTERM while an ``off`` batch waits on servers that ignore the graceful
  shutdown: exit 0 within 30 s, the batch aborted and ended in the audit
  (``audit --interrupted`` names none), no BMC received a second reset, every
  session logged out;
- SIGTERM at any moment of start-up (real process, several moments; and in
  process, exactly after the poller started and before the port listens):
  no traceback, no session left;
- a port already in use: exit 2 with the reason, no session left.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from service_process import RunningService, add_token, free_port, running_service
from sim_process import RunningSim, audit_rows, running_sim, wait_until

PACS_TUI = [sys.executable, "-m", "pacs_tui"]
VICTIMS = ["web-001", "web-002", "ris-001"]  # leaves: an `off` of them needs no override
EXIT_WITHIN_S = 30.0


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSim]:
    out = tmp_path_factory.mktemp("serve-lifecycle-sim") / "dc"
    with running_sim(out, "--servers", "12", "--time-scale", "0.05") as running:
        yield running


def names(sim: RunningSim) -> list[str]:
    return [s["name"] for s in sim.servers()]


def sessions(sim: RunningSim) -> dict[str, int]:
    return {n: int(sim.control("GET", f"/hosts/{n}/bmc")["sessions"]) for n in names(sim)}


def resets(sim: RunningSim, name: str) -> list[Any]:
    return list(sim.control("GET", f"/hosts/{name}/bmc")["resets"])


def wait_for_logins(sim: RunningSim, before: dict[str, int]) -> list[str]:
    """Wait until the service's poller holds sessions (the first sweep); which BMCs."""
    wait_until(
        lambda: [n for n, c in sessions(sim).items() if c > before[n]] or None,
        timeout=60, what="a Redfish session opened by the service",
    )  # fmt: skip
    time.sleep(1.5)  # let the first sweep log in to the rest
    return [n for n, c in sessions(sim).items() if c > before[n]]


class EventStream:
    """A screen's event stream, read in a thread until the service ends it."""

    def __init__(self, service: RunningService) -> None:
        parts = urlsplit(service.url)
        self.connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=60)
        self.connection.request(
            "GET", "/api/v1/events",
            headers={"Authorization": f"Bearer {service.tokens['wall']}",
                     "Accept": "text/event-stream"},
        )  # fmt: skip
        self.response = self.connection.getresponse()
        assert self.response.status == 200
        self.received = 0
        self.ended = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        with contextlib.suppress(OSError, http.client.HTTPException):
            while chunk := self.response.read1(65536):
                self.received += len(chunk)
        self.ended.set()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.connection.close()


def sigterm(process: subprocess.Popen[str]) -> tuple[int, float]:
    """SIGTERM; (exit code, seconds until it exited). Killed (and failed) after 60 s."""
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail("serve did not exit within 60 s of SIGTERM")
    return code, time.monotonic() - started


# -- SIGTERM while idle ---------------------------------------------------------------


def test_sigterm_while_idle_with_a_screen_attached(
    sim: RunningSim, tmp_path: Path, private_data_dir: Path
) -> None:
    before = sessions(sim)
    with running_service(sim.out / "inventory.yaml", tmp_path / "svc") as service:
        logged_in = wait_for_logins(sim, before)
        stream = EventStream(service)  # a screen follows the service
        wait_until(lambda: stream.received > 0, timeout=20, what="the stream's snapshot")
        code, took = sigterm(service.process)
    stream.close()
    log = service.log_text()
    assert code == 0, log
    assert took < EXIT_WITHIN_S, f"exit took {took:.1f} s with a screen attached"
    print(f"idle SIGTERM with a screen attached: exit 0 in {took:.2f} s")
    assert "Traceback" not in log
    assert "stopping" in log
    assert stream.ended.wait(5), "the screen's stream was not ended"
    assert logged_in and sessions(sim) == before, log


# -- SIGTERM while a batch runs -------------------------------------------------------


def test_sigterm_mid_batch_aborts_audits_sends_no_second_reset_and_logs_out(
    sim: RunningSim, tmp_path: Path, private_data_dir: Path
) -> None:
    before_sessions = sessions(sim)
    before_resets = {n: len(resets(sim, n)) for n in VICTIMS}
    for name in VICTIMS:  # the OS ignores the shutdown: the batch waits on their power
        sim.control("POST", f"/hosts/{name}/faults", {"ignore_graceful_shutdown": True})
    try:
        with running_service(sim.out / "inventory.yaml", tmp_path / "svc") as service:
            wait_for_logins(sim, before_sessions)
            lead = service.tokens["lead"]
            wait_until(
                lambda: service.request("POST", "/api/v1/batches/plan", lead,
                                        {"verb": "off", "servers": VICTIMS})[0] == 200,
                timeout=30, what="a plan (every victim's PowerState read)",
            )  # fmt: skip
            status, plan = service.request(
                "POST", "/api/v1/batches/plan", lead, {"verb": "off", "servers": VICTIMS}
            )
            assert status == 200 and not plan["refused"], plan
            assert sorted(plan["touched"]) == sorted(VICTIMS)
            body: dict[str, Any] = {"verb": "off", "servers": VICTIMS,
                                    "expect": {"touched": plan["touched"]}}  # fmt: skip
            if plan["confirm"] is not None:
                body["confirm"] = plan["confirm"]
            status, started = service.request("POST", "/api/v1/batches", lead, body)
            assert status == 202, started
            batch = started["batch"]
            # Every victim got its GracefulShutdown; the batch now waits for power off.
            wait_until(
                lambda: all(len(resets(sim, n)) > before_resets[n] for n in VICTIMS),
                timeout=60, what="a reset at every victim's BMC",
            )  # fmt: skip
            status, current = service.request("GET", "/api/v1/batches/current", lead)
            assert status == 200 and current["running"], current
            stream = EventStream(service)
            code, took = sigterm(service.process)
            stream.close()
        log = service.log_text()
        assert code == 0, log
        assert took < EXIT_WITHIN_S, f"exit took {took:.1f} s"
        print(f"SIGTERM mid-batch: exit 0 in {took:.2f} s")
        assert "Traceback" not in log
        # No BMC received a second reset (no escalation, no retry on the way out).
        for name in VICTIMS:
            received = resets(sim, name)[before_resets[name] :]
            assert len(received) == 1, (name, received)
        assert sessions(sim) == before_sessions, log
        rows = [r for r in audit_rows(private_data_dir) if r["batch"] == batch]
        kinds = [r["kind"] for r in rows]
        assert "abort" in kinds, kinds
        assert rows[-1]["kind"] == "batch-end", kinds  # ended: not an interrupted batch
        assert "stopped" in (rows[-1]["detail"] + rows[-1]["outcome"]) or any(
            r["kind"] == "abort" and "stopped" in r["detail"] for r in rows
        ), rows
        env = {**os.environ, "PACS_TUI_DATA_DIR": str(private_data_dir)}
        done = subprocess.run(
            [*PACS_TUI, "audit", "--interrupted"], capture_output=True, text=True, env=env,
            timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "no interrupted batches" in done.stdout, done.stdout
    finally:
        for name in VICTIMS:
            sim.control("DELETE", f"/hosts/{name}/faults")


# -- SIGTERM during start-up ----------------------------------------------------------


def spawn_serve(
    sim: RunningSim, workdir: Path, tokens: Path, port: int, data: Path
) -> subprocess.Popen[str]:
    env = {**os.environ, "PACS_TUI_DATA_DIR": str(data)}
    return subprocess.Popen(
        [*PACS_TUI, "serve", "--inventory", str(sim.out / "inventory.yaml"),
         "--tokens", str(tokens), "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip


def test_sigterm_at_moments_of_start_up_leaves_nothing_open(
    sim: RunningSim, tmp_path: Path, private_data_dir: Path
) -> None:
    """The signal lands before Python handles it, while probes open, during the first
    logins or just after the port listens: never a traceback, never a session left."""
    tokens = tmp_path / "tokens.yaml"
    add_token(tokens, "lead", "operator")
    before = sessions(sim)
    # How long start-up takes here, to spread the signals over it.
    port = free_port()
    started = time.monotonic()
    process = spawn_serve(sim, tmp_path, tokens, port, private_data_dir)
    assert process.stdout is not None
    line = process.stdout.readline()
    ready = time.monotonic() - started
    assert "listening" in line, line + (process.stdout.read() if process.poll() else "")
    code, _ = sigterm(process)
    assert code == 0
    outcomes = []
    for fraction in (0.4, 0.8, 0.95, 1.2):
        process = spawn_serve(sim, tmp_path, tokens, free_port(), private_data_dir)
        time.sleep(ready * fraction)
        code, _ = sigterm(process)
        output = process.stdout.read() if process.stdout else ""
        outcomes.append((fraction, code, "listening" in output))
        # Killed by the signal before Python's handler was set up, or stopped cleanly.
        assert code in (0, -signal.SIGTERM), (fraction, code, output)
        assert "Traceback" not in output, output
        assert sessions(sim) == before, (fraction, code, output)
    print(f"start-up to listening {ready:.2f} s; (fraction, exit, listened): {outcomes}")


@pytest.fixture
def serve_args(sim: RunningSim, tmp_path: Path) -> tuple[Any, ...]:
    """What ``run_serve`` hands ``_serve``: args, inventory, text, tokens, tls, custody."""
    from pacs_tui.cli import load_fleet
    from pacs_tui.service.fleet_service import read_inventory_text
    from pacs_tui.service.tokens import load_tokens

    tokens = tmp_path / "tokens.yaml"
    add_token(tokens, "lead", "operator")
    path = sim.out / "inventory.yaml"
    args = argparse.Namespace(read_only=False, site="", link_interval=60.0)
    return args, load_fleet(path), read_inventory_text(path), load_tokens(tokens), None, None


async def test_cancelled_after_the_poller_started_before_listening_logs_out(
    sim: RunningSim, serve_args: tuple[Any, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What SIGTERM does (``run_until_signalled`` cancels the command's task), landing
    exactly where start-up has logged in to BMCs but does not listen yet."""
    from aiohttp import web

    from pacs_tui.cli.serve import _serve

    reached = asyncio.Event()

    async def hang(self: web.TCPSite) -> None:
        reached.set()
        await asyncio.Event().wait()

    monkeypatch.setattr(web.TCPSite, "start", hang)
    before = await asyncio.to_thread(sessions, sim)
    task = asyncio.create_task(_serve(*serve_args, "127.0.0.1", free_port()))
    await asyncio.wait_for(reached.wait(), 30)

    async def logged_in() -> bool:
        now = await asyncio.to_thread(sessions, sim)
        return any(now[n] > before[n] for n in now)

    deadline = time.monotonic() + 60
    while not await logged_in():
        assert time.monotonic() < deadline, "the poller never logged in"
        await asyncio.sleep(0.2)
    await asyncio.sleep(1.0)  # the rest of the first sweep
    task.cancel("stopped by SIGTERM")
    code = await asyncio.wait_for(task, 60)  # a CancelledError here: it did not stop itself
    assert code == 0
    assert not [t for t in asyncio.all_tasks() if t.get_name() in ("fleet-monitor",
                                                                   "service-tick")]  # fmt: skip
    assert await asyncio.to_thread(sessions, sim) == before


def test_a_port_in_use_exits_2_and_leaves_no_session(
    sim: RunningSim, tmp_path: Path, private_data_dir: Path
) -> None:
    tokens = tmp_path / "tokens.yaml"
    add_token(tokens, "lead", "operator")
    before = sessions(sim)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = spawn_serve(sim, tmp_path, tokens, port, private_data_dir)
        try:
            output, _ = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert process.returncode == 2, output
    assert f"cannot listen on 127.0.0.1:{port}" in output
    assert "Traceback" not in output
    time.sleep(1.0)  # a login in flight at the exit would show up now
    assert sessions(sim) == before
