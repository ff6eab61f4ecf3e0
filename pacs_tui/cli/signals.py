"""SIGINT and SIGTERM end a long-running command the same way: cleanly, with logout.

Python's default for SIGTERM ends the process on the spot: no ``finally``, no
``async with`` exit, so every Redfish session the command held stays open on
its BMC until the BMC's idle timeout (often 10 minutes, and a BMC has only a
handful). ``run_until_signalled`` runs the command's coroutine as a task and
turns the first SIGINT or SIGTERM into a cancellation of that task, so its
``async with`` blocks close their plugins (which log out). A command can
``divert`` the signals for a while to do something gentler than cancel
(a power batch aborts: no new step, calls in flight finish, all audited).
A second signal gets the operating system's default (Ctrl-C twice kills).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, Protocol

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Exitable(Protocol):
    """An app that can be asked to exit from its own event loop (a Textual ``App``)."""

    def exit(self) -> None:
        """Leave the app as its quit key does (widgets unmount, monitors close)."""


class SignalStop:
    """What the first SIGINT/SIGTERM does to a running command (see the module doc)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, task: asyncio.Task[int]) -> None:
        self._loop = loop
        self._task = task
        self._diverted: Callable[[signal.Signals], None] | None = None
        self.received: signal.Signals | None = None

    @property
    def exit_code(self) -> int:
        """``128 + signal number`` of the signal received (the shell's convention)."""
        return 128 + int(self.received) if self.received is not None else 0

    def install(self) -> None:
        """Catch SIGINT and SIGTERM from now on."""
        for sig in SIGNALS:
            # Only the main thread receives signals; a command run from another thread
            # (an embedding program, a test) keeps the process's own handling.
            with contextlib.suppress(ValueError, RuntimeError):
                self._loop.add_signal_handler(sig, self._on_signal, sig)

    def uninstall(self) -> None:
        """Give both signals back to their defaults."""
        for sig in SIGNALS:
            with contextlib.suppress(ValueError, RuntimeError):
                self._loop.remove_signal_handler(sig)

    @contextlib.contextmanager
    def divert(self, action: Callable[[signal.Signals], None]) -> Iterator[None]:
        """Inside the block, the first signal calls ``action(signal)`` instead of cancelling."""
        self._diverted = action
        try:
            yield
        finally:
            self._diverted = None

    def _on_signal(self, sig: signal.Signals) -> None:
        if self.received is not None:
            return
        self.received = sig
        # The second signal is the operator insisting: let it do its default.
        self.uninstall()
        if self._diverted is not None:
            self._diverted(sig)
        else:
            self._task.cancel(f"stopped by {sig.name}")


async def run_until_signalled(
    command: Callable[[SignalStop], Coroutine[Any, Any, int]],
) -> int:
    """Run ``command(stop)``; return its exit code, or ``128+N`` when signal N cancelled it.

    The coroutine may catch the cancellation itself and return its own code
    (``status --watch`` returns 0: a signal is how a watch is meant to end).
    """
    loop = asyncio.get_running_loop()
    holder: list[SignalStop] = []

    async def wrapped() -> int:
        return await command(holder[0])

    task = asyncio.create_task(wrapped())
    stop = SignalStop(loop, task)
    holder.append(stop)
    stop.install()
    try:
        return await task
    except asyncio.CancelledError:
        if stop.received is not None and task.cancelled():
            return stop.exit_code
        raise
    finally:
        stop.uninstall()


@contextlib.contextmanager
def app_exits_on_sigterm(app: Exitable) -> Iterator[None]:
    """While the block runs ``app``: SIGTERM asks it to exit as its quit key would.

    Textual handles Ctrl-C itself but leaves SIGTERM at Python's default,
    which ends the process before the app unmounts, so its monitor never logs
    out. The handler runs on the main thread, where the app's loop runs; it
    schedules ``app.exit`` on that loop. A second SIGTERM kills (the default).
    """

    def on_sigterm(signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # the app is not running (yet, or any more)
            raise SystemExit(128 + signum) from None
        loop.call_soon_threadsafe(app.exit)

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


async def read_line() -> str:
    """One line from stdin (``""`` at its end) that a signal can interrupt.

    Not through the default executor: ``asyncio.run`` waits for its threads
    at exit, so a thread blocked in ``readline`` would hold up the exit after
    a signal. This one is a daemon, and its answer is dropped once the
    awaiting task was cancelled.
    """
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[str] = loop.create_future()

    def read() -> None:
        try:
            line = sys.stdin.readline()
        except (OSError, ValueError):
            line = ""

        def deliver() -> None:
            if not answer.done():  # cancelled by a signal meanwhile
                answer.set_result(line)

        # A closed loop: the command ended (a signal) before the answer came.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(deliver)

    threading.Thread(target=read, name="confirm-stdin", daemon=True).start()
    return await answer
