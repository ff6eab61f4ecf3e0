"""A hand-built DICOM SCP on loopback that speaks raw PDUs, scripted per test.

Real archives pack and split DIMSE messages in ways pynetdicom never does
(several PDVs in one P-DATA-TF, a message cut across PDUs), send their own
A-RELEASE-RQ, or answer a release late or never. This peer does exactly what
a test scripts, byte for byte, so each behaviour is reproducible on loopback.
It decodes what it receives PDV by PDV with pynetdicom, never with the code
under test.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from io import BytesIO

from pydicom.dataset import Dataset
from pynetdicom.dimse_messages import C_ECHO_RSP, C_FIND_RSP, DIMSEMessage
from pynetdicom.dimse_primitives import C_ECHO, C_FIND
from pynetdicom.dsutils import encode
from pynetdicom.pdu_primitives import P_DATA

from dicom_peers import loopback_address
from pacs_tui.dicom.association import (
    STUDY_ROOT_FIND,
    VERIFICATION,
    AcceptedContext,
    negotiate_raw,
)
from pacs_tui.dicom.pdu_stream import PeerClosed, read_pdu

RELEASE_RQ = b"\x05\x00\x00\x00\x00\x04\x00\x00\x00\x00"
RELEASE_RP = b"\x06\x00\x00\x00\x00\x04\x00\x00\x00\x00"


@dataclass(frozen=True)
class Pdv:
    """One presentation data value: context id, control header (PS3.8 E.2), fragment."""

    context_id: int
    control: int  # bit 0: command, bit 1: last fragment
    fragment: bytes


def message_pdvs(message: DIMSEMessage, context_id: int) -> list[Pdv]:
    """A DIMSE message as one command PDV and (if any) one data-set PDV."""
    pdvs = []
    for primitive in message.encode_msg(context_id, 2**31):
        for cid, value in primitive.presentation_data_value_list:
            pdvs.append(Pdv(cid, value[0], value[1:]))
    return pdvs


def fragment(pdvs: Iterable[Pdv], size: int) -> list[Pdv]:
    """Cut every PDV into fragments of at most ``size`` bytes; only the last keeps 'last'."""
    out = []
    for pdv in pdvs:
        pieces = [pdv.fragment[i : i + size] for i in range(0, len(pdv.fragment), size)] or [b""]
        for n, piece in enumerate(pieces):
            last = n == len(pieces) - 1
            control = pdv.control if last else pdv.control & ~0x02
            out.append(Pdv(pdv.context_id, control, piece))
    return out


def p_data_tf(pdvs: Sequence[Pdv]) -> bytes:
    """One P-DATA-TF PDU holding every PDV in ``pdvs`` (PS3.8 §9.3.5)."""
    items = b"".join(
        struct.pack(">IB", len(p.fragment) + 2, p.context_id) + bytes([p.control]) + p.fragment
        for p in pdvs
    )
    return b"\x04\x00" + struct.pack(">I", len(items)) + items


def pack(pdvs: Sequence[Pdv], per_pdu: int) -> bytes:
    """``pdvs`` as P-DATA-TF PDUs of ``per_pdu`` PDVs each, regardless of message borders."""
    return b"".join(p_data_tf(pdvs[i : i + per_pdu]) for i in range(0, len(pdvs), per_pdu))


def echo_response(context_id: int, message_id: int, status: int = 0) -> list[Pdv]:
    """The PDVs of a C-ECHO-RSP."""
    primitive = C_ECHO()
    primitive.MessageIDBeingRespondedTo = message_id
    primitive.AffectedSOPClassUID = VERIFICATION
    primitive.Status = status
    response = C_ECHO_RSP()
    response.primitive_to_message(primitive)
    return message_pdvs(response, context_id)


def find_response(
    context: AcceptedContext, message_id: int, status: int, identifier: Dataset | None = None
) -> list[Pdv]:
    """The PDVs of a C-FIND-RSP, with the identifier encoded in the context's syntax."""
    primitive = C_FIND()
    primitive.MessageIDBeingRespondedTo = message_id
    primitive.AffectedSOPClassUID = STUDY_ROOT_FIND
    primitive.Status = status
    if identifier is not None:
        primitive.Identifier = BytesIO(encode(identifier, context.implicit_vr, True) or b"")
    response = C_FIND_RSP()
    response.primitive_to_message(primitive)
    return message_pdvs(response, context.context_id)


def study(n: int) -> Dataset:
    """A small study-level identifier, distinct for each ``n``."""
    answer = Dataset()
    answer.QueryRetrieveLevel = "STUDY"
    answer.StudyInstanceUID = f"1.2.826.0.1.3680043.8.498.77.{n}"
    answer.StudyDate = "20260105"
    answer.PatientID = f"P{n}"
    return answer


@dataclass
class Conversation:
    """One accepted association, as the script sees it."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    contexts: dict[int, AcceptedContext]
    received: list[int] = field(default_factory=list)  # PDU types, in order

    @property
    def find_context(self) -> AcceptedContext:
        return next(c for c in self.contexts.values() if c.abstract_syntax == STUDY_ROOT_FIND)

    async def pdu(self) -> tuple[int, bytes]:
        """The next raw PDU from the requestor."""
        pdu_type, raw = await read_pdu(self.reader, max_length=1 << 20)
        self.received.append(pdu_type)
        return pdu_type, raw

    async def request(self) -> DIMSEMessage:
        """The next whole DIMSE request, decoded one PDV at a time."""
        return await read_message(self.reader, self.received)

    async def send(self, *chunks: bytes) -> None:
        self.writer.write(b"".join(chunks))
        await self.writer.drain()

    async def release(self, delay_s: float = 0.0) -> None:
        """Wait for the requestor's A-RELEASE-RQ and answer it (after ``delay_s``)."""
        pdu_type, _ = await self.pdu()
        assert pdu_type == 0x05, f"expected A-RELEASE-RQ, got 0x{pdu_type:02X}"
        await asyncio.sleep(delay_s)
        await self.send(RELEASE_RP)


async def read_message(reader: asyncio.StreamReader, received: list[int]) -> DIMSEMessage:
    """The next whole DIMSE message on ``reader``, decoded one PDV at a time.

    Appends the type of every PDU read to ``received``; a PDU other than
    P-DATA-TF is an ``AssertionError``.
    """
    message = DIMSEMessage()
    while True:
        pdu_type, raw = await read_pdu(reader, max_length=1 << 20)
        received.append(pdu_type)
        if pdu_type != 0x04:
            raise AssertionError(f"expected P-DATA-TF, got PDU type 0x{pdu_type:02X}")
        offset = 6
        while offset < len(raw):
            (length,) = struct.unpack_from(">I", raw, offset)
            primitive = P_DATA()
            primitive.presentation_data_value_list.append(
                (raw[offset + 4], raw[offset + 5 : offset + 4 + length])
            )
            offset += 4 + length
            if message.decode_msg(primitive):
                if offset < len(raw):
                    raise AssertionError("the peer test reads one message per PDU tail only")
                return message


Script = Callable[[Conversation], Awaitable[None]]


@dataclass
class ScriptedScp:
    """Where the scripted peer listens and what each association did."""

    address: str
    port: int
    conversations: list[Conversation] = field(default_factory=list)
    failures: list[BaseException] = field(default_factory=list)


@asynccontextmanager
async def scripted_scp(script: Script, *, linger_s: float = 1.0) -> AsyncIterator[ScriptedScp]:
    """Listen on a random loopback address; accept every association, then run ``script``.

    On exit, scripts still running get ``linger_s`` seconds to see what the
    requestor did last (an A-ABORT, a close) before they are cancelled.

    The association is accepted for Verification and Study Root FIND with the
    first transfer syntax offered. Exceptions in the script (other than the
    requestor going away) are kept in ``failures`` for the test to check.
    """
    address = loopback_address()
    peer = ScriptedScp(address, 0)
    tasks: set[asyncio.Task[None]] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            _, raw = await read_pdu(reader, max_length=1 << 16)
            negotiated = negotiate_raw(raw, (VERIFICATION, STUDY_ROOT_FIND), 16384)
            writer.write(negotiated.accept_pdu)
            conversation = Conversation(
                reader, writer, {c.context_id: c for c in negotiated.contexts}
            )
            peer.conversations.append(conversation)
            await script(conversation)
            with contextlib.suppress(OSError, asyncio.TimeoutError):
                async with asyncio.timeout(2):
                    await reader.read()  # the requestor closes first
        except (PeerClosed, ConnectionError, asyncio.CancelledError):
            pass
        except Exception as exc:  # reported to the test, not swallowed
            peer.failures.append(exc)
        finally:
            writer.close()
            tasks.discard(task)

    server = await asyncio.start_server(serve, address, 0)
    peer.port = int(server.sockets[0].getsockname()[1])
    try:
        yield peer
    finally:
        server.close()
        if tasks:
            await asyncio.wait(list(tasks), timeout=linger_s)
        for task in list(tasks):
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
