"""The tiny shell of a simulated server, without the network in between."""

from __future__ import annotations

import asyncio
import re
import time

import pytest

from pacs_tui.power import PowerState
from pacs_tui.sim.host import HardwareFacts, HostTimings, SimulatedHost
from pacs_tui.sim.ssh_os import TinyShell

TINY = HostTimings(power_transition_s=0.02, boot_s=0.05, service_start_s=0.02, shutdown_s=0.05)


def _shell() -> TinyShell:
    hardware = HardwareFacts(
        "HPE", "ProLiant DL380 Gen10", "CZ1", ("52:54:00:00:00:01",), "U30", "2.78"
    )
    host = SimulatedHost(
        name="db-01",
        role="database",
        site="main",
        address="127.0.0.1",
        units=("postgresql", "pacs"),
        hardware=hardware,
        timings=TINY,
    )
    return TinyShell(host, "root")


async def _power_state_becomes(host: SimulatedHost, state: PowerState) -> None:
    deadline = time.monotonic() + 5
    while host.power_state is not state:
        assert time.monotonic() < deadline, f"still {host.power_state}"
        await asyncio.sleep(0.01)


async def test_is_active_reports_one_word_per_unit() -> None:
    shell = _shell()
    result = await shell.run("systemctl is-active postgresql pacs")
    assert (result.status, result.stdout) == (0, "active\nactive\n")

    result = await shell.run("systemctl is-active postgresql nope.service")
    assert (result.status, result.stdout) == (3, "active\ninactive\n")

    result = await shell.run("systemctl is-active --quiet nope")
    assert (result.status, result.stdout) == (3, "")


async def test_stop_start_and_status() -> None:
    shell = _shell()
    assert (await shell.run("sudo -n /usr/bin/systemctl stop pacs")).status == 0
    assert shell.host.unit_state("pacs") == "inactive"

    status = await shell.run("systemctl --no-pager status pacs")
    assert status.status == 3
    assert status.stdout.startswith("○ pacs.service - pacs\n")
    assert "Active: inactive (dead)" in status.stdout

    assert (await shell.run("systemctl restart pacs")).status == 0
    status = await shell.run("systemctl status pacs postgresql")
    assert status.status == 0
    assert status.stdout.count("Active: active (running)") == 2
    assert re.search(r"Main PID: \d+ \(pacs\)", status.stdout)

    missing = await shell.run("systemctl status ghost")
    assert (missing.status, missing.stderr) == (4, "Unit ghost.service could not be found.\n")

    failed = await shell.run("systemctl start ghost")
    assert failed.status == 5 and "ghost.service not found" in failed.stderr


async def test_command_lists_follow_shell_rules() -> None:
    shell = _shell()
    assert (await shell.run("false && echo no; echo yes")).stdout == "yes\n"
    assert (await shell.run("false || echo rescued")).stdout == "rescued\n"
    assert (await shell.run("true && echo -n 'a  b' # comment")).stdout == "a  b"
    ended = await shell.run("echo one; exit 7; echo two")
    assert (ended.status, ended.stdout, ended.exit_shell) == (7, "one\n", True)


async def test_unknown_commands_and_syntax() -> None:
    shell = _shell()
    result = await shell.run("rm -rf /")
    assert (result.status, result.stderr) == (127, "bash: rm: command not found\n")
    assert (await shell.run("echo 'unterminated")).status == 2
    piped = await shell.run("systemctl is-active pacs | grep active")
    assert piped.status == 2 and "not simulated" in piped.stderr
    assert (await shell.run("&& true")).status == 2


async def test_uptime_formats(monkeypatch: pytest.MonkeyPatch) -> None:
    shell = _shell()
    monkeypatch.setattr(shell.host, "uptime_s", lambda: 3 * 86400 + 2 * 3600 + 4 * 60 + 5)
    line = (await shell.run("uptime")).stdout
    assert re.fullmatch(
        r" \d\d:\d\d:\d\d up 3 days,  2:04,  1 user,  load average: [\d.]+, [\d.]+, [\d.]+\n",
        line,
    )
    assert (await shell.run("uptime -p")).stdout == "up 3 days, 2 hours, 4 minutes\n"

    monkeypatch.setattr(shell.host, "uptime_s", lambda: 300.0)
    assert " up 5 min,  1 user," in (await shell.run("uptime")).stdout


async def test_identity_commands() -> None:
    shell = _shell()
    assert (await shell.run("hostname")).stdout == "db-01\n"
    assert (await shell.run("cat /etc/hostname")).stdout == "db-01\n"
    release = (await shell.run("cat /etc/os-release")).stdout
    assert 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"' in release
    missing = await shell.run("cat /etc/shadow")
    assert missing.status == 1 and "No such file" in missing.stderr


async def test_scheduled_shutdown_is_refused_and_immediate_one_powers_off() -> None:
    shell = _shell()
    refused = await shell.run("shutdown -h +5")
    assert refused.status == 1
    assert shell.host.power_state is PowerState.ON

    assert (await shell.run("shutdown -h +0")).status == 0
    await _power_state_becomes(shell.host, PowerState.OFF)
    await shell.host.stop()


@pytest.mark.parametrize("command", ["halt -p", "poweroff", "systemctl poweroff"])
async def test_power_off_commands(command: str) -> None:
    shell = _shell()
    assert (await shell.run(command)).status == 0
    await _power_state_becomes(shell.host, PowerState.OFF)
    await shell.host.stop()


async def test_reboot_goes_down_and_comes_back() -> None:
    shell = _shell()
    seen: list[PowerState] = []
    shell.host.on_change = lambda h: seen.append(h.power_state)
    assert (await shell.run("reboot")).status == 0
    await shell.host.wait_idle()
    assert PowerState.OFF in seen
    assert shell.host.is_up()
