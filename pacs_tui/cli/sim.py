"""``pacs-tui sim``: run the simulated data center until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fnmatch
import json
import os
import resource
import signal
import socket
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pacs_tui.cli import EXIT_OK, EXIT_USAGE

if TYPE_CHECKING:
    from pacs_tui.sim.datacenter import SimulatedDataCenter
    from pacs_tui.sim.faults import PlannedFault
    from pacs_tui.sim.listen import ListenError

# Second octets tried when none is given: 42 first (what the docs show), never the
# 100..250 that tests, demos and rehearsals pick at random.
AUTO_OCTETS = tuple(range(42, 100))
# A taken address costs a whole fleet build: give up after this many tries.
MAX_START_ATTEMPTS = 12


def register(subparsers: Any) -> None:
    """Add the ``sim`` subcommand."""
    p = subparsers.add_parser(
        "sim",
        help="run the simulated PACS data center on loopback",
        description="Run a simulated data center (Redfish BMCs, DICOM, SSH) on 127.0.0.0/8.",
    )
    p.add_argument("--servers", type=int, default=300, help="fleet size (default 300)")
    p.add_argument(
        "--spares",
        type=int,
        default=2,
        help="boxes in the spares pool, powered off, listed under the inventory's spares: "
        "(default 2; 0..250)",
    )
    p.add_argument(
        "--out", type=Path, help="folder for inventory, CA, keys (default: a new temp dir)"
    )
    p.add_argument("--bmc-username", default="admin", help="BMC user name (default admin)")
    p.add_argument(
        "--bmc-password",
        help="BMC password (default: $PACS_TUI_SIM_BMC_PASSWORD, else generated)",
    )
    p.add_argument("--faults", type=Path, help="YAML file of faults to plant at start")
    p.add_argument("--seed", type=int, default=7, help="fleet seed (same seed, same fleet)")
    p.add_argument(
        "--address-octet",
        type=int,
        help=f"servers live on 127.OCTET.x.y (default: the first free one of "
        f"{AUTO_OCTETS[0]}..{AUTO_OCTETS[-1]}, so two simulators can run side by side)",
    )
    p.add_argument("--bmc-port", type=int, default=8443)
    p.add_argument("--dicom-port", type=int, default=11112)
    p.add_argument("--ssh-port", type=int, default=2222)
    p.add_argument("--control-port", type=int, default=0, help="control API port (0: any free)")
    p.add_argument("--no-tls", action="store_true", help="serve Redfish over plain HTTP")
    p.add_argument(
        "--bmc-mix",
        metavar="FLAVOUR=WEIGHT,...",
        help=(
            "BMC flavours and their weights in the fleet, e.g. generic=4,blade-enclosure=1,"
            "slow-login=1 (default: generic=0.4,no-graceful-restart=0.2,strict-state=0.2,"
            "task-monitor=0.2)"
        ),
    )
    p.add_argument(
        "--time-scale", type=float, default=1.0, help="multiply boot/shutdown delays (default 1)"
    )
    p.set_defaults(handler=run_sim)


def _usage_error(message: str) -> int:
    print(f"pacs-tui sim: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def run_sim(args: argparse.Namespace) -> int:
    """Validate arguments, then serve until SIGINT/SIGTERM."""
    from pacs_tui.sim.faults import FaultFileError, load_fault_plan
    from pacs_tui.sim.redfish_flavour import parse_mix

    if args.servers < 7:
        return _usage_error("--servers must be at least 7")
    if not 0 <= args.spares <= 250:
        return _usage_error("--spares must be 0..250")
    if args.address_octet is not None and not 1 <= args.address_octet <= 254:
        return _usage_error("--address-octet must be 1..254")
    if args.time_scale <= 0:
        return _usage_error("--time-scale must be > 0")
    for name in ("bmc_port", "dicom_port", "ssh_port"):
        if not 1 <= getattr(args, name) <= 65535:
            return _usage_error(f"--{name.replace('_', '-')} must be 1..65535")
    if args.bmc_mix is not None:
        try:
            args.bmc_mix = parse_mix(args.bmc_mix)
        except ValueError as exc:
            return _usage_error(f"--bmc-mix: {exc}")
    plan = []
    if args.faults is not None:
        try:
            plan = load_fault_plan(args.faults)
        except FaultFileError as exc:
            return _usage_error(str(exc))
    out = args.out or Path(tempfile.mkdtemp(prefix="pacs-tui-sim-"))
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return _usage_error(f"--out {out}: {(exc.strerror or str(exc)).lower()}")
    _raise_open_file_limit()
    return asyncio.run(_serve(args, out, plan))


def _raise_open_file_limit() -> None:
    """Each server holds up to three listeners plus connections: lift the soft fd limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(
                resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 65536, hard)
            )


def _free_octets(port: int) -> Iterator[int]:
    """Candidate octets whose first address still has ``port`` free.

    Only a hint (another process may bind in between): a start that meets a
    taken address moves on to the next octet anyway.
    """
    for octet in AUTO_OCTETS:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio binds
            try:
                probe.bind((f"127.{octet}.0.1", port))
            except OSError:
                continue
        yield octet


def _listen_failed(exc: ListenError, explicit: bool) -> int:
    hint = ""
    if exc.in_use:
        hint = (
            "; another simulator (or program) holds it: choose another --address-octet or "
            "leave it out to pick free addresses"
            if explicit
            else "; choose other ports (--bmc-port, --dicom-port, --ssh-port)"
        )
    return _usage_error(f"{exc}{hint}")


def _plant(center: SimulatedDataCenter, plan: list[PlannedFault], faults: Path | None) -> str:
    """Put the planned faults on the hosts; the problem (file:line: reason) or ''."""
    for planned in plan:
        matches = [n for n in center.hosts if fnmatch.fnmatchcase(n, planned.servers)]
        if not matches:
            return f"{faults}:{planned.line}: servers: {planned.servers!r} matches no server"
        for name in matches:
            try:
                center.check_faults(name, planned.changes)
            except ValueError as exc:
                return f"{faults}:{planned.line}: {exc}"
            center.hosts[name].faults.update(planned.changes)
    return ""


async def _start(
    args: argparse.Namespace, plan: list[PlannedFault], stop: asyncio.Event
) -> SimulatedDataCenter | int:
    """A started data center, or the exit code after saying why there is none."""
    from pacs_tui.sim.datacenter import SimOptions, SimulatedDataCenter
    from pacs_tui.sim.listen import ListenError

    options = SimOptions(
        servers=args.servers,
        seed=args.seed,
        bmc_port=args.bmc_port,
        dicom_port=args.dicom_port,
        ssh_port=args.ssh_port,
        tls=not args.no_tls,
        bmc_username=args.bmc_username,
        time_scale=args.time_scale,
        spares=args.spares,
    )
    if args.bmc_mix is not None:
        options.bmc_mix = args.bmc_mix
    password = args.bmc_password or os.environ.get("PACS_TUI_SIM_BMC_PASSWORD")
    if password:
        options.bmc_password = password
    explicit = args.address_octet is not None
    octets = iter([args.address_octet]) if explicit else _free_octets(args.bmc_port)
    taken: list[str] = []
    for octet in octets:
        if stop.is_set() or len(taken) >= MAX_START_ATTEMPTS:
            break
        options.address_octet = octet
        center = SimulatedDataCenter(options)
        problem = _plant(center, plan, args.faults)
        if problem:
            return _usage_error(problem)
        try:
            await center.start()  # closes what it opened when a bind fails
        except ListenError as exc:
            if explicit or not exc.in_use:
                return _listen_failed(exc, explicit)
            taken.append(f"{exc.address}:{exc.port}")
            continue
        return center
    if stop.is_set():
        return 130
    tried = ", ".join(taken) if taken else f"127.{AUTO_OCTETS[0]}-{AUTO_OCTETS[-1]}.0.1"
    return _usage_error(
        f"no free addresses for the simulator: port {args.bmc_port} is in use on {tried}; "
        "stop other simulators or give --address-octet and other ports"
    )


async def _serve(args: argparse.Namespace, out: Path, plan: list[Any]) -> int:
    from pacs_tui.sim.control import ControlApi
    from pacs_tui.sim.listen import ListenError

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    started = await _start(args, plan, stop)
    if isinstance(started, int):
        return started
    center = started
    control = ControlApi(center, args.control_port)
    try:
        paths = center.write_client_files(out)  # after the binds: they name the addresses
        for planned in plan:  # listener-level faults (unreachable BMC ...) need running services
            for name in center.hosts:
                if fnmatch.fnmatchcase(name, planned.servers):
                    await center.set_faults(name, planned.changes)
        try:
            url = await control.start()
        except ListenError as exc:
            return _listen_failed(exc, explicit=True)
        octet = center.options.address_octet
        state = {
            "pid": os.getpid(),
            "control_url": url,
            "servers": len(center.hosts),
            "address_octet": octet,
            "started_in_s": round(center.started_in_s, 3),
            **{k: str(v) for k, v in paths.items()},
        }
        (out / "sim.json").write_text(json.dumps(state, indent=2) + "\n")
        print(
            f"pacs-tui sim: {len(center.hosts)} servers up in {center.started_in_s:.1f} s "
            f"on 127.{octet}.x.y (BMC port {args.bmc_port}, DICOM {args.dicom_port}, "
            f"SSH {args.ssh_port})"
        )
        for key, path in paths.items():
            print(f"  {key:<12} {path}")
        print(f"  {'control API':<12} {url}")
        print(f"  {'state':<12} {out / 'sim.json'}")
        print("  (the BMC password is in the credentials file; Ctrl-C stops)", flush=True)
        await stop.wait()
    finally:
        with contextlib.suppress(Exception):
            await control.stop()
        await center.stop()
        with contextlib.suppress(FileNotFoundError):
            (out / "sim.json").unlink()
    return EXIT_OK
