"""Benchmark: one full probe sweep (Redfish + DICOM + TCP) of a simulated fleet,
against the sequential baseline an admin script would use.

For each fleet size the simulator runs in its own process (loopback only). The
sweep uses pacs-tui's FleetMonitor with the built-in power, network and dicom
probes: one warm-up sweep (TLS handshakes, Redfish logins, discovery), then the
measured sweeps. The baseline runs dcmtk ``echoscu`` and one plain HTTPS GET of
the BMC's ComputerSystem per server (``curl``, or urllib when curl is
missing), one after another — what a shell loop does. At 3 000 servers the baseline is measured on the first 300 servers and
scaled ×10 (it would take minutes); the output says so.

    .venv/bin/python tests/benchmarks/sweep.py [--sizes 300 3000] [--sweeps 3]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import resource
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _summary import Figure, emit

from pacs_tui.inventory import Inventory, load_inventory
from pacs_tui.monitor import FleetMonitor
from pacs_tui.plugin_api import Health
from pacs_tui.plugin_catalog import load_probes
from peers import dcmtk_binary

PROBES = {"power", "network", "dicom"}
CURL = shutil.which("curl")

MEASURES = (
    "One probe sweep (Redfish + TCP + C-ECHO) of a simulated fleet vs a sequential shell loop"
)
LEAVES_OUT = (
    "3 000 servers under make bench (--sizes 300 3000 for it); C-FIND and SSH probes; "
    "the UI; network latency (loopback); the warm sweep runs in this process (the cold "
    "`pacs-tui status` runs are whole processes)"
)
QUICK_ARGS = ("--sizes", "300")


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_sim(servers: int, out: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "pacs_tui", "sim", "--servers", str(servers), "--out", str(out),
         "--address-octet", str(random.randint(100, 250))],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    while not (out / "sim.json").exists():
        if proc.poll() is not None:
            raise RuntimeError(proc.stderr.read() if proc.stderr else "sim exited")
        time.sleep(0.05)
    return proc


async def pacs_tui_sweeps(inventory: Inventory, sweeps: int) -> dict[str, Any]:
    loaded = load_probes(PROBES)
    settings = {"network_icmp": "off", "dicom_find": False}
    async with FleetMonitor(
        inventory, probes=list(loaded.plugins.values()), settings=settings
    ) as m:
        began = time.perf_counter()
        await m.sweep()
        warmup = time.perf_counter() - began
        walls, cpus = [], []
        for _ in range(sweeps):
            cpu0, wall0 = time.process_time(), time.perf_counter()
            await m.sweep()
            walls.append(time.perf_counter() - wall0)
            cpus.append(time.process_time() - cpu0)
        readings = [
            m.state.reading(s.name, p.name) for s in m.servers for p in m.probes if p.applies_to(s)
        ]
        ok = sum(r.health is Health.OK for r in readings)
    return {
        "warmup_s": warmup,
        "wall_s": statistics.median(walls),
        "cpu_s": statistics.median(cpus),
        "readings": len(readings),
        "ok": ok,
    }


def sequential_baseline(
    inventory: Inventory, limit: int, secrets: dict[str, Any]
) -> dict[str, Any]:
    """echoscu + one HTTPS GET per server, one after another (a shell loop's way)."""
    creds = secrets["bmc-admin"]
    token = base64.b64encode(f"{creds['username']}:{creds['password']}".encode()).decode()
    servers = list(inventory.servers)[:limit]
    # dcmtk's, by absolute path: an activated venv has pynetdicom's echoscu first on PATH.
    echoscu = dcmtk_binary("echoscu")
    if echoscu is None:
        raise SystemExit("sweep: dcmtk's echoscu is not installed (apt-get install dcmtk)")
    env = {**os.environ, "TCP_NODELAY": "1"}
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    self0 = time.process_time()
    began = time.perf_counter()
    for server in servers:
        if server.dicom is not None:
            subprocess.run(
                [echoscu, "-to", "5", "-aet", "PACSTUI", "-aec", server.dicom.ae_title,
                 server.dicom.host, str(server.dicom.port)],
                capture_output=True, env=env, check=False,
            )  # fmt: skip
        if server.bmc is not None and CURL:
            # Credentials go through stdin (-K -), never the command line.
            subprocess.run(
                [CURL, "-s", "-o", "/dev/null", "--cacert", str(server.bmc.ca_file), "-K", "-",
                 f"{server.bmc.url}/redfish/v1/Systems"],
                input=f'user = "{creds["username"]}:{creds["password"]}"\n'.encode(),
                check=False,
            )  # fmt: skip
        elif server.bmc is not None:
            ctx = ssl.create_default_context(cafile=str(server.bmc.ca_file))
            request = urllib.request.Request(
                f"{server.bmc.url}/redfish/v1/Systems", headers={"Authorization": f"Basic {token}"}
            )
            with urllib.request.urlopen(request, context=ctx, timeout=5) as reply:
                json.load(reply)
    wall = time.perf_counter() - began
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    child_cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    return {
        "servers": len(servers),
        "tool": "curl" if CURL else "urllib",
        "wall_s": wall,
        "cpu_s": child_cpu + time.process_time() - self0,
    }


def cold_status(inventory_path: Path, runs: int) -> dict[str, Any]:
    """``pacs-tui status`` as a user types it, a new process each run, timed whole.

    Cold like the baseline: the interpreter starts, loads the plugins, reads the
    inventory, opens TLS and logs in to every BMC, then exits. Same probes as the
    sweep. Returns the median wall time, the spread and the exit codes.
    """
    walls, codes = [], []
    cmd = [sys.executable, "-m", "pacs_tui", "status", "-i", str(inventory_path),
           *(a for probe in sorted(PROBES) for a in ("--probe", probe))]  # fmt: skip
    for _ in range(runs):
        began = time.monotonic()
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        walls.append(time.monotonic() - began)
        codes.append(done.returncode)
    return {"wall_s": statistics.median(walls), "min_s": min(walls), "max_s": max(walls),
            "codes": codes}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[300, 3000])
    parser.add_argument("--sweeps", type=int, default=3)
    parser.add_argument("--cold-runs", type=int, default=3, help="whole `pacs-tui status` runs")
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print(f"machine: {os.cpu_count()} cores; python {sys.version.split()[0]}")
    figures: list[Figure] = []
    unhealthy = 0
    for size in args.sizes:
        out = Path(tempfile.mkdtemp(prefix="pacs-tui-sweep-")) / "dc"
        sim = start_sim(size, out)
        try:
            inventory = load_inventory(out / "inventory.yaml")
            result = asyncio.run(pacs_tui_sweeps(inventory, args.sweeps))
            secrets = yaml.safe_load((out / "credentials.yaml").read_text())
            sample = min(size, 300)
            base = sequential_baseline(inventory, sample, secrets)
            scale = size / sample
            base_wall, base_cpu = base["wall_s"] * scale, base["cpu_s"] * scale
            note = "" if scale == 1 else f" (measured on {sample} servers, ×{scale:.0f})"
            print(f"\n== {size} servers: {result['readings']} readings, {result['ok']} ok")
            print(f"pacs-tui warm-up sweep (TLS, logins): {result['warmup_s']:.2f} s wall")
            print(
                f"pacs-tui sweep (median of {args.sweeps}): {result['wall_s']:.3f} s wall, "
                f"{result['cpu_s']:.3f} s CPU"
            )
            print(
                f"sequential baseline (echoscu + {base['tool']}){note}: {base_wall:.2f} s wall, {base_cpu:.2f} s CPU"
            )
            cold = cold_status(out / "inventory.yaml", args.cold_runs)
            print(
                f"pacs-tui status, whole process, cold (median of {args.cold_runs}): "
                f"{cold['wall_s']:.2f} s wall ({cold['min_s']:.2f}-{cold['max_s']:.2f}), "
                f"exit codes {cold['codes']}"
            )
            print(f"ratio, both cold (baseline / status): {base_wall / cold['wall_s']:.1f}×")
            print(
                f"ratio, warm sweep (baseline / sweep, wall): {base_wall / result['wall_s']:.0f}×"
            )
            unhealthy += sum(1 for code in cold["codes"] if code != 0)
            print(f"benchmark process RSS: {rss_mb():.0f} MB")
            unhealthy += result["readings"] - result["ok"]
            figures += [
                Figure(f"{size}: warm-up sweep (TLS, logins)", result["warmup_s"], "s"),
                Figure(f"{size}: sweep, median of {args.sweeps}", result["wall_s"], "s"),
                Figure(f"{size}: sweep CPU", result["cpu_s"], "s"),
                Figure(
                    f"{size}: sequential baseline{' (scaled)' if scale != 1 else ''}",
                    base_wall,
                    "s",
                ),
                Figure(f"{size}: baseline / sweep (warm: what a watching screen gets)",
                       base_wall / result["wall_s"], "×"),
                Figure(f"{size}: pacs-tui status, whole process, cold", cold["wall_s"], "s"),
                Figure(f"{size}: baseline / status (both cold: what `status` gets)",
                       base_wall / cold["wall_s"], "×"),
            ]  # fmt: skip
        finally:
            sim.send_signal(signal.SIGTERM)
            sim.wait(timeout=60)
    # Readings not OK in the sweeps, plus `status` runs that did not exit 0.
    figures.append(Figure("readings not OK (the fleet is healthy)", unhealthy, "readings"))
    emit(*figures)
    return 0 if unhealthy == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
