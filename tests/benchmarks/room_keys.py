"""Benchmark: the control room's CPU without keys, and cursor and filter keys → frame, under news.

    .venv/bin/python tests/benchmarks/room_keys.py [--servers 300 3000] [--seconds 20]

Method
------
The app runs headless (``App.run_test``, 160×50) on ``ui_latency.fleet(N)``,
four probes per server. A churn task gives 3.1 % of the servers one new
reading (OK, a new latency) every 100 ms, with an expectation of the next
in 15 s: 0.31 readings per server and second, what a room attached to a
service applied at 3 000 servers (``service_scale.py``). After 4 s of
churn: the process CPU over ``--seconds`` without keys (churn included);
then 60 cursor keys (``j`` ×10, ``k`` ×10, …) and the letters of 6 filter
words, each opened with ``/`` and closed with ``escape``, keys 0.15–0.35 s
apart. Each key is posted to the app and timed until ``App._display`` writes
the first frame that shows its effect (the cursor on the next row; the grid
filtered by the text so far), 3 s at most. For a before/after, run the same
script against an export of the older commit (``git archive COMMIT | tar -x
-C DIR``; ``PYTHONPATH=DIR:DIR/widgets:DIR/plugins:DIR/themes``, from DIR).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual import events

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _summary import Figure, emit
from ui_latency import ChurningProbe, fleet

from pacs_tui.plugin_api import Health, ProbeResult
from pacs_tui_widgets.app import ControlRoomApp
from pacs_tui_widgets.keymap import KeymapConfig
from ui_fleet import PROBE_NAMES

MEASURES = "Control room CPU without keys, and cursor and filter keys → frame, under 0.31 readings/server/s"
LEAVES_OUT = (
    "the terminal (headless; service_scale.py has a real pty); the mirror's parsing "
    "(readings are written straight into the state); faults"
)
QUICK_ARGS = ("--servers", "300", "3000", "--seconds", "10")

FILTER_WORDS = ("web", "srv-001", "arch", "R01", "img", "stor")
NEWS_PER_TICK = 0.031  # of the servers, every 100 ms


async def churn(app: ControlRoomApp, stop: asyncio.Event) -> None:
    """One new reading for 3.1 % of the servers every 100 ms."""
    names = list(app.servers)
    rng = random.Random(3)
    while not stop.is_set():
        for name in rng.sample(names, max(1, int(len(names) * NEWS_PER_TICK))):
            probe = rng.choice(PROBE_NAMES)
            app.state.record(name, probe, ProbeResult("ok", Health.OK, rng.random() * 9))
            app.state.expect_next(name, probe, 15.0)
        await asyncio.sleep(0.1)


def quantile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def measure(servers: int, seconds: float) -> dict[str, float]:
    """CPU share without keys; p50/p90 of cursor and filter keys → frame (ms)."""
    probes = [ChurningProbe(name, 10_000.0) for name in PROBE_NAMES]  # the churn task polls
    app = ControlRoomApp(
        fleet(servers), probes=probes, keymap=KeymapConfig(), theme_dir=Path("/nonexistent")
    )
    frame = asyncio.Event()
    waiting: dict[str, Callable[[], bool] | None] = {"shown": None}
    original_display = app._display

    def display(screen: Any, renderable: Any) -> None:
        original_display(screen, renderable)
        shown = waiting["shown"]
        if shown is not None and renderable is not None and shown():
            frame.set()

    app._display = display  # type: ignore[method-assign]

    async def key(name: str, shown: Callable[[], bool]) -> float:
        waiting["shown"] = shown
        frame.clear()
        started = time.perf_counter()
        app.post_message(events.Key(name, name if len(name) == 1 else None))
        try:
            await asyncio.wait_for(frame.wait(), 3.0)
            took = (time.perf_counter() - started) * 1000
        except TimeoutError:
            took = 3000.0
        waiting["shown"] = None
        return took

    rng = random.Random(servers)
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause(2)
        stop = asyncio.Event()
        churner = asyncio.create_task(churn(app, stop))
        await asyncio.sleep(4.0)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.sleep(seconds)
        cpu = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
        cursor: list[float] = []
        for i in range(60):
            target = app.grid.cursor + (1 if (i // 10) % 2 == 0 else -1)
            letter = "j" if target > app.grid.cursor else "k"
            cursor.append(await key(letter, lambda t=target: app.grid.cursor == t))
            await asyncio.sleep(0.15 + rng.random() * 0.2)
        letters: list[float] = []
        for word in FILTER_WORDS:
            await key("slash", lambda: True)
            await asyncio.sleep(0.2)
            for n in range(1, len(word) + 1):
                text = word[:n]
                letters.append(await key(text[-1], lambda t=text: app.grid.view.filter_text == t))
                await asyncio.sleep(0.15 + rng.random() * 0.2)
            await key("escape", lambda: app.grid.view.filter_text == "")
            await asyncio.sleep(0.3)
        stop.set()
        await churner
    return {
        "cpu": cpu * 100,
        "cursor_p50": statistics.median(cursor),
        "cursor_p90": quantile(cursor, 0.9),
        "filter_p50": statistics.median(letters),
        "filter_p90": quantile(letters, 0.9),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, nargs="+", default=[300, 3000])
    parser.add_argument("--seconds", type=float, default=20.0, help="CPU window without keys")
    args = parser.parse_args()
    figures: list[Figure] = []
    for servers in args.servers:
        r = asyncio.run(measure(servers, args.seconds))
        print(
            f"{servers:>5} servers: CPU without keys {r['cpu']:.1f} % core; cursor → frame "
            f"p50 {r['cursor_p50']:.1f} ms, p90 {r['cursor_p90']:.1f} ms; filter letter → frame "
            f"p50 {r['filter_p50']:.1f} ms, p90 {r['filter_p90']:.1f} ms "
            f"(load {os.getloadavg()[0]:.1f})"
        )
        figures += [
            Figure(f"{servers}: CPU without keys", round(r["cpu"], 1), "% core"),
            Figure(f"{servers}: cursor → frame, p90", round(r["cursor_p90"], 1), "ms"),
            Figure(f"{servers}: filter letter → frame, p90", round(r["filter_p90"], 1), "ms"),
        ]
    emit(*figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
