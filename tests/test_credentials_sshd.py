"""End to end against OpenSSH: an inventory's SSH facts and key reference log in for real."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pytest
from peers import require_binary

from pacs_tui.credentials import CredentialResolver, SecretRedactor
from pacs_tui.inventory import Fleet, load_inventory

pytestmark = pytest.mark.peer("sshd")


def free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_listening(host: str, port: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), 0.2):
            return
        time.sleep(0.02)
    raise TimeoutError("sshd did not start listening")


@pytest.fixture
def sshd_fleet(tmp_path: Path) -> Iterator[tuple[Fleet, Path]]:
    sshd = require_binary("sshd", "/usr/sbin/sshd")
    host = f"127.{random.randint(100, 250)}.0.{random.randint(2, 250)}"
    port = free_port(host)
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    host_key.write_private_key(str(tmp_path / "host_key"))
    (tmp_path / "host_key").chmod(0o600)
    user_key = asyncssh.generate_private_key("ssh-ed25519")
    user_key.write_private_key(str(tmp_path / "id_ops"))
    (tmp_path / "id_ops").chmod(0o600)
    (tmp_path / "authorized_keys").write_bytes(user_key.export_public_key())
    (tmp_path / "known_hosts").write_bytes(
        f"[{host}]:{port} ".encode() + host_key.export_public_key()
    )
    (tmp_path / "sshd_config").write_text(
        f"ListenAddress {host}:{port}\n"
        f"HostKey {tmp_path / 'host_key'}\n"
        f"AuthorizedKeysFile {tmp_path / 'authorized_keys'}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "PermitRootLogin prohibit-password\nUsePAM no\nStrictModes no\nPidFile none\n"
    )
    (tmp_path / "inventory.yaml").write_text(
        "credentials:\n"
        "  ops: {username: root, private_key: file:id_ops}\n"
        "  wrong: {username: root, private_key: file:id_other}\n"
        "servers:\n"
        f"  - {{name: db-01, role: database, site: dc, address: '{host}',\n"
        f"     ssh: {{port: {port}, credentials: ops, known_hosts: known_hosts}}}}\n"
        f"  - {{name: db-02, role: database, site: dc, address: '{host}',\n"
        f"     ssh: {{port: {port}, credentials: wrong, known_hosts: known_hosts}}}}\n"
    )
    other = asyncssh.generate_private_key("ssh-ed25519")
    other.write_private_key(str(tmp_path / "id_other"))
    (tmp_path / "id_other").chmod(0o600)
    Path("/run/sshd").mkdir(exist_ok=True)
    proc = subprocess.Popen(
        [sshd, "-D", "-e", "-f", str(tmp_path / "sshd_config")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_listening(host, port, proc, timeout=10)
        yield load_inventory(tmp_path / "inventory.yaml"), tmp_path
    finally:
        proc.terminate()
        proc.wait(timeout=5)


async def login(fleet: Fleet, name: str) -> str:
    server = fleet[name]
    assert server.ssh is not None and server.ssh.known_hosts is not None
    cset = fleet.ssh_credentials(server)
    assert cset is not None
    creds = CredentialResolver(environ={}, redactor=SecretRedactor()).credentials(cset)
    assert creds.private_key is not None
    key = asyncssh.import_private_key(creds.private_key.reveal())
    async with asyncssh.connect(
        server.address,
        server.ssh.port,
        username=creds.username,
        client_keys=[key],
        known_hosts=str(server.ssh.known_hosts),
        agent_path=None,
        connect_timeout=5,
    ) as conn:
        result = await asyncio.wait_for(conn.run("echo logged-in", check=True), 5)
        return str(result.stdout).strip()


async def test_inventory_key_reference_logs_in_to_real_sshd(sshd_fleet: tuple[Fleet, Path]) -> None:
    fleet, _ = sshd_fleet
    assert await login(fleet, "db-01") == "logged-in"


async def test_a_key_the_server_does_not_know_is_refused(sshd_fleet: tuple[Fleet, Path]) -> None:
    fleet, _ = sshd_fleet
    with pytest.raises(asyncssh.PermissionDenied):
        await login(fleet, "db-02")
