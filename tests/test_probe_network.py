"""The network probe against real loopback listeners, simulated hosts and the kernel's ICMP."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pacs_tui.inventory import Inventory, load_inventory_text
from pacs_tui.plugin_api import Health, ProbeContext
from pacs_tui.power import ResetType
from pacs_tui_network.icmp import (
    IcmpUnavailable,
    Pinger,
    checksum,
    echo_request,
    open_icmp_socket,
)
from pacs_tui_network.probe import NetworkProbe, icmp_enabled
from peers import require_binary, require_capability
from ssh_peers import free_port, loopback_address, loopback_octet, sim_fleet, until


def _inventory(tmp_path: Path, servers: list[str]) -> Inventory:
    text = "sites: [{name: dc, kind: datacenter}]\nservers:\n" + "".join(
        f"  - {line}\n" for line in servers
    )
    return load_inventory_text(text, tmp_path / "inventory.yaml")


def _ssh_server(name: str, host: str, port: int, dicom_port: int | None = None) -> str:
    dicom = f", dicom: {{host: '{host}', port: {dicom_port}, ae_title: AE1}}" if dicom_port else ""
    return (
        f"{{name: {name}, role: archive, site: dc, "
        f"ssh: {{host: '{host}', port: {port}, user: root}}{dicom}}}"
    )


def _require_icmp() -> None:
    """Skip (laptop) or fail (CI, which runs as root) when this process may not send ICMP."""
    try:
        sock, _ = open_icmp_socket()
    except IcmpUnavailable as exc:  # the message names ping_group_range and CAP_NET_RAW
        require_capability(f"this process may not send ICMP: {exc}")
    sock.close()


async def _opened(inventory: Inventory, **settings: object) -> NetworkProbe:
    probe = NetworkProbe()
    await probe.open(ProbeContext(inventory, settings))
    return probe


@pytest.fixture
async def listening() -> AsyncIterator[tuple[str, int]]:
    """A TCP listener on a random loopback address (accepts and closes)."""
    host = loopback_address()

    def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(accept, host, 0)
    try:
        yield host, int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await server.wait_closed()


async def test_open_port_is_ok_with_latency(tmp_path: Path, listening: tuple[str, int]) -> None:
    host, port = listening
    inventory = _inventory(tmp_path, [_ssh_server("db-01", host, port)])
    probe = await _opened(inventory, network_icmp="off")
    try:
        server = inventory.server("db-01")
        assert probe.applies_to(server)
        assert probe.endpoint(server) == f"host:{host}"
        result = await probe.probe(server)
    finally:
        await probe.close()
    assert (result.state, result.health) == ("ok", Health.OK), result.detail
    assert result.latency_ms is not None and 0 < result.latency_ms < 1000
    assert result.facts["method"] == "tcp"
    assert result.facts["ports"] == {f"ssh {port}": "open"}
    assert f"ssh {port} open" in result.detail


async def test_closed_port_is_refused_and_down(tmp_path: Path) -> None:
    host = loopback_address()
    port = free_port(host)  # nothing listens there
    inventory = _inventory(tmp_path, [_ssh_server("db-01", host, port)])
    probe = await _opened(inventory, network_icmp="off")
    try:
        result = await probe.probe(inventory.server("db-01"))
    finally:
        await probe.close()
    assert (result.state, result.health) == ("refused", Health.DOWN)
    assert result.latency_ms is None
    assert f"ssh {port} refused" in result.detail


async def test_one_of_two_ports_refusing_is_degraded(
    tmp_path: Path, listening: tuple[str, int]
) -> None:
    host, port = listening
    closed = free_port(host)
    inventory = _inventory(tmp_path, [_ssh_server("arch-01", host, port, dicom_port=closed)])
    probe = await _opened(inventory, network_icmp="off", network_ports="all")
    try:
        result = await probe.probe(inventory.server("arch-01"))
    finally:
        await probe.close()
    assert (result.state, result.health) == ("degraded", Health.DEGRADED)
    assert result.facts["ports"] == {f"ssh {port}": "open", f"dicom {closed}": "refused"}
    assert f"dicom {closed} refused" in result.detail


async def test_by_default_only_the_management_port_is_checked(
    tmp_path: Path, listening: tuple[str, int]
) -> None:
    host, port = listening
    closed = free_port(host)
    inventory = _inventory(tmp_path, [_ssh_server("arch-01", host, port, dicom_port=closed)])
    probe = await _opened(inventory, network_icmp="off")
    try:
        result = await probe.probe(inventory.server("arch-01"))
    finally:
        await probe.close()
    assert (result.state, result.health) == ("ok", Health.OK)
    assert result.facts["ports"] == {f"ssh {port}": "open"}


async def test_a_server_with_only_a_dicom_endpoint_is_probed_there(
    tmp_path: Path, listening: tuple[str, int]
) -> None:
    host, port = listening
    inventory = _inventory(
        tmp_path,
        [
            f"{{name: gw-01, role: edge-gateway, site: dc, dicom: {{host: '{host}', port: {port}, ae_title: GW}}}}"
        ],
    )
    probe = await _opened(inventory, network_icmp="off")
    try:
        result = await probe.probe(inventory.server("gw-01"))
    finally:
        await probe.close()
    assert (result.state, result.facts["ports"]) == ("ok", {f"dicom {port}": "open"})


def test_servers_without_an_os_address_are_not_probed(tmp_path: Path) -> None:
    inventory = _inventory(
        tmp_path, ["{name: stor-01, role: storage, site: dc, bmc: {address: 127.0.0.9}}"]
    )
    assert not NetworkProbe().applies_to(inventory.server("stor-01"))


async def test_simulated_host_is_ok_then_down_after_force_off(tmp_path: Path) -> None:
    async with sim_fleet(tmp_path / "keys") as fleet:
        host, sshd = fleet.hosts[0], fleet.sshds[0]
        inventory = fleet.inventory(tmp_path / "inventory.yaml")
        server = inventory.server(host.name)
        probe = await _opened(inventory)
        try:
            up = await probe.probe(server)
            assert (up.state, up.health) == ("ok", Health.OK), up.detail

            host.reset(ResetType.FORCE_OFF)
            await until(lambda: not sshd.listening)
            down = await probe.probe(server)
            assert (down.state, down.health) == ("refused", Health.DOWN), down.detail

            host.reset(ResetType.ON)
            await until(lambda: sshd.listening)
            again = await probe.probe(server)
            assert again.health is Health.OK, again.detail
        finally:
            await probe.close()


async def test_icmp_is_used_when_permitted(tmp_path: Path, listening: tuple[str, int]) -> None:
    _require_icmp()
    host, port = listening
    local_port = free_port("127.0.0.1")
    inventory = _inventory(
        tmp_path,
        [_ssh_server("db-01", host, port), _ssh_server("db-02", "127.0.0.1", local_port)],
    )
    probe = await _opened(inventory)  # network_icmp defaults to auto
    try:
        assert probe.method == "icmp+tcp"
        result = await probe.probe(inventory.server("db-01"))
        local = await probe.probe(inventory.server("db-02"))  # nothing listens: refused
    finally:
        await probe.close()
    assert result.health is Health.OK, result.detail
    assert result.facts["method"] == "icmp+tcp"
    assert isinstance(result.facts["icmp_ms"], float) and result.facts["icmp_ms"] > 0
    assert result.latency_ms == result.facts["icmp_ms"]
    assert "echo" in result.detail and "socket" in result.detail
    # The echo of 127.0.0.1 comes back, but the refused port decides the health.
    assert local.facts["icmp"] == "echo reply"
    assert (local.state, local.health) == ("refused", Health.DOWN)


@pytest.mark.parametrize("setting", ["off", False])
async def test_icmp_can_be_turned_off(
    tmp_path: Path, listening: tuple[str, int], setting: object
) -> None:
    host, port = listening
    inventory = _inventory(tmp_path, [_ssh_server("db-01", host, port)])
    probe = await _opened(inventory, network_icmp=setting)
    try:
        result = await probe.probe(inventory.server("db-01"))
    finally:
        await probe.close()
    assert result.facts["method"] == "tcp"
    assert result.facts["icmp_ms"] is None
    assert "ICMP off (setting network_icmp)" in result.detail


def test_icmp_setting_words() -> None:
    assert [icmp_enabled(v) for v in ("auto", "on", True, "OFF", "no", False)] == [
        True,
        True,
        True,
        False,
        False,
        False,
    ]


async def test_icmp_not_permitted_falls_back_to_tcp_and_says_why(
    tmp_path: Path, listening: tuple[str, int]
) -> None:
    asked: list[int] = []

    def forbidden(family: int, kind: int, proto: int) -> socket.socket:
        asked.append(kind)
        raise PermissionError(1, "Operation not permitted")

    host, port = listening
    inventory = _inventory(tmp_path, [_ssh_server("db-01", host, port)])
    probe = NetworkProbe(icmp_socket_factory=forbidden)
    await probe.open(ProbeContext(inventory, {}))
    try:
        result = await probe.probe(inventory.server("db-01"))
    finally:
        await probe.close()
    # Both ways were tried, the ping socket first.
    assert asked == [socket.SOCK_DGRAM, socket.SOCK_RAW]
    assert result.health is Health.OK
    assert result.facts["method"] == "tcp"
    assert result.detail.startswith("tcp: ")
    assert "ICMP not permitted: ping_group_range" in result.detail
    assert "a raw socket needs root or CAP_NET_RAW" in result.detail


async def test_a_sweep_of_echoes_shares_one_socket_and_matches_replies() -> None:
    """300 echoes at once (the replies arrive in one burst) over a single socket."""
    _require_icmp()
    octet = loopback_octet()
    addresses = [f"127.{octet}.{i // 250}.{i % 250 + 1}" for i in range(300)]
    pinger = await Pinger.create()
    try:
        outcomes = await asyncio.gather(*(pinger.echo(a, 2.0) for a in addresses))
    finally:
        pinger.close()
    missing = [a for a, o in zip(addresses, outcomes, strict=True) if not o.replied]
    assert not missing, f"{len(missing)} echoes unanswered, e.g. {outcomes[0].detail}"
    assert not pinger._pending  # every request was settled and forgotten


def test_echo_request_checksum_verifies() -> None:
    packet = echo_request(0x1234, 7, b"nonce123")
    assert checksum(packet) == 0  # a correct packet sums to zero
    assert checksum(b"\x00\x01\xf2\x03\xf4\xf5\xf6\xf7") == 0x220D  # RFC 1071's example


_PING_SOCKET_SCRIPT = """
import asyncio
from pacs_tui_network.icmp import Pinger

async def main():
    pinger = await Pinger.create()
    outcome = await pinger.echo("127.0.0.1", 2.0)
    pinger.close()
    print(pinger.kind, outcome.replied)

asyncio.run(main())
"""


def test_ping_socket_is_preferred_where_ping_group_range_allows_it() -> None:
    """In a private network namespace whose ping_group_range admits every group."""
    unshare = require_binary("unshare")
    require_binary("ip", "/usr/sbin/ip")
    setup = (
        "ip link set lo up && "
        "echo '0 2147483647' > /proc/sys/net/ipv4/ping_group_range && "
        f'exec {sys.executable} -c "$0"'
    )
    try:
        run = subprocess.run(
            [unshare, "--net", "sh", "-c", setup, _PING_SOCKET_SCRIPT],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except OSError as exc:
        require_capability(f"cannot run unshare: {exc}")
    if run.returncode != 0 and "unshare failed" in run.stderr:  # no CAP_SYS_ADMIN (not root)
        require_capability(f"no permission for a network namespace: {run.stderr.strip()}")
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["ping", "True"]


async def test_tcp_sweep_of_300_servers_is_cheap(tmp_path: Path) -> None:
    """300 servers on their own addresses, half listening: one sweep well under a second."""
    octet = loopback_octet()
    addresses = sorted({loopback_address(octet) for _ in range(400)})[:300]
    listeners = [socket.create_server((a, 0)) for a in addresses[:150]]
    try:
        ports = [int(s.getsockname()[1]) for s in listeners]
        ports += [free_port(a) for a in addresses[150:]]
        inventory = _inventory(
            tmp_path,
            [
                _ssh_server(f"s{i:03d}", a, p)
                for i, (a, p) in enumerate(zip(addresses, ports, strict=True))
            ],
        )
        probe = await _opened(inventory, network_icmp="off")
        try:
            cpu, wall = time.process_time(), time.perf_counter()
            results = await asyncio.gather(*(probe.probe(s) for s in inventory))
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        finally:
            await probe.close()
    finally:
        for listener in listeners:
            listener.close()
    assert [r.state for r in results] == ["ok"] * 150 + ["refused"] * 150
    print(f"\nTCP sweep of 300 servers: {wall * 1000:.0f} ms wall, {cpu * 1000:.0f} ms CPU")
    assert wall < 5.0  # ~0.1 s here; generous for a loaded CI machine
