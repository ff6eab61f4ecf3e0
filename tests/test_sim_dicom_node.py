"""The simulator's DICOM node against dcmtk's echoscu/findscu and our client."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from datetime import date

import pytest

from dicom_peers import dcmtk_env, free_port, loopback_address
from pacs_tui.dicom import c_echo, c_find_studies
from pacs_tui.sim.dicom_node import DicomNode
from pacs_tui.sim.host import HardwareFacts, HostTimings, SimulatedHost
from pacs_tui.sim.studies import StudyIndex
from peers import require_dcmtk

AE = "IMGMGR01"
TINY = HostTimings(power_transition_s=0.01, boot_s=0.02, service_start_s=0.01, shutdown_s=0.02)
STUDIES = StudyIndex(3, date(2026, 1, 1), date(2026, 3, 31), studies_per_day=300)


def _host(name: str, units: tuple[str, ...] = ("pacs",)) -> SimulatedHost:
    hardware = HardwareFacts(
        manufacturer="Dell Inc.",
        model="PowerEdge R650",
        serial_number=f"SIM-{name}",
        mac_addresses=("52:54:00:12:34:57",),
        bios_version="1.10.2",
        bmc_firmware="6.10.30.00",
    )
    return SimulatedHost(
        name=name,
        role="image-manager",
        site="main",
        address=loopback_address(),
        units=units,
        hardware=hardware,
        timings=TINY,
        speaks_dicom=True,
    )


@pytest.fixture
async def node() -> AsyncIterator[DicomNode]:
    host = _host("pacs-im-01")
    dicom = DicomNode(host, port=free_port(host.address), ae_title=AE, studies=STUDIES)
    host.dicom_listener = dicom
    await dicom.start()
    yield dicom
    await host.stop()
    await dicom.stop()


async def _run(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=dcmtk_env(),
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, out.decode(errors="replace")


async def _until(condition: Callable[[], object], deadline_s: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while not condition():
        if loop.time() > end:
            raise AssertionError("condition not met before the deadline")
        await asyncio.sleep(0.01)


async def _echoscu(node: DicomNode, called: str = AE) -> tuple[int, str]:
    echoscu = require_dcmtk("echoscu")
    return await _run(
        echoscu,
        "-to",
        "5",
        "-ta",
        "5",
        "-td",
        "5",
        "-aet",
        "DCMTK",
        "-aec",
        called,
        node.host.address,
        str(node.port),
    )


@pytest.mark.peer("dcmtk")
async def test_echoscu_succeeds_and_wrong_called_ae_is_rejected(node: DicomNode) -> None:
    status, output = await _echoscu(node)
    assert status == 0, output
    status, output = await _echoscu(node, called="NOTTHISONE")
    assert status != 0
    assert "Called AE Title Not Recognized" in output, output


@pytest.mark.peer("dcmtk")
async def test_findscu_gets_exactly_count_studies(node: DicomNode) -> None:
    findscu = require_dcmtk("findscu")
    status, output = await _run(
        findscu, "-v", "-S", "-to", "5", "-ta", "5", "-td", "30", "-aet", "DCMTK", "-aec", AE,
        "-k", "QueryRetrieveLevel=STUDY", "-k", "StudyDate=20260105-20260107",
        "-k", "ModalitiesInStudy=MR", "-k", "StudyInstanceUID",
        node.host.address, str(node.port),
    )  # fmt: skip
    assert status == 0, output[-2000:]
    expected = STUDIES.count(date(2026, 1, 5), date(2026, 1, 7), "MR")
    assert expected > 5
    responses = re.findall(r"Find Response: \d+ \(Pending\)", output)
    assert len(responses) == expected, output[-2000:]
    assert len(set(re.findall(r"\(0020,000d\) UI \[([0-9.]+)", output))) == expected
    assert "Received Final Find Response (Success)" in output


@pytest.mark.peer("dcmtk")
async def test_power_off_refuses_and_power_on_serves_again(node: DicomNode) -> None:
    host = node.host
    host.reset("ForceOff")
    await host.wait_idle()
    assert not node.serving
    status, output = await _echoscu(node)
    assert status != 0 and "Connection refused" in output, output
    assert (await c_echo(host.address, node.port, called_ae=AE, timeout=1)).state == "refused"

    host.reset("On")
    await _until(lambda: node.serving)
    status, output = await _echoscu(node)
    assert status == 0, output


async def test_stop_is_idempotent_and_drops_open_associations(node: DicomNode) -> None:
    reader, writer = await asyncio.open_connection(node.host.address, node.port)
    await node.stop()
    await node.stop()
    assert await asyncio.wait_for(reader.read(), 2) == b""
    writer.close()
    await node.start()
    await node.start()
    assert (await c_echo(node.host.address, node.port, called_ae=AE)).state == "ok"


@pytest.mark.parametrize(
    ("fault", "detail"),
    [
        ("calling-ae", "calling AE title not recognized (permanent, service-user)"),
        ("called-ae", "called AE title not recognized (permanent, service-user)"),
        ("busy", "local limit exceeded (transient, service-provider presentation)"),
        ("no-reason", "no reason given (permanent, service-user)"),
    ],
)
async def test_reject_faults(node: DicomNode, fault: str, detail: str) -> None:
    node.host.faults.update({"dicom_reject": fault})
    outcome = await c_echo(node.host.address, node.port, called_ae=AE)
    assert (outcome.state, outcome.detail) == ("rejected", f"rejected: {detail}")
    node.host.faults.update({"dicom_reject": ""})
    assert (await c_echo(node.host.address, node.port, called_ae=AE)).state == "ok"


async def test_abort_fault(node: DicomNode) -> None:
    node.host.faults.update({"dicom_abort": True})
    outcome = await c_echo(node.host.address, node.port, called_ae=AE)
    assert outcome.state == "aborted"


async def test_dependency_down_degrades_find_but_not_echo(node: DicomNode) -> None:
    database = _host("pacs-db-01", units=("postgresql",))
    node.host.depends_on.append(database)
    database.reset("ForceOff")
    await database.wait_idle()
    address, port = node.host.address, node.port
    assert (await c_echo(address, port, called_ae=AE)).state == "ok"
    find = await c_find_studies(address, port, called_ae=AE, query={"StudyDate": "20260110"})
    assert find.state == "error"
    assert find.detail == "C-FIND failed: status 0xC001: archive database unavailable"
    database.reset("On")
    await _until(database.is_up)
    find = await c_find_studies(address, port, called_ae=AE, query={"StudyDate": "20260110"})
    assert (find.state, find.count) == ("ok", STUDIES.count(date(2026, 1, 10), date(2026, 1, 10)))
    await database.stop()


async def test_find_latency_and_calling_ae_allow_list() -> None:
    host = _host("pacs-im-02")
    node = DicomNode(
        host,
        port=free_port(host.address),
        ae_title=AE,
        studies=STUDIES,
        allowed_calling_aes=frozenset({"PACSTUI"}),
    )
    await node.start()
    try:
        address, port = host.address, node.port
        stranger = await c_echo(address, port, called_ae=AE, calling_ae="STRANGER")
        assert "calling AE title not recognized" in stranger.detail
        node.find_latency_s = 0.25
        slow = await c_find_studies(address, port, called_ae=AE, query={"StudyDate": "20260301"})
        assert slow.state == "ok" and slow.latency_ms >= 250
        with pytest.warns(UserWarning):  # pydicom warns about the DA value too
            bad = await c_find_studies(address, port, called_ae=AE, query={"StudyDate": "2026"})
        assert bad.state == "error" and "StudyDate" in bad.detail
    finally:
        await node.stop()


async def test_node_without_studies_answers_echo_only() -> None:
    host = _host("router-01")
    node = DicomNode(host, port=free_port(host.address), ae_title="ROUTER01")
    await node.start()
    try:
        assert (await c_echo(host.address, node.port, called_ae="ROUTER01")).state == "ok"
        find = await c_find_studies(host.address, node.port, called_ae="ROUTER01", query={})
        assert find.detail == "Study Root FIND was not accepted"
    finally:
        await node.stop()
