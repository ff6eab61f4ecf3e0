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
import sys
import tempfile
from pathlib import Path
from typing import Any

from pacs_tui.cli import EXIT_OK, EXIT_USAGE


def register(subparsers: Any) -> None:
    """Add the ``sim`` subcommand."""
    p = subparsers.add_parser(
        "sim",
        help="run the simulated PACS data center on loopback",
        description="Run a simulated data center (Redfish BMCs, DICOM, SSH) on 127.0.0.0/8.",
    )
    p.add_argument("--servers", type=int, default=300, help="fleet size (default 300)")
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
        "--address-octet", type=int, default=42, help="servers live on 127.OCTET.x.y (default 42)"
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
    if not 1 <= args.address_octet <= 254:
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


async def _serve(args: argparse.Namespace, out: Path, plan: list[Any]) -> int:
    from pacs_tui.sim.control import ControlApi
    from pacs_tui.sim.datacenter import SimOptions, SimulatedDataCenter

    options = SimOptions(
        servers=args.servers,
        seed=args.seed,
        address_octet=args.address_octet,
        bmc_port=args.bmc_port,
        dicom_port=args.dicom_port,
        ssh_port=args.ssh_port,
        tls=not args.no_tls,
        bmc_username=args.bmc_username,
        time_scale=args.time_scale,
    )
    if args.bmc_mix is not None:
        options.bmc_mix = args.bmc_mix
    password = args.bmc_password or os.environ.get("PACS_TUI_SIM_BMC_PASSWORD")
    if password:
        options.bmc_password = password
    center = SimulatedDataCenter(options)
    for planned in plan:
        matches = [n for n in center.hosts if fnmatch.fnmatchcase(n, planned.servers)]
        if not matches:
            print(
                f"pacs-tui sim: error: {args.faults}:{planned.line}: servers: "
                f"{planned.servers!r} matches no server",
                file=sys.stderr,
            )
            return EXIT_USAGE
        for name in matches:
            try:
                center.check_faults(name, planned.changes)
            except ValueError as exc:
                print(f"pacs-tui sim: error: {args.faults}:{planned.line}: {exc}", file=sys.stderr)
                return EXIT_USAGE
            center.hosts[name].faults.update(planned.changes)
    paths = center.write_client_files(out)
    control = ControlApi(center, args.control_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await center.start()
        for planned in plan:  # listener-level faults (unreachable BMC ...) need running services
            for name in center.hosts:
                if fnmatch.fnmatchcase(name, planned.servers):
                    await center.set_faults(name, planned.changes)
        url = await control.start()
        state = {
            "pid": os.getpid(),
            "control_url": url,
            "servers": len(center.hosts),
            "started_in_s": round(center.started_in_s, 3),
            **{k: str(v) for k, v in paths.items()},
        }
        (out / "sim.json").write_text(json.dumps(state, indent=2) + "\n")
        print(f"pacs-tui sim: {len(center.hosts)} servers up in {center.started_in_s:.1f} s")
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
