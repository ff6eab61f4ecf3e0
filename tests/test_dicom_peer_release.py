"""Release as real peers do it: late, never, or crossing ours (PS3.8 §7.2, §9.2 Sta7-Sta12).

The echo's latency ends at the C-ECHO response; the release has its own short
deadline and only ever adds a note to the detail.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dicom_scripted_peer import (
    RELEASE_RP,
    RELEASE_RQ,
    Conversation,
    ScriptedScp,
    echo_response,
    find_response,
    pack,
    scripted_scp,
    study,
)
from pacs_tui.dicom import c_echo, c_find_studies
from pacs_tui.dicom.association import VERIFICATION

AE = "RELEASE"


def _answer_then_release(delay_s: float | None):  # type: ignore[no-untyped-def]
    """Answer C-ECHO or C-FIND at once; confirm the release after ``delay_s`` (None: never)."""

    async def script(conversation: Conversation) -> None:
        request = await conversation.request()
        message_id = request.command_set.MessageID
        if conversation.contexts[request.context_id].abstract_syntax == VERIFICATION:
            await conversation.send(pack(echo_response(request.context_id, message_id), 9))
        else:
            context = conversation.find_context
            pdvs = find_response(context, message_id, 0xFF00, study(1))
            await conversation.send(pack(pdvs + find_response(context, message_id, 0), 9))
        if delay_s is None:
            await conversation.pdu()  # the A-RELEASE-RQ, never answered
            await conversation.pdu()  # what the requestor does when it gives up
            return
        await conversation.release(delay_s)

    return script


@pytest.mark.parametrize("delay_s", [3.0, None], ids=["release-3s-late", "release-never"])
async def test_echo_latency_ends_at_the_response_and_the_release_is_bounded_apart(
    delay_s: float | None,
) -> None:
    async with scripted_scp(_answer_then_release(delay_s)) as peer:
        started = time.perf_counter()
        outcome = await c_echo(peer.address, peer.port, called_ae=AE, timeout=5)
        wall = time.perf_counter() - started
    assert outcome.state == "ok"
    assert outcome.latency_ms < 250  # the answer's time, not the release's
    assert outcome.detail == "echo ok (release not confirmed within 1 s)"
    assert 0.9 < wall < 2.0
    if delay_s is None:
        assert peer.conversations[0].received[-1] == 0x07  # we abort at the release deadline


async def test_find_latency_ends_at_the_final_response() -> None:
    async with scripted_scp(_answer_then_release(None)) as peer:
        outcome = await c_find_studies(
            peer.address, peer.port, called_ae=AE, query={}, release_timeout=0.3
        )
    assert (outcome.state, outcome.count, outcome.complete) == ("ok", 1, True)
    assert outcome.latency_ms < 250
    assert outcome.detail == "1 study (release not confirmed within 0.3 s)"


async def test_a_prompt_release_adds_no_note() -> None:
    async with scripted_scp(_answer_then_release(0.0)) as peer:
        outcome = await c_echo(peer.address, peer.port, called_ae=AE)
    assert (outcome.state, outcome.detail) == ("ok", "echo ok")
    assert peer.conversations[0].received[-1] == 0x05


async def _colliding(conversation: Conversation) -> None:
    """An acceptor that releases right after its answer: its A-RELEASE-RQ crosses ours.

    As the acceptor in a collision it waits for our A-RELEASE-RP before
    sending its own (Sta10 -> Sta12, AR-10, AR-4).
    """
    request = await conversation.request()
    message_id = request.command_set.MessageID
    await conversation.send(pack(echo_response(request.context_id, message_id), 9), RELEASE_RQ)
    pdu_type, _ = await conversation.pdu()
    assert pdu_type == 0x05, "the requestor's own A-RELEASE-RQ"
    pdu_type, _ = await conversation.pdu()
    assert pdu_type == 0x06, "the requestor answers the collision with A-RELEASE-RP first"
    await conversation.send(RELEASE_RP)


async def test_release_collision_is_resolved_as_the_requestor() -> None:
    async with scripted_scp(_colliding) as peer:
        started = time.perf_counter()
        outcome = await c_echo(peer.address, peer.port, called_ae=AE, timeout=5)
        wall = time.perf_counter() - started
    assert not peer.failures, peer.failures
    assert (outcome.state, outcome.detail) == ("ok", "echo ok")
    assert wall < 0.5
    assert peer.conversations[0].received == [0x04, 0x05, 0x06]


async def _run_status(inventory: Path) -> tuple[float, list[dict[str, object]]]:
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pacs_tui", "status", "-i", str(inventory),
        "--probe", "dicom", "--json",
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    wall = time.perf_counter() - started
    assert process.returncode in (0, 1), err.decode()
    views: list[dict[str, object]] = json.loads(out)
    return wall, views


def _inventory(tmp_path: Path, peer: ScriptedScp) -> Path:
    path = tmp_path / "inventory.yaml"
    path.write_text(
        "sites: [{name: dc, kind: datacenter}]\n"
        "servers:\n"
        "  - name: arch-1\n"
        "    site: dc\n"
        "    role: archive\n"
        f"    dicom: {{host: {peer.address}, port: {peer.port}, ae_title: ARCH1}}\n"
    )
    return path


async def test_status_of_an_archive_that_never_confirms_a_release(tmp_path: Path) -> None:
    """One echo and one C-FIND, each with an unanswered release: OK, fast, and said so."""
    async with scripted_scp(_answer_then_release(None), linger_s=0.1) as peer:
        wall, views = await _run_status(_inventory(tmp_path, peer))
    dicom = views[0]["dicom"]
    assert isinstance(dicom, dict)
    assert (dicom["state"], dicom["health"]) == ("ok", "ok"), dicom
    assert dicom["latency_ms"] < 250
    assert "release not confirmed within 1 s" in dicom["detail"]
    assert "slow" not in dicom["detail"]
    assert wall < 6.0  # ~2 s of release deadlines plus start-up; 10 s before
