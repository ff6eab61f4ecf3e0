"""The SSH services probe against simulated servers (asyncssh sshds on loopback)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from pathlib import Path

import asyncssh
import pytest

from pacs_tui.inventory import Inventory, load_inventory_text
from pacs_tui.plugin_api import Health, ProbeContext, ProbeResult
from pacs_tui.plugin_catalog import load_probes
from pacs_tui.power import ResetType
from pacs_tui.scheduler import Scheduler
from pacs_tui.sim.host import SimulatedHost
from pacs_tui.state import FleetState
from pacs_tui_network.probe import NetworkProbe
from pacs_tui_ssh_services.probe import SshServiceProbe, systemctl_command
from ssh_peers import SimFleet, free_port, loopback_address, sim_fleet, until


@contextlib.asynccontextmanager
async def opened(inventory: Inventory, **settings: object) -> AsyncIterator[SshServiceProbe]:
    probe = SshServiceProbe()
    await probe.open(ProbeContext(inventory, settings))
    try:
        yield probe
    finally:
        await probe.close()


@pytest.fixture
async def fleet(tmp_path: Path) -> AsyncIterator[SimFleet]:
    async with sim_fleet(tmp_path / "keys") as started:
        yield started


def _systemctl_calls(host: SimulatedHost) -> list[tuple[str, tuple[str, ...]]]:
    """Record every systemctl call the host's shell makes (the command really ran)."""
    calls: list[tuple[str, tuple[str, ...]]] = []
    real = host.systemctl

    async def recording(verb: str, units: Sequence[str]) -> tuple[int, str]:
        calls.append((verb, tuple(units)))
        return await real(verb, units)

    host.systemctl = recording  # type: ignore[method-assign]
    return calls


async def test_all_units_active_is_ok(fleet: SimFleet, tmp_path: Path) -> None:
    host = fleet.hosts[0]
    inventory = fleet.inventory(tmp_path / "inventory.yaml")
    server = inventory.server(host.name)
    calls = _systemctl_calls(host)
    async with opened(inventory) as probe:
        assert probe.applies_to(server)
        assert probe.endpoint(server) == f"ssh:{host.address}:{fleet.sshds[0].port}"
        result = await probe.probe(server)
    assert (result.state, result.health) == ("ok", Health.OK), result.detail
    assert result.facts["units"] == {"pacs": "active", "dicom-router": "active"}
    assert result.latency_ms is not None and result.latency_ms > 0
    # One command for every unit.
    assert calls == [("is-active", ("pacs", "dicom-router"))]


async def test_a_stopped_unit_is_degraded_and_named(fleet: SimFleet, tmp_path: Path) -> None:
    host = fleet.hosts[0]
    inventory = fleet.inventory(tmp_path / "inventory.yaml")
    await host.systemctl("stop", ["dicom-router"])
    async with opened(inventory) as probe:
        result = await probe.probe(inventory.server(host.name))
    assert (result.state, result.health) == ("degraded", Health.DEGRADED)
    assert result.detail == "dicom-router inactive"
    assert result.facts["units"] == {"pacs": "active", "dicom-router": "inactive"}


async def test_a_flapping_unit_is_seen_failing_and_recovering(
    fleet: SimFleet, tmp_path: Path
) -> None:
    host = fleet.hosts[0]
    host.faults.update({"flapping_unit": "pacs", "flap_period_s": 0.1})
    inventory = fleet.inventory(tmp_path / "inventory.yaml")
    seen: set[tuple[str, str]] = set()
    deadline = time.monotonic() + 5
    async with opened(inventory) as probe:
        while len(seen) < 2 and time.monotonic() < deadline:
            result = await probe.probe(inventory.server(host.name))
            seen.add((result.state, result.detail))
            await asyncio.sleep(0.03)
        assert probe.pool.opened == 1
    assert ("degraded", "pacs failed") in seen
    assert ("ok", "pacs, dicom-router active") in seen


async def test_changed_host_key_is_an_alarm_and_nothing_runs(
    fleet: SimFleet, tmp_path: Path
) -> None:
    host, sshd = fleet.hosts[0], fleet.sshds[0]
    inventory = fleet.inventory(tmp_path / "inventory.yaml")
    server = inventory.server(host.name)
    async with opened(inventory) as probe:
        assert (await probe.probe(server)).state == "ok"
        calls = _systemctl_calls(host)
        host.faults.update({"ssh_host_key_changed": True})
        await sshd.stop()  # drops our open connection, as a reinstall would
        await sshd.start()
        for _ in range(2):  # and it stays refused: never accepted, never relaxed
            alarm = await probe.probe(server)
            assert (alarm.state, alarm.health) == ("host-key-mismatch", Health.DOWN)
            assert "NOT accepted" in alarm.detail and "ALARM" in alarm.detail
            assert str(fleet.key_dir / "known_hosts") in alarm.detail
        assert calls == []
        assert len(probe.pool) == 0
        assert probe.pool.opened == 1  # only the first, honest connection was made

        host.faults.update({"ssh_host_key_changed": False})
        await sshd.stop()
        await sshd.start()
        assert (await probe.probe(server)).state == "ok"
    assert calls == [("is-active", ("pacs", "dicom-router"))]


async def test_a_host_missing_from_known_hosts_is_unknown_not_accepted(
    fleet: SimFleet, tmp_path: Path
) -> None:
    host, sshd = fleet.hosts[0], fleet.sshds[0]
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    inventory = load_inventory_text(
        "sites: [{name: dc, kind: datacenter}]\n"
        f"credentials: {{ops: {{key_file: {fleet.key_dir / 'id_ed25519'}}}}}\n"
        "servers:\n"
        f"  - {{name: {host.name}, role: image-manager, site: dc, ssh: {{host: '{host.address}', "
        f"port: {sshd.port}, user: root, credentials: ops, known_hosts: {empty}}}}}\n",
        tmp_path / "inventory.yaml",
    )
    calls = _systemctl_calls(host)
    async with opened(inventory) as probe:
        result = await probe.probe(inventory.server(host.name))
    assert (result.state, result.health) == ("host-key-unknown", Health.DOWN)
    assert "NOT accepted" in result.detail
    assert calls == []


async def test_twenty_polls_reuse_one_connection(fleet: SimFleet, tmp_path: Path) -> None:
    host = fleet.hosts[0]
    inventory = fleet.inventory(tmp_path / "inventory.yaml")
    calls = _systemctl_calls(host)
    async with opened(inventory) as probe:
        results = [await probe.probe(inventory.server(host.name)) for _ in range(20)]
        assert probe.pool.opened == 1
        assert len(probe.pool) == 1
    assert [r.state for r in results] == ["ok"] * 20
    assert [r.facts["connection"] for r in results] == ["new"] + ["reused"] * 19
    assert len(calls) == 20  # each poll really ran the command
    assert len(probe.pool) == 0  # close() closed it


async def test_a_dropped_connection_is_replaced(fleet: SimFleet, tmp_path: Path) -> None:
    host, sshd = fleet.hosts[0], fleet.sshds[0]
    inventory = fleet.inventory(tmp_path / "inventory.yaml")
    server = inventory.server(host.name)
    async with opened(inventory) as probe:
        assert (await probe.probe(server)).state == "ok"

        host.reset(ResetType.FORCE_OFF)
        await until(lambda: not sshd.listening)
        down = await probe.probe(server)
        assert down.health is Health.DOWN, down.detail
        assert down.state in ("refused", "down")

        host.reset(ResetType.ON)
        await until(lambda: host.os_state == "up")
        back = await probe.probe(server)
        assert (back.state, back.facts["connection"]) == ("ok", "new"), back.detail
        assert probe.pool.opened == 2


async def test_a_connection_dropped_between_polls_is_retried_at_once(
    fleet: SimFleet, tmp_path: Path
) -> None:
    """sshd restarts between two polls: the stale connection is replaced within the poll."""
    host, sshd = fleet.hosts[0], fleet.sshds[0]
    inventory = fleet.inventory(tmp_path / "inventory.yaml")
    server = inventory.server(host.name)
    async with opened(inventory) as probe:
        assert (await probe.probe(server)).state == "ok"
        await sshd.stop()
        await sshd.start()
        result = await probe.probe(server)
        assert (result.state, result.facts["connection"]) == ("ok", "new"), result.detail
        assert probe.pool.opened == 2


@pytest.mark.parametrize("burst_limit", [1, 2])
async def test_a_concurrent_sweep_never_trips_the_burst_limit(
    tmp_path: Path, burst_limit: int
) -> None:
    """10 hosts, 3 logins each, all polled at once: sshd never drops a connection."""
    async with sim_fleet(tmp_path / "keys", count=10) as fleet:
        for host in fleet.hosts:
            host.faults.update({"ssh_burst_limit": burst_limit})
        # Control: the same burst without the probe's gate is dropped.
        sshd = fleet.sshds[0]
        attempts = await asyncio.gather(
            *(_raw_login(fleet, sshd.host.address, sshd.port) for _ in range(burst_limit + 3))
        )
        assert not all(attempts), "the burst limit fault is not active"

        key = fleet.key_dir / "id_ed25519"
        credentials = "".join(f"  ops{i}: {{key_file: {key}}}\n" for i in range(3))
        servers = "".join(
            f"  - {{name: {h.name}-{i}, role: image-manager, site: dc, services: [pacs], "
            f"ssh: {{host: '{h.address}', port: {s.port}, credentials: ops{i}}}}}\n"
            for h, s in zip(fleet.hosts, fleet.sshds, strict=True)
            for i in range(3)
        )
        inventory = load_inventory_text(
            "sites: [{name: dc, kind: datacenter}]\n"
            f"credentials:\n{credentials}"
            f"defaults: {{ssh: {{user: root, known_hosts: {fleet.key_dir / 'known_hosts'}}}}}\n"
            f"servers:\n{servers}",
            tmp_path / "inventory.yaml",
        )
        async with opened(inventory, ssh_max_new_connections=4) as probe:
            results = await asyncio.gather(*(probe.probe(s) for s in inventory))
            assert probe.pool.opened == 30  # three logins per host: three connections
            assert probe.pool.peak_connecting <= 4
    assert [r.state for r in results] == ["ok"] * 30, [r.detail for r in results]


async def _raw_login(fleet: SimFleet, address: str, port: int) -> bool:
    try:
        async with asyncssh.connect(
            address,
            port,
            username="root",
            client_keys=[fleet.keys.client_key],
            known_hosts=str(fleet.key_dir / "known_hosts"),
            config=None,
            connect_timeout=5,
        ):
            return True
    except (asyncssh.Error, OSError):
        return False


async def test_wrong_key_is_auth_failed(fleet: SimFleet, tmp_path: Path) -> None:
    host, sshd = fleet.hosts[0], fleet.sshds[0]
    other = tmp_path / "id_other"
    asyncssh.generate_private_key("ssh-ed25519").write_private_key(str(other))
    other.chmod(0o600)
    inventory = load_inventory_text(
        "sites: [{name: dc, kind: datacenter}]\n"
        f"credentials: {{ops: {{key_file: {other}}}}}\n"
        "servers:\n"
        f"  - {{name: {host.name}, role: image-manager, site: dc, ssh: {{host: '{host.address}', "
        f"port: {sshd.port}, user: root, credentials: ops, "
        f"known_hosts: {fleet.key_dir / 'known_hosts'}}}}}\n",
        tmp_path / "inventory.yaml",
    )
    async with opened(inventory) as probe:
        result = await probe.probe(inventory.server(host.name))
    assert (result.state, result.health) == ("auth-failed", Health.DOWN)
    assert str(other) in result.detail


async def _probe_one(tmp_path: Path, host: str, port: int, **settings: object) -> ProbeResult:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    key = tmp_path / "id_ops"
    asyncssh.generate_private_key("ssh-ed25519").write_private_key(str(key))
    key.chmod(0o600)
    inventory = load_inventory_text(
        "sites: [{name: dc, kind: datacenter}]\n"
        f"credentials: {{ops: {{key_file: {key}}}}}\n"
        "servers:\n"
        f"  - {{name: db-01, role: database, site: dc, ssh: {{host: '{host}', port: {port}, "
        f"user: root, credentials: ops, known_hosts: {known_hosts}}}}}\n",
        tmp_path / "inventory.yaml",
    )
    async with opened(inventory, **settings) as probe:
        return await probe.probe(inventory.server("db-01"))


async def test_closed_port_is_refused(tmp_path: Path) -> None:
    host = loopback_address()
    result = await _probe_one(tmp_path, host, free_port(host))
    assert (result.state, result.health) == ("refused", Health.DOWN)


async def test_a_silent_server_times_out_within_the_step_limit(tmp_path: Path) -> None:
    """A listener that accepts but never sends an SSH banner."""
    host = loopback_address()
    held: list[asyncio.StreamWriter] = []

    def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, host, 0)
    try:
        started = time.monotonic()
        result = await _probe_one(
            tmp_path, host, int(server.sockets[0].getsockname()[1]), ssh_timeout_s=0.3
        )
        elapsed = time.monotonic() - started
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()
    assert (result.state, result.health) == ("timeout", Health.DOWN), result.detail
    assert elapsed < 2.0


def test_the_command_quotes_unit_names() -> None:
    assert systemctl_command(("pacs", "dicom-router")) == "systemctl is-active pacs dicom-router"
    assert systemctl_command(("a b",)) == "systemctl is-active 'a b'"


async def test_sweep_of_100_simulated_servers_connects_then_reuses(tmp_path: Path) -> None:
    """The measurement behind the design: the first sweep connects, the second reuses."""
    async with sim_fleet(tmp_path / "keys", count=100) as fleet:
        inventory = fleet.inventory(tmp_path / "inventory.yaml")
        async with opened(inventory) as probe:
            timings = []
            for _ in range(2):
                cpu, wall = time.process_time(), time.perf_counter()
                results = await asyncio.gather(*(probe.probe(s) for s in inventory))
                timings.append((time.perf_counter() - wall, time.process_time() - cpu))
                assert [r.state for r in results] == ["ok"] * 100
            assert probe.pool.opened == 100
    (first_wall, first_cpu), (second_wall, second_cpu) = timings
    print(
        f"\nSSH sweep of 100 simulated servers (client and servers in one process): "
        f"first {first_wall * 1000:.0f} ms wall / {first_cpu * 1000:.0f} ms CPU, "
        f"second {second_wall * 1000:.0f} ms wall / {second_cpu * 1000:.0f} ms CPU"
    )
    assert second_cpu < first_cpu


def test_both_probes_load_through_their_entry_points() -> None:
    loaded = load_probes({"network", "ssh"})
    assert loaded.failed == {}
    assert isinstance(loaded.plugins["ssh"], SshServiceProbe)
    assert isinstance(loaded.plugins["network"], NetworkProbe)


async def test_a_scheduler_sweep_with_a_parent_down(tmp_path: Path) -> None:
    """The scheduler turns a child's DOWN into UNREACHABLE when the parent's network is DOWN."""
    async with sim_fleet(tmp_path / "keys", count=3) as fleet:
        parent, child, other = fleet.hosts
        base = fleet.inventory(tmp_path / "base.yaml")
        servers = [
            replace(s, depends_on=(parent.name,)) if s.name == child.name else s
            for s in base.servers
        ]
        probes = [NetworkProbe(), SshServiceProbe()]
        for probe in probes:
            await probe.open(ProbeContext(base, {"network_icmp": "off"}))
        state = FleetState([s.name for s in servers], {p.name: p.interval_s for p in probes})
        scheduler = Scheduler(servers, probes, state, seed=1)
        try:
            parent.reset(ResetType.FORCE_OFF)
            child.reset(ResetType.FORCE_OFF)
            await until(lambda: not fleet.sshds[0].listening and not fleet.sshds[1].listening)
            await scheduler.sweep()
        finally:
            for probe in probes:
                await probe.close()
    assert state.reading(parent.name, "network").health is Health.DOWN
    assert state.reading(child.name, "network").health is Health.UNREACHABLE
    assert state.reading(child.name, "ssh").health is Health.UNREACHABLE
    assert state.reading(other.name, "network").health is Health.OK
    assert state.reading(other.name, "ssh").state == "ok"


async def test_key_material_never_reaches_the_log(
    fleet: SimFleet, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    host = fleet.hosts[0]
    locked = tmp_path / "id_locked"
    secret = "correct horse battery staple"
    asyncssh.generate_private_key("ssh-ed25519").write_private_key(str(locked), passphrase=secret)
    locked.chmod(0o600)
    good = fleet.inventory(tmp_path / "good.yaml")
    text = (fleet.key_dir / "id_ed25519").read_text() + locked.read_text()
    key_lines = [line for line in text.splitlines() if len(line) > 40]
    caplog.set_level(logging.DEBUG)
    async with opened(good) as probe:
        assert (await probe.probe(good.server(host.name))).state == "ok"
    bad = load_inventory_text(
        "sites: [{name: dc, kind: datacenter}]\n"
        f"credentials: {{ops: {{key_file: {locked}}}}}\n"
        "servers:\n"
        f"  - {{name: {host.name}, role: image-manager, site: dc, ssh: {{host: '{host.address}', "
        f"port: {fleet.sshds[0].port}, user: root, credentials: ops, "
        f"known_hosts: {fleet.key_dir / 'known_hosts'}}}}}\n",
        tmp_path / "bad.yaml",
    )
    async with opened(bad) as probe:
        result = await probe.probe(bad.server(host.name))
    # An encrypted key without a passphrase source cannot log in; it says so.
    assert (result.state, result.health) == ("auth-failed", Health.DOWN)
    assert f"key file {locked} cannot be used" in result.detail
    assert caplog.records  # asyncssh and the probe did log at DEBUG
    logged = caplog.text + result.detail
    assert key_lines and not any(line in logged for line in key_lines)
    assert secret not in logged
