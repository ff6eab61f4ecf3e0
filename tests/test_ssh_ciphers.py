"""Which cipher the SSH probe and actions negotiate with a real OpenSSH sshd (issue 14).

AES-GCM first when the host offers it (cheaper per packet than asyncssh's
default chacha20-poly1305); a host that offers only other ciphers is still
reached. The negotiated cipher is read from sshd's own debug log (the peer's
word) and from the client connection.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pacs_tui.plugin_api import Health, ProbeContext
from pacs_tui_ssh_services.connections import PREFERRED_CIPHERS, encryption_algs, strict_connect
from pacs_tui_ssh_services.probe import SshServiceProbe
from ssh_peers import RealSshd, real_sshd

pytestmark = pytest.mark.peer("sshd")

DEBUG = "LogLevel DEBUG1\n"


def negotiated(sshd: RealSshd) -> list[str]:
    """The client → server ciphers sshd agreed to, one per connection, from its log."""
    return re.findall(r"kex: client->server cipher: (\S+)", sshd.log_text())


async def poll_once(sshd: RealSshd, tmp_path: Path) -> str:
    """One SSH probe poll of the sshd; the cipher of the pool's connection."""
    inventory = sshd.inventory(tmp_path / "inventory.yaml", services=["pacs"])
    probe = SshServiceProbe()
    await probe.open(ProbeContext(inventory, {}))
    try:
        result = await probe.probe(inventory.server("real-01"))
        assert result.health is Health.OK, (result.detail, sshd.log_text())
        ssh = inventory.server("real-01").ssh
        assert ssh is not None
        conn = probe.pool.cached(ssh)
        assert conn is not None
        return str(conn.get_extra_info("send_cipher"))
    finally:
        await probe.close()


def test_aes_gcm_is_offered_first_and_every_default_stays() -> None:
    algs = encryption_algs()
    assert tuple(algs[:2]) == PREFERRED_CIPHERS
    assert "chacha20-poly1305@openssh.com" in algs and "aes128-ctr" in algs


async def test_an_openssh_host_with_its_defaults_gets_aes_gcm(tmp_path: Path) -> None:
    with real_sshd(tmp_path / "sshd", DEBUG) as sshd:
        assert await poll_once(sshd, tmp_path) == "aes128-gcm@openssh.com"
        assert negotiated(sshd) == ["aes128-gcm@openssh.com"], sshd.log_text()


@pytest.mark.parametrize("ciphers", ["chacha20-poly1305@openssh.com", "aes256-ctr"])
async def test_a_host_without_aes_gcm_is_still_reached(tmp_path: Path, ciphers: str) -> None:
    with real_sshd(tmp_path / "sshd", f"{DEBUG}Ciphers {ciphers}\n") as sshd:
        assert await poll_once(sshd, tmp_path) == ciphers
        assert negotiated(sshd) == [ciphers]


async def test_the_actions_connect_with_aes_gcm_too(tmp_path: Path) -> None:
    # The SSH control action logs in through the same strict_connect.
    with real_sshd(tmp_path / "sshd", DEBUG) as sshd:
        inventory = sshd.inventory(tmp_path / "inventory.yaml", services=["pacs"])
        ssh = inventory.server("real-01").ssh
        assert ssh is not None
        conn = await strict_connect(ssh, "root", sshd.client_key_file, 10.0)
        try:
            assert conn.get_extra_info("send_cipher") == "aes128-gcm@openssh.com"
        finally:
            conn.close()
            await conn.wait_closed()
        assert negotiated(sshd) == ["aes128-gcm@openssh.com"]
