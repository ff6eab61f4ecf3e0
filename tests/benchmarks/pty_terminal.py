"""A command in a pseudo-terminal, its screen kept by a terminal emulator (pyte), for benchmarks.

Not a benchmark itself (``python -m tests.benchmarks`` runs only scripts that
declare ``MEASURES``; this module is imported by them). A headless Textual
app returns from its display step before anything is rendered or written,
so a key → frame figure taken there stops short of the terminal. Here the
app runs as its own process on the slave side of a pty of a given size, as
under a real terminal; a reader thread reads everything it writes and feeds
it to ``pyte`` (a VT100/xterm emulator in Python), which keeps the screen's
text. ``press`` writes a key to the pty and waits until the emulated screen
satisfies a predicate (the cursor glyph one row lower, the grid showing the
filtered rows), and reports two times, both from the moment the key was
written:

- ``ms``: until the chunk of output that completed the expected screen
  arrived from the pty (what a terminal that draws instantly would show);
- ``emulated_ms``: until pyte had applied that chunk as well (adds our own
  emulator's work, which a GPU terminal does differently).

The app's answers to device queries (DA, cursor position) are written back,
as a terminal does. Output that arrives while nobody waits is still read
and emulated at once, so the app never blocks on a full pty.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import queue
import select
import signal
import statistics
import struct
import subprocess
import termios
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyte

Expect = Callable[[list[str]], bool]  # the screen's lines (text only) -> shows the change


@dataclass(frozen=True)
class Sample:
    """One key → frame time in milliseconds (see the module text for the two clocks)."""

    ms: float
    emulated_ms: float


@dataclass
class Spread:
    """p50 / p90 / max of some samples (ms) and how many timed out."""

    count: int
    p50: float
    p90: float
    max: float
    timeouts: int = 0
    samples: list[float] = field(default_factory=list, repr=False)

    @classmethod
    def of(cls, samples: Sequence[float], timeouts: int = 0) -> Spread:
        if not samples:
            nan = float("nan")
            return cls(0, nan, nan, nan, timeouts, [])
        ordered = sorted(samples)
        return cls(
            len(ordered),
            statistics.median(ordered),
            percentile(ordered, 90),
            ordered[-1],
            timeouts,
            ordered,
        )

    def text(self) -> str:
        late = f", {self.timeouts} without the frame" if self.timeouts else ""
        return (
            f"p50 {self.p50:.0f} ms, p90 {self.p90:.0f} ms, max {self.max:.0f} ms "
            f"({self.count} keys{late})"
        )


def percentile(ordered: Sequence[float], q: float) -> float:
    """The ``q``-th percentile of sorted samples, nearest rank (p90 of 10 samples: the 9th)."""
    if not ordered:
        return float("nan")
    rank = max(1, -(-len(ordered) * q // 100))  # ceil
    return float(ordered[int(rank) - 1])


class _Screen(pyte.Screen):  # type: ignore[misc]
    """pyte's screen, answering the app's device queries through the pty."""

    def __init__(self, columns: int, lines: int, reply: Callable[[str], None]) -> None:
        super().__init__(columns, lines)
        self._reply = reply

    def write_process_input(self, data: str) -> None:
        self._reply(data)


@dataclass
class _Waiter:
    expect: Expect
    done: threading.Event = field(default_factory=threading.Event)
    arrived: float = 0.0
    emulated: float = 0.0


class PtyTerminal:
    """``argv`` running in a ``columns`` × ``lines`` pty, its screen emulated by pyte."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        columns: int = 160,
        lines: int = 50,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.argv = list(argv)
        self.columns, self.rows = columns, lines
        self.env = {**os.environ, "TERM": "xterm-256color", "LANG": "C.UTF-8", **(env or {})}
        self.cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None
        self.bytes_read = 0
        self.chunks = 0
        self.reader_cpu_s = 0.0  # CPU seconds of the emulator thread (pyte)
        self._master = -1
        self._lock = threading.Lock()
        self._screen = _Screen(columns, lines, self._write_reply)
        self._stream = pyte.ByteStream(self._screen)
        self._text = [" " * columns for _ in range(lines)]
        self._waiter: _Waiter | None = None
        self._stop = threading.Event()
        self._chunks: queue.SimpleQueue[tuple[float, bytes] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []

    # -- life -------------------------------------------------------------------------

    def start(self) -> None:
        """Open the pty at its size and start the command with it as its controlling terminal."""
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", self.rows, self.columns, 0, 0))

        def controlling_terminal() -> None:  # in the child, before exec
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.process = subprocess.Popen(
            self.argv,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=self.env,
            cwd=self.cwd,
            preexec_fn=controlling_terminal,  # before any thread of the child exists
            close_fds=True,
        )
        os.close(slave)
        self._master = master
        for target in (self._read, self._emulate):
            thread = threading.Thread(target=target, name=f"pty{target.__name__}", daemon=True)
            thread.start()
            self._threads.append(thread)

    @property
    def pid(self) -> int:
        assert self.process is not None, "start() first"
        return self.process.pid

    def close(self, quit_keys: bytes | None = None, timeout: float = 10.0) -> int | None:
        """Type ``quit_keys`` (if any) and wait; then SIGTERM, SIGKILL. The exit status."""
        process = self.process
        if process is not None and process.poll() is None:
            if quit_keys:
                with contextlib.suppress(OSError):
                    os.write(self._master, quit_keys)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=timeout)
            for sig in (signal.SIGTERM, signal.SIGKILL):
                if process.poll() is not None:
                    break
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(sig)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=timeout)
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        if self._master >= 0:
            with contextlib.suppress(OSError):
                os.close(self._master)
            self._master = -1
        return None if process is None else process.poll()

    def __enter__(self) -> PtyTerminal:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading the screen -----------------------------------------------------------

    def lines(self) -> list[str]:
        """The screen's text now, one string per line."""
        with self._lock:
            return list(self._text)

    def wait_for(self, expect: Expect, timeout: float) -> bool:
        """Wait until the screen satisfies ``expect``; False after ``timeout`` seconds."""
        waiter = self._arm(expect)
        if waiter is None:
            return True
        try:
            return waiter.done.wait(timeout)
        finally:
            self._waiter = None

    def press(self, keys: bytes | str, expect: Expect, timeout: float = 5.0) -> Sample | None:
        """Write ``keys`` and wait for the screen to satisfy ``expect``; None on timeout.

        Raises ValueError when the screen satisfies ``expect`` before the key: that
        would time nothing.
        """
        data = keys.encode() if isinstance(keys, str) else keys
        waiter = self._arm(expect)
        if waiter is None:
            raise ValueError("the screen already shows what the key should bring")
        try:
            written = time.perf_counter()
            os.write(self._master, data)
            if not waiter.done.wait(timeout):
                return None
            return Sample((waiter.arrived - written) * 1000, (waiter.emulated - written) * 1000)
        finally:
            self._waiter = None

    def write(self, keys: bytes | str) -> None:
        """Write ``keys`` without timing anything."""
        os.write(self._master, keys.encode() if isinstance(keys, str) else keys)

    def _arm(self, expect: Expect) -> _Waiter | None:
        with self._lock:
            if expect(list(self._text)):
                return None
            waiter = self._waiter = _Waiter(expect)
            return waiter

    # -- the reader and emulator threads ----------------------------------------------

    def _write_reply(self, data: str) -> None:
        with contextlib.suppress(OSError):
            os.write(self._master, data.encode())

    def _read(self) -> None:
        """Read the pty as fast as it writes, stamping each chunk with its arrival time.

        Why a thread of its own: emulating a big frame takes pyte tens of ms; a key's
        frame that arrives meanwhile must be stamped when it arrived, not when the
        emulator got to it.
        """
        try:
            while not self._stop.is_set():
                ready, _, _ = select.select([self._master], [], [], 0.2)
                if not ready:
                    continue
                try:
                    chunk = os.read(self._master, 1 << 16)
                except OSError:  # EIO: the child closed the pty (exited)
                    return
                if not chunk:
                    return
                self._chunks.put((time.perf_counter(), chunk))
        finally:
            self._chunks.put(None)

    def _emulate(self) -> None:
        began = time.thread_time()
        screen = self._screen
        while (item := self._chunks.get()) is not None:
            arrived, chunk = item
            self.bytes_read += len(chunk)
            self.chunks += 1
            with self._lock:
                self._stream.feed(chunk)
                if screen.dirty:
                    buffer, columns = screen.buffer, range(screen.columns)
                    for y in screen.dirty:
                        if 0 <= y < screen.lines:
                            line = buffer[y]
                            self._text[y] = "".join(line[x].data for x in columns)
                    screen.dirty.clear()
                    waiter = self._waiter
                    if (
                        waiter is not None
                        and not waiter.done.is_set()
                        and waiter.expect(list(self._text))
                    ):
                        waiter.arrived, waiter.emulated = arrived, time.perf_counter()
                        waiter.done.set()
            self.reader_cpu_s = time.thread_time() - began


# -- run as a benchmark: the instrument's own floor and cost ------------------------------

MEASURES = (
    "The key → frame instrument itself: a pty round trip to a minimal echoing program, "
    "and pyte's CPU per full 160×50 colour frame"
)
LEAVES_OUT = (
    "any real app (service_scale.py times the control room with this instrument); "
    "a real terminal's drawing (pyte keeps text only, no pixels, no GPU)"
)
QUICK_ARGS = ("--keys", "50")

# A program that redraws one line with the number of bytes it read, in raw mode.
_ECHO = r"""
import os, tty
tty.setraw(0)
os.write(1, b"\x1b[2J\x1b[1;1Hready")
n = 0
while True:
    data = os.read(0, 64)
    if not data or b"q" in data:
        break
    n += len(data)
    os.write(1, ("\x1b[5;1Hkeys %d   " % n).encode())
"""


def _frame(columns: int, lines: int, frame: int) -> bytes:
    """A full screen the way Textual writes one: cursor moves, truecolor SGR every 8 cells."""
    out = []
    for y in range(lines):
        out.append(f"\x1b[{y + 1};1H")
        for x in range(0, columns, 8):
            shade = (x * 7 + y * 13 + frame) % 200
            out.append(f"\x1b[38;2;{shade};{255 - shade};90m\x1b[48;2;10;20;{shade}m")
            out.append(f"{(x + y + frame) % 1000:>7} "[: min(8, columns - x)])
        out.append("\x1b[0m")
    return "".join(out).encode()


def _bench_frames(columns: int, lines: int, frames: int) -> tuple[float, int]:
    """ms of CPU per full frame in pyte, and bytes per frame."""
    screen = pyte.Screen(columns, lines)
    stream = pyte.ByteStream(screen)
    data = [_frame(columns, lines, k) for k in range(frames)]
    began = time.process_time()
    for chunk in data:
        stream.feed(chunk)
        _ = screen.display
    per_frame = (time.process_time() - began) / frames * 1000
    return per_frame, len(data[0])


def main() -> int:
    import argparse
    import random
    import sys

    from _summary import Figure, emit

    parser = argparse.ArgumentParser(description=MEASURES)
    parser.add_argument("--keys", type=int, default=200, help="keys to time")
    parser.add_argument("--frames", type=int, default=40, help="frames for pyte's cost")
    args = parser.parse_args()
    samples: list[float] = []
    emulated: list[float] = []
    timeouts = 0
    with PtyTerminal([sys.executable, "-c", _ECHO], columns=160, lines=50) as term:
        if not term.wait_for(lambda lines: lines[0].startswith("ready"), 10):
            print("pty_terminal: the echo program did not start", file=sys.stderr)
            return 1
        for n in range(1, args.keys + 1):
            want = f"keys {n} "
            got = term.press(b"j", lambda lines, w=want: lines[4].startswith(w))
            if got is None:
                timeouts += 1
            else:
                samples.append(got.ms)
                emulated.append(got.emulated_ms)
            time.sleep(random.uniform(0.005, 0.03))
        term.close(quit_keys=b"q")
    floor, floor_emulated = Spread.of(samples, timeouts), Spread.of(emulated)
    per_frame, frame_bytes = _bench_frames(160, 50, args.frames)
    print(f"pty round trip, key → echo on screen: {floor.text()}")
    print(f"  … once pyte applied it: {floor_emulated.text()}")
    print(f"pyte: {per_frame:.1f} ms CPU per full 160×50 colour frame ({frame_bytes:,} bytes)")
    emit(
        Figure("key → echo in pty, p50", floor.p50, "ms"),
        Figure("key → echo in pty, p90", floor.p90, "ms"),
        Figure("key → echo in pty, max", floor.max, "ms"),
        Figure("pyte CPU per full 160×50 frame", per_frame, "ms"),
    )
    return 1 if timeouts else 0


if __name__ == "__main__":
    raise SystemExit(main())
