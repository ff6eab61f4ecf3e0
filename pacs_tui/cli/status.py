"""``pacs-tui status``: one sweep (or a watch) of the fleet, as a table or JSON.

A reading our own lag or queue spoiled is measured again at the end of the
sweep (``Scheduler.sweep``); stderr says how many were.

SIGINT and SIGTERM both end it cleanly: the probes close and log out of every
BMC (``cli.signals``). A watch so ended exits 0; a single sweep so cut short
exits 128 + the signal number.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from pacs_tui.cli import EXIT_OK, EXIT_UNHEALTHY, EXIT_USAGE, load_fleet, select_servers


def register(subparsers: Any) -> None:
    """Add the ``status`` subcommand."""
    p = subparsers.add_parser(
        "status",
        help="probe the fleet once (or continuously) and print its state",
        description=(
            "Probe power (Redfish), network, DICOM and SSH services of every selected server. "
            "Exit 0 when all selected servers are healthy, 1 otherwise, 2 on bad input."
        ),
    )
    p.add_argument("--inventory", "-i", type=Path, required=True, help="inventory YAML file")
    p.add_argument("--select", "-s", default=None, help="selector expression, e.g. 'role=archive'")
    p.add_argument("--json", action="store_true", help="print a JSON list, one object per server")
    p.add_argument(
        "--watch", action="store_true",
        help="keep polling and reprint until Ctrl-C or SIGTERM (both log out of the BMCs)",
    )  # fmt: skip
    p.add_argument("--interval", type=float, default=5.0, help="seconds between --watch reprints")
    p.add_argument("--probe", action="append", default=None, help="only this probe (repeatable)")
    p.set_defaults(handler=run_status)


def _error(message: str) -> int:
    print(f"pacs-tui status: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def run_status(args: argparse.Namespace) -> int:
    """Load, select, sweep, print."""
    inventory = load_fleet(args.inventory)
    servers = select_servers(inventory, args.select)
    if args.interval <= 0:
        return _error("--interval must be > 0")
    from pacs_tui.cli.signals import run_until_signalled

    return asyncio.run(run_until_signalled(lambda _stop: _status(args, inventory, servers)))


async def _status(args: argparse.Namespace, inventory: Any, servers: list[Any]) -> int:
    from pacs_tui.monitor import FleetMonitor
    from pacs_tui.plugin_catalog import load_probes

    wanted = set(args.probe) if args.probe else None
    loaded = load_probes(wanted)
    if wanted and (missing := wanted - set(loaded.plugins) - set(loaded.failed)):
        return _error(f"--probe: no such probe: {', '.join(sorted(missing))}")
    for name, reason in loaded.failed.items():
        print(
            f"pacs-tui status: warning: probe plugin {name} failed to load: {reason}",
            file=sys.stderr,
        )
    async with FleetMonitor(
        inventory, probes=list(loaded.plugins.values()), servers=servers
    ) as monitor:
        if not args.watch:
            await monitor.sweep()
            again = monitor.scheduler.remeasured if monitor.scheduler is not None else 0
            if again:
                # Said on stderr (never in the JSON): why this sweep took a little longer.
                print(
                    f"pacs-tui status: note: {again} reading(s) measured again at the end: "
                    "our own event loop or connection slots were busy the first time",
                    file=sys.stderr,
                )
            views = _views(monitor, servers)
            _print(views, args.json)
            return EXIT_OK if all(v["healthy"] for v in views) else EXIT_UNHEALTHY
        monitor.start()
        try:
            while True:
                await asyncio.sleep(args.interval)
                views = _views(monitor, servers)
                if not args.json:
                    print("\033[H\033[2J", end="")
                    print(
                        time.strftime("%H:%M:%S"),
                        f"{sum(v['healthy'] for v in views)}/{len(views)} healthy",
                    )
                _print(views, args.json)
        except asyncio.CancelledError:
            # A signal is how a watch ends: go on to the monitor's close (logout).
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            return EXIT_OK


def _views(monitor: Any, servers: list[Any]) -> list[dict[str, Any]]:
    from pacs_tui.report import server_view

    now = time.time()
    return [
        server_view(
            s,
            monitor.state,
            [p.name for p in monitor.probes if p.applies_to(s)],
            now=now,
        )
        for s in servers
    ]


def _cell(view: dict[str, Any]) -> str:
    if view["health"] == "n/a":
        return "-"
    if "watts" in view:  # rack-power: the draw says more than the latency
        watts = view["watts"]
        if isinstance(watts, int | float):
            return f"{view['state']} {watts:.0f}W"
        return view["state"] if view["state"] == "not-offered" else f"{view['state']} (no draw)"
    latency = f" {view['latency_ms']:.0f}ms" if view["latency_ms"] is not None else ""
    return f"{view['state']}{latency}"


def _print(views: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        print(json.dumps(views, indent=2), flush=True)
        return
    probes = [k for k in views[0] if isinstance(views[0][k], dict)] if views else []
    header = ["name", "site", "role", *probes, "problems / notes"]
    rows = []
    for v in views:
        problems = "; ".join(
            f"{p}: {v[p]['detail']}" for p in probes if v[p]["health"] not in ("ok", "n/a")
        )
        power = v.get("power")
        if isinstance(power, dict) and power["health"] == "ok":
            # A healthy BMC read with a caveat (Basic fallback, TLS LEGACY/NOT VERIFIED).
            extra = power["detail"].removeprefix("powered on").strip("; ")
            if extra:
                problems = "; ".join(x for x in (problems, f"power note: {extra}") if x)
        rack = v.get("rack-power")
        if isinstance(rack, dict) and rack["health"] == "ok":
            # What a healthy BMC does not offer (no power or thermal resource).
            gaps = [p for p in rack["detail"].split("; ") if "not offered by this BMC" in p]
            if gaps:
                problems = "; ".join(
                    x for x in (problems, f"rack-power note: {', '.join(gaps)}") if x
                )
        if "management" in v:  # say it is the management network, not the PACS service
            problems = f"{v['management']} (management fault); {problems}".rstrip("; ")
        rows.append([v["name"], v["site"], v["role"], *(_cell(v[p]) for p in probes), problems])
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        cells = [str(c).ljust(w) for c, w in zip(row[:-1], widths, strict=True)]
        print("  ".join([*cells, str(row[-1])]).rstrip())
    print(f"{sum(v['healthy'] for v in views)}/{len(views)} servers healthy", flush=True)
