"""pynetdicom's AE, a reference SCU, against our asyncio responder."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from datetime import date

import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind, Verification

from dicom_peers import loopback_address
from pacs_tui.dicom import DicomResponder
from pacs_tui.sim.studies import StudyIndex

AET = "REFSCP"
INDEX = StudyIndex(7, date(2026, 1, 1), date(2026, 1, 31), studies_per_day=40)


def _find(identifier: Dataset) -> Iterable[Dataset]:
    return INDEX.match(identifier)


@pytest.fixture
async def responder() -> AsyncIterator[tuple[str, int]]:
    address = loopback_address()
    server = DicomResponder(AET, find=_find)
    await server.start(address, 0)
    assert server.bound_port is not None
    yield address, server.bound_port
    await server.stop()


def _ae(*contexts: str, implicit_only: bool = False, max_pdu: int = 16382) -> AE:
    ae = AE(ae_title="PYNETDICOM")
    ae.maximum_pdu_size = max_pdu
    for context in contexts:
        if implicit_only:
            ae.add_requested_context(context, "1.2.840.10008.1.2")
        else:
            ae.add_requested_context(context)
    ae.connection_timeout = 5
    ae.acse_timeout = 5
    ae.network_timeout = 5
    ae.dimse_timeout = 5
    return ae


def _echo(address: str, port: int, called: str) -> tuple[bool, bool, int | None]:
    assoc = _ae(Verification).associate(address, port, ae_title=called)
    if not assoc.is_established:
        return False, assoc.is_rejected, None
    status = assoc.send_c_echo()
    assoc.release()
    return True, False, int(status.Status)


async def test_pynetdicom_echo(responder: tuple[str, int]) -> None:
    established, _, status = await asyncio.to_thread(_echo, *responder, AET)
    assert established and status == 0


async def test_pynetdicom_is_rejected_with_a_wrong_called_ae(responder: tuple[str, int]) -> None:
    established, rejected, _ = await asyncio.to_thread(_echo, *responder, "SOMEONEELSE")
    assert not established and rejected


def _find_all(
    address: str, port: int, implicit_only: bool, max_pdu: int = 16382
) -> tuple[list[int], list[Dataset]]:
    ae = _ae(
        StudyRootQueryRetrieveInformationModelFind, implicit_only=implicit_only, max_pdu=max_pdu
    )
    assoc = ae.associate(address, port, ae_title=AET)
    assert assoc.is_established
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyDate = "20260105-20260106"
    query.ModalitiesInStudy = "CT"
    query.StudyInstanceUID = ""
    query.PatientID = ""
    statuses, identifiers = [], []
    for status, identifier in assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind):
        statuses.append(int(status.Status))
        if identifier is not None:
            identifiers.append(identifier)
    assoc.release()
    return statuses, identifiers


@pytest.mark.parametrize(
    ("implicit_only", "max_pdu"),
    [(False, 16382), (True, 16382), (False, 64)],  # 64: every identifier is fragmented
)
async def test_pynetdicom_find(
    responder: tuple[str, int], implicit_only: bool, max_pdu: int
) -> None:
    statuses, identifiers = await asyncio.to_thread(_find_all, *responder, implicit_only, max_pdu)
    expected = INDEX.count(date(2026, 1, 5), date(2026, 1, 6), "CT")
    assert expected > 0
    assert statuses == [0xFF00] * expected + [0x0000]
    assert len(identifiers) == expected
    assert {str(i.ModalitiesInStudy) for i in identifiers} == {"CT"}
    assert {str(i.StudyDate) for i in identifiers} == {"20260105", "20260106"}
    uids = [str(i.StudyInstanceUID) for i in identifiers]
    assert len(set(uids)) == expected
    assert all(str(i.PatientID).startswith("P") for i in identifiers)
