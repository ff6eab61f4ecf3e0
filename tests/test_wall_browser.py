"""The wall in a real browser: ``pacs-tui wall --web --connect`` seen by headless Chromium.

Processes: the simulator (12 servers), ``pacs-tui serve`` on it, and
``pacs-tui wall --web --connect`` attached to the service with the viewer
token; Debian's Chromium (driven by Selenium through Debian's chromedriver,
nothing downloaded) opens the page on loopback.

How the test knows the counters are drawn: textual-serve's xterm.js paints on
a canvas, so the page's DOM holds no text. A script installed before the page
loads records every byte the page's websocket receives (exactly what xterm.js
draws) and every message the page sends. The test replays the received bytes
on a small terminal screen model here and reads the wall's text from it: the
title "whole fleet · 12 servers", "newest reading", and the six state counters,
whose big ``Digits`` it decodes with Textual's own glyph table; they must add
up to 12 with UP above zero, so real readings from the service are on screen.

The screenshot goes to ``build/artifacts/wall-browser.png`` in the repository
(git-ignored; CI keeps ``build/artifacts/`` as an artifact).

Then the test types at the wall (letters, digits, Enter, space, o, f, O, N,
:power off, ctrl+p, escape, q …), checks the page did send them, and checks
nothing changed anywhere: no reset and no POST other than a login at any BMC
(counted at the simulator before and after), no new audit row at the
service, the BMC sessions with the browser attached no more than the
service's poller held alone, the wall still on screen (the keys reached no
wall process: ``wall --web`` drops them), one wall process for the one
browser, and the token in no command line and not in the page. SIGTERM then
stops ``wall --web`` and its wall process.

Skips on a laptop without chromium/chromedriver/selenium; fails under CI=true.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import unicodedata
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from peers import require_binary, require_module
from service_process import RunningService, free_port, running_service
from sim_process import RunningSim, running_sim, stop_process, wait_until

pytestmark = pytest.mark.peer("chromium")

REPO = Path(__file__).resolve().parent.parent
SCREENSHOT = REPO / "build" / "artifacts" / "wall-browser.png"
SERVERS = 12
LOGIN_PATH = re.compile(r"/redfish/v1/SessionService/Sessions/?$")

# Runs before the page's own scripts: keep what the websocket receives (as text,
# decoded across frames) and what the page sends.
CAPTURE = """
(() => {
  const Native = window.WebSocket;
  const decoder = new TextDecoder("utf-8");
  const wall = {received: [], bytes: 0, sent: []};
  window.__wall = wall;
  function Capturing(url, protocols) {
    const socket = protocols === undefined ? new Native(url) : new Native(url, protocols);
    socket.addEventListener("message", (event) => {
      if (typeof event.data !== "string") {
        const bytes = new Uint8Array(event.data);
        wall.bytes += bytes.length;
        wall.received.push(decoder.decode(bytes, {stream: true}));
      }
    });
    const send = socket.send.bind(socket);
    socket.send = (data) => { wall.sent.push(String(data)); send(data); };
    return socket;
  }
  Capturing.prototype = Native.prototype;
  for (const name of ["CONNECTING", "OPEN", "CLOSING", "CLOSED"]) {
    Capturing[name] = Native[name];
  }
  window.WebSocket = Capturing;
})();
"""
TAKE_RECEIVED = "const r = window.__wall.received; window.__wall.received = []; return r.join('');"

# Chromium as root in a closed network: no sandbox, no GPU, and no background
# traffic of its own; host names resolve nowhere (only 127.0.0.1 is used).
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--window-size=1400,900",
)


class Screen:
    """Just enough of a terminal to read what Textual drew: cursor moves and text."""

    _CSI = re.compile(r"\x1b\[([0-9;?<=>]*)([ -/]*)([@-~])")
    _OSC = re.compile(r"\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")

    def __init__(self) -> None:
        self.cells: dict[tuple[int, int], str] = {}
        self.row = 0
        self.col = 0

    def feed(self, text: str) -> None:
        i = 0
        while i < len(text):
            char = text[i]
            if char == "\x1b":
                i = self._escape(text, i)
                continue
            if char == "\r":
                self.col = 0
            elif char == "\n":
                self.row += 1
            elif char == "\b":
                self.col = max(0, self.col - 1)
            elif char >= " ":
                self.cells[(self.row, self.col)] = char
                wide = unicodedata.east_asian_width(char) in ("W", "F")
                if wide:
                    self.cells[(self.row, self.col + 1)] = ""
                self.col += 2 if wide else 1
            i += 1

    def _escape(self, text: str, i: int) -> int:
        csi = self._CSI.match(text, i)
        if csi:
            params, _, final = csi.groups()
            numbers = [int(p) if p.isdigit() else 0 for p in params.split(";")] if params else []
            if final == "H" and not params.startswith("?"):
                row = numbers[0] if numbers and numbers[0] else 1
                col = numbers[1] if len(numbers) > 1 and numbers[1] else 1
                self.row, self.col = row - 1, col - 1
            elif final == "J" and numbers[:1] == [2]:
                self.cells.clear()
            elif final == "K":
                self.cells = {
                    k: v
                    for k, v in self.cells.items()
                    if not (k[0] == self.row and k[1] >= self.col)
                }
            return csi.end()
        osc = self._OSC.match(text, i)
        if osc:
            return osc.end()
        return min(i + 2, len(text))  # a two-byte escape (ESC 7, ESC =, …)

    def lines(self) -> list[str]:
        if not self.cells:
            return []
        rows = max(r for r, _ in self.cells) + 1
        width = max(c for _, c in self.cells) + 1
        grid = [[" "] * width for _ in range(rows)]
        for (r, c), char in self.cells.items():
            grid[r][c] = char
        return ["".join(line) for line in grid]

    def text(self) -> str:
        return "\n".join(self.lines())


def _digit_glyphs() -> dict[tuple[str, str, str], str]:
    """Textual's 3×3 ``Digits`` glyphs (plain and bold) → the character they draw."""
    from textual.renderables import digits

    table: dict[tuple[str, str, str], str] = {}
    for glyphs in (digits.DIGITS3X3, digits.DIGITS3X3_BOLD):
        rows = list(glyphs)  # already split into lines
        for index, char in enumerate(digits.DIGITS):
            cell = tuple(rows[index * 3 + k].ljust(3)[:3] for k in range(3))
            if char.isdigit():
                table[(cell[0], cell[1], cell[2])] = char
    return table


def state_counters(lines: list[str]) -> dict[str, int]:
    """Each state counter's label → the number its ``Digits`` below show."""
    from pacs_tui.rollup import HEALTH_ORDER, HEALTH_WORDS

    glyphs = _digit_glyphs()
    found: dict[str, int] = {}
    for health in HEALTH_ORDER:
        word = HEALTH_WORDS[health].upper()
        for r, line in enumerate(lines[:-3]):
            match = re.search(rf"(?<![A-Z]). {re.escape(word)}(?![A-Z])", line)
            if match is None:
                continue
            col = match.start()
            number = ""
            while True:
                cell = tuple(lines[r + 1 + k][col : col + 3].ljust(3) for k in range(3))
                if (cell[0], cell[1], cell[2]) not in glyphs:
                    break
                number += glyphs[(cell[0], cell[1], cell[2])]
                col += 3
            if number:
                found[word] = int(number)
                break
    return found


def wall_drawn(screen: Screen) -> dict[str, int] | None:
    """The counters when the whole-fleet page shows real readings, else None."""
    lines = screen.lines()
    text = "\n".join(lines)
    if f"whole fleet · {SERVERS} servers" not in text or "newest reading" not in text:
        return None
    from pacs_tui.plugin_api import Health
    from pacs_tui.rollup import HEALTH_WORDS

    counters = state_counters(lines)
    up = counters.get(HEALTH_WORDS[Health.OK].upper(), 0)
    if len(counters) < 6 or sum(counters.values()) != SERVERS or up == 0:
        return None
    return counters


def bmc_view(sim: RunningSim) -> dict[str, dict[str, Any]]:
    """Per server: live Redfish sessions, resets, and POSTs other than logins (at the sim)."""
    import json

    view = {}
    for server in sim.servers():
        name = server["name"]
        with urllib.request.urlopen(f"{sim.control_url}/hosts/{name}/bmc", timeout=10) as answer:
            bmc = json.loads(answer.read())
        posts = {
            r["path"]: r["count"]
            for r in bmc["requests"]
            if r["method"] == "POST" and not LOGIN_PATH.search(r["path"])
        }
        view[name] = {"sessions": bmc["sessions"], "resets": list(bmc["resets"]), "posts": posts}
    return view


def audit_rows(service: RunningService) -> list[Any]:
    status, body = service.request("GET", "/api/v1/audit?limit=1000", service.tokens["lead"])
    assert status == 200, body
    return list(body["events"])


def children(pid: int) -> list[int]:
    """Live child processes of ``pid`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def chromium() -> tuple[str, str]:
    require_module("selenium")
    browser = require_binary("chromium", "/usr/bin/chromium")
    driver = require_binary("chromedriver", "/usr/bin/chromedriver")
    return browser, driver


def open_browser(browser: str, driver_path: str, profile: Path, log: Path) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser  # with the service's path: no selenium-manager lookup
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=driver_path, log_output=str(log))
    driver = webdriver.Chrome(service=service, options=options)
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": CAPTURE})
    return driver


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[tuple[RunningSim, RunningService]]:
    with ExitStack() as stack:
        sim = stack.enter_context(
            running_sim(tmp_path / "sim", "--servers", str(SERVERS), "--time-scale", "0.05")
        )
        service = stack.enter_context(
            running_service(sim.out / "inventory.yaml", tmp_path / "service")
        )
        yield sim, service


def test_wall_in_chromium_shows_counters_and_keys_change_nothing(
    tmp_path: Path, chromium: tuple[str, str], fleet: tuple[RunningSim, RunningService]
) -> None:
    started = time.monotonic()
    sim, service = fleet
    token = service.tokens["wall"]
    port = free_port()
    page_url = f"http://127.0.0.1:{port}/"
    web_log = tmp_path / "wall-web.log"

    # What the service's poller holds alone, once every BMC has its session.
    def logged_in() -> dict[str, dict[str, Any]] | None:
        view = bmc_view(sim)
        return view if all(bmc["sessions"] for bmc in view.values()) else None

    alone = wait_until(
        logged_in,
        timeout=30,
        interval=0.5,
        what="the service's poller logged in to every BMC",
    )
    audit_before = audit_rows(service)

    env = {**os.environ, "PACS_TUI_TOKEN": token}
    command = [
        sys.executable, "-m", "pacs_tui", "wall", "--web", "--connect", service.url,
        "--web-listen", f"127.0.0.1:{port}", "--page-seconds", "600",
    ]  # fmt: skip
    web = subprocess.Popen(command, env=env, stdout=web_log.open("w"), stderr=subprocess.STDOUT)
    driver: Any = None
    walls: list[int] = []
    try:
        wait_until(lambda: _answers(page_url) or web.poll() is not None, 30, what="wall --web up")
        assert web.poll() is None, web_log.read_text()
        page = urllib.request.urlopen(page_url, timeout=10).read().decode()
        assert token not in page
        assert "googleapis" not in page  # the page loads only this server's files

        driver = open_browser(*chromium, tmp_path / "chromium-profile", tmp_path / "driver.log")
        driver.get(page_url)
        screen = Screen()

        def drawn() -> dict[str, int] | None:
            screen.feed(driver.execute_script(TAKE_RECEIVED))
            return wall_drawn(screen)

        try:
            counters = wait_until(drawn, timeout=30, interval=0.25, what="the wall's counters")
        except AssertionError:
            driver.save_screenshot(str(tmp_path / "not-drawn.png"))
            raise AssertionError(
                f"the wall's counters never showed; screen:\n{screen.text()}\n"
                f"counters read: {state_counters(screen.lines())}\n"
                f"wall --web log:\n{web_log.read_text()[-3000:]}"
            ) from None
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        assert driver.save_screenshot(str(SCREENSHOT)), "no screenshot"
        assert SCREENSHOT.stat().st_size > 10_000  # a drawn canvas, not a blank page
        assert "SERVICE UNREACHABLE" not in screen.text()
        # Everything the page loaded came from wall --web itself; nothing was refused.
        loaded = driver.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name);"
        )
        assert loaded and all(url.startswith(page_url) for url in loaded), loaded
        problems = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not problems, problems

        walls += children(web.pid)
        assert len(walls) == 1, f"one wall process per browser, got {walls}"
        wall_pid = walls[0]
        wall_argv = Path(f"/proc/{wall_pid}/cmdline").read_bytes().split(b"\0")
        assert b"--connect" in wall_argv
        for pid in (web.pid, wall_pid):  # the token is in environments, never on a command line
            assert token.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
        assert f"PACS_TUI_TOKEN={token}".encode() in Path(f"/proc/{wall_pid}/environ").read_bytes()

        type_at_the_wall(driver)
        time.sleep(3)  # long enough for a keystroke to have become a request anywhere
        sent = driver.execute_script("return window.__wall.sent;")
        typed = [m for m in sent if m.startswith('["stdin"')]
        assert len(typed) >= 20, f"the page sent {len(typed)} keystrokes: {sent[:10]}"

        # The wall is still there, still one process, still the same counters' page.
        assert "Session ended" not in driver.find_element("tag name", "body").text
        assert not driver.execute_script("return document.body.classList.contains('-closed');")
        assert children(web.pid) == [wall_pid]
        screen.feed(driver.execute_script(TAKE_RECEIVED))
        assert wall_drawn(screen) is not None, screen.text()

        attached = bmc_view(sim)
        for name, before in alone.items():
            now = attached[name]
            assert now["resets"] == before["resets"], f"{name}: a reset was sent"
            assert now["posts"] == before["posts"], f"{name}: a POST other than a login"
            assert now["sessions"] <= before["sessions"], (
                f"{name}: {now['sessions']} BMC sessions with the browser attached, "
                f"{before['sessions']} with the service alone"
            )
        assert audit_rows(service) == audit_before, "the audit log grew"

        # SIGTERM stops the server and its wall process: no orphan.
        web.send_signal(signal.SIGTERM)
        assert web.wait(timeout=20) == 0, web_log.read_text()
        wait_until(lambda: not _alive(wall_pid), timeout=10, what="the wall process to end")
        print(f"counters {counters}; screenshot {SCREENSHOT}; {time.monotonic() - started:.1f} s")
    finally:
        if driver is not None:
            driver.quit()
        stop_process(web, 20)
        for pid in walls:  # orphans now, if any
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def type_at_the_wall(driver: Any) -> None:
    """Keys an operator might press at the room's TV, power commands included."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    focus = driver.find_element("css selector", ".xterm-helper-textarea")
    driver.execute_script("arguments[0].focus();", focus)
    actions = ActionChains(driver)
    actions.send_keys("abcxyz0123456789")
    actions.send_keys(Keys.ENTER, " ", "o", "f", "O", "N", "R", "F", " ", Keys.ENTER)
    actions.send_keys(":power off", Keys.ENTER, "yes", Keys.ENTER)
    actions.key_down(Keys.CONTROL).send_keys("p").key_up(Keys.CONTROL)
    actions.send_keys("power off", Keys.ENTER, Keys.ESCAPE, Keys.TAB, "j", "k", "/", "role=archive")
    actions.send_keys(Keys.ENTER, "q")
    actions.key_down(Keys.CONTROL).send_keys("c").key_up(Keys.CONTROL)
    actions.perform()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def test_web_wall_without_connect_is_a_usage_error(tmp_path: Path) -> None:
    """A browser wall never polls the fleet itself: ``--web`` needs ``--connect``."""
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text("servers: []\n")
    for extra in ([], ["--inventory", str(inventory)]):
        done = subprocess.run(
            [sys.executable, "-m", "pacs_tui", "wall", "--web", *extra],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 2, done
        assert "--connect" in done.stderr and "Traceback" not in done.stderr
