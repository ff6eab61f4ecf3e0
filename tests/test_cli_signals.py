"""SIGTERM ends long-running commands as cleanly as Ctrl-C: every BMC session logged out.

The simulator (its own process) counts live Redfish sessions per BMC
(``GET /hosts/NAME/bmc`` → ``sessions``); a command killed by the default
SIGTERM action leaves one per BMC open until the BMC's idle timeout.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sim_process import RunningSim, running_sim, wait_until

PACS_TUI = [sys.executable, "-m", "pacs_tui"]
WATCHED = ["web-001", "web-002", "ris-001"]


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSim]:
    out = tmp_path_factory.mktemp("signal-sim") / "dc"
    with running_sim(out, "--servers", "12", "--time-scale", "0.05") as running:
        yield running


def control(sim: RunningSim, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        sim.control_url + path, data=data, method=method,
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def sessions(sim: RunningSim, names: list[str]) -> dict[str, int]:
    return {n: int(control(sim, "GET", f"/hosts/{n}/bmc")["sessions"]) for n in names}


def start(sim: RunningSim, data: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PACS_TUI_DATA_DIR": str(data)}
    return subprocess.Popen(
        [*PACS_TUI, *args, "--inventory", str(sim.out / "inventory.yaml")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip


def stop(process: subprocess.Popen[str], sig: signal.Signals) -> tuple[int, str, str]:
    process.send_signal(sig)
    try:
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, out, err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_status_watch_logs_out_on_sigterm_and_sigint(
    sim: RunningSim, tmp_path: Path, sig: signal.Signals
) -> None:
    assert sessions(sim, WATCHED) == dict.fromkeys(WATCHED, 0)
    process = start(
        sim, tmp_path, "status", "--watch", "--interval", "0.2", "--probe", "power",
        "--select", ",".join(WATCHED),
    )  # fmt: skip
    try:
        wait_until(
            lambda: all(n >= 1 for n in sessions(sim, WATCHED).values()),
            timeout=60, what="a Redfish session on every watched BMC",
        )  # fmt: skip
    except AssertionError:
        process.kill()
        raise
    code, out, err = stop(process, sig)
    assert code == 0, err
    assert "Traceback" not in err
    assert "healthy" in out
    assert sessions(sim, WATCHED) == dict.fromkeys(WATCHED, 0)
