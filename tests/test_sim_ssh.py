"""The SSH face of a simulated server, driven by OpenSSH's and asyncssh's clients."""

from __future__ import annotations

import asyncio
import logging
import random
import re
import stat
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import asyncssh
import pytest

from pacs_tui.power import PowerState
from pacs_tui.sim.host import HardwareFacts, HostTimings, SimulatedHost
from pacs_tui.sim.ssh_keys import FleetSshKeys
from pacs_tui.sim.ssh_os import SshOs
from peers import require_binary

USER = "root"
TINY = HostTimings(power_transition_s=0.02, boot_s=0.05, service_start_s=0.02, shutdown_s=0.05)


def _address() -> str:
    return f"127.{random.randint(100, 250)}.{random.randint(0, 255)}.{random.randint(1, 254)}"


def _host(name: str = "pacs-im-01") -> SimulatedHost:
    hardware = HardwareFacts(
        manufacturer="Dell Inc.",
        model="PowerEdge R650",
        serial_number="SIM0001",
        mac_addresses=("52:54:00:12:34:56",),
        bios_version="1.10.2",
        bmc_firmware="6.10.30.00",
    )
    return SimulatedHost(
        name=name,
        role="image-manager",
        site="main",
        address=_address(),
        units=("pacs",),
        hardware=hardware,
        timings=TINY,
        speaks_dicom=True,
    )


@dataclass
class Server:
    """A started simulated server with its key directory."""

    host: SimulatedHost
    sshd: SshOs
    keys: FleetSshKeys
    key_dir: Path

    @property
    def name(self) -> str:
        return self.host.name

    async def restart_sshd(self) -> None:
        await self.sshd.stop()
        await self.sshd.start()


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    host = _host()
    keys = FleetSshKeys.create([host.name])
    sshd = SshOs(
        host,
        port=0,
        username=USER,
        host_key=keys.host_key(host.name),
        alternate_host_key=keys.alternate_host_key(host.name),
        authorized_key=keys.client_key,
    )
    host.ssh_listener = sshd
    await sshd.start()
    key_dir = tmp_path / "ssh"
    keys.write(key_dir, [(host.name, host.address, sshd.port)])
    try:
        yield Server(host, sshd, keys, key_dir)
    finally:
        await host.stop()
        await sshd.stop()


@dataclass
class Run:
    status: int
    stdout: str
    stderr: str


async def _ssh(
    server: Server,
    command: str | None,
    *,
    identity: Path | None = None,
    user: str = USER,
    stdin: str | None = None,
) -> Run:
    """Run OpenSSH's client against ``server`` the way an operator's tool would."""
    ssh = require_binary("ssh")
    argv = [
        ssh,
        "-F",
        "/dev/null",
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"UserKnownHostsFile={server.key_dir / 'known_hosts'}",
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "ConnectTimeout=10",
        "-i",
        str(identity or server.key_dir / "id_ed25519"),
        "-p",
        str(server.sshd.port),
        f"{user}@{server.host.address}",
    ]
    if command is not None:
        argv.append(command)
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(
            proc.communicate(stdin.encode() if stdin is not None else None), 20
        )
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(), err.decode())


async def _until(condition: Callable[[], bool], deadline_s: float = 5.0) -> None:
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached before the deadline")
        await asyncio.sleep(0.01)


def _asyncssh_connect(server: Server, *, known_hosts: str | None = None):
    """An asyncssh connection (async context manager) with the operator's key."""
    return asyncssh.connect(
        server.host.address,
        server.sshd.port,
        username=USER,
        client_keys=[server.keys.client_key],
        known_hosts=known_hosts,
        connect_timeout=10,
    )


# -- OpenSSH client ----------------------------------------------------------------


async def test_openssh_is_active_then_stop_reports_inactive(server: Server) -> None:
    run = await _ssh(server, "systemctl is-active pacs")
    assert (run.status, run.stdout) == (0, "active\n"), run.stderr

    run = await _ssh(server, "systemctl stop pacs")
    assert run.status == 0, run.stderr
    assert server.host.unit_state("pacs") == "inactive"

    run = await _ssh(server, "systemctl is-active pacs")
    assert (run.status, run.stdout) == (3, "inactive\n")

    run = await _ssh(server, "systemctl start pacs.service && systemctl is-active --quiet pacs")
    assert (run.status, run.stdout) == (0, "")
    assert server.host.unit_state("pacs") == "active"


async def test_openssh_other_commands(server: Server) -> None:
    run = await _ssh(server, "hostname; uptime")
    hostname, uptime = run.stdout.splitlines()
    assert run.status == 0
    assert hostname == server.name
    assert re.fullmatch(r" \d\d:\d\d:\d\d up .+,  1 user,  load average: .+", uptime)

    run = await _ssh(server, "cat /etc/os-release")
    assert run.status == 0 and "ID=debian" in run.stdout.splitlines()

    run = await _ssh(server, "nmap 127.0.0.1")
    assert run.status == 127
    assert run.stderr.endswith("bash: nmap: command not found\n")

    run = await _ssh(server, "systemctl status pacs")
    assert run.status == 0
    assert run.stdout.startswith("● pacs.service")
    assert "Active: active (running)" in run.stdout


async def test_openssh_shell_session_reads_commands_from_stdin(server: Server) -> None:
    run = await _ssh(server, None, stdin="hostname\nsystemctl is-active pacs\nexit 4\necho never\n")
    assert run.status == 4
    assert run.stdout == f"{server.name}\nactive\n"


async def test_openssh_refuses_changed_host_key(server: Server) -> None:
    server.host.faults.ssh_host_key_changed = True
    await server.restart_sshd()

    run = await _ssh(server, "systemctl stop pacs")

    assert run.status == 255
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in run.stderr
    assert "Host key verification failed" in run.stderr
    assert server.host.unit_state("pacs") == "active"  # the command never ran

    server.host.faults.ssh_host_key_changed = False
    await server.restart_sshd()
    assert (await _ssh(server, "true")).status == 0


async def test_openssh_wrong_client_key_or_user_is_refused(server: Server, tmp_path: Path) -> None:
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    FleetSshKeys.create([]).write(stranger, [])

    run = await _ssh(server, "systemctl stop pacs", identity=stranger / "id_ed25519")
    assert run.status == 255
    assert "Permission denied (publickey)" in run.stderr

    run = await _ssh(server, "systemctl stop pacs", user="admin")
    assert run.status == 255
    assert "Permission denied (publickey)" in run.stderr
    assert server.host.unit_state("pacs") == "active"


async def test_openssh_poweroff_then_power_on_again(server: Server) -> None:
    run = await _ssh(server, "poweroff")
    assert run.status in (0, 255)  # like real sshd, the connection may die with the OS

    await _until(lambda: server.host.power_state is PowerState.OFF)
    assert not server.sshd.listening
    run = await _ssh(server, "true")
    assert run.status == 255
    assert "Connection refused" in run.stderr

    server.host.reset("On")
    await _until(server.host.is_up)
    run = await _ssh(server, "systemctl is-active pacs")
    assert (run.status, run.stdout) == (0, "active\n"), run.stderr


async def test_openssh_reboot_comes_back(server: Server) -> None:
    downs: list[str] = []
    server.host.on_change = lambda h: downs.append(str(h.power_state))

    run = await _ssh(server, "shutdown -r now")
    assert run.status in (0, 255)
    await _until(lambda: str(PowerState.OFF) in downs and server.host.is_up())
    assert (await _ssh(server, "hostname")).stdout == f"{server.name}\n"


async def test_openssh_sees_a_dropped_connection_beyond_the_burst_limit(server: Server) -> None:
    server.host.faults.ssh_burst_limit = 1
    _, writer = await asyncio.open_connection(server.host.address, server.sshd.port)
    try:
        await _until(lambda: server.sshd.unauthenticated_connections == 1)
        run = await _ssh(server, "true")
        assert run.status == 255
        assert "kex_exchange_identification" in run.stderr, run.stderr
    finally:
        writer.close()
    await _until(lambda: server.sshd.unauthenticated_connections == 0)
    assert (await _ssh(server, "true")).status == 0


# -- asyncssh client ----------------------------------------------------------------


async def test_asyncssh_accepts_the_known_hosts_file(server: Server) -> None:
    known_hosts = str(server.key_dir / "known_hosts")
    async with _asyncssh_connect(server, known_hosts=known_hosts) as conn:
        result = await conn.run("hostname", check=True)
    assert result.stdout == f"{server.name}\n"

    server.host.faults.ssh_host_key_changed = True
    await server.restart_sshd()
    with pytest.raises(asyncssh.HostKeyNotVerifiable):
        async with _asyncssh_connect(server, known_hosts=known_hosts):
            pass


async def _try_connect(server: Server) -> bool:
    try:
        async with _asyncssh_connect(server) as conn:
            result = await conn.run("true")
            return result.exit_status == 0
    except (OSError, asyncssh.Error):
        return False


async def test_burst_limit_drops_excess_concurrent_connections(server: Server) -> None:
    server.host.faults.ssh_burst_limit = 3
    outcomes = await asyncio.gather(*(_try_connect(server) for _ in range(15)))
    assert 1 <= outcomes.count(True) < 15, outcomes

    server.host.faults.ssh_burst_limit = 15
    outcomes = await asyncio.gather(*(_try_connect(server) for _ in range(15)))
    assert all(outcomes), outcomes


async def test_burst_limit_counts_only_unauthenticated_connections(server: Server) -> None:
    server.host.faults.ssh_burst_limit = 1
    async with _asyncssh_connect(server) as logged_in:
        # The first connection is authenticated, so it no longer holds the slot.
        assert await _try_connect(server)
        _, idle = await asyncio.open_connection(server.host.address, server.sshd.port)
        try:
            await _until(lambda: server.sshd.unauthenticated_connections == 1)
            assert not await _try_connect(server)
        finally:
            idle.close()
        assert (await logged_in.run("true")).exit_status == 0


async def test_stop_drops_open_connections_and_is_idempotent(server: Server) -> None:
    async with _asyncssh_connect(server) as conn:
        await server.sshd.stop()
        await server.sshd.stop()
        await asyncio.wait_for(conn.wait_closed(), 5)
    with pytest.raises(OSError):
        await asyncio.open_connection(server.host.address, server.sshd.port)

    await server.sshd.start()
    await server.sshd.start()
    assert await _try_connect(server)


async def test_forwarding_is_refused_and_asyncssh_logs_stay_quiet(server: Server) -> None:
    async with _asyncssh_connect(server) as conn:
        with pytest.raises(asyncssh.ChannelOpenError):
            await conn.open_connection(server.host.address, server.sshd.port)
        with pytest.raises(asyncssh.ChannelOpenError):
            await conn.start_sftp_client()
    assert logging.getLogger("asyncssh").getEffectiveLevel() >= logging.WARNING


def test_refuses_non_loopback_address() -> None:
    host = _host()
    host.address = "192.0.2.10"
    keys = FleetSshKeys.create([host.name])
    with pytest.raises(ValueError, match="loopback"):
        SshOs(
            host,
            port=2222,
            username=USER,
            host_key=keys.host_key(host.name),
            alternate_host_key=keys.alternate_host_key(host.name),
            authorized_key=keys.client_key,
        )


# -- key material ------------------------------------------------------------------


async def test_key_files_are_what_openssh_expects(tmp_path: Path) -> None:
    keygen = require_binary("ssh-keygen")
    keys = FleetSshKeys.create(["a", "b"])
    out = tmp_path / "keys"
    out.mkdir()
    (out / "id_ed25519").write_text("old")
    (out / "id_ed25519").chmod(0o644)
    keys.write(out, [("a", "127.1.2.3", 2201), ("b", "127.1.2.4", 22)])

    private = out / "id_ed25519"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert private.read_text().startswith("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    public = (out / "id_ed25519.pub").read_text()
    assert re.fullmatch(r"ssh-ed25519 AAAA\S+ \S+\n", public)

    lines = (out / "known_hosts").read_text().splitlines()
    assert re.fullmatch(r"\[127\.1\.2\.3\]:2201 ssh-ed25519 AAAA\S+ a", lines[0])
    assert re.fullmatch(r"127\.1\.2\.4 ssh-ed25519 AAAA\S+ b", lines[1])
    assert lines[0].split()[2] != lines[1].split()[2]

    # OpenSSH's own tools read both files.
    derived = await _output(keygen, "-y", "-f", str(private))
    assert derived.split()[:2] == public.split()[:2]
    found = await _output(keygen, "-F", "[127.1.2.3]:2201", "-f", str(out / "known_hosts"))
    host_a = keys.host_key("a").export_public_key("openssh").decode().split()[1]
    assert host_a in found


async def _output(*argv: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, err.decode()
    return out.decode()


def test_fleet_keys_are_distinct_and_fast() -> None:
    names = [f"srv-{i:04d}" for i in range(3000)]
    started = time.perf_counter()
    keys = FleetSshKeys.create(names)
    assert time.perf_counter() - started < 3.0  # ~0.15 s measured on 2 cores

    publics = {keys.host_key(n).public_data for n in names}
    assert len(publics) == len(names)
    assert keys.client_key.public_data not in publics
    alternate = keys.alternate_host_key("srv-0001")
    assert alternate.public_data not in publics
    assert keys.alternate_host_key("srv-0001") is alternate
    with pytest.raises(KeyError):
        keys.alternate_host_key("nope")
