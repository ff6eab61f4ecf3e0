"""A repeated key never dismisses a screen twice; an unhandled error exits non-zero, logged.

The double Enter is sent as a terminal sends it: both keys queued before the
first is handled (``pilot.press`` waits between keys and would hide the bug).
The crash tests run ``pacs-tui run``/``wall`` as a real process on a pty.
"""

from __future__ import annotations

import inspect
import logging
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from textual import events
from textual.screen import ModalScreen

import pacs_tui_widgets
from pacs_tui.cli.ui import EXIT_CRASH
from pacs_tui_widgets.abort_prompt import AbortPrompt
from pacs_tui_widgets.app import ControlRoomApp
from pacs_tui_widgets.crash import Crash
from pacs_tui_widgets.custody_desk import CustodyPrompt
from pacs_tui_widgets.help_screen import HelpScreen
from pacs_tui_widgets.modal import Modal, Palette
from ui_pilot import SIZE, make_app, screen_text, wait_for

pytestmark = pytest.mark.timeout(90)

ROOT = Path(__file__).resolve().parent.parent
ANSI = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07]*\x07|[()][0-9A-B]|[=>])")


def burst(app: ControlRoomApp, *keys: str) -> None:
    """Queue ``keys`` at once, as a terminal read delivers them."""
    assert app._driver is not None
    for key in keys:
        event = events.Key(key, "\r" if key == "enter" else None)
        event.set_sender(app)
        app._driver.send_message(event)


@pytest.mark.parametrize("read_only", [False, True])
async def test_palette_double_enter_keeps_the_room_running(read_only: bool) -> None:
    app, _ = make_app(read_only=read_only)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+p")
        await pilot.pause(0.2)
        await pilot.press("down")
        burst(app, "enter", "enter")
        await pilot.pause(0.5)
        assert app.is_running and app.return_code is None
        assert len(app.screen_stack) == 1


async def test_palette_double_enter_runs_the_command_once() -> None:
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+p")
        await pilot.press(*"Mark DOWN servers")
        await wait_for(pilot, lambda: "Mark DOWN" in screen_text(app), what="palette hit")
        burst(app, "down", "enter", "enter", "enter")
        await wait_for(pilot, lambda: len(app.screen_stack) == 1, what="palette closed")
        await pilot.pause(0.3)
        runs = [line.text for line in app.events.lines if ":marks down marked" in line.text]
        assert len(runs) == 1, runs
        assert app.is_running


def modal_classes() -> list[type[ModalScreen[Any]]]:
    found: list[type[ModalScreen[Any]]] = []
    for path in Path(pacs_tui_widgets.__file__).parent.glob("*.py"):
        module = __import__(f"pacs_tui_widgets.{path.stem}", fromlist=["_"])
        for _, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, ModalScreen) and value.__module__ == module.__name__:
                found.append(value)
    return found


def test_every_modal_screen_answers_once() -> None:
    classes = modal_classes()
    assert {"HelpScreen", "PlanScreen", "AbortPrompt", "CustodyPrompt", "BaselineScreen"} <= {
        c.__name__ for c in classes
    }
    assert [c.__name__ for c in classes if not issubclass(c, (Modal, Palette))] == []


@pytest.mark.parametrize(
    "make_screen",
    [
        lambda: HelpScreen([], read_only=False),
        lambda: CustodyPrompt("Advance custody of 9 servers?", "marked: a, b"),
        lambda: AbortPrompt("batch b1 (off, 9 servers)"),
    ],
    ids=["help", "custody-prompt", "abort-prompt"],
)
async def test_a_second_dismiss_does_nothing(make_screen: Any) -> None:
    app, _ = make_app()
    answers: list[object] = []
    async with app.run_test(size=SIZE) as pilot:
        screen = make_screen()
        app.push_screen(screen, answers.append)
        await pilot.pause(0.1)
        screen.dismiss(True)
        screen.dismiss(True)  # the repeated key: must neither pop the room nor answer again
        await pilot.pause(0.2)
        assert answers == [True]
        assert len(app.screen_stack) == 1 and app.is_running


async def test_an_unhandled_error_stops_the_room_non_zero_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, _ = make_app(read_only=True)

    def boom() -> None:
        password = "local-value-never-shown"  # noqa: F841 Textual would print frame locals
        raise RuntimeError("forced by the test")

    with caplog.at_level(logging.CRITICAL), pytest.raises(Crash) as raised:
        async with app.run_test(size=SIZE) as pilot:
            app.set_timer(0.1, boom)
            await wait_for(pilot, lambda: app.return_code is not None, what="exit")
    assert app.return_code == 1
    assert isinstance(raised.value.__cause__, RuntimeError)
    assert "local-value-never-shown" not in str(raised.value.__rich__())
    records = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert records and records[0].exc_info is not None
    assert "forced by the test" in str(records[0].exc_info[1])


CHILD = """
import sys
from {module} import {cls} as App

original = App.on_mount

async def on_mount(self):
    await original(self)

    def boom():
        password = "local-value-never-shown"
        raise RuntimeError("forced by the test")

    self.set_timer(0.5, boom)

App.on_mount = on_mount
from pacs_tui.cli import main
sys.exit(main(sys.argv[1:]))
"""


def run_on_pty(argv: list[str], env: dict[str, str], timeout: float = 60.0) -> tuple[int, str]:
    """Run ``argv`` with a pty as its terminal; its exit status and everything it wrote."""
    main, child = pty.openpty()
    import fcntl
    import struct
    import termios

    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    process = subprocess.Popen(
        argv, stdin=child, stdout=child, stderr=child, env=env, cwd=ROOT, start_new_session=True
    )
    os.close(child)
    output = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([main], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(main, 65536)
                except OSError:  # EIO: every writer closed the pty
                    chunk = b""
                if not chunk and process.poll() is not None:
                    break
                output += chunk
            elif process.poll() is not None:
                break
        else:
            process.kill()
            pytest.fail(
                f"{argv} did not stop within {timeout} s:\n{output.decode(errors='replace')}"
            )
        code = process.wait(10)
    finally:
        os.close(main)
    return code, ANSI.sub("", output.decode(errors="replace"))


@pytest.mark.parametrize(
    ("command", "module", "cls"),
    [
        ("run", "pacs_tui_widgets.app", "ControlRoomApp"),
        ("wall", "pacs_tui_widgets.wall", "WallApp"),
    ],
)
def test_the_cli_exits_non_zero_on_a_crash_and_logs_it(
    tmp_path: Path, command: str, module: str, cls: str
) -> None:
    inventory = ROOT / "tests" / "inventories" / "good" / "minimal.yaml"
    env = {
        **os.environ,
        "PACS_TUI_DATA_DIR": str(tmp_path / "data"),
        "PACS_TUI_CONFIG": str(tmp_path / "no-config.yaml"),
        "TERM": "xterm-256color",
    }
    code, shown = run_on_pty(
        [sys.executable, "-c", CHILD.format(module=module, cls=cls), command, "-i", str(inventory)],
        env,
    )
    log_file = tmp_path / "data" / "pacs-tui.log"
    assert code == EXIT_CRASH, shown[-3000:]
    assert "stopped on an unexpected error" in shown and "forced by the test" in shown
    assert str(log_file) in " ".join(shown.split()) or "pacs-tui.log" in shown
    assert "local-value-never-shown" not in shown  # no frame locals on the screen
    logged = log_file.read_text()
    assert "RuntimeError: forced by the test" in logged and "Traceback" in logged
    assert oct(log_file.stat().st_mode & 0o777) == oct(0o600)
