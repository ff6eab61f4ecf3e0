"""An asyncio DICOM SCP: Verification, Study Root C-FIND, and optionally C-MOVE and C-STORE.

One task per connection, no threads. The responder checks the called and
calling AE titles the way Orthanc does with ``DicomCheckCalledAet`` and a
modality list, then asks its owner's admission policy (the simulator maps
planted faults to rejections, aborts and degraded C-FINDs). A malformed or
oversized PDU, an unexpected PDU or an idle peer gets an A-ABORT and the
connection is closed; nothing a peer sends can stop the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import ssl
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from io import BytesIO
from typing import Protocol

from pydicom.dataset import Dataset
from pynetdicom.dimse_messages import (
    C_CANCEL_RQ,
    C_ECHO_RQ,
    C_ECHO_RSP,
    C_FIND_RQ,
    C_FIND_RSP,
    C_MOVE_RQ,
    C_MOVE_RSP,
    C_STORE_RQ,
    C_STORE_RSP,
    DIMSEMessage,
)
from pynetdicom.dimse_primitives import C_ECHO, C_FIND, C_MOVE, C_STORE
from pynetdicom.pdu import A_RELEASE_RQ

from pacs_tui.dicom.association import (
    CALLED_AE_NOT_RECOGNIZED,
    CALLING_AE_NOT_RECOGNIZED,
    DEFAULT_MAX_PDU,
    MAX_ASSOCIATE_PDU,
    PATIENT_ROOT_FIND,
    STUDY_ROOT_FIND,
    VERIFICATION,
    AcceptedContext,
    Association,
    AssociationRequest,
    PeerAborted,
    Rejection,
    close_quietly,
    decode_identifier,
    encode_command,
    encode_data_set,
    encode_identifier,
    encode_message,
    negotiate_raw,
)
from pacs_tui.dicom.pdu_stream import (
    ABORT_UNEXPECTED_PDU,
    PduError,
    PeerClosed,
    abort_pdu,
    read_pdu,
    release_rp_pdu,
    write_pdus,
)

log = logging.getLogger(__name__)

STATUS_SUCCESS = 0x0000
STATUS_PENDING = 0xFF00
STATUS_UNABLE_TO_PROCESS = 0xC001
STATUS_IDENTIFIER_MISMATCH = 0xA900
STATUS_SOP_CLASS_NOT_SUPPORTED = 0x0122

FIND_MODELS = (STUDY_ROOT_FIND, PATIENT_ROOT_FIND)
STUDY_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
STATUS_MOVE_DESTINATION_UNKNOWN = 0xA801
STATUS_STORE_CANNOT_UNDERSTAND = 0xC000


@dataclass(frozen=True)
class Admission:
    """The owner's decision about one association request.

    ``reject``: answer A-ASSOCIATE-RJ with these fields. ``abort_after_accept``:
    accept, then A-ABORT at once. ``find_failure``: every C-FIND on this
    association fails with status 0xC001 and this text as ErrorComment.
    """

    reject: Rejection | None = None
    abort_after_accept: bool = False
    find_failure: str | None = None


ADMIT = Admission()

AdmissionPolicy = Callable[[AssociationRequest], Admission]


class EncodedAnswer(Protocol):
    """A C-FIND answer that encodes itself (faster than a pydicom ``Dataset`` in bulk)."""

    def encode_for(self, implicit_vr: bool) -> bytes:
        """The identifier's bytes in Little Endian, Implicit or Explicit VR."""
        ...


# Receives the query identifier, returns the matching identifiers (lazily).
FindHandler = Callable[[Dataset], Iterable[Dataset | EncodedAnswer]]


@dataclass(frozen=True)
class MoveResult:
    """What a ``MoveHandler`` did: instances stored, instances failed, the final status
    (0x0000, 0xB000 with failures, 0xA801 for an unknown destination, ...) and a comment."""

    completed: int = 0
    failed: int = 0
    status: int = STATUS_SUCCESS
    comment: str | None = None


# (identifier, move destination AE, calling AE) -> what was sent (PS3.4 C.4.2).
MoveHandler = Callable[[Dataset, str, str], Awaitable[MoveResult]]
# (received dataset, calling AE) -> C-STORE status (0x0000 stored) (PS3.4 B.2).
StoreHandler = Callable[[Dataset, str], int]


class FindFailure(Exception):
    """Raised by a ``FindHandler`` to answer a C-FIND with a failure status."""

    def __init__(self, comment: str, status: int = STATUS_UNABLE_TO_PROCESS) -> None:
        super().__init__(comment)
        self.comment = comment
        self.status = status


class DicomResponder:
    """A DICOM SCP on one address and port.

    ``find_latency_s`` is public and mutable: each C-FIND waits that long
    before answering (it models the archive's storage speed).
    """

    def __init__(
        self,
        ae_title: str,
        *,
        find: FindHandler | None = None,
        admit: AdmissionPolicy | None = None,
        allowed_calling_aes: frozenset[str] | None = None,
        find_latency_s: float = 0.0,
        idle_timeout_s: float = 30.0,
        max_pdu: int = DEFAULT_MAX_PDU,
        move: MoveHandler | None = None,
        store: StoreHandler | None = None,
        store_sop_classes: tuple[str, ...] = (),
    ) -> None:
        self.ae_title = ae_title
        self.find = find
        self.move = move
        self.store = store
        self.store_sop_classes = store_sop_classes
        self.admit = admit
        self.allowed_calling_aes = allowed_calling_aes
        self.find_latency_s = find_latency_s
        self.idle_timeout_s = idle_timeout_s
        self.max_pdu = max_pdu
        self.associations_accepted = 0  # a counter tests and the sim's stats can read
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()

    @property
    def serving(self) -> bool:
        """True while the listening socket is open."""
        return self._server is not None

    @property
    def bound_port(self) -> int | None:
        """The port actually bound (useful after ``start(port=0)``)."""
        if self._server is None or not self._server.sockets:
            return None
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def supported_abstract_syntaxes(self) -> tuple[str, ...]:
        """Verification always; the Q/R FIND models with a find handler, Study Root MOVE
        with a move handler, the storage classes with a store handler."""
        syntaxes = [VERIFICATION]
        if self.find is not None:
            syntaxes.extend(FIND_MODELS)
        if self.move is not None:
            syntaxes.append(STUDY_ROOT_MOVE)
        if self.store is not None:
            syntaxes.extend(self.store_sop_classes)
        return tuple(syntaxes)

    async def start(self, host: str, port: int, *, tls: ssl.SSLContext | None = None) -> None:
        """Listen on ``host:port``; does nothing when already listening.

        With ``tls`` every connection starts with a TLS handshake (PS3.15
        Annex B.1); one that fails or stalls past ``idle_timeout_s`` is dropped.
        """
        async with self._lock:
            if self._server is not None:
                return
            self._server = await asyncio.start_server(
                self._serve,
                host,
                port,
                reuse_address=True,
                backlog=512,
                ssl=tls,
                ssl_handshake_timeout=self.idle_timeout_s if tls is not None else None,
            )

    async def stop(self) -> None:
        """Close the listening socket and drop every open association."""
        async with self._lock:
            server, self._server = self._server, None
            if server is None:
                return
            server.close()
            tasks = list(self._connections)
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            with contextlib.suppress(asyncio.TimeoutError):
                async with asyncio.timeout(2.0):
                    await server.wait_closed()

    # -- one connection -----------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        try:
            await self._converse(reader, writer)
        except (PeerClosed, PeerAborted, ConnectionError):
            pass  # the peer went away; nothing to tell it
        except PduError as exc:
            log.debug("aborting association: %s", exc)
            await _abort(writer, 2, exc.abort_reason)
        except TimeoutError:
            log.debug("aborting idle association")
            await _abort(writer, 2, 0)
        except asyncio.CancelledError:
            pass  # stop(): the server is going down, the connection just drops
        except Exception:
            log.exception("DICOM responder %s failed on a connection", self.ae_title)
            await _abort(writer, 2, 0)
        finally:
            # A second cancellation (stop() during loop shutdown) must not escape:
            # asyncio logs a cancelled connection task as an error.
            with contextlib.suppress(asyncio.CancelledError):
                await close_quietly(writer)
            if task is not None:
                self._connections.discard(task)

    async def _converse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async with asyncio.timeout(self.idle_timeout_s):
            pdu_type, raw = await read_pdu(reader, max_length=MAX_ASSOCIATE_PDU)
        if pdu_type != 0x01:
            raise PduError(
                f"expected A-ASSOCIATE-RQ, got PDU type 0x{pdu_type:02X}", ABORT_UNEXPECTED_PDU
            )
        negotiated = negotiate_raw(raw, self.supported_abstract_syntaxes, self.max_pdu)
        peer = writer.get_extra_info("peername") or ("?", 0)
        request = negotiated.request(f"{peer[0]}:{peer[1]}")
        rejection = negotiated.fault or self._check_titles(request)
        admission = ADMIT
        if rejection is None and self.admit is not None:
            admission = self.admit(request)
            rejection = admission.reject
        if rejection is not None:
            await write_pdus(writer, rejection.encode())
            await _await_peer_close(reader)
            return

        await write_pdus(writer, negotiated.accept_pdu)
        self.associations_accepted += 1
        association = Association(
            reader,
            writer,
            {c.context_id: c for c in negotiated.contexts},
            peer_max_pdu=negotiated.peer_max_pdu,
            max_pdu=self.max_pdu,
        )
        if admission.abort_after_accept:
            await association.abort(0, 0)
            return

        while True:
            async with asyncio.timeout(self.idle_timeout_s):
                message = await association.receive()
            if isinstance(message, A_RELEASE_RQ):
                await write_pdus(writer, release_rp_pdu())
                await _await_peer_close(reader)
                return
            if isinstance(message, C_ECHO_RQ):
                await self._echo(association, message)
            elif isinstance(message, C_FIND_RQ):
                await self._find(association, message, admission)
            elif isinstance(message, C_MOVE_RQ):
                await self._move(association, message, request.calling_ae)
            elif isinstance(message, C_STORE_RQ):
                await self._store(association, message, request.calling_ae)
            elif isinstance(message, C_CANCEL_RQ):
                pass  # C-FINDs are answered in one go; nothing left to cancel
            else:
                raise PduError(f"unsupported {type(message).__name__}", ABORT_UNEXPECTED_PDU)

    def _check_titles(self, request: AssociationRequest) -> Rejection | None:
        if request.called_ae != self.ae_title:
            return CALLED_AE_NOT_RECOGNIZED
        allowed = self.allowed_calling_aes
        if allowed is not None and request.calling_ae not in allowed:
            return CALLING_AE_NOT_RECOGNIZED
        return None

    async def _echo(self, association: Association, request: C_ECHO_RQ) -> None:
        response = _echo_response(
            int(request.command_set.MessageID), _context_id(request), association.peer_max_pdu
        )
        await association.send_encoded(response)

    async def _find(
        self, association: Association, request: C_FIND_RQ, admission: Admission
    ) -> None:
        context = association.contexts[_context_id(request)]
        message_id = request.command_set.MessageID
        if context.abstract_syntax not in FIND_MODELS or self.find is None:
            await _send_find_status(
                association,
                context,
                message_id,
                STATUS_SOP_CLASS_NOT_SUPPORTED,
                "not a C-FIND model",
            )
            return
        if self.find_latency_s > 0:
            await asyncio.sleep(self.find_latency_s)
        if admission.find_failure is not None:
            await _send_find_status(
                association, context, message_id, STATUS_UNABLE_TO_PROCESS, admission.find_failure
            )
            return
        try:
            identifier = decode_identifier(request.data_set or BytesIO(), context)
            pending: bytes | None = None
            for match in self.find(identifier):
                if pending is None:  # the same command set precedes every match
                    pending = _pending_command(context, message_id, association.peer_max_pdu)
                if isinstance(match, Dataset):
                    data = encode_identifier(match, context).getvalue()
                else:
                    data = match.encode_for(context.implicit_vr)
                await association.send_encoded(
                    pending + encode_data_set(data, context.context_id, association.peer_max_pdu)
                )
        except FindFailure as failure:
            await _send_find_status(
                association, context, message_id, failure.status, failure.comment
            )
            return
        except (PduError, OSError, asyncio.CancelledError):
            raise
        except Exception as exc:  # a broken identifier must not kill the server
            log.debug("C-FIND failed: %s", exc)
            await _send_find_status(
                association,
                context,
                message_id,
                STATUS_UNABLE_TO_PROCESS,
                f"cannot process query: {exc}",
            )
            return
        await _send_find_status(association, context, message_id, STATUS_SUCCESS, None)

    async def _move(self, association: Association, request: C_MOVE_RQ, calling_ae: str) -> None:
        context = association.contexts[_context_id(request)]
        primitive = C_MOVE()
        primitive.MessageIDBeingRespondedTo = request.command_set.MessageID
        primitive.AffectedSOPClassUID = context.abstract_syntax
        if self.move is None or context.abstract_syntax != STUDY_ROOT_MOVE:
            result = MoveResult(status=STATUS_SOP_CLASS_NOT_SUPPORTED, comment="not a move model")
        else:
            try:
                identifier = decode_identifier(request.data_set or BytesIO(), context)
                destination = str(request.command_set.MoveDestination or "").strip()
                result = await self.move(identifier, destination, calling_ae)
            except (PduError, OSError, asyncio.CancelledError):
                raise
            except Exception as exc:  # a broken identifier must not kill the server
                result = MoveResult(status=STATUS_UNABLE_TO_PROCESS, comment=str(exc))
        primitive.Status = result.status
        primitive.NumberOfCompletedSuboperations = result.completed
        primitive.NumberOfFailedSuboperations = result.failed
        primitive.NumberOfWarningSuboperations = 0
        if result.comment:
            primitive.ErrorComment = result.comment[:64]  # type: ignore[assignment]
        response = C_MOVE_RSP()
        response.primitive_to_message(primitive)
        await association.send(response, context.context_id)

    async def _store(self, association: Association, request: C_STORE_RQ, calling_ae: str) -> None:
        context = association.contexts[_context_id(request)]
        primitive = C_STORE()
        primitive.MessageIDBeingRespondedTo = request.command_set.MessageID
        primitive.AffectedSOPClassUID = request.command_set.AffectedSOPClassUID
        primitive.AffectedSOPInstanceUID = request.command_set.AffectedSOPInstanceUID
        try:
            dataset = decode_identifier(request.data_set or BytesIO(), context)
            status = self.store(dataset, calling_ae) if self.store is not None else 0x0122
        except Exception as exc:  # an undecodable instance is refused, the server goes on
            log.debug("C-STORE refused: %s", exc)
            status = STATUS_STORE_CANNOT_UNDERSTAND
        primitive.Status = status
        response = C_STORE_RSP()
        response.primitive_to_message(primitive)
        await association.send(response, context.context_id)


def _context_id(message: DIMSEMessage) -> int:
    context_id = message.context_id
    if context_id is None:  # decode_msg always sets it; guard for the type checker
        raise PduError("DIMSE message without presentation context")
    return int(context_id)


@functools.lru_cache(maxsize=1024)
def _echo_response(message_id: int, context_id: int, peer_max_pdu: int) -> bytes:
    # Memoised: requestors number their messages from 1, so a handful of
    # encodings serve every echo of a sweep.
    primitive = C_ECHO()
    primitive.MessageIDBeingRespondedTo = message_id
    primitive.AffectedSOPClassUID = VERIFICATION
    primitive.Status = STATUS_SUCCESS
    response = C_ECHO_RSP()
    response.primitive_to_message(primitive)
    return encode_message(response, context_id, peer_max_pdu)


def _pending_command(context: AcceptedContext, message_id: int, peer_max_pdu: int) -> bytes:
    primitive = C_FIND()
    primitive.MessageIDBeingRespondedTo = message_id
    primitive.AffectedSOPClassUID = context.abstract_syntax
    primitive.Status = STATUS_PENDING
    primitive.Identifier = BytesIO(b"\0")  # marks the command "data set follows"
    response = C_FIND_RSP()
    response.primitive_to_message(primitive)
    return encode_command(response, context.context_id, peer_max_pdu)


async def _send_find_status(
    association: Association,
    context: AcceptedContext,
    message_id: int,
    status: int,
    comment: str | None,
    identifier: Dataset | None = None,
) -> None:
    primitive = C_FIND()
    primitive.MessageIDBeingRespondedTo = message_id
    primitive.AffectedSOPClassUID = context.abstract_syntax
    primitive.Status = status
    if comment is not None:
        primitive.ErrorComment = comment[:64]  # type: ignore[assignment]  # LO: 64 chars max
    if identifier is not None:
        primitive.Identifier = encode_identifier(identifier, context)
    response = C_FIND_RSP()
    response.primitive_to_message(primitive)
    await association.send(response, context.context_id)


async def _abort(writer: asyncio.StreamWriter, source: int, reason: int) -> None:
    with contextlib.suppress(OSError, RuntimeError):
        writer.write(abort_pdu(source, reason))


async def _await_peer_close(reader: asyncio.StreamReader, timeout_s: float = 1.0) -> None:
    # The requestor closes the transport after a release or a rejection; closing
    # second leaves TIME_WAIT on its side and never cuts our last PDU short.
    with contextlib.suppress(OSError, TimeoutError):
        async with asyncio.timeout(timeout_s):
            await reader.read(1)
