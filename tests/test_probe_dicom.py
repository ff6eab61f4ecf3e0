"""The DICOM probe against simulated DICOM nodes (real associations on loopback).

Each node is a ``SimulatedHost`` with a ``DicomNode`` on its own 127.x.y.z
address; faults, power and dependencies are driven through the host, exactly
as the simulator's control API would.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydicom.dataset import Dataset

from dicom_peers import free_port, loopback_address
from pacs_tui.inventory import DicomEndpoint, Inventory, Server, load_inventory_text
from pacs_tui.plugin_api import Health, ProbeContext, ProbeResult
from pacs_tui.scheduler import Scheduler
from pacs_tui.sim.dicom_node import DicomNode
from pacs_tui.sim.host import HardwareFacts, HostTimings, SimulatedHost
from pacs_tui.sim.studies import StudyAnswer, StudyIndex
from pacs_tui.state import FleetState
from pacs_tui_dicom_echo.probe import DicomProbe, DicomSettings

TINY = HostTimings(power_transition_s=0.01, boot_s=0.02, service_start_s=0.01, shutdown_s=0.02)
EMPTY_INVENTORY = Inventory(Path("/nonexistent/inventory.yaml"), {}, (), {})


class CountingIndex(StudyIndex):
    """A study index that counts the C-FIND queries that reach it."""

    queries = 0

    def match(self, identifier: Dataset, limit: int | None = None) -> Iterator[Dataset]:
        self.queries += 1
        return super().match(identifier, limit)

    def match_encoded(self, identifier: Dataset, limit: int | None = None) -> Iterator[StudyAnswer]:
        self.queries += 1  # the simulated node's C-FIND path
        return super().match_encoded(identifier, limit)


def study_index() -> CountingIndex:
    """Studies around today (the probe's default query is today's date)."""
    today = date.today()
    return CountingIndex(7, today - timedelta(days=60), today + timedelta(days=1), 40)


def sim_host(name: str, role: str = "image-manager", units: tuple[str, ...] = ("pacs",)) -> SimulatedHost:  # fmt: skip
    """A simulated server on its own loopback address, with tiny timings."""
    hardware = HardwareFacts(
        manufacturer="Dell Inc.",
        model="PowerEdge R650",
        serial_number=f"SIM-{name}",
        mac_addresses=("52:54:00:00:00:01",),
        bios_version="1.10.2",
        bmc_firmware="6.10.30.00",
    )
    return SimulatedHost(
        name=name,
        role=role,
        site="dc",
        address=loopback_address(),
        units=units,
        hardware=hardware,
        timings=TINY,
        speaks_dicom="pacs" in units,
    )


NodeFactory = Callable[..., Awaitable[DicomNode]]


@pytest.fixture
async def make_node() -> AsyncIterator[NodeFactory]:
    """Start simulated DICOM nodes; stop them (and their hosts) at the end."""
    started: list[DicomNode] = []

    async def make(
        name: str = "im-01",
        *,
        role: str = "image-manager",
        ae_title: str = "IMGMGR01",
        studies: StudyIndex | None = None,
        with_studies: bool = True,
    ) -> DicomNode:
        host = sim_host(name, role)
        index = studies if studies is not None else (study_index() if with_studies else None)
        node = DicomNode(host, port=free_port(host.address), ae_title=ae_title, studies=index)
        host.dicom_listener = node
        await node.start()
        started.append(node)
        return node

    yield make
    for node in started:
        await node.host.stop()
        for dep in node.host.depends_on:
            await dep.stop()
        await node.stop()


def server_for(node: DicomNode, *, role: str | None = None, calling: str = "PACSTUI") -> Server:
    """The inventory entry of a simulated node."""
    return Server(
        name=node.host.name,
        site="dc",
        role=role or node.host.role,
        dicom=DicomEndpoint(node.host.address, node.port, node.ae_title, calling),
    )


async def opened(**settings: Any) -> DicomProbe:
    probe = DicomProbe()
    await probe.open(ProbeContext(EMPTY_INVENTORY, settings))
    return probe


async def until(condition: Callable[[], object], deadline_s: float = 5.0) -> None:
    end = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > end:
            raise AssertionError("condition not met before the deadline")
        await asyncio.sleep(0.01)


# -- C-ECHO states -------------------------------------------------------------


async def test_echo_ok_with_first_find_counting_todays_studies(make_node: NodeFactory) -> None:
    node = await make_node()
    probe = await opened()
    result = await probe.probe(server_for(node))
    assert (result.state, result.health) == ("ok", Health.OK)
    assert result.latency_ms is not None and 0 < result.latency_ms < 1000
    today = date.today()
    expected = node.studies.count(today, today)  # type: ignore[union-attr]
    assert expected > 0
    assert result.facts["find_count"] == expected
    assert result.facts["find_state"] == "ok"
    assert result.facts["find_latency_ms"] > 0
    assert result.detail.startswith("echo ok in ")
    assert f"C-FIND {expected} studies in " in result.detail


async def test_find_query_override_counts_that_query(make_node: NodeFactory) -> None:
    node = await make_node()
    day = date.today() - timedelta(days=10)
    probe = await opened(
        dicom_find_query={
            "StudyDate": f"{day:%Y%m%d}-{date.today():%Y%m%d}",
            "ModalitiesInStudy": "MR",
        }
    )
    result = await probe.probe(server_for(node))
    expected = node.studies.count(day, date.today(), "MR")  # type: ignore[union-attr]
    assert expected > 5
    assert result.facts["find_count"] == expected


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("calling-ae", "rejected: calling AE title not recognized (permanent, service-user)"),
        ("called-ae", "rejected: called AE title not recognized (permanent, service-user)"),
        ("busy", "rejected: local limit exceeded (transient, service-provider presentation)"),
    ],
)
async def test_rejections_are_down_with_their_reason(
    make_node: NodeFactory, fault: str, reason: str
) -> None:
    node = await make_node()
    node.host.faults.update({"dicom_reject": fault})
    result = await (await opened()).probe(server_for(node))
    assert (result.state, result.health, result.detail) == ("rejected", Health.DOWN, reason)
    assert "find_count" not in result.facts  # no C-FIND on a node that rejects us


async def test_abort_is_down(make_node: NodeFactory) -> None:
    node = await make_node()
    node.host.faults.update({"dicom_abort": True})
    result = await (await opened()).probe(server_for(node))
    assert (result.state, result.health) == ("aborted", Health.DOWN)
    assert result.detail


async def test_powered_off_node_refuses_then_recovers(make_node: NodeFactory) -> None:
    node = await make_node()
    probe = await opened()
    node.host.reset("ForceOff")
    await node.host.wait_idle()
    result = await probe.probe(server_for(node))
    assert (result.state, result.health, result.detail) == (
        "refused",
        Health.DOWN,
        "connection refused",
    )
    node.host.reset("On")
    await until(lambda: node.serving)
    result = await probe.probe(server_for(node))
    assert (result.state, result.health) == ("ok", Health.OK)
    # The C-FIND that was due while the node was off runs on the first good poll.
    assert result.facts["find_state"] == "ok"


async def test_closed_port_is_refused() -> None:
    address = loopback_address()
    server = Server("gone", "dc", "archive", dicom=DicomEndpoint(address, free_port(address), "X"))
    result = await (await opened()).probe(server)
    assert (result.state, result.health) == ("refused", Health.DOWN)


async def test_silent_peer_times_out_within_the_deadline() -> None:
    address = loopback_address()
    held: list[asyncio.StreamWriter] = []

    async def accept_and_say_nothing(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    listener = await asyncio.start_server(accept_and_say_nothing, address, 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        probe = await opened(dicom_timeout_s=0.3)
        server = Server("mute", "dc", "archive", dicom=DicomEndpoint(address, port, "MUTE"))
        started = time.monotonic()
        result = await probe.probe(server)
        elapsed = time.monotonic() - started
    finally:
        for writer in held:
            writer.close()
        listener.close()
        await listener.wait_closed()
    assert (result.state, result.health) == ("timeout", Health.DOWN)
    assert result.detail == "no answer within 0.3 s during association"
    assert held, "the peer accepted the connection"
    assert 0.25 < elapsed < 1.5


async def test_slow_echo_is_degraded(make_node: NodeFactory) -> None:
    node = await make_node()
    # A loopback echo takes ~1 ms; a threshold below it makes every echo "slow".
    result = await (await opened(dicom_slow_ms=0.001, dicom_find=False)).probe(server_for(node))
    assert (result.state, result.health) == ("ok", Health.DEGRADED)
    assert "slow: echo over 0.001 ms" in result.detail
    result = await (await opened(dicom_find=False)).probe(server_for(node))
    assert result.health is Health.OK


# -- C-FIND --------------------------------------------------------------------


async def test_dependency_down_degrades_via_find_while_echo_is_ok(make_node: NodeFactory) -> None:
    node = await make_node("arch-01", role="archive", ae_title="ARCH01")
    database = sim_host("db-01", role="database", units=("postgresql",))
    node.host.depends_on.append(database)
    database.reset("ForceOff")
    await database.wait_idle()
    probe = await opened(dicom_find_every=3)
    server = server_for(node)

    failed = await probe.probe(server)
    assert (failed.state, failed.health) == ("ok", Health.DEGRADED)
    assert "C-FIND failed: status 0xC001: archive database unavailable" in failed.detail
    assert failed.facts["find_state"] == "error"

    # Between C-FIND polls the failure is carried, with its age, not forgotten.
    await asyncio.sleep(0.05)  # let the carried figure grow measurably older
    carried = await probe.probe(server)
    assert carried.health is Health.DEGRADED
    assert "archive database unavailable" in carried.detail and "s ago)" in carried.detail
    assert carried.facts["find_age_s"] >= 0.0
    assert carried.observed_at > failed.observed_at

    database.reset("On")
    await until(database.is_up)
    results = [await probe.probe(server) for _ in range(3)]
    assert results[-1].health is Health.OK, [r.detail for r in results]
    assert results[-1].facts["find_state"] == "ok"


async def test_find_runs_every_nth_poll_and_figures_are_carried(make_node: NodeFactory) -> None:
    index = study_index()
    node = await make_node(studies=index)
    probe = await opened(dicom_find_every=3)
    server = server_for(node)
    seen: list[int] = []
    results: list[ProbeResult] = []
    for _ in range(14):
        results.append(await probe.probe(server))
        seen.append(index.queries)
    find_polls = [i for i in range(14) if seen[i] > (seen[i - 1] if i else 0)]
    assert find_polls[0] == 0  # the first poll shows figures at once
    assert 1 <= find_polls[1] <= 3  # then a per-server phase
    gaps = {b - a for a, b in itertools.pairwise(find_polls[1:])}
    assert gaps == {3}
    # Every result carries the last count, C-FIND poll or not.
    assert {r.facts["find_count"] for r in results} == {index.count(date.today(), date.today())}
    assert all(r.health is Health.OK for r in results)


async def test_servers_first_polled_together_query_at_different_polls(
    make_node: NodeFactory,
) -> None:
    indexes = [study_index() for _ in range(4)]
    servers = [
        server_for(await make_node(f"arch-0{i}", role="archive", ae_title=f"ARCH0{i}", studies=x))
        for i, x in enumerate(indexes, start=1)
    ]
    probe = await opened(dicom_find_every=3)
    second_find: list[int] = []
    for server, index in zip(servers, indexes, strict=True):
        for poll in range(4):
            await probe.probe(server)
            if index.queries == 2:
                second_find.append(poll)
                break
    assert len(second_find) == 4
    assert len(set(second_find)) > 1, second_find  # staggered, not in lock-step


async def test_find_latency_reflects_the_node(make_node: NodeFactory) -> None:
    node = await make_node()
    probe = await opened(dicom_find_every=1)
    quick = await probe.probe(server_for(node))
    node.find_latency_s = 0.3
    slow = await probe.probe(server_for(node))
    assert quick.facts["find_latency_ms"] < 250
    assert 300 <= slow.facts["find_latency_ms"] < 2000
    assert slow.health is Health.OK  # slow storage alone is not a failure
    assert slow.latency_ms is not None and slow.latency_ms < 250  # echo stays quick


async def test_find_by_role_and_by_setting(make_node: NodeFactory) -> None:
    router = await make_node("rtr-01", role="dicom-router", ae_title="ROUTER01", with_studies=False)
    by_role = await (await opened()).probe(server_for(router))
    assert by_role.health is Health.OK and "find_count" not in by_role.facts

    # Forced on everywhere: a router offers Verification only, so C-FIND is not accepted.
    forced = await (await opened(dicom_find=True)).probe(server_for(router))
    assert (forced.state, forced.health) == ("ok", Health.DEGRADED)
    assert "C-FIND error: Study Root FIND was not accepted" in forced.detail

    archive = await make_node("arch-02", role="archive", ae_title="ARCH02")
    off = await (await opened(dicom_find=False)).probe(server_for(archive))
    assert off.health is Health.OK and "find_count" not in off.facts
    roles = await (await opened(dicom_find_roles=["dicom-router"])).probe(server_for(archive))
    assert "find_count" not in roles.facts


# -- settings ------------------------------------------------------------------


async def test_open_sets_instance_interval_and_timeout() -> None:
    probe = await opened(dicom_interval_s=2.5, dicom_timeout_s=1)
    assert (probe.interval_s, probe.timeout_s) == (2.5, 1.0)
    assert (DicomProbe.interval_s, DicomProbe.timeout_s) == (10.0, 5.0)
    assert (DicomProbe().interval_s, DicomProbe().timeout_s) == (10.0, 5.0)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("dicom_interval_s", 0),
        ("dicom_timeout_s", "5"),
        ("dicom_slow_ms", True),
        ("dicom_find", "yes"),
        ("dicom_find_roles", "archive"),
        ("dicom_find_roles", 3),
        ("dicom_find_query", {"NotAKeyword": "x"}),
        ("dicom_find_query", {"StudyDate": 20260101}),
        ("dicom_find_every", 0),
        ("dicom_find_every", 2.5),
    ],
)
def test_bad_settings_are_refused_by_name(key: str, value: object) -> None:
    with pytest.raises(ValueError, match=key):
        DicomSettings.from_settings({key: value})


def test_today_placeholder_becomes_the_date() -> None:
    settings = DicomSettings.from_settings({"dicom_find_query": {"StudyDate": "today"}})
    assert settings.query_for(date(2026, 3, 7)) == {"StudyDate": "20260307"}


def test_applies_to_and_endpoint() -> None:
    probe = DicomProbe()
    with_dicom = Server("a", "dc", "archive", dicom=DicomEndpoint("127.9.0.1", 104, "A"))
    assert probe.applies_to(with_dicom)
    assert probe.endpoint(with_dicom) == "host:127.9.0.1"
    assert not probe.applies_to(Server("b", "dc", "storage"))


# -- through the scheduler -------------------------------------------------------


async def test_scheduler_sweeps_and_polls_a_small_fleet(
    make_node: NodeFactory, tmp_path: Path
) -> None:
    index = study_index()
    im = await make_node("im-01", studies=index)
    router = await make_node("rtr-01", role="dicom-router", ae_title="ROUTER01", with_studies=False)
    router.host.faults.update({"dicom_reject": "busy"})
    archive = await make_node("arch-01", role="archive", ae_title="ARCH01")
    database = sim_host("db-01", role="database", units=("postgresql",))
    archive.host.depends_on.append(database)
    database.reset("ForceOff")
    await database.wait_idle()
    gone = loopback_address()

    def dicom(node: DicomNode) -> str:
        return f"{{host: {node.host.address}, port: {node.port}, ae_title: {node.ae_title}}}"

    inventory = load_inventory_text(
        f"""
sites: [{{name: dc, kind: datacenter}}]
servers:
  - {{name: im-01, site: dc, role: image-manager, dicom: {dicom(im)}}}
  - {{name: rtr-01, site: dc, role: dicom-router, dicom: {dicom(router)}}}
  - {{name: db-01, site: dc, role: database}}
  - {{name: arch-01, site: dc, role: archive, depends_on: [db-01], dicom: {dicom(archive)}}}
  - {{name: gw-01, site: dc, role: edge-gateway,
      dicom: {{host: {gone}, port: {free_port(gone)}, ae_title: GW01}}}}
""",
        tmp_path / "inventory.yaml",
    )
    probe = DicomProbe()
    await probe.open(ProbeContext(inventory, {"dicom_interval_s": 0.05, "dicom_find_every": 2}))
    state = FleetState(inventory.names(), {probe.name: probe.interval_s})
    scheduler = Scheduler(inventory.servers, [probe], state, seed=3)
    assert [s.name for s, _ in scheduler.pairs()] == ["im-01", "rtr-01", "arch-01", "gw-01"]

    await scheduler.sweep()
    im_reading = state.reading("im-01", "dicom")
    assert (im_reading.state, im_reading.health) == ("ok", Health.OK)
    assert im_reading.result is not None
    assert im_reading.result.facts["find_count"] == index.count(date.today(), date.today())
    assert state.reading("rtr-01", "dicom").state == "rejected"
    assert "local limit exceeded" in state.reading("rtr-01", "dicom").result.detail  # type: ignore[union-attr]
    assert state.reading("arch-01", "dicom").health is Health.DEGRADED
    assert (state.reading("gw-01", "dicom").state, state.reading("gw-01", "dicom").health) == (
        "refused",
        Health.DOWN,
    )
    assert state.reading("db-01", "dicom").result is None  # no DICOM endpoint: never polled

    # The continuous loop uses the interval set in open() and keeps C-FIND every 2nd poll.
    updates = state.updates
    queries = index.queries
    task = asyncio.create_task(scheduler.run())
    try:
        # Several rounds of the four servers: the failing two back off, so how many
        # results came when im-01's third C-FIND did depends on timing; wait for both.
        await until(
            lambda: index.queries >= queries + 3 and state.updates - updates >= 4 * 3,
            deadline_s=20,
        )
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert state.updates - updates >= 4 * 3  # four servers, several rounds
    assert state.reading("im-01", "dicom").health is Health.OK
    assert state.reading("arch-01", "dicom").health is Health.DEGRADED
    await probe.close()
