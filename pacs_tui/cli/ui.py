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

from pacs_tui.cli import EXIT_OK, EXIT_UNHEALTHY, EXIT_USAGE
from pacs_tui.cli.power_baseline import add_power_baseline_argument, power_baseline_settings

SIM_READY_TIMEOUT_S = 180.0
ATTACH_RETRY_S = 0.5  # a screen waiting for its service: first retry, doubling to
ATTACH_RETRY_MAX_S = 10.0
# The UI stopped on an error nobody handled (sysexits' EX_SOFTWARE): not 1, which
# means "the checked thing is unhealthy" everywhere else in the CLI.
EXIT_CRASH = 70
MOVE_WEEKEND = "move-weekend"


def _move_arguments(parser: Any) -> None:
    parser.add_argument(
        "--runbook", type=Path, help="runbook YAML: show the current phase and the clock"
    )
    parser.add_argument(
        "--custody",
        action="store_true",
        help="show the custody board of the data directory (the control room can advance it)",
    )
    parser.add_argument(
        "--board", type=Path, help="custody board file (default: $PACS_TUI_DATA_DIR/custody.json)"
    )


def _connect_arguments(parser: Any) -> None:
    parser.add_argument(
        "--connect", metavar="URL", action="append",
        help="attach to a `pacs-tui serve` at URL instead of polling the fleet from here; "
        "repeat for several services (one grid)",
    )  # fmt: skip
    parser.add_argument(
        "--token-file", type=Path, metavar="FILE", action="append",
        help="the service's bearer token (first line of FILE; default $PACS_TUI_TOKEN); "
        "one for every --connect, or one per --connect in the same order",
    )  # fmt: skip
    parser.add_argument(
        "--ca-file",
        type=Path,
        metavar="PEM",
        help="CA that signed an https:// service's certificate",
    )


def register(subparsers: Any) -> None:
    """Add the ``run`` and ``demo`` subcommands."""
    run = subparsers.add_parser(
        "run",
        help="open the control room on an inventory",
        description="Open the live control room: fleet grid, detail pane, summary, event log.",
    )
    run.add_argument("--inventory", "-i", type=Path, help="inventory YAML file (or --connect)")
    _connect_arguments(run)
    run.add_argument(
        "--read-only", action="store_true", help="a session that can change nothing (no runner)"
    )
    run.add_argument("--config", type=Path, help="config file with a keymap (default: ~/.config)")
    run.add_argument(
        "--baseline-compare",
        nargs=2,
        type=Path,
        metavar=("BEFORE", "AFTER"),
        help="open the baseline view on two baseline files at start (as :baseline)",
    )
    add_power_baseline_argument(run)
    _move_arguments(run)
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
    wall.add_argument("--inventory", "-i", type=Path, help="inventory YAML file (or --connect)")
    _connect_arguments(wall)
    wall.add_argument(
        "--page-seconds", type=float, default=15.0, help="seconds per page (default 15)"
    )
    _move_arguments(wall)
    wall.add_argument(
        "--web", action="store_true",
        help="serve the wall to browsers (the room's TV) with textual-serve; needs --connect",
    )  # fmt: skip
    wall.add_argument(
        "--web-listen", metavar="ADDR:PORT",
        help="with --web: address and port to listen on (default 127.0.0.1:8766, loopback)",
    )  # fmt: skip
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
        "--time-scale",
        type=float,
        default=None,
        help="simulator boot/shutdown delay factor (default 1, move-weekend 0.05)",
    )
    demo.add_argument(
        "--scenario",
        choices=(MOVE_WEEKEND,),
        help="play a scenario live: move-weekend runs the whole rehearsal in the background",
    )
    demo.add_argument("--config", type=Path, help="config file with a keymap")
    demo.add_argument(
        "--bmc-mix",
        metavar="FLAVOUR=WEIGHT,...",
        help="BMC flavours and weights of the simulated fleet (see `pacs-tui sim --help`)",
    )
    demo.set_defaults(handler=run_demo)


def _load(path: Path) -> Any:
    """The inventory with recorded replacements applied (``pacs-tui replace``), or None
    after printing every problem."""
    from pacs_tui.inventory import InventoryError, load_inventory
    from pacs_tui.replacements import ReplacementsError, load_applied

    try:
        return load_applied(load_inventory(path))
    except InventoryError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return None
    except ReplacementsError as exc:
        print(f"{exc} (fix or move the replacements file)", file=sys.stderr)
        return None


def _open_ui(
    inventory: Any, *, read_only: bool, wall: bool, config: Path | None, **move: Any
) -> int:
    """Run the wall or the control room; ``move`` holds custody/runbook/live_phases."""
    if wall:
        wall_app = importlib.import_module("pacs_tui_widgets.wall").WallApp(inventory, **move)
        return _run_app(wall_app)
    app_module = importlib.import_module("pacs_tui_widgets.app")
    keymap = importlib.import_module("pacs_tui_widgets.keymap").load_keymap(config)
    app = app_module.ControlRoomApp(
        inventory, read_only=read_only or bool(inventory.read_only), keymap=keymap, **move
    )
    return _run_app(app)


def _run_app(app: Any) -> int:
    """Run a Textual app with logging to the UI log file; its exit status.

    Textual sets ``return_code`` to 1 when an unhandled error stopped the app
    (the app has logged it and Textual has printed why): ``EXIT_CRASH``, never 0.
    """
    from pacs_tui.cli.signals import app_exits_on_sigterm
    from pacs_tui.cli.ui_log import logging_to_file

    with logging_to_file(), app_exits_on_sigterm(app):  # SIGTERM: unmount, log out
        result = app.run()
    if app.return_code:
        return EXIT_CRASH
    return EXIT_OK if result is None else int(result)


def _move_parts(args: argparse.Namespace, inventory: Any) -> dict[str, Any] | None:
    """The runbook and custody board asked for on the command line (None: bad input)."""
    from pacs_tui.custody import CustodyBoard, CustodyError
    from pacs_tui.runbook import RunbookError, load_runbook

    parts: dict[str, Any] = {}
    if args.runbook is not None:
        try:
            parts["runbook"] = load_runbook(args.runbook)
        except RunbookError as exc:
            for problem in exc.problems:
                print(problem, file=sys.stderr)
            return None
        except OSError as exc:
            print(f"pacs-tui: error: {args.runbook}: {exc.strerror}", file=sys.stderr)
            return None
    if args.custody or args.board is not None:
        try:
            parts["custody"] = CustodyBoard.open(inventory, path=args.board)
        except (OSError, ValueError, CustodyError) as exc:
            print(f"pacs-tui: error: custody board: {exc}", file=sys.stderr)
            return None
    return parts


def _source(args: argparse.Namespace, command: str) -> tuple[Any, Any] | int:
    """``(inventory, mirror or None)`` from ``--inventory`` or ``--connect``; else an exit code."""
    if (args.inventory is None) == (args.connect is None):
        print(f"pacs-tui {command}: error: give --inventory FILE or --connect URL", file=sys.stderr)
        return EXIT_USAGE
    if args.connect is None:
        if args.token_file or args.ca_file is not None:
            print(f"pacs-tui {command}: error: --token-file/--ca-file go with --connect",
                  file=sys.stderr)  # fmt: skip
            return EXIT_USAGE
        inventory = _load(args.inventory)
        return EXIT_USAGE if inventory is None else (inventory, None)
    if getattr(args, "custody", False) or getattr(args, "board", None) is not None:
        print(
            f"pacs-tui {command}: error: --custody/--board read this machine's board; an "
            "attached screen shows the service's board when it serves one "
            "(`pacs-tui serve --custody`)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    import asyncio

    from pacs_tui.inventory import InventoryError
    from pacs_tui.remote.client import (
        ServiceClient,
        ServiceError,
        ServiceUnavailable,
        check_url,
        load_token,
    )
    from pacs_tui.remote.mirror import ServiceMirror

    urls: list[str] = args.connect
    token_files: list[Path | None] = list(args.token_file or [None])
    if len(token_files) == 1:
        token_files = token_files * len(urls)
    if len(token_files) != len(urls):
        print(f"pacs-tui {command}: error: give one --token-file, or one per --connect "
              f"({len(urls)})", file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    try:
        clients = [
            ServiceClient(check_url(url), load_token(token), ca_file=args.ca_file)
            for url, token in zip(urls, token_files, strict=True)
        ]
    except ValueError as exc:
        print(f"pacs-tui {command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if len({c.url for c in clients}) != len(clients):
        print(f"pacs-tui {command}: error: the same --connect URL twice", file=sys.stderr)
        return EXIT_USAGE
    attached = []
    for client in clients:
        try:
            inventory, service = asyncio.run(_attach_waiting(client, command))
        except ServiceError as exc:
            print(f"pacs-tui {command}: error: {client.url}: {exc.reason}", file=sys.stderr)
            return EXIT_USAGE if exc.status in (401, 403) else EXIT_UNHEALTHY
        except ServiceUnavailable as exc:  # only what waiting cannot fix (a certificate)
            print(f"pacs-tui {command}: error: cannot attach: {exc}", file=sys.stderr)
            return EXIT_UNHEALTHY
        except InventoryError as exc:
            for problem in exc.problems:
                print(problem, file=sys.stderr)
            return EXIT_UNHEALTHY
        attached.append((client, inventory, service))
    if len(attached) == 1:
        client, inventory, service = attached[0]
        return inventory, ServiceMirror(client, inventory, service)
    from pacs_tui.remote.federation import FederationError, FleetFederation

    try:
        federation = FleetFederation.build(attached)
    except FederationError as exc:
        print(f"pacs-tui {command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return federation.inventory, federation


async def _attach_waiting(client: Any, command: str) -> Any:
    """``attach(client)``, waiting for a service that is not there yet.

    A wall switched on before its service (a power cut of the room, a reboot
    order) must come up by itself: an unreachable service is retried with
    backoff (``ATTACH_RETRY_S`` doubling to ``ATTACH_RETRY_MAX_S``), saying so
    on stderr once per new reason; a refusal (``ServiceError``: a bad token)
    is not retried. Ctrl-C gives up.
    """
    import asyncio

    from pacs_tui.remote.client import ServiceUnavailable
    from pacs_tui.remote.mirror import attach

    delay, said = ATTACH_RETRY_S, ""
    while True:
        try:
            return await attach(client)
        except ServiceUnavailable as exc:
            if "certificate" in str(exc).lower():
                raise  # a CA or name that does not match is no outage: waiting will not fix it
            if str(exc) != said:
                said = str(exc)
                print(f"pacs-tui {command}: waiting for the service: {exc} "
                      "(retrying; Ctrl-C gives up)", file=sys.stderr)  # fmt: skip
        await asyncio.sleep(delay)
        delay = min(delay * 2, ATTACH_RETRY_MAX_S)


def _remote_batches(source: Any) -> Any:
    """Batches through the one service, or through each server's own (several)."""
    from pacs_tui.remote.batches import RemoteBatches
    from pacs_tui.remote.federation import FederatedBatches, FleetFederation

    if isinstance(source, FleetFederation):
        return FederatedBatches(source)
    return RemoteBatches(source.client, source)


def _service_custody(source: Any) -> dict[str, Any]:
    """``{"custody": ServiceCustody}`` when the service (every service) serves a board, else {}.

    With several services each server's state is its own service's; when only
    some serve a board none is shown, and stderr says why: a partial board
    would show the others' servers as "running" without anyone knowing.
    """
    from pacs_tui.remote.custody import ServiceCustody

    mirrors = list(getattr(source, "mirrors", None) or [source])
    serving = [m for m in mirrors if m.service.get("custody")]
    if not serving:
        return {}
    if len(serving) != len(mirrors):
        missing = ", ".join(m.label for m in mirrors if not m.service.get("custody"))
        print(f"pacs-tui: warning: no custody board shown: {missing} serves none "
              "(serve --custody)", file=sys.stderr)  # fmt: skip
        return {}
    return {"custody": ServiceCustody(*serving)}


def run_control_room(args: argparse.Namespace) -> int:
    """``pacs-tui run``."""
    got = _source(args, "run")
    if isinstance(got, int):
        return got
    inventory, mirror = got
    if args.baseline_compare is not None:
        from pacs_tui.baseline.model import BaselineError, load_baseline

        try:  # a bad file is reported here, named with its field, before any screen opens
            for path in args.baseline_compare:
                load_baseline(path)
        except BaselineError as exc:
            print(f"pacs-tui run: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
    move = _move_parts(args, inventory)
    if move is None:
        return EXIT_USAGE
    extra: dict[str, Any] = (
        {} if args.baseline_compare is None else {"baseline_compare": tuple(args.baseline_compare)}
    )
    settings = power_baseline_settings(args.power_baseline, "run")
    if settings is None:
        return EXIT_USAGE
    if settings and mirror is not None:
        print("pacs-tui run: error: --power-baseline is the service's (serve --power-baseline) "
              "when attached with --connect", file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    if settings:
        extra["settings"] = settings
    if mirror is not None:
        extra.update(source=mirror, remote=_remote_batches(mirror))
        move.update(_service_custody(mirror))
    try:
        return _open_ui(
            inventory, read_only=args.read_only, wall=False, config=args.config, **move, **extra
        )
    finally:
        if "custody" in move and hasattr(move["custody"], "close"):  # a file board's audit log
            move["custody"].close()


def run_wall(args: argparse.Namespace) -> int:
    """``pacs-tui wall``: always read-only."""
    if args.page_seconds <= 0:
        print("pacs-tui wall: error: --page-seconds must be > 0", file=sys.stderr)
        return EXIT_USAGE
    if args.web or args.web_listen is not None:  # one process per browser, each --connect
        from pacs_tui.cli.wall_web import run_wall_web

        return run_wall_web(args)
    got = _source(args, "wall")
    if isinstance(got, int):
        return got
    inventory, mirror = got
    move = _move_parts(args, inventory)
    if move is None:
        return EXIT_USAGE
    if mirror is not None:
        move.update(monitor=mirror, owns_monitor=True, **_service_custody(mirror))
    wall_app = importlib.import_module("pacs_tui_widgets.wall").WallApp(
        inventory, page_seconds=args.page_seconds, **move
    )
    return _run_app(wall_app)


def run_demo(args: argparse.Namespace) -> int:
    """``pacs-tui demo``: simulator in its own process, then the UI on its inventory."""
    if args.servers < 7:
        print("pacs-tui demo: error: --servers must be at least 7", file=sys.stderr)
        return EXIT_USAGE
    if args.time_scale is not None and args.time_scale <= 0:
        print("pacs-tui demo: error: --time-scale must be > 0", file=sys.stderr)
        return EXIT_USAGE
    if args.bmc_mix is not None:
        from pacs_tui.sim.redfish_flavour import parse_mix

        try:
            parse_mix(args.bmc_mix)  # fail here, not in the child simulator
        except ValueError as exc:
            print(f"pacs-tui demo: error: --bmc-mix: {exc}", file=sys.stderr)
            return EXIT_USAGE
    if args.scenario == MOVE_WEEKEND:
        return _play_move_weekend(args)
    # SIGTERM must unwind through _simulator's cleanup, not leave the simulator running.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    out = Path(tempfile.mkdtemp(prefix="pacs-tui-demo-"))
    with _simulator(out, args.servers, args.time_scale or 1.0, args.bmc_mix) as ready:
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
def _simulator(out: Path, servers: int, time_scale: float, bmc_mix: str | None = None) -> Any:
    """Run ``pacs-tui sim`` in a child process; yield whether it became ready."""
    octet = random.randint(100, 250)  # a random 127.N.0.0/16 so two demos do not collide
    command = [
        sys.executable, "-m", "pacs_tui", "sim",
        "--servers", str(servers),
        "--out", str(out),
        "--address-octet", str(octet),
        "--time-scale", str(time_scale),
        *(("--bmc-mix", bmc_mix) if bmc_mix else ()),
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


def _play_move_weekend(args: argparse.Namespace) -> int:
    """``pacs-tui demo --scenario move-weekend``: the rehearsal acts, a read-only UI watches.

    The rehearsal runs in its own thread and event loop (its latency samples must
    not queue behind screen redraws); it starts the simulator, and the UI opens on
    the simulator's inventory and the rehearsal's custody board as soon as both
    exist. Quitting the UI cancels the rehearsal, which stops its simulator.
    """
    from pacs_tui.rehearsal import RehearsalOptions

    signal.signal(signal.SIGTERM, _exit_on_signal)
    report = Path(tempfile.mkdtemp(prefix="pacs-tui-move-weekend-"))
    options = RehearsalOptions(
        report_dir=report, servers=args.servers, time_scale=args.time_scale or 0.05
    )
    live = LiveRehearsalThread(options)
    print(f"pacs-tui demo: rehearsing the move weekend on {args.servers} simulated servers …")
    live.start()
    try:
        opened = live.wait_for_simulator(SIM_READY_TIMEOUT_S)
        if opened is None:
            print(f"pacs-tui demo: the rehearsal did not start; see {report}", file=sys.stderr)
            return 1
        inventory_path, board_path = opened
        inventory = _load(inventory_path)
        if inventory is None:
            return 1
        from pacs_tui.custody import CustodyBoard

        board = CustodyBoard.open(inventory, path=board_path)  # read by the UI only
        code = _open_ui(
            inventory, read_only=True, wall=args.wall, config=args.config,
            custody=board, live_phases=live.drain,
        )  # fmt: skip
    finally:
        live.stop()
    result = live.result
    if result is not None:
        verdict = "PASSED" if result.ok else f"NOT PROVEN (stopped at {result.stopped_at})"
        print(f"pacs-tui demo: rehearsal {verdict}; report in {report}")
    else:
        print(f"pacs-tui demo: rehearsal stopped before its end; report in {report}")
    return code


class LiveRehearsalThread:
    """A ``Rehearsal`` run in a background thread, telling a UI its phases."""

    def __init__(self, options: Any) -> None:
        import queue
        import threading

        self.options = options
        self.result: Any = None
        self._phases: queue.SimpleQueue[tuple[str, str]] = queue.SimpleQueue()
        self._opened: tuple[Path, Path] | None = None
        self._ready = threading.Event()
        self._loop: Any = None
        self._task: Any = None
        self._thread = threading.Thread(target=self._run, name="rehearsal", daemon=True)

    def start(self) -> None:
        """Start the rehearsal."""
        self._thread.start()

    def wait_for_simulator(self, timeout_s: float) -> tuple[Path, Path] | None:
        """``(inventory path, custody board path)`` once the simulator is up, else None."""
        self._ready.wait(timeout_s)
        return self._opened

    def drain(self) -> list[tuple[str, str]]:
        """The ``(phase, log line)`` pairs since the last call."""
        items = []
        while not self._phases.empty():
            items.append(self._phases.get_nowait())
        return items

    def stop(self) -> None:
        """Cancel the rehearsal if it still runs (it stops its simulator), then wait."""
        loop, task = self._loop, self._task
        if loop is not None and task is not None and not task.done():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(task.cancel)
        self._thread.join(60)

    def _run(self) -> None:
        import asyncio

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._task = asyncio.current_task()
            rehearsal = _live_rehearsal(self.options, self._phases.put, self._simulator_up)
            try:
                self.result = await rehearsal.run()
            finally:
                self._ready.set()  # never leave the UI side waiting
            verdict = "PASSED" if self.result.ok else "NOT PROVEN"
            self._phases.put(("done", f"rehearsal {verdict} in {self.result.elapsed_s:.0f} s"))

        with contextlib.suppress(BaseException):  # cancelled on quit; the result says why
            asyncio.run(main())
        self._ready.set()

    def _simulator_up(self, inventory_path: Path, board_path: Path) -> None:
        self._opened = (inventory_path, board_path)
        self._ready.set()


def _live_rehearsal(options: Any, put: Any, on_simulator: Any) -> Any:
    """A ``Rehearsal`` that also reports each phase's start and end to ``put``."""
    from collections.abc import AsyncIterator

    from pacs_tui.rehearsal import PhaseOutcome, Rehearsal

    class LiveRehearsal(Rehearsal):
        @contextlib.asynccontextmanager
        async def phase(self, name: str, kind: str) -> AsyncIterator[PhaseOutcome]:
            put((name, f"rehearsal phase: {name} …"))
            outcome: PhaseOutcome | None = None
            try:
                async with super().phase(name, kind) as outcome:
                    yield outcome
            finally:
                if outcome is not None:
                    mark = "ok" if outcome.ok else "FAILED"
                    put((name, f"rehearsal phase: {name}: {mark}: {outcome.summary}"))

    return LiveRehearsal(options, on_simulator=on_simulator)
