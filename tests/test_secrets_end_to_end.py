"""A short BMC password never reaches any output channel, in any of its spellings.

A real flow on the simulator (BMCs that refuse sessions, so HTTP Basic is
used): ``status --json`` and an audited ``power restart`` with debug logs, the
audit log read back and its database file, the simulator's own output, and a
screen of the control room. Every channel is searched for the password, its
base64, and the base64 of ``user:password`` an Authorization header carries.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from pacs_tui.credentials import REDACTED, SecretRedactor, resolve
from pacs_tui.inventory import load_inventory
from pacs_tui.sim.datacenter import SimOptions
from sim_process import RunningSim, running_sim

PASSWORD = "q!7"  # three characters: under the old 4-character floor
USER = "admin"
PACS_TUI = [sys.executable, "-m", "pacs_tui"]

pytestmark = [pytest.mark.timeout(300)]


def spellings(password: str, user: str) -> dict[str, str]:
    """Every form in which the password could travel."""

    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    return {
        "password": password,
        "base64(password)": b64(password),
        "base64(user:password)": b64(f"{user}:{password}"),
        "base64(:password)": b64(f":{password}"),
    }


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSim]:
    out = tmp_path_factory.mktemp("secret-dc") / "dc"
    os.environ["PACS_TUI_SIM_BMC_PASSWORD"] = PASSWORD  # not on argv: ps shows argv
    try:
        with running_sim(
            out,
            "--servers", "12", "--time-scale", "0.05", "--no-tls",
            "--bmc-mix", "no-session-post=1",
        ) as running:  # fmt: skip
            yield running
    finally:
        del os.environ["PACS_TUI_SIM_BMC_PASSWORD"]


def pacs(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PACS_TUI_DATA_DIR": str(data)}
    return subprocess.run(
        [*PACS_TUI, "-v", *args], capture_output=True, text=True, timeout=240, env=env, check=False
    )


def leaks(channels: dict[str, str]) -> list[str]:
    found = []
    for channel, text in channels.items():
        for form, value in spellings(PASSWORD, USER).items():
            if value in text:
                found.append(f"{form} in {channel}")
    return found


def test_no_output_channel_carries_the_password(sim: RunningSim, tmp_path: Path) -> None:
    assert sim.bmc_credentials() == (USER, PASSWORD)  # the flow really uses the short one
    inventory = str(sim.out / "inventory.yaml")
    channels: dict[str, str] = {}

    status = pacs(tmp_path, "status", "--inventory", inventory, "--json")
    assert status.returncode in (0, 1), status.stderr
    assert '"power"' in status.stdout
    channels |= {"status stdout (JSON)": status.stdout, "status stderr (log)": status.stderr}

    target = sim.servers("web-viewer")[0]["name"]
    power = pacs(
        tmp_path, "power", "restart", "--inventory", inventory, "--select", target,
        "--yes", "--json", "--poll", "0.2", "--no-stop-units",
    )  # fmt: skip
    assert power.returncode == 0, power.stdout + power.stderr
    channels |= {"power stdout (JSON)": power.stdout, "power stderr (log)": power.stderr}

    audit = pacs(tmp_path, "audit", "--json")
    assert target in audit.stdout
    channels |= {"audit --json": audit.stdout, "audit stderr": audit.stderr}
    database = tmp_path / "audit.sqlite3"
    channels["audit database file"] = database.read_bytes().decode("latin-1")
    channels["simulator output"] = (sim.out.parent / f"{sim.out.name}-sim.log").read_text()
    # These BMCs create no sessions: the restart got in with an HTTP Basic header.
    with urllib.request.urlopen(f"{sim.control_url}/hosts/{target}/bmc", timeout=30) as answer:
        bmc = json.load(answer)
    assert bmc["flavour"] == "no-session-post" and bmc["resets"], bmc

    assert leaks(channels) == []


async def test_the_control_room_screen_and_log_do_not_show_it(
    sim: RunningSim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pacs_tui.credentials import REDACTOR
    from pacs_tui.plugin_api import Health
    from pacs_tui_widgets.app import ControlRoomApp
    from pacs_tui_widgets.keymap import KeymapConfig

    monkeypatch.setenv("PACS_TUI_DATA_DIR", str(tmp_path))
    log_path = tmp_path / "ui.log"
    handler = logging.FileHandler(log_path, encoding="utf-8")
    handler.addFilter(REDACTOR)  # as every handler of the command line has it
    root = logging.getLogger()
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.DEBUG)
    inventory = load_inventory(sim.out / "inventory.yaml")
    app = ControlRoomApp(inventory, read_only=True, keymap=KeymapConfig())
    try:
        async with app.run_test(size=(160, 48)) as pilot:
            first = inventory.servers[0].name
            for _ in range(600):
                if app.state.reading(first, "power").health is Health.OK:
                    break
                await pilot.pause(0.1)
            screen = app.export_screenshot()
            await pilot.press("q")
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        handler.close()
    assert app.state.reading(first, "power").health is Health.OK  # it did log in
    assert leaks({"control room screen": screen, "UI log": log_path.read_text()}) == []


def test_every_spelling_is_registered_and_short_ones_only_as_tokens(sim: RunningSim) -> None:
    inventory = load_inventory(sim.out / "inventory.yaml")
    credential = resolve(inventory, "bmc-admin")  # registers with the process REDACTOR
    assert credential.password is not None
    from pacs_tui.credentials import REDACTOR

    for form, value in spellings(PASSWORD, USER).items():
        if form == "base64(:password)":
            continue  # only for a credential without a user name
        assert REDACTOR.redact(f"x {value} y") == f"x {REDACTED} y", form
    header = "Basic " + spellings(PASSWORD, USER)["base64(user:password)"]
    # The process may also know the whole header (a client built it): either way it is gone.
    assert REDACTOR.redact(f"Authorization: {header}") in (
        f"Authorization: {REDACTED}",
        f"Authorization: Basic {REDACTED}",
    )
    # Whole tokens only: the letters of a short password inside a word stay.
    assert REDACTOR.redact("q!7x and aq!7") == "q!7x and aq!7"
    fresh = SecretRedactor()
    assert fresh.redact(PASSWORD) == PASSWORD  # nothing registered, nothing changed


def test_simulator_options_do_not_print_the_password() -> None:
    options = SimOptions(bmc_password="Sup3r-S3cret-value")
    assert "Sup3r-S3cret-value" not in repr(options)
    assert "Sup3r-S3cret-value" not in str(options)
