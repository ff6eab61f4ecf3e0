"""Negotiation rules and the responder's robustness against misbehaving peers."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator

import pytest
from pynetdicom.pdu import A_ASSOCIATE_AC, A_ASSOCIATE_RQ

from dicom_peers import loopback_address
from pacs_tui.dicom import DicomResponder, c_echo
from pacs_tui.dicom.association import (
    EXPLICIT_VR_LE,
    IMPLICIT_VR_LE,
    STUDY_ROOT_FIND,
    VERIFICATION,
    association_request,
    negotiate,
    read_acceptance,
)
from pacs_tui.dicom.pdu_stream import PduError, decode_pdu

AE = "ROBUST"


def _request(*abstracts: str) -> A_ASSOCIATE_RQ:
    raw = association_request(called_ae=AE, calling_ae="PACSTUI", abstract_syntaxes=abstracts)
    pdu = decode_pdu(0x01, raw)
    assert isinstance(pdu, A_ASSOCIATE_RQ)
    return pdu


def test_negotiation_accepts_supported_contexts_and_prefers_explicit_vr() -> None:
    rq = _request(VERIFICATION, "1.2.840.10008.5.1.4.1.1.2", STUDY_ROOT_FIND)
    ac_bytes, contexts, peer_max = negotiate(rq, (VERIFICATION, STUDY_ROOT_FIND), max_pdu=32768)
    assert peer_max == 16384  # what our client announces
    assert {c.context_id: c.abstract_syntax for c in contexts.values()} == {
        1: VERIFICATION,
        5: STUDY_ROOT_FIND,
    }
    assert contexts[1].transfer_syntax == EXPLICIT_VR_LE
    ac = decode_pdu(0x02, ac_bytes)
    assert isinstance(ac, A_ASSOCIATE_AC)
    results = {item.presentation_context_id: item.result_reason for item in ac.presentation_context}
    assert results == {1: 0, 3: 3, 5: 0}  # 3 = abstract syntax not supported
    assert ac.user_information is not None and ac.user_information.maximum_length == 32768
    # The requestor's view of the same answer.
    accepted, max_pdu = read_acceptance(
        ac, (VERIFICATION, "1.2.840.10008.5.1.4.1.1.2", STUDY_ROOT_FIND)
    )
    assert sorted(accepted) == [1, 5] and max_pdu == 32768


def test_negotiation_refuses_a_context_without_a_usable_transfer_syntax() -> None:
    rq = _request(VERIFICATION)
    rq.presentation_context[0].abstract_transfer_syntax_sub_items[
        1
    ].transfer_syntax_name = "1.2.840.10008.1.2.4.50"
    rq.presentation_context[0].abstract_transfer_syntax_sub_items[
        2
    ].transfer_syntax_name = "1.2.840.10008.1.2.4.70"
    ac_bytes, contexts, _ = negotiate(rq, (VERIFICATION,))
    ac = decode_pdu(0x02, ac_bytes)
    assert isinstance(ac, A_ASSOCIATE_AC)
    assert contexts == {}
    assert ac.presentation_context[0].result_reason == 4  # transfer syntaxes not supported


def test_negotiation_takes_implicit_vr_when_that_is_all_that_is_offered() -> None:
    rq = _request(VERIFICATION)
    items = rq.presentation_context[0].abstract_transfer_syntax_sub_items
    del items[1]  # drop Explicit VR LE, leaving Implicit
    _, contexts, _ = negotiate(rq, (VERIFICATION,))
    assert contexts[1].transfer_syntax == IMPLICIT_VR_LE and contexts[1].implicit_vr


def test_decode_pdu_reports_malformed_bodies() -> None:
    with pytest.raises(PduError):
        decode_pdu(0x01, b"\x01\x00\x00\x00\x00\x10" + b"\xff" * 16)


@pytest.fixture
async def responder() -> AsyncIterator[tuple[DicomResponder, str, int]]:
    address = loopback_address()
    server = DicomResponder(AE, idle_timeout_s=0.3)
    await server.start(address, 0)
    assert server.bound_port is not None
    yield server, address, server.bound_port
    await server.stop()


async def _exchange(address: str, port: int, data: bytes) -> bytes:
    """Send ``data``, return everything the server sends until it closes."""
    reader, writer = await asyncio.open_connection(address, port)
    writer.write(data)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(), 3)
    finally:
        writer.close()


def _abort(reason: int) -> bytes:
    return b"\x07\x00" + struct.pack(">I", 4) + bytes([0, 0, 2, reason])


def _associate() -> bytes:
    return association_request(
        called_ae=AE, calling_ae="PACSTUI", abstract_syntaxes=(VERIFICATION,)
    )


async def test_unknown_pdu_type_is_aborted(responder: tuple[DicomResponder, str, int]) -> None:
    _, address, port = responder
    assert await _exchange(address, port, b"GET / HTTP/1.1\r\n\r\n") == _abort(1)
    # The server is still fine.
    assert (await c_echo(address, port, called_ae=AE)).state == "ok"


async def test_oversized_pdu_is_aborted_without_reading_it(
    responder: tuple[DicomResponder, str, int],
) -> None:
    _, address, port = responder
    reply = await _exchange(address, port, _associate() + b"\x04\x00\x7f\xff\xff\xff" + b"x" * 100)
    assert reply[0] == 0x02  # A-ASSOCIATE-AC first
    assert reply.endswith(_abort(6))


async def test_malformed_association_request_is_aborted(
    responder: tuple[DicomResponder, str, int],
) -> None:
    _, address, port = responder
    body = b"\x00\x01\x00\x00" + b"\xee" * 100
    reply = await _exchange(address, port, b"\x01\x00" + struct.pack(">I", len(body)) + body)
    assert reply == _abort(6)


async def test_data_before_association_is_an_unexpected_pdu(
    responder: tuple[DicomResponder, str, int],
) -> None:
    _, address, port = responder
    reply = await _exchange(address, port, b"\x05\x00\x00\x00\x00\x04\x00\x00\x00\x00")
    assert reply == _abort(2)


async def test_data_on_an_unknown_context_is_aborted(
    responder: tuple[DicomResponder, str, int],
) -> None:
    _, address, port = responder
    pdv = b"\x00\x00\x00\x03\x63\x03\x00"  # context 99, which was never proposed
    reply = await _exchange(address, port, _associate() + b"\x04\x00" + struct.pack(">I", 7) + pdv)
    assert reply.endswith(_abort(6))


async def test_idle_peer_is_dropped(responder: tuple[DicomResponder, str, int]) -> None:
    _, address, port = responder
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await _exchange(address, port, b"") == _abort(0)
    assert 0.25 < loop.time() - started < 2.5
    # Also after an accepted association that then goes quiet.
    reply = await _exchange(address, port, _associate())
    assert reply[0] == 0x02 and reply.endswith(_abort(0))


async def test_peer_closing_mid_pdu_does_not_hurt_the_server(
    responder: tuple[DicomResponder, str, int],
) -> None:
    _, address, port = responder
    for _ in range(5):
        _, writer = await asyncio.open_connection(address, port)
        writer.write(_associate()[:30])
        await writer.drain()
        writer.close()
        await writer.wait_closed()
    assert (await c_echo(address, port, called_ae=AE)).state == "ok"
