"""Benchmark: what the continuous poller costs, in CPU and memory (issue 14 items 2-4).

    .venv/bin/python tests/benchmarks/poller_cost.py [--sizes 100 300 1000] [--with-3000]
        [--warmup 25] [--window 15] [--room-sizes 300 1000] [--sim-sweeps 5]

Every part is its own process on this machine, on loopback, the simulator
(``pacs-tui sim --servers N``) in a process of its own, default probe
intervals (power and network 5 s, DICOM and SSH 10 s):

1. **``pacs-tui status --watch``** (the probes alone, no UI), twice at once on
   the same simulator: with the collector tuning (``pacs_tui.gc_tuning``,
   frozen once warm) and with Python's defaults (``PACS_TUI_GC=default``).
   After ``--warmup`` s, CPU = utime+stime from ``/proc/PID/stat`` over
   ``--window`` s, taken in three equal parts (the spread: lowest and highest
   part). **CPU per reading** divides by the readings the watch took in the
   window: the child runs the CLI's own entry point with ``FleetMonitor.start``
   wrapped so that a thread can write the state's result count to a file four
   times a second (shown beside: the share of the readings due, every pair
   once per interval, that were taken). The watch reprints its table once a
   minute, so printing is left out. Peak RSS is ``VmHWM`` at the end. At
   3 000 servers (or with ``--serial``) the two run one after the other.
2. **In-process sweeps** (``FleetMonitor.sweep()`` in this process): after two
   warm-up sweeps, ``--sim-sweeps`` with Python's collector, then as many frozen
   (``gc_tuning.freeze()``, as the watch once warm): CPU per reading exactly
   (readings counted by the state), full collections per sweep, and the
   simulator's RSS after the warm-up and after all sweeps (``--sim-sweeps 24``:
   50 sweeps in all).
3. **The control room with the real probes**: ``pacs-tui run -i inventory.yaml``
   in a real pty (``pty_terminal.PtyTerminal``), and attached to a service
   (``pacs-tui serve`` + ``pacs-tui run --connect``), CPU of the room (and of
   the service) by the same /proc method after the same warm-up.

The machine's load average is printed with each size: the machine is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _summary import Figure, emit
from pty_terminal import PtyTerminal

from pacs_tui import gc_tuning
from pacs_tui.inventory import Inventory, load_inventory
from pacs_tui.monitor import FleetMonitor

MEASURES = (
    "Poller CPU per reading (status --watch, gc tuned vs default), poller and simulator RSS, "
    "control-room CPU with the real probes, in-process and attached to serve"
)
LEAVES_OUT = (
    "3 000 servers unless --with-3000; faults (a healthy fleet: no backoff, no timeouts); "
    "real network latency (loopback); keys in the room (idle screen, rows changing)"
)
QUICK_ARGS = (
    "--sizes", "100", "300", "--room-sizes", "300", "--warmup", "20", "--window", "12",
    "--sim-sweeps", "3",
)  # fmt: skip

CLOCK_TICK = os.sysconf("SC_CLK_TCK")
ROOT = Path(__file__).resolve().parents[2]


def cpu_s(pid: int) -> float:
    """utime + stime of ``pid`` in seconds (``/proc/PID/stat``)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICK


def status_mb(pid: int, key: str) -> float:
    """``VmRSS`` or ``VmHWM`` (peak) of ``pid`` in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


@dataclass
class Share:
    """CPU share (of one core) over a window, and the lowest and highest of its parts."""

    mean: float
    low: float
    high: float
    seconds: float = 0.0  # the window's wall time

    def text(self) -> str:
        return f"{self.mean * 100:.1f} % (parts {self.low * 100:.1f}-{self.high * 100:.1f})"


def cpu_shares(pids: dict[str, int], seconds: float, parts: int = 3) -> dict[str, Share]:
    """Each process's CPU share over ``seconds`` of wall time, measured in ``parts``."""
    marks = [(time.monotonic(), {k: cpu_s(p) for k, p in pids.items()})]
    for _ in range(parts):
        time.sleep(seconds / parts)
        marks.append((time.monotonic(), {k: cpu_s(p) for k, p in pids.items()}))
    out = {}
    for k in pids:
        each = [(b[1][k] - a[1][k]) / (b[0] - a[0]) for a, b in itertools.pairwise(marks)]
        total = (marks[-1][1][k] - marks[0][1][k]) / (marks[-1][0] - marks[0][0])
        out[k] = Share(total, min(each), max(each), marks[-1][0] - marks[0][0])
    return out


def readings_per_s(inventory: Inventory) -> tuple[int, float]:
    """(pairs, readings due per second): every applicable pair once per interval."""
    from pacs_tui.plugin_catalog import load_probes

    probes = list(load_probes().plugins.values())
    pairs, rate = 0, 0.0
    for server in inventory.servers:
        for probe in probes:
            if probe.applies_to(server):
                pairs += 1
                rate += 1.0 / probe.interval_s
    return pairs, rate


def wait_alive(process: subprocess.Popen[bytes], seconds: float, what: str) -> None:
    """Sleep ``seconds``; fail when ``process`` exits meanwhile."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        time.sleep(0.5)


def stop(process: subprocess.Popen[bytes]) -> None:
    from sim_process import stop_process

    stop_process(process, 30)


# -- 1. status --watch, gc tuned and default at once ------------------------------------


@dataclass
class Watch:
    """One ``status --watch`` over the window: CPU, readings taken and due, peak RSS."""

    share: Share
    readings: int  # taken in the window (the state's count)
    due: float  # every pair once per interval over the window
    hwm_mb: float

    @property
    def ms_per_reading(self) -> float:
        return self.share.mean * self.share.seconds / max(self.readings, 1) * 1000


def watch_child(count_file: str, *argv: str) -> int:
    """``pacs-tui status --watch`` in this process, its readings counted.

    The CLI's own entry point; ``FleetMonitor.start`` is wrapped to keep the
    monitor, and a thread writes its state's result count to ``count_file``
    every 0.25 s (an integer read: nothing the poller notices).
    """
    import threading

    from pacs_tui.cli import main as cli_main

    monitors: list[FleetMonitor] = []
    original = FleetMonitor.start

    def start(self: FleetMonitor) -> asyncio.Task[None]:
        monitors.append(self)
        return original(self)

    FleetMonitor.start = start  # type: ignore[method-assign]
    out = Path(count_file)

    def report() -> None:
        while True:
            time.sleep(0.25)
            if monitors:
                out.with_suffix(".tmp").write_text(str(monitors[0].state.updates))
                out.with_suffix(".tmp").replace(out)

    threading.Thread(target=report, daemon=True).start()
    return cli_main(["status", "--watch", *argv])


def counted(path: Path) -> int:
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return 0


def watch_cost(
    inventory_file: Path,
    inventory: Inventory,
    args: argparse.Namespace,
    env: dict[str, str],
    modes: Sequence[str],
) -> dict[str, Watch]:
    """{mode: Watch} for the gc modes given ('tuned', 'default'), run at once."""
    _pairs, rate = readings_per_s(inventory)
    procs, files = {}, {}
    for mode in modes:
        files[mode] = inventory_file.parent / f"readings-{mode}.txt"
        procs[mode] = subprocess.Popen(
            [sys.executable, __file__, "--watch-child", str(files[mode]), "-i",
             str(inventory_file), "--interval", "60"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT,
            env={**env, gc_tuning.ENV: "default" if mode == "default" else ""},
        )  # fmt: skip
    try:
        for mode, p in procs.items():
            wait_alive(p, args.warmup / len(procs), f"status --watch ({mode})")
        before = {m: counted(f) for m, f in files.items()}
        shares = cpu_shares({m: p.pid for m, p in procs.items()}, args.window)
        return {
            m: Watch(
                shares[m],
                counted(files[m]) - before[m],
                rate * shares[m].seconds,
                status_mb(p.pid, "VmHWM"),
            )
            for m, p in procs.items()
        }
    finally:
        for p in procs.values():
            stop(p)


# -- 2. in-process sweeps: exact CPU per reading, the simulator's growth ----------------


async def sweeps(inventory: Inventory, count: int, sim_pid: int) -> dict[str, float]:
    """``count`` sweeps with Python's collector, then ``count`` frozen (as the watch once warm).

    CPU per reading of each (readings counted by the state), full collections
    per sweep, the simulator's RSS after the two warm-up sweeps and at the end.
    """
    out: dict[str, float] = {}
    async with FleetMonitor(inventory) as m:
        await m.sweep()
        await m.sweep()
        out["sim_first_mb"] = status_mb(sim_pid, "VmRSS")
        for mode in MODES[::-1]:  # default first: freezing cannot be undone cleanly
            if mode == "tuned":
                gc_tuning.freeze()
            cpu, readings = 0.0, 0
            full = gc.get_stats()[2]["collections"]
            for _ in range(count):
                before, c0 = m.state.updates, time.process_time()
                await m.sweep()
                cpu += time.process_time() - c0
                readings += m.state.updates - before
            out[f"{mode}_ms"] = cpu / readings * 1000
            out[f"{mode}_full_gc"] = (gc.get_stats()[2]["collections"] - full) / count
        out["sim_last_mb"] = status_mb(sim_pid, "VmRSS")
    gc.unfreeze()
    return out


# -- 3. the control room in a pty ------------------------------------------------------


def room_cost(
    argv: Sequence[str], extra: dict[str, int], args: argparse.Namespace, env: dict[str, str]
) -> dict[str, Share]:
    """CPU shares of the room (in a 160×50 pty) and of ``extra`` processes after the warm-up."""
    with PtyTerminal(argv, env=env, cwd=ROOT) as term:
        assert term.process is not None
        wait_alive(term.process, args.warmup, "pacs-tui run")
        return cpu_shares({"room": term.pid, **extra}, args.window)


MODES = ("tuned", "default")


def main() -> int:
    if sys.argv[1:2] == ["--watch-child"]:
        return watch_child(*sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 300, 1000])
    parser.add_argument("--with-3000", action="store_true", help="add 3 000 servers (slow)")
    parser.add_argument("--room-sizes", type=int, nargs="*", default=[300, 1000])
    parser.add_argument("--warmup", type=float, default=25.0, help="seconds before measuring")
    parser.add_argument("--window", type=float, default=15.0, help="CPU window, seconds")
    parser.add_argument(
        "--sim-sweeps", type=int, default=5, help="in-process sweeps per gc mode (25: 50 in all)"
    )
    parser.add_argument("--no-attached", action="store_true", help="skip serve + run --connect")
    parser.add_argument(
        "--serial", action="store_true", help="the two gc modes one after the other"
    )
    args = parser.parse_args()
    sizes = sorted(set(args.sizes) | ({3000} if args.with_3000 else set()))
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print(f"machine: {os.cpu_count()} cores; python {sys.version.split()[0]}; load {load()}")
    from service_process import running_service
    from sim_process import running_sim

    figures: list[Figure] = []
    per_reading: dict[int, float] = {}
    sweep_per_reading: dict[int, float] = {}
    work = Path(tempfile.mkdtemp(prefix="pacs-tui-poller-cost-"))
    env = {**os.environ, "PACS_TUI_DATA_DIR": str(work / "data")}
    row: Callable[[str, float, str], None] = lambda name, value, unit: figures.append(  # noqa: E731
        Figure(name, value, unit)
    )
    try:
        for n in sizes:
            with running_sim(work / f"sim{n}", "--servers", str(n), timeout=600) as sim:
                inventory_file = sim.out / "inventory.yaml"
                inventory = load_inventory(inventory_file)
                pairs, rate = readings_per_s(inventory)
                print(f"\n== {n} servers: {pairs} pairs, {rate:.0f} readings due/s; load {load()}")
                # Both at once share the machine's load alike; at 3 000 servers two
                # pollers and the simulator would starve each other on 2 cores.
                together = n < 3000 and not args.serial
                watch: dict[str, Watch] = {}
                for modes in [MODES] if together else [[m] for m in MODES]:
                    watch |= watch_cost(inventory_file, inventory, args, env, modes)
                for mode, w in watch.items():
                    print(f"status --watch, gc {mode}: CPU {w.share.text()}, "
                          f"{w.readings} readings in {w.share.seconds:.0f} s ({w.due:.0f} due), "
                          f"{w.ms_per_reading:.3f} ms CPU per reading, "
                          f"peak RSS {w.hwm_mb:.0f} MiB")  # fmt: skip
                    row(f"{n}: status --watch CPU, gc {mode} ({w.share.text()})",
                        w.share.mean * 100, "% core")  # fmt: skip
                    row(f"{n}: CPU per reading, gc {mode} ({w.readings / w.due:.0%} of due taken)",
                        w.ms_per_reading, "ms")  # fmt: skip
                per_reading[n] = watch["tuned"].ms_per_reading
                row(f"{n}: status --watch peak RSS (VmHWM), gc tuned",
                    watch["tuned"].hwm_mb, "MiB")  # fmt: skip
                swept = asyncio.run(sweeps(inventory, args.sim_sweeps, sim.process.pid))
                for mode in MODES:
                    print(f"in-process sweeps ×{args.sim_sweeps}, gc {mode}: "
                          f"{swept[mode + '_ms']:.3f} ms CPU per reading, "
                          f"{swept[mode + '_full_gc']:.1f} full collections per sweep")  # fmt: skip
                    row(f"{n}: sweep CPU per reading, gc {mode} (in-process, exact)",
                        swept[mode + "_ms"], "ms")  # fmt: skip
                sweeps_done = 2 + 2 * args.sim_sweeps
                print(f"simulator RSS {swept['sim_first_mb']:.0f} MiB after 2 warm-up sweeps, "
                      f"{swept['sim_last_mb']:.0f} MiB after {sweeps_done}")  # fmt: skip
                row(f"{n}: simulator RSS after 2 warm-up sweeps", swept["sim_first_mb"], "MiB")
                row(f"{n}: simulator RSS after {sweeps_done} sweeps", swept["sim_last_mb"], "MiB")
                sweep_per_reading[n] = swept["tuned_ms"]
                if n in args.room_sizes:
                    room = room_cost(
                        [sys.executable, "-m", "pacs_tui", "run", "-i", str(inventory_file)],
                        {}, args, env,
                    )["room"]  # fmt: skip
                    print(f"control room, real probes in-process: CPU {room.text()}")
                    row(f"{n}: control room CPU, probes in-process ({room.text()})",
                        room.mean * 100, "% core")  # fmt: skip
                    if not args.no_attached:
                        with running_service(
                            inventory_file, work / f"serve{n}", timeout=600, env=env
                        ) as service:
                            token = work / f"viewer{n}.token"
                            token.write_text(service.tokens["wall"] + "\n")
                            token.chmod(0o600)
                            shares = room_cost(
                                [sys.executable, "-m", "pacs_tui", "run", "--connect",
                                 service.url, "--token-file", str(token)],
                                {"serve": service.process.pid}, args, env,
                            )  # fmt: skip
                        print(f"control room attached to serve: CPU {shares['room'].text()}; "
                              f"serve {shares['serve'].text()}")  # fmt: skip
                        row(f"{n}: control room CPU, attached ({shares['room'].text()})",
                            shares["room"].mean * 100, "% core")  # fmt: skip
                        row(f"{n}: serve CPU beside it ({shares['serve'].text()})",
                            shares["serve"].mean * 100, "% core")  # fmt: skip
        for what, figures_of in (("status --watch", per_reading), ("sweep", sweep_per_reading)):
            if len(figures_of) > 1:
                low, high = min(figures_of), max(figures_of)
                ratio = figures_of[high] / figures_of[low]
                print(f"{what} CPU per reading, gc tuned, {high} vs {low} servers: ×{ratio:.2f}")
                row(f"{what} CPU per reading {high} / {low} servers (gc tuned)", ratio, "×")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nload at the end {load()}")
    emit(*figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
