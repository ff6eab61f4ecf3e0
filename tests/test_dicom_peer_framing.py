"""PDV framing real peers use: several messages in one P-DATA-TF, messages cut anywhere.

PS3.8 §9.3.5 and Annex E allow any number of PDVs in a P-DATA-TF and any
split of a command or data set into fragments. Both our client and our
responder must rebuild every message, whatever the packing.
"""

from __future__ import annotations

import asyncio

import pytest
from pynetdicom.dimse_messages import C_ECHO_RQ, C_FIND_RQ
from pynetdicom.dimse_primitives import C_ECHO, C_FIND

from dicom_peers import loopback_address
from dicom_scripted_peer import (
    RELEASE_RQ,
    Conversation,
    Pdv,
    echo_response,
    find_response,
    fragment,
    message_pdvs,
    p_data_tf,
    pack,
    read_message,
    scripted_scp,
    study,
)
from pacs_tui.dicom import DicomResponder, c_echo, c_find_studies
from pacs_tui.dicom.association import (
    STUDY_ROOT_FIND,
    VERIFICATION,
    AcceptedContext,
    acceptance,
    association_request,
    encode_identifier,
)
from pacs_tui.dicom.client import study_query
from pacs_tui.dicom.pdu_stream import read_pdu

AE = "FRAMING"
MATCHES = 5


def _find_answers(packing: tuple[int | None, int]):  # type: ignore[no-untyped-def]
    size, per_pdu = packing

    async def script(conversation: Conversation) -> None:
        request = await conversation.request()
        context, message_id = conversation.find_context, request.command_set.MessageID
        pdvs: list[Pdv] = []
        for n in range(MATCHES):
            pdvs += find_response(context, message_id, 0xFF00, study(n))
        pdvs += find_response(context, message_id, 0x0000)
        if size is not None:
            pdvs = fragment(pdvs, size)
        await conversation.send(pack(pdvs, per_pdu))
        await conversation.release()

    return script


@pytest.mark.parametrize(
    "packing",
    [
        (None, 1000),  # every pending response, identifier and the final one in one PDU
        (None, 3),  # PDU borders fall between a command and its identifier
        (7, 5),  # commands and identifiers cut in 7-byte fragments, 5 per PDU
        (1, 64),  # one byte per PDV: each PDU ends inside some message
        (13, 1),  # one small fragment per PDU
    ],
    ids=["all-in-one", "three-per-pdu", "7-byte-fragments", "1-byte-fragments", "one-per-pdu"],
)
async def test_client_rebuilds_every_find_response_whatever_the_packing(
    packing: tuple[int | None, int],
) -> None:
    async with scripted_scp(_find_answers(packing)) as peer:
        outcome = await c_find_studies(
            peer.address, peer.port, called_ae=AE, query={"StudyDate": "20260105"}, timeout=5
        )
    assert not peer.failures
    assert outcome.state == "ok", outcome
    assert outcome.complete and outcome.count == MATCHES
    assert [s["PatientID"] for s in outcome.studies] == [f"P{n}" for n in range(MATCHES)]
    assert outcome.detail == f"{MATCHES} studies"


async def test_client_rebuilds_an_echo_response_cut_in_one_byte_pdus() -> None:
    async def script(conversation: Conversation) -> None:
        request = await conversation.request()
        pdvs = echo_response(request.context_id, request.command_set.MessageID)
        await conversation.send(pack(fragment(pdvs, 1), 1))
        await conversation.release()

    async with scripted_scp(script) as peer:
        outcome = await c_echo(peer.address, peer.port, called_ae=AE, timeout=5)
    assert not peer.failures
    assert (outcome.state, outcome.detail) == ("ok", "echo ok")


async def test_client_calls_a_data_set_fragment_without_its_command_a_protocol_error() -> None:
    async def script(conversation: Conversation) -> None:
        request = await conversation.request()
        pdvs = find_response(conversation.find_context, request.command_set.MessageID, 0xFF00)
        data_set = Pdv(request.context_id, 0x02, b"\x08\x00\x20\x00\x00\x00\x00\x00")
        await conversation.send(p_data_tf([data_set, *pdvs]))
        await conversation.pdu()  # what the client does about it

    async with scripted_scp(script) as peer:
        outcome = await c_find_studies(peer.address, peer.port, called_ae=AE, query={}, timeout=5)
    assert outcome.state == "error"
    assert outcome.detail == (
        "protocol error during C-FIND: unexpected data set fragment (PS3.8 E.2)"
    )
    assert peer.conversations[0].received[-1] == 0x07  # we aborted


def _echo_request_pdvs(context_id: int, message_id: int) -> list[Pdv]:
    primitive = C_ECHO()
    primitive.MessageID = message_id
    primitive.AffectedSOPClassUID = VERIFICATION
    message = C_ECHO_RQ()
    message.primitive_to_message(primitive)
    return message_pdvs(message, context_id)


def _find_request_pdvs(context: AcceptedContext, message_id: int) -> list[Pdv]:
    primitive = C_FIND()
    primitive.MessageID = message_id
    primitive.AffectedSOPClassUID = STUDY_ROOT_FIND
    primitive.Priority = 2
    primitive.Identifier = encode_identifier(study_query({"PatientID": "P1"}), context)
    message = C_FIND_RQ()
    message.primitive_to_message(primitive)
    return message_pdvs(message, context.context_id)


async def test_responder_answers_every_request_packed_into_one_pdu() -> None:
    """Two C-ECHO-RQs and a C-FIND-RQ in one P-DATA-TF, the C-FIND cut into 5-byte PDVs."""
    address = loopback_address()
    responder = DicomResponder(AE, find=lambda identifier: [study(1), study(2)])
    await responder.start(address, 0)
    assert responder.bound_port is not None
    reader, writer = await asyncio.open_connection(address, responder.bound_port)
    received: list[int] = []
    try:
        syntaxes = (VERIFICATION, STUDY_ROOT_FIND)
        writer.write(
            association_request(called_ae=AE, calling_ae="PACSTUI", abstract_syntaxes=syntaxes)
        )
        _, raw = await read_pdu(reader, max_length=1 << 16)
        contexts = {c.context_id: c for c in acceptance(raw, syntaxes)[0]}
        requests = [
            *_echo_request_pdvs(1, 7),
            *_echo_request_pdvs(1, 9),
            *fragment(_find_request_pdvs(contexts[3], 8), 5),
        ]
        writer.write(p_data_tf(requests))
        await writer.drain()
        answers = []
        async with asyncio.timeout(5):
            for _ in range(5):
                message = await read_message(reader, received)
                answers.append(
                    (message.command_set.MessageIDBeingRespondedTo, message.command_set.Status)
                )
            writer.write(RELEASE_RQ)
            pdu_type, _ = await read_pdu(reader, max_length=16)
    finally:
        writer.close()
        await responder.stop()
    assert answers == [(7, 0x0000), (9, 0x0000), (8, 0xFF00), (8, 0xFF00), (8, 0x0000)]
    assert pdu_type == 0x06  # and the association still releases normally
