"""The SSH services probe against a real OpenSSH sshd (Debian's /usr/sbin/sshd)."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncssh
import pytest

from pacs_tui.inventory import Inventory
from pacs_tui.plugin_api import Health, ProbeContext, ProbeResult
from pacs_tui_ssh_services.probe import SshServiceProbe
from ssh_peers import RealSshd, real_sshd

pytestmark = pytest.mark.peer("sshd")

UNITS = ("postgresql", "pacs")


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[RealSshd]:
    with real_sshd(tmp_path / "sshd") as started:
        yield started


@contextlib.asynccontextmanager
async def opened(inventory: Inventory) -> AsyncIterator[SshServiceProbe]:
    probe = SshServiceProbe()
    await probe.open(ProbeContext(inventory, {}))
    try:
        yield probe
    finally:
        await probe.close()


async def _probe(inventory: Inventory) -> ProbeResult:
    async with opened(inventory) as probe:
        return await probe.probe(inventory.server("real-01"))


async def test_active_units_are_ok(sshd: RealSshd, tmp_path: Path) -> None:
    result = await _probe(sshd.inventory(tmp_path / "inventory.yaml", services=UNITS))
    assert (result.state, result.health) == ("ok", Health.OK), (result.detail, sshd.log_text())
    assert result.facts["units"] == {"postgresql": "active", "pacs": "active"}
    assert result.latency_ms is not None and result.latency_ms > 0


async def test_a_failed_unit_is_degraded(sshd: RealSshd, tmp_path: Path) -> None:
    sshd.set_unit("pacs", "failed")
    result = await _probe(sshd.inventory(tmp_path / "inventory.yaml", services=UNITS))
    assert (result.state, result.health) == ("degraded", Health.DEGRADED), result.detail
    assert result.detail == "pacs failed"
    assert result.facts["units"] == {"postgresql": "active", "pacs": "failed"}


async def test_a_wrong_known_hosts_entry_is_a_host_key_alarm(
    sshd: RealSshd, tmp_path: Path
) -> None:
    wrong = tmp_path / "wrong_known_hosts"
    impostor = asyncssh.generate_private_key("ssh-ed25519").export_public_key()
    wrong.write_bytes(f"[{sshd.host}]:{sshd.port} ".encode() + impostor)
    sshd.set_unit("pacs", "failed")  # would show as degraded if the command ran
    inventory = sshd.inventory(tmp_path / "inventory.yaml", services=UNITS, known_hosts=wrong)
    result = await _probe(inventory)
    assert (result.state, result.health) == ("host-key-mismatch", Health.DOWN)
    assert "NOT accepted" in result.detail and str(wrong) in result.detail
    assert "units" not in result.facts
    # The login never got as far as authentication.
    assert "Accepted publickey" not in sshd.log_text()


async def test_a_key_the_server_does_not_know_is_auth_failed(
    sshd: RealSshd, tmp_path: Path
) -> None:
    other = tmp_path / "id_other"
    asyncssh.generate_private_key("ssh-ed25519").write_private_key(str(other))
    other.chmod(0o600)
    inventory = sshd.inventory(tmp_path / "inventory.yaml", services=UNITS, key_file=other)
    result = await _probe(inventory)
    assert (result.state, result.health) == ("auth-failed", Health.DOWN), result.detail
    assert str(other) in result.detail


def _descendants(pid: int) -> list[int]:
    """Child processes of ``pid``, recursively (from /proc)."""
    found: list[int] = []
    with contextlib.suppress(OSError):
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        for child in map(int, children):
            found += [child, *_descendants(child)]
    return found


async def test_polls_reuse_one_connection_and_survive_a_killed_session(
    sshd: RealSshd, tmp_path: Path
) -> None:
    inventory = sshd.inventory(tmp_path / "inventory.yaml", services=UNITS)
    server = inventory.server("real-01")
    async with opened(inventory) as probe:
        results = [await probe.probe(server) for _ in range(5)]
        assert [r.facts["connection"] for r in results] == ["new"] + ["reused"] * 4
        assert sshd.log_text().count("Accepted publickey") == 1

        # Kill the per-connection sshd processes (ours: children of our sshd)
        # and poll at once, before the client has noticed: the poll finds its
        # connection broken and makes a new one within the same poll.
        sessions = _descendants(sshd.process.pid)
        assert sessions, "no per-connection sshd process found"
        for pid in sessions:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        result = await probe.probe(server)
        assert (result.state, result.facts["connection"]) == ("ok", "new"), result.detail
        assert probe.pool.opened == 2
