"""C-FIND deadlines against archives that stream, stall or never stop (PS3.4 C.4.1.1.4).

An idle deadline bounds each wait for a response and an overall one bounds
the query; either one leaves the outcome incomplete, naming the deadline and
the matches that did arrive. Also: responses must answer our message id.
"""

from __future__ import annotations

import asyncio
import itertools

from dicom_scripted_peer import (
    Conversation,
    Pdv,
    echo_response,
    find_response,
    pack,
    scripted_scp,
    study,
)
from pacs_tui.dicom import c_echo, c_find_studies
from pacs_tui.dicom.bulk_find import find_rows

AE = "STREAM"


def _streaming(total: int | None, batch: int, pause_s: float, stall_after: int | None = None):  # type: ignore[no-untyped-def]
    """Send ``total`` matches (None: endless) in batches, pausing between batches.

    With ``stall_after``, go quiet for good after that many matches.
    """

    async def script(conversation: Conversation) -> None:
        request = await conversation.request()
        context, message_id = conversation.find_context, request.command_set.MessageID
        # One encoding serves every match: the peer's CPU must not pace the stream.
        match = find_response(context, message_id, 0xFF00, study(1))
        numbers = range(1, total + 1) if total is not None else itertools.count(1)
        pdvs: list[Pdv] = []
        for sent in numbers:
            pdvs += match
            if sent == stall_after:
                await conversation.send(pack(pdvs, 2))
                await conversation.pdu()  # silence, until the requestor gives up
                return
            if len(pdvs) >= 2 * batch:
                await conversation.send(pack(pdvs, 2))
                pdvs = []
                await asyncio.sleep(pause_s)
        pdvs += find_response(context, message_id, 0x0000)
        await conversation.send(pack(pdvs, 2))
        await conversation.release()

    return script


async def test_a_find_that_streams_2000_matches_over_7_s_completes_with_the_defaults() -> None:
    async with scripted_scp(_streaming(2000, batch=25, pause_s=0.09)) as peer:
        outcome = await c_find_studies(
            peer.address, peer.port, called_ae=AE, query={"StudyDate": "20260105"}, limit=10
        )
    assert not peer.failures
    assert (outcome.state, outcome.count, outcome.complete) == ("ok", 2000, True), outcome
    assert 6500 < outcome.latency_ms < 20000
    assert len(outcome.studies) == 10


async def test_the_overall_deadline_cuts_a_find_that_never_ends() -> None:
    async with scripted_scp(_streaming(None, batch=1, pause_s=0.05)) as peer:
        outcome = await c_find_studies(
            peer.address, peer.port, called_ae=AE, query={}, timeout=1.0, idle_timeout=0.5
        )
    assert (outcome.state, outcome.complete) == ("timeout", False)
    assert 5 < outcome.count < 25
    assert outcome.detail == (
        f"C-FIND incomplete after {outcome.count} matches: "
        "not finished within 1 s (overall deadline)"
    )
    assert 950 < outcome.latency_ms < 1500


async def test_the_idle_deadline_cuts_a_find_that_stalls() -> None:
    async with scripted_scp(_streaming(100, batch=1, pause_s=0.0, stall_after=3)) as peer:
        outcome = await c_find_studies(
            peer.address, peer.port, called_ae=AE, query={}, timeout=30, idle_timeout=0.4
        )
    assert (outcome.state, outcome.count, outcome.complete) == ("timeout", 3, False)
    assert outcome.detail == (
        "C-FIND incomplete after 3 matches: no response for 0.4 s (idle deadline)"
    )
    assert outcome.latency_ms < 2000


async def test_the_probe_budget_still_bounds_a_find_that_streams_too_long() -> None:
    async with scripted_scp(_streaming(2000, batch=25, pause_s=0.09)) as peer:
        outcome = await c_find_studies(peer.address, peer.port, called_ae=AE, query={}, timeout=2)
    assert (outcome.state, outcome.complete) == ("timeout", False)
    assert 0 < outcome.count < 2000
    assert outcome.detail.endswith("not finished within 2 s (overall deadline)")


async def test_an_echo_response_to_another_message_is_a_protocol_error() -> None:
    async def script(conversation: Conversation) -> None:
        request = await conversation.request()
        wrong = request.command_set.MessageID + 1
        await conversation.send(pack(echo_response(request.context_id, wrong), 9))
        await conversation.pdu()

    async with scripted_scp(script) as peer:
        outcome = await c_echo(peer.address, peer.port, called_ae=AE, timeout=5)
    assert outcome.state == "error"
    assert outcome.detail == (
        "protocol error during C-ECHO: C-ECHO response answers message 2, we sent message 1"
    )
    assert peer.conversations[0].received[-1] == 0x07


async def test_a_find_response_to_another_message_is_a_protocol_error() -> None:
    async def script(conversation: Conversation) -> None:
        request = await conversation.request()
        context, message_id = conversation.find_context, request.command_set.MessageID
        pdvs = find_response(context, message_id, 0xFF00, study(1))
        pdvs += find_response(context, 77, 0xFF00, study(2))
        pdvs += find_response(context, message_id, 0x0000)
        await conversation.send(pack(pdvs, 100))
        await conversation.pdu()

    async with scripted_scp(script) as peer:
        outcome = await c_find_studies(peer.address, peer.port, called_ae=AE, query={})
    assert (outcome.state, outcome.count, outcome.complete) == ("error", 1, False)
    assert outcome.detail == (
        "protocol error during C-FIND: C-FIND response answers message 77, we sent message 1"
    )


async def test_the_bulk_listing_reassembles_packed_answers_and_checks_the_message_id() -> None:
    # The replication check's own C-FIND reader holds to the same rules as the client's.
    def packed(responded_to: int | None):  # type: ignore[no-untyped-def]
        async def script(conversation: Conversation) -> None:
            request = await conversation.request()
            context, message_id = conversation.find_context, request.command_set.MessageID
            pdvs = find_response(context, message_id, 0xFF00, study(1))
            pdvs += find_response(context, responded_to or message_id, 0xFF00, study(2))
            pdvs += find_response(context, message_id, 0x0000)
            await conversation.send(pack(pdvs, 7))  # fragments cut across PDVs, one PDU
            await conversation.release() if responded_to is None else await conversation.pdu()

        return script

    async with scripted_scp(packed(None)) as peer:
        good = await find_rows(
            peer.address, peer.port, called_ae=AE, query={}, return_keys=("StudyInstanceUID",)
        )
    async with scripted_scp(packed(77)) as peer:
        bad = await find_rows(
            peer.address, peer.port, called_ae=AE, query={}, return_keys=("StudyInstanceUID",)
        )
    assert (good.state, good.count) == ("ok", 2), good.detail
    assert bad.state == "error" and "answers message 77, we sent message 1" in bad.detail
