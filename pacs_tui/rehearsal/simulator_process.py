"""``pacs-tui sim`` in its own process, started and stopped by the rehearsal."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from pacs_tui.rehearsal.outcome import RehearsalStopped


@dataclass
class SimProcess:
    """``pacs-tui sim`` started by the rehearsal (and only ever stopped by it)."""

    out: Path
    process: asyncio.subprocess.Process
    control_url: str
    log_path: Path

    def log_tail(self) -> str:
        """The end of the simulator's log, for error messages."""
        return _tail(self.log_path)


def _tail(path: Path) -> str:
    return path.read_text()[-2000:] if path.exists() else ""


def _make_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)


@contextlib.asynccontextmanager
async def running_simulator(
    out: Path, log_path: Path, args: Sequence[str], timeout_s: float
) -> AsyncIterator[SimProcess]:
    """Start the simulator, wait until it has written ``sim.json``, stop it on exit."""
    _make_dir(out)
    state_file = out / "sim.json"
    with log_path.open("w") as log_file:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pacs_tui", "sim", "--out", str(out), *args,
            stdout=log_file, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + timeout_s
        while not state_file.exists():
            if process.returncode is not None:
                raise RehearsalStopped(
                    f"the simulator exited with {process.returncode}: {_tail(log_path)}"
                )
            if time.monotonic() > deadline:
                raise RehearsalStopped(f"the simulator was not ready in {timeout_s:.0f} s")
            await asyncio.sleep(0.1)
        state = json.loads(state_file.read_text())
        yield SimProcess(out, process, str(state["control_url"]), log_path)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()
