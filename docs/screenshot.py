"""Regenerate docs/images/control-room.svg: the control room on the embedded simulator.

Starts ``pacs-tui sim`` in its own process on a random 127.N.0.0/16 range,
plants two faults through its control API (one web viewer switched off at the
box, one edge gateway refusing DICOM associations), runs the control room
headless with Textual's pilot until every probe has read every server, and
saves Textual's own SVG screenshot. All traffic stays on loopback.

Usage::

    .venv/bin/python docs/screenshot.py [--servers 60] [--out docs/images/control-room.svg]

Exit 0 when the SVG was written; 1 when the simulator did not start or the
fleet did not settle in time (the message says which), and then nothing is
written: on a machine too busy for the probes to finish, the picture would
show a fleet of timeouts that a real one would not.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "docs" / "images" / "control-room.svg"
SIZE = (150, 44)  # columns × rows of the headless terminal
READY_S = 90.0  # simulator start and first readings, on a busy 2-core machine


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=60, help="fleet size (default 60)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="SVG file to write")
    args = parser.parse_args(argv)
    if args.servers < 7:
        parser.error("--servers must be at least 7")
    with tempfile.TemporaryDirectory(prefix="pacs-tui-screenshot-") as tmp:
        work = Path(tmp)
        # The session must not touch the operator's own audit log or config.
        os.environ["PACS_TUI_DATA_DIR"] = str(work / "data")
        os.environ["TZ"] = "UTC"
        time.tzset()
        sim = _start_simulator(work / "sim", args.servers)
        try:
            state = _wait_ready(sim, work / "sim" / "sim.json")
            if state is None:
                return 1
            _plant_faults(str(state["control_url"]), work / "sim" / "inventory.yaml")
            return asyncio.run(_shoot(work / "sim" / "inventory.yaml", args.out))
        finally:
            _stop(sim)


def _start_simulator(out: Path, servers: int) -> subprocess.Popen[bytes]:
    out.mkdir(parents=True)
    command = [
        sys.executable, "-m", "pacs_tui", "sim",
        "--servers", str(servers),
        "--out", str(out),
        "--address-octet", str(random.randint(100, 250)),
    ]  # fmt: skip
    log = (out.parent / "sim.log").open("wb")
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)


def _wait_ready(process: subprocess.Popen[bytes], state_file: Path) -> dict[str, Any] | None:
    deadline = time.monotonic() + READY_S
    while not state_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            log = (state_file.parent.parent / "sim.log").read_text(errors="replace")
            print(f"screenshot: the simulator did not start:\n{log[-2000:]}", file=sys.stderr)
            return None
        time.sleep(0.1)
    state: dict[str, Any] = json.loads(state_file.read_text())
    return state


def _plant_faults(control_url: str, inventory_file: Path) -> None:
    """A picture of a quiet fleet says little: show one DOWN server and one DOWN service."""
    import yaml

    servers = yaml.safe_load(inventory_file.read_text())["servers"]
    by_role: dict[str, str] = {}
    for server in servers:
        by_role.setdefault(server["role"], server["name"])
    if "web-viewer" in by_role:
        _post(control_url, f"/hosts/{by_role['web-viewer']}/power", {"reset_type": "ForceOff"})
    if "edge-gateway" in by_role:
        _post(control_url, f"/hosts/{by_role['edge-gateway']}/faults", {"dicom_reject": "busy"})


def _post(control_url: str, path: str, body: dict[str, Any]) -> None:
    request = urllib.request.Request(
        control_url.rstrip("/") + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as answer:  # loopback only
        answer.read()


async def _shoot(inventory_file: Path, out: Path) -> int:
    from pacs_tui.inventory import load_inventory
    from pacs_tui_widgets.app import ControlRoomApp
    from pacs_tui_widgets.keymap import KeymapConfig

    inventory = load_inventory(inventory_file)
    app = ControlRoomApp(
        inventory,
        keymap=KeymapConfig(),  # the default keys, whatever the user's config says
        theme_dir=Path("/nonexistent/pacs-tui-themes"),
    )
    async with app.run_test(size=SIZE) as pilot:
        deadline = time.monotonic() + READY_S
        while not _settled(app):
            if time.monotonic() > deadline:
                print(
                    "screenshot: the fleet did not settle (readings missing, unknown or stale);"
                    " is the machine busy? nothing written",
                    file=sys.stderr,
                )
                return 1
            await pilot.pause(0.5)
        # Worst power first, so the switched-off viewer is the top row, with its details open.
        await pilot.press("colon", *[("space" if c == " " else c) for c in "sort power"], "enter")
        await pilot.press("g", "enter")
        await pilot.pause(2.5)  # one more roll-up: summary bar and event log catch up
        out.parent.mkdir(parents=True, exist_ok=True)
        app.save_screenshot(filename=out.name, path=str(out.parent))
    print(f"screenshot: wrote {out}")
    return 0


def _settled(app: Any) -> bool:
    """Every probe has read every server, and no reading is unknown or stale.

    The two planted faults read DOWN, never UNKNOWN, so anything unknown is a
    probe that could not finish (a queued SSH login, a timeout on a busy machine).
    """
    from pacs_tui.plugin_api import Health

    for server, probes in app.applicable.items():
        for probe in probes:
            if app.state.latest(server, probe) is None:
                return False
            if app.state.reading(server, probe).health in (Health.UNKNOWN, Health.STALE):
                return False
    return True


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


if __name__ == "__main__":
    sys.exit(main())
