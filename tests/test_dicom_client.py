"""The asyncio DICOM client against our responder, dcmtk's storescp and Orthanc."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import pytest
from pydicom.dataset import Dataset

from dicom_peers import free_port, loopback_address, orthanc, storescp
from pacs_tui.dicom import Admission, DicomResponder, FindFailure, c_echo, c_find_studies
from pacs_tui.dicom.association import LOCAL_LIMIT_EXCEEDED, AssociationRequest

AE = "ARCHIVE1"


def _three_studies(identifier: Dataset) -> Iterable[Dataset]:
    for n in range(3):
        answer = Dataset()
        answer.QueryRetrieveLevel = "STUDY"
        answer.StudyInstanceUID = f"1.2.826.0.1.3680043.8.498.1.{n + 1}"
        answer.StudyDate = str(identifier.StudyDate) or "20260105"
        answer.ModalitiesInStudy = ["CT", "PT"] if n == 0 else "MR"
        answer.PatientID = f"P{n}"
        yield answer


class Server:
    def __init__(self, responder: DicomResponder, address: str, port: int) -> None:
        self.responder = responder
        self.address = address
        self.port = port


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    address = loopback_address()
    responder = DicomResponder(
        AE, find=_three_studies, allowed_calling_aes=frozenset({"PACSTUI", "OTHER"})
    )
    await responder.start(address, 0)
    assert responder.bound_port is not None
    yield Server(responder, address, responder.bound_port)
    await responder.stop()


async def test_echo_ok(server: Server) -> None:
    outcome = await c_echo(server.address, server.port, called_ae=AE)
    assert outcome.state == "ok", outcome
    assert outcome.detail == "echo ok"
    assert 0 < outcome.latency_ms < 5000


async def test_echo_rejected_for_unknown_calling_ae(server: Server) -> None:
    outcome = await c_echo(server.address, server.port, called_ae=AE, calling_ae="STRANGER")
    assert outcome.state == "rejected"
    assert outcome.detail == "rejected: calling AE title not recognized (permanent, service-user)"


async def test_echo_rejected_for_wrong_called_ae(server: Server) -> None:
    outcome = await c_echo(server.address, server.port, called_ae="NOTME")
    assert outcome.state == "rejected"
    assert "called AE title not recognized" in outcome.detail


async def test_admission_policy_rejects_transiently_or_aborts(server: Server) -> None:
    seen: list[AssociationRequest] = []

    def busy(request: AssociationRequest) -> Admission:
        seen.append(request)
        return Admission(reject=LOCAL_LIMIT_EXCEEDED)

    server.responder.admit = busy
    outcome = await c_echo(server.address, server.port, called_ae=AE, calling_ae="OTHER")
    assert outcome.state == "rejected"
    assert outcome.detail == (
        "rejected: local limit exceeded (transient, service-provider presentation)"
    )
    assert seen[0].calling_ae == "OTHER" and seen[0].called_ae == AE

    server.responder.admit = lambda request: Admission(abort_after_accept=True)
    outcome = await c_echo(server.address, server.port, called_ae=AE)
    assert outcome.state == "aborted"
    assert "aborted by peer" in outcome.detail


async def test_refused_when_nothing_listens() -> None:
    address = loopback_address()
    outcome = await c_echo(address, free_port(address), called_ae=AE, timeout=2)
    assert outcome.state == "refused"
    assert outcome.detail == "connection refused"


async def test_timeout_against_a_peer_that_accepts_but_never_answers() -> None:
    address = loopback_address()
    accepted: list[asyncio.StreamWriter] = []

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    silent = await asyncio.start_server(never_answer, address, 0)
    port = silent.sockets[0].getsockname()[1]
    try:
        echo = await c_echo(address, port, called_ae=AE, timeout=0.3)
        find = await c_find_studies(address, port, called_ae=AE, query={}, timeout=0.3)
    finally:
        silent.close()
        for writer in accepted:
            writer.close()
    assert len(accepted) == 2
    assert echo.state == "timeout"
    assert echo.detail == "no answer within 0.3 s during association"
    assert 250 < echo.latency_ms < 2000
    assert find.state == "timeout" and find.count == 0


async def test_connect_timeout_when_syns_are_dropped() -> None:
    # A listener that never accepts, with a full backlog, drops further SYNs:
    # the kernel would retry for two minutes, the client gives up at its timeout.
    address = loopback_address()
    listener = socket.socket()
    listener.bind((address, 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(4):
            try:
                fillers.append(await asyncio.wait_for(asyncio.open_connection(address, port), 0.2))
            except TimeoutError:
                break  # the backlog is full now
        outcome = await c_echo(address, port, called_ae=AE, timeout=0.4)
    finally:
        for _, writer in fillers:
            writer.close()
        listener.close()
    assert outcome.state == "timeout"
    assert outcome.detail == "no answer within 0.4 s during connect"
    assert outcome.latency_ms < 2000


async def test_find_counts_and_returns_identifiers(server: Server) -> None:
    outcome = await c_find_studies(
        server.address, server.port, called_ae=AE, query={"StudyDate": "20260105"}
    )
    assert outcome.state == "ok", outcome
    assert outcome.count == 3
    assert outcome.detail == "3 studies"
    first = outcome.studies[0]
    assert first["StudyInstanceUID"] == "1.2.826.0.1.3680043.8.498.1.1"
    assert first["ModalitiesInStudy"] == "CT\\PT"
    assert first["StudyDate"] == "20260105"
    assert first["PatientID"] == "P0"


async def test_find_limit_keeps_fewer_identifiers_but_counts_all(server: Server) -> None:
    outcome = await c_find_studies(server.address, server.port, called_ae=AE, query={}, limit=1)
    assert (outcome.state, outcome.count, len(outcome.studies)) == ("ok", 3, 1)


async def test_find_failure_reports_the_error_comment(server: Server) -> None:
    server.responder.admit = lambda request: Admission(find_failure="archive database unavailable")
    outcome = await c_find_studies(server.address, server.port, called_ae=AE, query={})
    assert outcome.state == "error"
    assert outcome.detail == "C-FIND failed: status 0xC001: archive database unavailable"
    # Verification is unaffected by a degraded archive.
    assert (await c_echo(server.address, server.port, called_ae=AE)).state == "ok"

    def broken(identifier: Dataset) -> Iterable[Dataset]:
        raise FindFailure("invalid date '2026'")

    server.responder.admit = None
    server.responder.find = broken
    outcome = await c_find_studies(server.address, server.port, called_ae=AE, query={})
    assert outcome.detail == "C-FIND failed: status 0xC001: invalid date '2026'"


async def test_find_latency_is_applied(server: Server) -> None:
    server.responder.find_latency_s = 0.2
    outcome = await c_find_studies(server.address, server.port, called_ae=AE, query={})
    assert outcome.state == "ok"
    assert outcome.latency_ms >= 200
    server.responder.find_latency_s = 1.0
    outcome = await c_find_studies(server.address, server.port, called_ae=AE, query={}, timeout=0.3)
    assert (outcome.state, outcome.complete) == ("timeout", False)
    assert outcome.detail == (
        "C-FIND incomplete after 0 matches: not finished within 0.3 s (overall deadline)"
    )


async def test_find_is_refused_as_a_context_by_an_echo_only_responder() -> None:
    address = loopback_address()
    responder = DicomResponder(AE)
    await responder.start(address, 0)
    try:
        port = responder.bound_port
        assert port is not None
        outcome = await c_find_studies(address, port, called_ae=AE, query={})
    finally:
        await responder.stop()
    assert outcome.state == "error"
    assert outcome.detail == "Study Root FIND was not accepted"


async def test_bad_query_keyword_is_a_caller_error(server: Server) -> None:
    with pytest.raises(ValueError, match="NotAKeyword"):
        await c_find_studies(server.address, server.port, called_ae=AE, query={"NotAKeyword": "x"})


async def test_stop_drops_open_associations_and_refuses_new_ones(server: Server) -> None:
    reader, writer = await asyncio.open_connection(server.address, server.port)
    await server.responder.stop()
    assert await asyncio.wait_for(reader.read(), 2) == b""  # dropped, not left hanging
    writer.close()
    outcome = await c_echo(server.address, server.port, called_ae=AE, timeout=1)
    assert outcome.state == "refused"
    await server.responder.stop()  # idempotent
    await server.responder.start(server.address, server.port)
    assert (await c_echo(server.address, server.port, called_ae=AE)).state == "ok"


async def test_many_concurrent_echoes(server: Server) -> None:
    outcomes = await asyncio.gather(
        *(c_echo(server.address, server.port, called_ae=AE) for _ in range(100))
    )
    assert {o.state for o in outcomes} == {"ok"}
    assert server.responder.associations_accepted == 100


# -- real peers -------------------------------------------------------------------


@pytest.mark.peer("dcmtk")
async def test_echo_against_dcmtk_storescp(tmp_path: Path) -> None:
    with storescp(tmp_path, aet="DCMTKSCP") as peer:
        outcome = await c_echo(peer.address, peer.port, called_ae="DCMTKSCP")
    assert outcome.state == "ok", outcome


@pytest.mark.peer("dcmtk")
async def test_dcmtk_storescp_refuse_is_a_rejection(tmp_path: Path) -> None:
    with storescp(tmp_path, aet="DCMTKSCP", refuse=True) as peer:
        outcome = await c_echo(peer.address, peer.port, called_ae="DCMTKSCP")
    assert outcome.state == "rejected"
    # storescp --refuse answers "no reason given", permanent, from the service user.
    assert outcome.detail == "rejected: no reason given (permanent, service-user)"


@pytest.mark.peer("orthanc")
async def test_orthanc_echo_reject_and_empty_find(tmp_path: Path) -> None:
    with orthanc(tmp_path) as pacs:
        known = await c_echo(
            pacs.address, pacs.dicom_port, called_ae=pacs.aet, calling_ae=pacs.known_aet
        )
        stranger = await c_echo(
            pacs.address, pacs.dicom_port, called_ae=pacs.aet, calling_ae="STRANGER"
        )
        wrong_called = await c_echo(
            pacs.address, pacs.dicom_port, called_ae="NOTORTHANC", calling_ae=pacs.known_aet
        )
        find = await c_find_studies(
            pacs.address,
            pacs.dicom_port,
            called_ae=pacs.aet,
            calling_ae=pacs.known_aet,
            query={"StudyDate": "20260101-20260131", "ModalitiesInStudy": "CT"},
        )
        studies = pacs.rest("/statistics")
    assert known.state == "ok", known
    assert stranger.state == "rejected"
    assert stranger.detail == "rejected: calling AE title not recognized (permanent, service-user)"
    assert wrong_called.state == "rejected"
    assert "called AE title not recognized" in wrong_called.detail
    assert (find.state, find.count) == ("ok", 0), find
    assert isinstance(studies, dict) and studies["CountStudies"] == 0


async def test_client_never_raises_when_peer_closes_immediately() -> None:
    address = loopback_address()

    async def slam(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    closer = await asyncio.start_server(slam, address, 0)
    port = closer.sockets[0].getsockname()[1]
    try:
        outcome = await c_echo(address, port, called_ae=AE, timeout=2)
    finally:
        closer.close()
        with contextlib.suppress(Exception):
            await closer.wait_closed()
    assert outcome.state == "aborted"
    assert outcome.detail == "connection closed by peer during association"
