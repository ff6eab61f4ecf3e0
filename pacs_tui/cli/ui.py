"""``pacs-tui run``, ``wall`` and ``demo``: open the control room or the wall display.

Textual is imported inside the handlers only: the core never imports the UI
at module level (a test checks), and ``pacs-tui status`` never pays for it.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pacs_tui.cli import EXIT_OK, EXIT_USAGE

SIM_READY_TIMEOUT_S = 180.0


def register(subparsers: Any) -> None:
    """Add the ``run`` and ``demo`` subcommands."""
    run = subparsers.add_parser(
        "run",
        help="open the control room on an inventory",
        description="Open the live control room: fleet grid, detail pane, summary, event log.",
    )
    run.add_argument("--inventory", "-i", type=Path, required=True, help="inventory YAML file")
    run.add_argument(
        "--read-only", action="store_true", help="a session that can change nothing (no runner)"
    )
    run.add_argument("--config", type=Path, help="config file with a keymap (default: ~/.config)")
    run.set_defaults(handler=run_control_room)

    wall = subparsers.add_parser(
        "wall",
        help="open the read-only wall display on an inventory",
        description=(
            "The room's wall display: big numbers per state and site, servers down, hospitals "
            "and clinics affected, a warning when data is old; rotates pages. Always read-only: "
            "it has no action runner and needs no keyboard."
        ),
    )
    wall.add_argument("--inventory", "-i", type=Path, required=True, help="inventory YAML file")
    wall.add_argument(
        "--page-seconds", type=float, default=15.0, help="seconds per page (default 15)"
    )
    wall.set_defaults(handler=run_wall)

    demo = subparsers.add_parser(
        "demo",
        help="start the simulated data center and open the control room on it",
        description=(
            "Start `pacs-tui sim` in its own process on loopback (127.N.x.y), open the control "
            "room (or the wall display) on its inventory, and stop the simulator on exit."
        ),
    )
    demo.add_argument("--servers", type=int, default=300, help="fleet size (default 300)")
    demo.add_argument("--read-only", action="store_true", help="open a read-only session")
    demo.add_argument("--wall", action="store_true", help="open the wall display instead")
    demo.add_argument(
        "--time-scale", type=float, default=1.0, help="simulator boot/shutdown delay factor"
    )
    demo.add_argument("--config", type=Path, help="config file with a keymap")
    demo.set_defaults(handler=run_demo)


def _load(path: Path) -> Any:
    from pacs_tui.inventory import InventoryError, load_inventory

    try:
        return load_inventory(path)
    except InventoryError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return None


def _open_ui(inventory: Any, *, read_only: bool, wall: bool, config: Path | None) -> int:
    if wall:
        wall_app = importlib.import_module("pacs_tui_widgets.wall").WallApp(inventory)
        wall_app.run()
        return EXIT_OK
    app_module = importlib.import_module("pacs_tui_widgets.app")
    keymap = importlib.import_module("pacs_tui_widgets.keymap").load_keymap(config)
    app = app_module.ControlRoomApp(
        inventory, read_only=read_only or bool(inventory.read_only), keymap=keymap
    )
    result = app.run()
    return EXIT_OK if result is None else int(result)


def run_control_room(args: argparse.Namespace) -> int:
    """``pacs-tui run``."""
    inventory = _load(args.inventory)
    if inventory is None:
        return EXIT_USAGE
    return _open_ui(inventory, read_only=args.read_only, wall=False, config=args.config)


def run_wall(args: argparse.Namespace) -> int:
    """``pacs-tui wall``: always read-only."""
    if args.page_seconds <= 0:
        print("pacs-tui wall: error: --page-seconds must be > 0", file=sys.stderr)
        return EXIT_USAGE
    inventory = _load(args.inventory)
    if inventory is None:
        return EXIT_USAGE
    wall_app = importlib.import_module("pacs_tui_widgets.wall").WallApp(
        inventory, page_seconds=args.page_seconds
    )
    wall_app.run()
    return EXIT_OK


def run_demo(args: argparse.Namespace) -> int:
    """``pacs-tui demo``: simulator in its own process, then the UI on its inventory."""
    if args.servers < 7:
        print("pacs-tui demo: error: --servers must be at least 7", file=sys.stderr)
        return EXIT_USAGE
    if args.time_scale <= 0:
        print("pacs-tui demo: error: --time-scale must be > 0", file=sys.stderr)
        return EXIT_USAGE
    # SIGTERM must unwind through _simulator's cleanup, not leave the simulator running.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    out = Path(tempfile.mkdtemp(prefix="pacs-tui-demo-"))
    with _simulator(out, args.servers, args.time_scale) as ready:
        if not ready:
            return 1  # the folder stays: its sim.log says why
        try:
            inventory = _load(out / "inventory.yaml")
            if inventory is None:
                return 1
            return _open_ui(inventory, read_only=args.read_only, wall=args.wall, config=args.config)
        finally:
            # The folder holds the simulator's generated credentials: do not leave it.
            shutil.rmtree(out, ignore_errors=True)


@contextlib.contextmanager
def _simulator(out: Path, servers: int, time_scale: float) -> Any:
    """Run ``pacs-tui sim`` in a child process; yield whether it became ready."""
    octet = random.randint(100, 250)  # a random 127.N.0.0/16 so two demos do not collide
    command = [
        sys.executable, "-m", "pacs_tui", "sim",
        "--servers", str(servers),
        "--out", str(out),
        "--address-octet", str(octet),
        "--time-scale", str(time_scale),
    ]  # fmt: skip
    log_path = out / "sim.log"
    print(f"pacs-tui demo: starting {servers} simulated servers on 127.{octet}.x.y …")
    with log_path.open("w") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent
        )
        try:
            ready = _wait_ready(process, out / "sim.json", log_path)
            yield ready
        finally:
            _stop(process)


def _exit_on_signal(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def _die_with_parent() -> None:
    """In the child (Linux): get SIGTERM if the demo dies without cleaning up."""
    with contextlib.suppress(Exception):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _wait_ready(process: subprocess.Popen[bytes], state_file: Path, log_path: Path) -> bool:
    deadline = time.monotonic() + SIM_READY_TIMEOUT_S
    while not state_file.exists():
        if process.poll() is not None:
            print(
                f"pacs-tui demo: the simulator exited ({process.returncode}); see {log_path}:\n"
                + log_path.read_text()[-2000:],
                file=sys.stderr,
            )
            return False
        if time.monotonic() > deadline:
            print(f"pacs-tui demo: the simulator was not ready in time; see {log_path}")
            return False
        time.sleep(0.1)
    return True


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
