"""End to end against OpenSSH: an inventory's ssh block and key_file credential log in."""

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

from pacs_tui.credentials import resolve
from pacs_tui.inventory import Inventory, load_inventory
from peers import require_binary

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
def sshd_inventory(tmp_path: Path) -> Iterator[tuple[Inventory, Path]]:
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
        "sites: [{name: dc, kind: datacenter}]\n"
        "credentials:\n"
        "  ops: {key_file: id_ops}\n"
        "  wrong: {key_file: id_other}\n"
        "defaults:\n"
        f"  ssh: {{port: {port}, user: root, known_hosts: known_hosts}}\n"
        "servers:\n"
        f"  - {{name: db-01, role: database, site: dc, ssh: {{host: '{host}', credentials: ops}}}}\n"
        f"  - {{name: db-02, role: database, site: dc, ssh: {{host: '{host}', credentials: wrong}}}}\n"
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


async def login(inventory: Inventory, name: str) -> str:
    ssh = inventory.server(name).ssh
    assert ssh is not None and ssh.known_hosts is not None and ssh.credentials is not None
    credential = resolve(inventory, ssh.credentials)
    assert credential.key_file is not None
    async with asyncssh.connect(
        ssh.host,
        ssh.port,
        username=ssh.user,
        client_keys=[str(credential.key_file)],
        known_hosts=str(ssh.known_hosts),
        agent_path=None,
        connect_timeout=5,
    ) as conn:
        result = await asyncio.wait_for(conn.run("echo logged-in", check=True), 5)
        return str(result.stdout).strip()


async def test_inventory_key_reference_logs_in_to_real_sshd(
    sshd_inventory: tuple[Inventory, Path],
) -> None:
    inventory, _ = sshd_inventory
    assert await login(inventory, "db-01") == "logged-in"


async def test_a_key_the_server_does_not_know_is_refused(
    sshd_inventory: tuple[Inventory, Path],
) -> None:
    inventory, _ = sshd_inventory
    with pytest.raises(asyncssh.PermissionDenied):
        await login(inventory, "db-02")
