"""Benchmark: how long until a simulated fleet is up and answering on every endpoint.

Starts ``pacs-tui sim --servers N`` as its own process and measures the wall time
from spawn until every BMC, SSH and DICOM port of every server accepts a TCP
connection, then the simulator's RSS. Loopback only.

    .venv/bin/python tests/benchmarks/sim_startup.py [--servers 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from _summary import Figure, emit

MEASURES = "`pacs-tui sim --servers 300` from spawn until every BMC, SSH and DICOM port accepts TCP"
LEAVES_OUT = (
    "protocol-level readiness (a TCP accept, not a Redfish login or a C-ECHO); "
    "the interpreter's cold start from an empty page cache"
)
QUICK_ARGS: tuple[str, ...] = ()


async def _answers(host: str, port: int) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 2)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


async def _all_answer(endpoints: list[tuple[str, int]]) -> int:
    limit = asyncio.Semaphore(200)

    async def one(host: str, port: int) -> bool:
        async with limit:
            return await _answers(host, port)

    results = await asyncio.gather(*(one(h, p) for h, p in endpoints))
    return sum(results)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--servers", type=int, default=300)
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="pacs-tui-bench-")) / "dc"
    octet = random.randint(100, 250)
    began = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pacs_tui", "sim", "--servers", str(args.servers), "--out", str(out),
         "--address-octet", str(octet)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        while not (out / "sim.json").exists():
            if proc.poll() is not None:
                print(proc.stderr.read() if proc.stderr else "", file=sys.stderr)
                return 1
            time.sleep(0.02)
        ready = time.monotonic() - began
        state = json.loads((out / "sim.json").read_text())
        inventory = yaml.safe_load((out / "inventory.yaml").read_text())
        defaults = inventory["defaults"]
        endpoints = []
        for server in inventory["servers"]:
            endpoints.append((server["bmc"]["address"], defaults["bmc"]["port"]))
            endpoints.append((server["ssh"]["host"], defaults["ssh"]["port"]))
            if "dicom" in server:
                endpoints.append((server["dicom"]["host"], defaults["dicom"]["port"]))
        answering = asyncio.run(_all_answer(endpoints))
        answering_at = time.monotonic() - began
        rss_kb = int(
            next(
                line.split()[1]
                for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines()
                if line.startswith("VmRSS")
            )
        )
        print(f"servers: {args.servers}  endpoints: {len(endpoints)}  answering: {answering}")
        print(
            f"spawn -> sim.json written: {ready:.2f} s (services started in {state['started_in_s']} s)"
        )
        print(f"spawn -> every endpoint checked: {answering_at:.2f} s")
        print(f"simulator RSS: {rss_kb / 1024:.0f} MB")
        emit(
            Figure("spawn → sim.json written", ready, "s"),
            Figure(f"spawn → all {len(endpoints)} endpoints accept", answering_at, "s"),
            Figure("endpoints not answering", len(endpoints) - answering, "ports"),
            Figure("simulator RSS", rss_kb / 1024, "MB"),
        )
        return 0 if answering == len(endpoints) else 1
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
