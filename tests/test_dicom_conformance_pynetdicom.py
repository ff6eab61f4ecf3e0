"""Our client against small pynetdicom SCPs that behave like slow real archives.

pynetdicom's AE runs in its own threads on loopback: one SCP confirms a
release 3 s late, one streams C-FIND matches slowly, one stalls mid-stream.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.pdu import A_RELEASE_RQ
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind, Verification

from dicom_peers import loopback_address
from dicom_scripted_peer import study
from pacs_tui.dicom import c_echo, c_find_studies

AET = "PYNETSCP"


@contextmanager
def pynetdicom_scp(handlers: list[tuple[Any, Callable[..., Any]]]) -> Iterator[tuple[str, int]]:
    """A pynetdicom SCP (Verification, Study Root FIND) with ``handlers``, on loopback."""
    ae = AE(ae_title=AET)
    ae.add_supported_context(Verification)
    ae.add_supported_context(StudyRootQueryRetrieveInformationModelFind)
    ae.network_timeout = 10
    ae.acse_timeout = 10
    address = loopback_address()
    server = ae.start_server((address, 0), block=False, evt_handlers=handlers)
    try:
        yield address, int(server.server_address[1])
    finally:
        server.shutdown()


def _slow_release(event: evt.Event) -> None:
    # Runs in pynetdicom's DUL thread before the PDU is acted upon: the RP waits 3 s.
    if isinstance(event.pdu, A_RELEASE_RQ):
        time.sleep(3)


async def test_a_release_confirmed_3_s_late_does_not_slow_the_echo() -> None:
    with pynetdicom_scp([(evt.EVT_PDU_RECV, _slow_release)]) as (address, port):
        started = time.perf_counter()
        outcome = await c_echo(address, port, called_ae=AET, timeout=5)
        wall = time.perf_counter() - started
    assert outcome.state == "ok"
    assert outcome.latency_ms < 250
    assert outcome.detail == "echo ok (release not confirmed within 1 s)"
    assert wall < 1.8


def _streaming(total: int, pause_every: int, pause_s: float) -> Callable[[evt.Event], Any]:
    def handle(event: evt.Event) -> Iterator[tuple[int, Dataset | None]]:
        for n in range(total):
            if n and n % pause_every == 0:
                time.sleep(pause_s)
            yield 0xFF00, study(n)
        yield 0x0000, None

    return handle


async def test_a_find_streamed_slowly_for_3_s_completes() -> None:
    handler = _streaming(600, pause_every=20, pause_s=0.1)
    with pynetdicom_scp([(evt.EVT_C_FIND, handler)]) as (address, port):
        outcome = await c_find_studies(address, port, called_ae=AET, query={}, limit=0)
    assert (outcome.state, outcome.count, outcome.complete) == ("ok", 600, True), outcome
    assert outcome.latency_ms > 2800
    assert outcome.detail == "600 studies"


async def test_a_find_that_stalls_mid_stream_hits_the_idle_deadline() -> None:
    released = threading.Event()

    def handle(event: evt.Event) -> Iterator[tuple[int, Dataset | None]]:
        for n in range(10):
            yield 0xFF00, study(n)
        released.wait(5)  # stalls until the test is over
        yield 0x0000, None

    with pynetdicom_scp([(evt.EVT_C_FIND, handle)]) as (address, port):
        try:
            outcome = await c_find_studies(
                address, port, called_ae=AET, query={}, idle_timeout=0.5, limit=0
            )
        finally:
            released.set()
    assert (outcome.state, outcome.count, outcome.complete) == ("timeout", 10, False)
    assert outcome.detail == (
        "C-FIND incomplete after 10 matches: no response for 0.5 s (idle deadline)"
    )


async def test_a_prompt_pynetdicom_release_leaves_no_note() -> None:
    with pynetdicom_scp([]) as (address, port):
        outcomes = [await c_echo(address, port, called_ae=AET) for _ in range(5)]
    assert {(o.state, o.detail) for o in outcomes} == {("ok", "echo ok")}
