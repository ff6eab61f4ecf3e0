"""Benchmark: the control room's CPU without keys, and cursor and filter keys → frame, under news.

    .venv/bin/python tests/benchmarks/room_keys.py [--servers 300 3000] [--seconds 20]
        [--pty] [--every-row]

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

``--every-row``: instead of 0.31 readings per server and second, every
reading of every server is written again each second (``ui_latency.churn``:
four probes, in 20 slices a second; the latency shown changes every second
and the health word cycles OK / slow / OK / down, so every row, the summary
and the event log change).

``--pty``: the room runs in a real terminal instead of headless. A child
process (this script, ``--as-room``) builds the same ``ControlRoomApp`` —
its own in-process ``FleetMonitor``, as ``pacs-tui run -i`` has, not a
mirror of a service — starts the churn 2 s after start and runs the app with
Textual's real driver on the slave side of a 160×50 pty
(``pty_terminal.PtyTerminal``: pyte emulates the terminal). Keys are
written to the pty and timed until the output that makes the emulated
screen show their effect has arrived, with ``service_scale.py``'s trials:
``j`` ×10 / ``k`` ×10 until 60 keys, then the filter words letter by letter
(each letter until the grid shows exactly the first rows of what the room's
own ``FleetRows`` says that filter matches; ``PTY_FILTER_WORDS``). CPU is utime+stime of the room
process from ``/proc`` over ``--seconds`` without keys. The child writes,
each second, the readings it took and the share of rows with a change
(a ``ChangeFeed`` of the state, drained each second), to show what churn
the room really carried. The probes' own work (network, TLS, parsing) is
left out: the readings are written straight into the state.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual import events

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _summary import Figure, emit
from ui_latency import ChurningProbe, fleet
from ui_latency import churn as churn_every_row

from pacs_tui.plugin_api import Health, ProbeResult
from pacs_tui_widgets.app import ControlRoomApp
from pacs_tui_widgets.keymap import KeymapConfig
from ui_fleet import PROBE_NAMES

MEASURES = "Control room CPU without keys, and cursor and filter keys → frame, under 0.31 readings/server/s"
LEAVES_OUT = (
    "the terminal (headless unless --pty); the probes' and the mirror's work "
    "(readings are written straight into the state); faults"
)
QUICK_ARGS = ("--servers", "300", "3000", "--seconds", "10")

FILTER_WORDS = ("web", "srv-001", "arch", "R01", "img", "stor")
# In a pty a letter is timed until the grid shows its rows, so a letter that leaves the
# visible rows as they were (the "e" and "b" of "web") times only the bar's echo: words
# whose every letter changes the first rows of a 300- or 3 000-server ``fleet``.
PTY_FILTER_WORDS = ("345", "12", "99", "58", "tor", "81", "63", "27", "46", "web")
NEWS_PER_TICK = 0.031  # of the servers, every 100 ms
ROOT = Path(__file__).resolve().parents[2]
CLOCK_TICK = os.sysconf("SC_CLK_TCK")


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


# -- the room in a real terminal (--pty) ----------------------------------------------


def room_child(servers: int, every_row: bool, report: str) -> int:
    """The room in this process, on the terminal it was given (the pty), under churn.

    Each second a JSON line to ``report``: readings taken so far, rows with a
    change in the last second, rows in all.
    """
    probes = [ChurningProbe(name, 10_000.0) for name in PROBE_NAMES]  # the churn task polls
    app = ControlRoomApp(
        fleet(servers), probes=probes, keymap=KeymapConfig(), theme_dir=Path("/nonexistent")
    )

    out = Path(report).open("a")  # noqa: SIM115 (closed after the app)

    async def counting(stop: asyncio.Event) -> None:
        feed = app.state.subscribe()
        while not stop.is_set():
            await asyncio.sleep(1.0)
            keys = feed.drain()
            line = {
                "t": time.time(),
                "updates": app.state.updates,
                "changed_rows": len({server for server, _ in keys}),
                "rows": len(app.servers),
            }
            out.write(json.dumps(line) + "\n")
            out.flush()

    async def churning(stop: asyncio.Event) -> None:
        await asyncio.sleep(2.0)
        await asyncio.gather((churn_every_row if every_row else churn)(app, stop), counting(stop))

    async def run() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(churning(stop))
        try:
            await app.run_async()
        finally:
            stop.set()
            task.cancel()

    try:
        asyncio.run(run())
    finally:
        out.close()
    return 0


def cpu_s(pid: int) -> float:
    """utime + stime of ``pid`` in seconds (``/proc/PID/stat``)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICK


def churn_report(report: Path, began: float, ended: float) -> tuple[float, float]:
    """(readings per server and second, mean share of rows changed in a 1 s window)."""
    lines = [json.loads(x) for x in report.read_text().splitlines() if x.strip()]
    lines = [x for x in lines if began <= x["t"] <= ended]
    if len(lines) < 2:
        return float("nan"), float("nan")
    span = lines[-1]["t"] - lines[0]["t"]
    rows = lines[-1]["rows"]
    rate = (lines[-1]["updates"] - lines[0]["updates"]) / span / rows
    share = statistics.mean(x["changed_rows"] / x["rows"] for x in lines[1:])
    return rate, share


def measure_pty(servers: int, seconds: float, every_row: bool) -> dict[str, Any]:
    """The room in a pty: CPU without keys, cursor and filter key → frame (ms)."""
    from pty_terminal import PtyTerminal, Spread
    from service_scale import KeyResults, cursor_trials, filter_trials, filtered

    from pacs_tui_widgets.fleet_rows import FleetRows

    inventory = fleet(servers)
    rows = FleetRows(inventory.servers, {k: s.kind for k, s in inventory.sites.items()})

    def visible(text: str) -> list[str]:
        rows.set_filter(text)
        rows.rebuild(lambda _n, _c: 0)
        return list(rows.visible_servers)

    work = Path(tempfile.mkdtemp(prefix="pacs-tui-room-keys-"))
    report = work / "churn.jsonl"
    argv = [sys.executable, str(Path(__file__).resolve()), "--as-room", str(servers),
            "all" if every_row else "news", str(report)]  # fmt: skip
    env = {"PACS_TUI_DATA_DIR": str(work / "data"), "XDG_CONFIG_HOME": str(work / "config")}
    term = PtyTerminal(argv, columns=160, lines=50, cwd=ROOT, env=env)
    results = KeyResults()
    load0 = os.getloadavg()[0]
    term.start()
    try:
        if not term.wait_for(filtered(visible("")), 120):
            print("\n".join(term.lines()), file=sys.stderr)
            raise RuntimeError("the room did not show the grid within 120 s")
        time.sleep(6.0)  # the churn starts 2 s after the app: let it reach its pace
        cpu0, wall0, began = cpu_s(term.pid), time.monotonic(), time.time()
        emulator0 = term.reader_cpu_s
        time.sleep(seconds)
        wall = time.monotonic() - wall0
        cpu = (cpu_s(term.pid) - cpu0) / wall
        emulator = (term.reader_cpu_s - emulator0) / wall
        rate, share = churn_report(report, began, time.time())
        keys0, kwall0 = cpu_s(term.pid), time.monotonic()
        cursor_trials(term, 60, results)
        filter_trials(term, PTY_FILTER_WORDS, visible, results)
        keys_cpu = (cpu_s(term.pid) - keys0) / (time.monotonic() - kwall0)
    finally:
        status = term.close(quit_keys=b"q")
        shutil.rmtree(work, ignore_errors=True)
    if status not in (0, None):
        print(f"  the room exited with {status}", file=sys.stderr)
    return {
        "cpu": cpu * 100,
        "keys_cpu": keys_cpu * 100,
        "emulator": emulator * 100,
        "rate": rate,
        "share": share,
        "cursor": Spread.of(results.cursor, results.cursor_timeouts),
        "letters": Spread.of(results.letters, results.letters_timeouts),
        "unseen": results.letters_unseen,
        "load": (load0, os.getloadavg()[0]),
        "notes": results.notes,
    }


def main() -> int:
    if len(sys.argv) == 5 and sys.argv[1] == "--as-room":
        return room_child(int(sys.argv[2]), sys.argv[3] == "all", sys.argv[4])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, nargs="+", default=[300, 3000])
    parser.add_argument("--seconds", type=float, default=20.0, help="CPU window without keys")
    parser.add_argument("--pty", action="store_true", help="the room in a real pty (not headless)")
    parser.add_argument(
        "--every-row", action="store_true", help="every reading of every row new each second"
    )
    args = parser.parse_args()
    figures: list[Figure] = []
    if args.pty:
        return main_pty(args)
    if args.every_row:
        parser.error("--every-row goes with --pty (ui_latency.py is the headless one)")
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


def main_pty(args: argparse.Namespace) -> int:
    figures: list[Figure] = []
    churn_kind = "every row each second" if args.every_row else "0.31 readings/server/s"
    for servers in args.servers:
        r = measure_pty(servers, args.seconds, args.every_row)
        cursor, letters = r["cursor"], r["letters"]
        print(
            f"{servers:>5} servers in a pty, {churn_kind}: {r['rate']:.2f} readings per server "
            f"and s, {r['share'] * 100:.0f} % of rows changed per 1 s window; room CPU without "
            f"keys {r['cpu']:.1f} % core (pyte in this process {r['emulator']:.0f} %), during "
            f"keys {r['keys_cpu']:.1f} %; cursor → frame {cursor.text()}; filter letter → "
            f"frame {letters.text()} ({r['unseen']} letters left the rows as they were); "
            f"load {r['load'][0]:.1f} → {r['load'][1]:.1f}"
        )
        for note in r["notes"]:
            print(f"  {note}")
        figures += [
            Figure(f"{servers}: pty, rows changed per 1 s", round(r["share"] * 100), "%"),
            Figure(f"{servers}: pty, room CPU without keys", round(r["cpu"], 1), "% core"),
            Figure(f"{servers}: pty, cursor → frame, p50", cursor.p50, "ms"),
            Figure(f"{servers}: pty, cursor → frame, p90", cursor.p90, "ms"),
            Figure(f"{servers}: pty, filter letter → frame, p50", letters.p50, "ms"),
            Figure(f"{servers}: pty, filter letter → frame, p90", letters.p90, "ms"),
            Figure(
                f"{servers}: pty, keys with no frame in 5 s",
                cursor.timeouts + letters.timeouts,
                "keys",
            ),
        ]
    emit(*figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
