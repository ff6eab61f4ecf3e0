"""Benchmark: one whole DICOM association (associate, C-ECHO, release) on loopback.

Each round opens a new TCP connection and association, sends one C-ECHO
(PS3.7 §9.3.5) and releases (PS3.8 §7.2), timed from the connect to the
release confirmation. Two clients — pynetdicom's ``AE.associate`` and
pacs-tui's own asyncio ``c_echo`` (what the DICOM probe uses) — against two
peers: the simulator's DICOM node (``pacs-tui sim`` in its own process) and
dcmtk's ``storescp`` (with ``TCP_NODELAY=1``, else each reply waits ~40 ms
for a delayed ACK). Reports median and p95 in ms after a few warm-up rounds.

    .venv/bin/python tests/benchmarks/dicom_association.py [--rounds 500] [--warmup 20]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pynetdicom import AE
from pynetdicom.sop_class import Verification

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _summary import Figure, emit

from dicom_peers import free_port, wait_for_port
from pacs_tui.dicom.client import c_echo
from peers import dcmtk_binary
from sim_process import running_sim

MEASURES = "One whole association (connect, associate, C-ECHO, release) per round, on loopback"
LEAVES_OUT = (
    "network latency and TLS (plain TCP on loopback); a busy archive's own work; "
    "the process start of a command-line tool (echoscu costs that on top)"
)
QUICK_ARGS = ("--rounds", "300")
CALLING_AE = "PACSTUI"


def percentile(samples: list[float], p: float) -> float:
    """The ``p``-th percentile (nearest rank) of ``samples``."""
    ordered = sorted(samples)
    return ordered[max(0, min(len(ordered) - 1, round(p / 100 * len(ordered)) - 1))]


Round = Callable[[], dict[str, float]]  # one association; its phases in ms where known


def pynetdicom_round(host: str, port: int, called_ae: str) -> Round:
    """One pynetdicom association per call; raises RuntimeError on anything but success."""
    ae = AE(ae_title=CALLING_AE)
    ae.add_requested_context(Verification)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10

    def once() -> dict[str, float]:
        began = time.perf_counter()
        association = ae.associate(host, port, ae_title=called_ae)
        associated = time.perf_counter()
        if not association.is_established:
            raise RuntimeError(f"pynetdicom: association with {called_ae}@{host}:{port} failed")
        status = association.send_c_echo()
        echoed = time.perf_counter()
        association.release()
        released = time.perf_counter()
        if not status or status.Status != 0:
            raise RuntimeError(f"pynetdicom: C-ECHO to {called_ae} answered {status}")
        return {
            "associate": (associated - began) * 1000,
            "C-ECHO": (echoed - associated) * 1000,
            "release": (released - echoed) * 1000,
        }

    return once


def pacs_tui_round(host: str, port: int, called_ae: str) -> Round:
    """One pacs-tui ``c_echo`` per call, all on one event loop (as in the control room)."""
    loop = asyncio.new_event_loop()

    def once() -> dict[str, float]:
        outcome = loop.run_until_complete(c_echo(host, port, called_ae=called_ae, timeout=10))
        if outcome.state != "ok":
            raise RuntimeError(f"pacs-tui: C-ECHO to {called_ae}: {outcome.state} {outcome.detail}")
        return {}

    return once


def timed(round_: Round, rounds: int, warmup: int) -> tuple[list[float], dict[str, list[float]]]:
    """Milliseconds per round after ``warmup`` untimed rounds, and per phase where known."""
    for _ in range(warmup):
        round_()
    samples: list[float] = []
    phases: dict[str, list[float]] = {}
    for _ in range(rounds):
        began = time.perf_counter()
        for phase, ms in round_().items():
            phases.setdefault(phase, []).append(ms)
        samples.append((time.perf_counter() - began) * 1000)
    return samples, phases


@contextmanager
def storescp(folder: Path) -> Iterator[tuple[str, int, str]]:
    """dcmtk's storescp on 127.0.0.1 (it binds every address; we connect to loopback only)."""
    binary = dcmtk_binary("storescp")
    if binary is None:
        raise SystemExit(
            "dicom_association: dcmtk's storescp is not installed (apt-get install dcmtk)"
        )
    port = free_port("127.0.0.1")
    process = subprocess.Popen(
        [binary, "-aet", "STORESCP", "-od", str(folder), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "TCP_NODELAY": "1"},
    )
    try:
        wait_for_port("127.0.0.1", port, process=process)
        yield "127.0.0.1", port, "STORESCP"
    finally:
        process.terminate()
        process.wait(timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()
    logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)
    figures: list[Figure] = []
    clients = (("pynetdicom", pynetdicom_round), ("pacs-tui", pacs_tui_round))

    def measure(peer: str, host: str, port: int, called_ae: str) -> None:
        for client, make in clients:
            samples, phases = timed(make(host, port, called_ae), args.rounds, args.warmup)
            median, p95 = statistics.median(samples), percentile(samples, 95)
            print(
                f"{client:>10} → {peer:<14} median {median:.2f} ms, p95 {p95:.2f} ms, "
                f"max {max(samples):.2f} ms ({len(samples)} associations)"
            )
            if phases:
                print(
                    " " * 13
                    + "medians: "
                    + ", ".join(f"{k} {statistics.median(v):.2f} ms" for k, v in phases.items())
                )
            figures.append(Figure(f"{client} → {peer}: median", median, "ms"))
            figures.append(Figure(f"{client} → {peer}: p95", p95, "ms"))
            if "associate" in phases:
                associate = statistics.median(phases["associate"])
                figures.append(
                    Figure(f"{client} → {peer}: associate only, median", associate, "ms")
                )

    with tempfile.TemporaryDirectory(prefix="pacs-tui-assoc-bench-") as tmp:
        with running_sim(Path(tmp) / "dc", "--servers", "10", timeout=120) as sim:
            server = next(s for s in sim.servers() if "dicom" in s)
            port = int(server["dicom"].get("port", sim.defaults["dicom"]["port"]))
            measure("sim DICOM node", server["dicom"]["host"], port, server["dicom"]["ae_title"])
        received = Path(tmp) / "storescp"
        received.mkdir()
        with storescp(received) as (host, port, ae):
            measure("dcmtk storescp", host, port, ae)
    emit(*figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
