"""Control-room benchmark: keypress → frame latency and CPU while the fleet churns.

Run:  .venv/bin/python tests/benchmarks/ui_latency.py [--servers 300 3000] [--seconds 15]

Method
------
The app runs headless (``App.run_test``, 160×50) on a generated fleet. Every
server has four probes, and a churn task rewrites every reading of every
server once per second (in 20 slices of 50 ms, like a staggered poller), each
time with a different state or latency, so every row changes every second.
The churn writes straight into ``FleetState`` (what the scheduler does), so
the numbers are the UI's cost, not the probes'.

Latency: every 100 ms the benchmark posts a ``j`` key event (the cursor-down
binding) and notes the time; ``App._display`` is wrapped to note when the
next frame is written out after the grid's cursor moved. The difference is
the keypress → frame latency (it includes Textual's frame throttle, the
4 Hz change batch, and whatever redraw is in progress). CPU is process CPU
time / wall time over the measuring window, churn included.

A second scenario polls 300 servers every 2 s through the real
``FleetMonitor`` scheduler with scripted (network-free) probes and reports
the CPU share of the whole process, with no key presses.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

from textual import events

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _summary import Figure, emit

from pacs_tui.inventory import Inventory, Server, Site
from pacs_tui.plugin_api import Health, Probe, ProbeResult
from pacs_tui_widgets.app import ControlRoomApp
from pacs_tui_widgets.keymap import KeymapConfig
from ui_fleet import PROBE_NAMES

MEASURES = "Control room keypress → frame latency and CPU while every row changes each second"
LEAVES_OUT = (
    "the terminal emulator's drawing (headless, 160×50); the probes' network cost "
    "(readings are written straight into the state); start-up"
)
QUICK_ARGS = ("--servers", "300", "3000", "--seconds", "10")

ROLES = ("archive", "database", "dicom-router", "image-server", "web-viewer", "storage")
STATES = ((Health.OK, "ok"), (Health.DEGRADED, "slow"), (Health.OK, "ok"), (Health.DOWN, "down"))


def fleet(servers: int) -> Inventory:
    """``servers`` servers in one data center, six roles, racks of 20."""
    made = tuple(
        Server(f"srv-{i:05d}", "dc-main", ROLES[i % len(ROLES)], rack=f"R{i // 20:03d}")
        for i in range(servers)
    )
    return Inventory(Path("bench.yaml"), {"dc-main": Site("dc-main", "datacenter")}, made, {})


class ChurningProbe(Probe):
    """Answers instantly with a state that changes every second (never touches a network)."""

    interval_s: ClassVar[float] = 2.0

    def __init__(self, name: str, interval_s: float) -> None:
        self.name = name  # type: ignore[misc]
        self.interval_s = interval_s  # type: ignore[misc]

    def applies_to(self, server: Server) -> bool:
        return True

    async def probe(self, server: Server) -> ProbeResult:
        return answer(server.name, int(time.time()))


def answer(server: str, second: int) -> ProbeResult:
    health, word = STATES[(second + hash(server)) % len(STATES)]
    return ProbeResult(word, health, 1.0 + second % 7, "", time.time(), {})


async def churn(app: ControlRoomApp, stop: asyncio.Event) -> None:
    """Rewrite every reading once per second, in 20 slices."""
    names = list(app.servers)
    slices = 20
    while not stop.is_set():
        second = int(time.time())
        for k in range(slices):
            for name in names[k::slices]:
                result = answer(name, second)
                for probe in PROBE_NAMES:
                    app.state.record(name, probe, result)
            await asyncio.sleep(1.0 / slices)


async def measure_latency(servers: int, seconds: float) -> dict[str, float]:
    """Median/p90 keypress→frame latency and CPU share with every row changing each second."""
    probes = [ChurningProbe(name, 10_000.0) for name in PROBE_NAMES]  # the churn task polls
    app = ControlRoomApp(
        fleet(servers), probes=probes, keymap=KeymapConfig(), theme_dir=Path("/nonexistent")
    )
    frame = asyncio.Event()
    waiting: dict[str, Any] = {"cursor": None}
    original_display = app._display

    def display(screen: Any, renderable: Any) -> None:
        original_display(screen, renderable)
        target = waiting["cursor"]
        if target is not None and renderable is not None and app.grid.cursor == target:
            frame.set()

    app._display = display  # type: ignore[method-assign]
    samples: list[float] = []
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause(1.5)
        stop = asyncio.Event()
        churner = asyncio.create_task(churn(app, stop))
        await asyncio.sleep(2.0)  # let the churn reach its steady state
        cpu0, wall0 = time.process_time(), time.perf_counter()
        deadline = wall0 + seconds
        while time.perf_counter() < deadline:
            grid = app.grid
            if grid.cursor >= len(grid.rows) - 2:
                grid.cursor = 0
                await asyncio.sleep(0.1)
            waiting["cursor"] = grid.cursor + 1
            frame.clear()
            started = time.perf_counter()
            app.post_message(events.Key("j", "j"))
            try:
                await asyncio.wait_for(frame.wait(), 2.0)
                samples.append((time.perf_counter() - started) * 1000)
            except TimeoutError:
                samples.append(2000.0)
            waiting["cursor"] = None
            await asyncio.sleep(0.1)
        cpu = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
        stop.set()
        await churner
        updates = app.state.updates
    samples.sort()
    return {
        "servers": servers,
        "samples": len(samples),
        "median_ms": statistics.median(samples),
        "p90_ms": samples[int(len(samples) * 0.9) - 1],
        "max_ms": samples[-1],
        "no_frame": sum(s >= 2000.0 for s in samples),
        "cpu_share": cpu,
        "updates": updates,
    }


async def measure_polling_cpu(servers: int, interval_s: float, seconds: float) -> float:
    """CPU share of the whole process: real scheduler, scripted probes, no input."""
    probes = [ChurningProbe(name, interval_s) for name in PROBE_NAMES]
    app = ControlRoomApp(
        fleet(servers), probes=probes, keymap=KeymapConfig(), theme_dir=Path("/nonexistent")
    )
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause(interval_s * 2)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.sleep(seconds)
        return (time.process_time() - cpu0) / (time.perf_counter() - wall0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, nargs="+", default=[300, 3000])
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args()
    figures: list[Figure] = []
    for servers in args.servers:
        r = asyncio.run(measure_latency(servers, args.seconds))
        print(
            f"{servers:>5} servers, all changing every second: keypress→frame "
            f"median {r['median_ms']:.1f} ms, p90 {r['p90_ms']:.1f} ms, max {r['max_ms']:.1f} ms "
            f"({r['samples']} presses); CPU {r['cpu_share'] * 100:.0f}% of one core"
        )
        figures += [
            Figure(f"{servers}: keypress → frame, median", r["median_ms"], "ms"),
            Figure(f"{servers}: keypress → frame, p90", r["p90_ms"], "ms"),
            Figure(f"{servers}: presses with no frame in 2 s", r["no_frame"], "presses"),
            Figure(f"{servers}: CPU while churning", r["cpu_share"] * 100, "% core"),
        ]
    share = asyncio.run(measure_polling_cpu(300, 2.0, args.seconds))
    print(f"  300 servers polled every 2 s (4 scripted probes): CPU {share * 100:.1f}% of one core")
    emit(*figures, Figure("300 polled every 2 s, idle: CPU", share * 100, "% core"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
