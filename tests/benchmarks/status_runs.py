"""Benchmark: N consecutive ``pacs-tui status`` runs on a healthy simulated fleet (issue 14, item 1).

The simulator (``--servers 300``, no faults) runs in its own process on
loopback; each run is the real CLI, ``python -m pacs_tui status --json``, in
its own process, one after another. Every reading of a healthy fleet should be
OK and every run exit 0: a run that exits 1 cried wolf. Per run the table shows
the exit code, the wall time (spawn to exit, interpreter start included), the
slowest C-ECHO as measured (how close a healthy node came to ``dicom_slow_ms``,
1000 ms) and the readings that were not OK, grouped by probe, health and state, with one
detail each.

``--load`` also runs a ``pacs-tui status --watch`` beside the runs (a control
room's poller on the same fleet and the same cores), as issue 14 describes.
``--against DIR`` runs another checkout's ``status`` after each run of this
one, each on a simulator of its own code (before/after figures from
interleaved runs, so a shared machine's changing load weighs on both alike;
the ``--watch`` stays this checkout's).

    .venv/bin/python tests/benchmarks/status_runs.py [--runs 20] [--servers 300] [--load]
        [--against DIR]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _summary import Figure, emit

from sim_process import stop_process

MEASURES = "`pacs-tui status` N times in a row on a healthy 300-server simulator: exit codes, readings not OK, wall time"  # fmt: skip
LEAVES_OUT = (
    "faults (the fleet is healthy); real networks' latency (loopback); "
    "--load (a status --watch beside the runs) unless asked for"
)
QUICK_ARGS = ("--runs", "10")

PROBES = ("power", "network", "dicom", "ssh")


def not_ok(views: list[dict[str, Any]]) -> list[tuple[str, str, str, str, str]]:
    """(server, probe, health, state, detail) of every applicable reading that is not OK."""
    found = []
    for view in views:
        for probe in PROBES:
            reading = view.get(probe)
            if isinstance(reading, dict) and reading["health"] not in ("ok", "n/a"):
                found.append(
                    (view["name"], probe, reading["health"], reading["state"], reading["detail"])
                )
    return found


def describe(found: list[tuple[str, str, str, str, str]]) -> str:
    """The not-OK readings of one run as ``probe health/state xN (first detail)``."""
    groups: dict[tuple[str, str, str], list[str]] = collections.defaultdict(list)
    for _server, probe, health, state, detail in found:
        groups[(probe, health, state)].append(detail)
    return "; ".join(
        f"{p} {h}/{s} x{len(d)} ({d[0][:90]})" for (p, h, s), d in sorted(groups.items())
    )


@dataclass(frozen=True)
class Run:
    """One ``status --json`` run."""

    code: int  # exit code
    wall_s: float  # spawn to exit
    found: list[tuple[str, str, str, str, str]]  # readings not OK
    stderr: str  # its tail
    dicom_max_ms: float  # the slowest C-ECHO as measured (the limit is 1000 ms)


def one_run(inventory: Path, env: dict[str, str], cwd: Path | None) -> Run:
    """Run ``status --json`` once and read what it printed."""
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pacs_tui", "status", "-i", str(inventory), "--json"],
        capture_output=True, text=True, env=env, cwd=cwd, timeout=300, check=False,
    )  # fmt: skip
    wall = time.perf_counter() - began
    try:
        views = json.loads(done.stdout)
    except ValueError:
        return Run(done.returncode, wall, [], done.stderr[-500:], math.nan)
    echoes = [
        v["dicom"]["latency_ms"]
        for v in views
        if isinstance(v.get("dicom"), dict) and v["dicom"]["latency_ms"] is not None
    ]
    return Run(
        done.returncode, wall, not_ok(views), done.stderr[-500:], max(echoes, default=math.nan)
    )


@contextlib.contextmanager
def simulator(servers: int, env: dict[str, str], cwd: Path | None) -> Iterator[Path]:
    """A healthy simulator of ``servers`` in its own process (loopback); its inventory file."""
    out = Path(tempfile.mkdtemp(prefix="pacs-tui-status-runs-")) / "dc"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pacs_tui", "sim", "--servers", str(servers), "--out", str(out),
         "--address-octet", str(random.randint(100, 250))],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd,
    )  # fmt: skip
    try:
        while not (out / "sim.json").exists():
            if proc.poll() is not None:
                raise RuntimeError(proc.stderr.read() if proc.stderr else "sim exited")
            time.sleep(0.05)
        yield out / "inventory.yaml"
    finally:
        stop_process(proc, 20)


def checkout_env(root: Path) -> dict[str, str]:
    """The environment of runs of another checkout: its folders first on ``PYTHONPATH``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(root), str(root / "plugins"), env.get("PYTHONPATH", "")]
    )
    return env


def summary(name: str, results: list[Run]) -> list[Figure]:
    """Print one checkout's totals; its figures."""
    walls = [r.wall_s for r in results]
    passed = sum(1 for r in results if r.code == 0)
    readings = sum(len(r.found) for r in results)
    echo = max(r.dicom_max_ms for r in results)
    print(
        f"{name}: {passed}/{len(results)} runs exit 0; {readings} readings not OK in all; "
        f"wall median {statistics.median(walls):.2f} s, max {max(walls):.2f} s; "
        f"slowest C-ECHO as measured {echo:.0f} ms"
    )
    suffix = "" if name == "this checkout" else f" ({name})"
    return [
        Figure(f"runs that exit 0{suffix}", passed, "runs"),
        Figure(f"runs{suffix}", len(results), "runs"),
        Figure(f"readings not OK, all runs{suffix}", readings, "readings"),
        Figure(f"wall per run, median{suffix}", statistics.median(walls), "s"),
        Figure(f"wall per run, max{suffix}", max(walls), "s"),
        Figure(f"slowest C-ECHO as measured{suffix}", echo, "ms"),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--servers", type=int, default=300)
    parser.add_argument("--load", action="store_true", help="a status --watch beside the runs")
    parser.add_argument(
        "--against", type=Path, default=None,
        help="another checkout (e.g. `git archive OLD | tar -x -C DIR`), run after each run",
    )  # fmt: skip
    args = parser.parse_args()
    # name -> (environment, working folder): python -m puts the working folder first.
    checkouts: dict[str, tuple[dict[str, str], Path | None]] = {
        "this checkout": (dict(os.environ), None)
    }
    if args.against is not None:
        root = args.against.resolve()
        checkouts[f"against {root}"] = (checkout_env(root), root)
    print(f"machine: {os.cpu_count()} cores; python {sys.version.split()[0]}; load {os.getloadavg()[0]:.2f}")  # fmt: skip
    results: dict[str, list[Run]] = {n: [] for n in checkouts}
    with contextlib.ExitStack() as stack:
        # Each checkout runs against a simulator of its own code (inventories change).
        inventories = {
            name: stack.enter_context(simulator(args.servers, env, cwd))
            for name, (env, cwd) in checkouts.items()
        }
        if args.load:
            watch = subprocess.Popen(
                [sys.executable, "-m", "pacs_tui", "status", "-i",
                 str(inventories["this checkout"]), "--watch", "--json", "--interval", "5"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
            )  # fmt: skip
            stack.callback(stop_process, watch, 20)
            time.sleep(8)  # past the watch's own first sweep
        label = "  checkout" if len(checkouts) > 1 else ""
        print(
            f"\n{'run':>3}{label}  {'exit':>4}  {'wall s':>6}  {'echo max ms':>11}  {'not ok':>6}"
            "  readings not OK"
        )
        for run in range(1, args.runs + 1):
            for name, (env, cwd) in checkouts.items():
                r = one_run(inventories[name], env, cwd)
                results[name].append(r)
                note = describe(r.found) or ("-" if r.code == 0 else r.stderr.strip()[-200:])
                which = f"  {'this' if cwd is None else 'against':>8}" if label else ""
                print(
                    f"{run:>3}{which}  {r.code:>4}  {r.wall_s:>6.2f}  {r.dicom_max_ms:>11.0f}"
                    f"  {len(r.found):>6}  {note}",
                    flush=True,
                )
    print("\n(with a status --watch beside)" if args.load else "")
    figures = [f for name, found in results.items() for f in summary(name, found)]
    emit(*figures)
    mine = results["this checkout"]
    return 0 if all(r.code == 0 for r in mine) else 1


if __name__ == "__main__":
    sys.exit(main())
