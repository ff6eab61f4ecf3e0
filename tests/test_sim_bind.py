"""Simulators side by side: the default picks free addresses; a forced clash is one line.

Real ``pacs-tui sim`` processes on loopback, as an operator starts them.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from pacs_tui.cli.sim import AUTO_OCTETS
from pacs_tui.sim.listen import ListenError

READY_TIMEOUT_S = 90.0
SIM = [sys.executable, "-m", "pacs_tui", "sim", "--servers", "7", "--no-tls"]


@contextmanager
def simulators(tmp_path: Path, *extra: list[str]) -> Iterator[list[subprocess.Popen[str]]]:
    """Start one ``pacs-tui sim`` per argument list at once; stop them all on exit."""
    processes = []
    for i, args in enumerate(extra):
        out = tmp_path / f"sim{i}"
        processes.append(
            subprocess.Popen(
                [*SIM, "--out", str(out), *args],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    try:
        yield processes
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_ready(out: Path, process: subprocess.Popen[str]) -> dict[str, object]:
    state = out / "sim.json"
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not state.exists():
        if process.poll() is not None:
            _, err = process.communicate()
            pytest.fail(f"simulator exited with {process.returncode}: {err}", pytrace=False)
        assert time.monotonic() < deadline, f"simulator not ready in {READY_TIMEOUT_S} s"
        time.sleep(0.1)
    loaded: dict[str, object] = json.loads(state.read_text())
    return loaded


def accepts(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=5):
            return True
    except OSError:
        return False


def test_two_simulators_started_at_once_both_come_up(tmp_path: Path) -> None:
    with simulators(tmp_path, [], []) as (first, second):
        states = [wait_ready(tmp_path / "sim0", first), wait_ready(tmp_path / "sim1", second)]
        octets = [int(str(s["address_octet"])) for s in states]
        assert octets[0] != octets[1]
        assert all(octet in AUTO_OCTETS for octet in octets)
        for octet, folder in zip(octets, ("sim0", "sim1"), strict=True):
            # Each one serves on its own addresses, and its inventory says so.
            assert accepts(f"127.{octet}.0.1", 8443)
            assert f"address: 127.{octet}.0.1" in (tmp_path / folder / "inventory.yaml").read_text()


def test_a_simulator_forced_onto_taken_addresses_says_so(tmp_path: Path) -> None:
    with simulators(tmp_path, []) as (first,):
        octet = wait_ready(tmp_path / "sim0", first)["address_octet"]
        result = subprocess.run(
            [*SIM, "--out", str(tmp_path / "clash"), "--address-octet", str(octet)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 2
        assert result.stderr.startswith(
            f"pacs-tui sim: error: cannot listen on 127.{octet}.0.1:8443 (Redfish BMC): "
            "address already in use; another simulator (or program) holds it"
        ), result.stderr
        assert "Traceback" not in result.stderr
        assert first.poll() is None  # the first one is untouched
        assert accepts(f"127.{octet}.0.1", 8443)


def test_a_port_taken_by_another_program_is_named(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = subprocess.run(
            [*SIM, "--out", str(tmp_path / "sim"), "--control-port", str(port)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port} (control API): address already in use" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr


def test_listen_error_keeps_the_cause() -> None:
    error = ListenError("SSH", "127.9.0.1", 22, PermissionError(13, "Permission denied"))
    assert str(error) == "cannot listen on 127.9.0.1:22 (SSH): permission denied"
    assert not error.in_use and error.errno == 13
