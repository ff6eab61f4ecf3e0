"""Run ``pacs-tui sim`` as a separate process for tests that use blocking clients."""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


@dataclass
class RunningSim:
    """What a test needs to talk to a running simulator."""

    out: Path
    state: dict[str, Any]
    inventory: dict[str, Any]
    process: subprocess.Popen[str]

    @property
    def control_url(self) -> str:
        return str(self.state["control_url"])

    def servers(self, role: str | None = None) -> list[dict[str, Any]]:
        """Inventory entries, optionally of one role."""
        return [s for s in self.inventory["servers"] if role is None or s["role"] == role]

    @property
    def defaults(self) -> dict[str, Any]:
        return dict(self.inventory["defaults"])

    def control(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """One request to the simulator's control API; its JSON answer."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.control_url + path, data=data, method=method,
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.loads(answer.read())

    def bmc(self, name: str) -> dict[str, Any]:
        """What the simulated BMC of ``name`` counted: ``sessions``, ``resets``, requests."""
        return dict(self.control("GET", f"/hosts/{name}/bmc"))

    def bmc_credentials(self) -> tuple[str, str]:
        secrets = yaml.safe_load((self.out / "credentials.yaml").read_text())
        entry = secrets["bmc-admin"]
        return str(entry["username"]), str(entry["password"])


def random_octet() -> int:
    """A second loopback octet unlikely to clash with a parallel test."""
    return random.randint(100, 250)


@contextmanager
def running_sim(out: Path, *args: str, timeout: float = 60.0) -> Iterator[RunningSim]:
    """Start the simulator, wait until it wrote ``sim.json``, stop it on exit."""
    # Without --address-octet the simulator picks free addresses itself, moving on when
    # one is taken (a random octet given here failed when another simulator held it).
    cmd = [sys.executable, "-m", "pacs_tui", "sim", "--out", str(out), *args]
    log = (out.parent / f"{out.name}-sim.log").open("w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True)
    state_file = out / "sim.json"
    deadline = time.monotonic() + timeout
    try:
        while not state_file.exists():
            if proc.poll() is not None:
                raise RuntimeError(f"sim exited with {proc.returncode}: {log_text(out)}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"sim not ready in {timeout} s: {log_text(out)}")
            time.sleep(0.05)
        state = json.loads(state_file.read_text())
        inventory = yaml.safe_load((out / "inventory.yaml").read_text())
        yield RunningSim(out, state, inventory, proc)
    finally:
        stop_process(proc, 20)
        log.close()


def stop_process(process: subprocess.Popen[Any], timeout: float) -> None:
    """SIGTERM a child still running, wait ``timeout`` s for it, then SIGKILL it."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def audit_rows(data: Path, *, missing_ok: bool = False) -> list[dict[str, Any]]:
    """Every row of the audit log in data directory ``data``, oldest first.

    ``missing_ok``: no log yet reads as no rows (else sqlite's error surfaces).
    """
    path = data / "audit.sqlite3"
    if missing_ok and not path.exists():
        return []
    db = sqlite3.connect(path)
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute("SELECT * FROM events ORDER BY id")]
    finally:
        db.close()


def log_text(out: Path) -> str:
    path = out.parent / f"{out.name}-sim.log"
    return path.read_text()[-3000:] if path.exists() else ""


def wait_until(predicate: Any, timeout: float, interval: float = 0.1, what: str = "") -> Any:
    """Poll ``predicate`` until it returns a truthy value; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout} s waiting for {what or predicate} (last: {last!r})"
    )
