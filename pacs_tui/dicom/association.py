"""Association negotiation and DIMSE messaging over one asyncio connection.

Both sides of pacs-tui's DICOM use this module: the simulator's responder
(``negotiate``) and the probe's client (``association_request`` /
``read_acceptance``). PDUs and DIMSE messages are pynetdicom's classes; only
the state machine is ours, because pynetdicom's own association costs a thread
and ~9 ms CPU, where this one costs about 1 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from io import BytesIO
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom.dimse_messages import DIMSEMessage
from pynetdicom.dsutils import decode, encode
from pynetdicom.pdu import (
    A_ABORT_RQ,
    A_ASSOCIATE_AC,
    A_ASSOCIATE_RJ,
    A_ASSOCIATE_RQ,
    A_RELEASE_RP,
    A_RELEASE_RQ,
    P_DATA_TF,
)
from pynetdicom.pdu_items import (
    AbstractSyntaxSubItem,
    ApplicationContextItem,
    ImplementationClassUIDSubItem,
    ImplementationVersionNameSubItem,
    MaximumLengthSubItem,
    PresentationContextItemAC,
    PresentationContextItemRQ,
    TransferSyntaxSubItem,
    UserInformationItem,
)
from pynetdicom.pdu_primitives import P_DATA

from pacs_tui.dicom.pdu_stream import (
    ABORT_UNEXPECTED_PDU,
    PduError,
    abort_pdu,
    decode_pdu,
    read_pdu,
    release_rp_pdu,
    release_rq_pdu,
    write_pdus,
)

APPLICATION_CONTEXT = "1.2.840.10008.3.1.1.1"
VERIFICATION = "1.2.840.10008.1.1"
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
PATIENT_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.1.1"
IMPLICIT_VR_LE = "1.2.840.10008.1.2"
EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"
# The transfer syntaxes we can encode identifiers in, in order of preference.
TRANSFER_SYNTAXES = (EXPLICIT_VR_LE, IMPLICIT_VR_LE)

# A fixed UUID-derived UID (PS3.5 B.2) naming this implementation.
IMPLEMENTATION_CLASS_UID = "2.25.125677323112639955277300501975578270838"
IMPLEMENTATION_VERSION = "PACSTUI_01"

DEFAULT_MAX_PDU = 16384
# Association requests are not bound by the max PDU; allow generous ones.
MAX_ASSOCIATE_PDU = 65536

# A-ASSOCIATE-RJ fields (PS3.8 Table 9-21).
RESULT_PERMANENT = 1
RESULT_TRANSIENT = 2
SOURCE_SERVICE_USER = 1
SOURCE_PROVIDER_ACSE = 2
SOURCE_PROVIDER_PRESENTATION = 3

_RESULT_WORDS = {RESULT_PERMANENT: "permanent", RESULT_TRANSIENT: "transient"}
_SOURCE_WORDS = {
    SOURCE_SERVICE_USER: "service-user",
    SOURCE_PROVIDER_ACSE: "service-provider ACSE",
    SOURCE_PROVIDER_PRESENTATION: "service-provider presentation",
}
_REASON_WORDS = {
    SOURCE_SERVICE_USER: {
        1: "no reason given",
        2: "application context name not supported",
        3: "calling AE title not recognized",
        7: "called AE title not recognized",
    },
    SOURCE_PROVIDER_ACSE: {1: "no reason given", 2: "protocol version not supported"},
    SOURCE_PROVIDER_PRESENTATION: {1: "temporary congestion", 2: "local limit exceeded"},
}
_ABORT_REASONS = {
    0: "no reason given",
    1: "unrecognized PDU",
    2: "unexpected PDU",
    4: "unrecognized PDU parameter",
    5: "unexpected PDU parameter",
    6: "invalid PDU parameter value",
}

# Presentation context results (PS3.8 Table 9-18).
_CONTEXT_ACCEPTED = 0
_CONTEXT_ABSTRACT_NOT_SUPPORTED = 3
_CONTEXT_TRANSFER_NOT_SUPPORTED = 4


@dataclass(frozen=True)
class Rejection:
    """The fields of an A-ASSOCIATE-RJ."""

    result: int
    source: int
    reason: int

    def describe(self) -> str:
        """Human text, e.g. ``calling AE title not recognized (permanent, service-user)``."""
        words = _REASON_WORDS.get(self.source, {}).get(self.reason, f"reason {self.reason}")
        result = _RESULT_WORDS.get(self.result, f"result {self.result}")
        source = _SOURCE_WORDS.get(self.source, f"source {self.source}")
        return f"{words} ({result}, {source})"

    def encode(self) -> bytes:
        """The encoded A-ASSOCIATE-RJ PDU."""
        pdu = A_ASSOCIATE_RJ()
        pdu.result = self.result
        pdu.source = self.source
        pdu.reason_diagnostic = self.reason
        return pdu.encode()


CALLED_AE_NOT_RECOGNIZED = Rejection(RESULT_PERMANENT, SOURCE_SERVICE_USER, 7)
CALLING_AE_NOT_RECOGNIZED = Rejection(RESULT_PERMANENT, SOURCE_SERVICE_USER, 3)
NO_REASON = Rejection(RESULT_PERMANENT, SOURCE_SERVICE_USER, 1)
LOCAL_LIMIT_EXCEEDED = Rejection(RESULT_TRANSIENT, SOURCE_PROVIDER_PRESENTATION, 2)
APPLICATION_CONTEXT_NOT_SUPPORTED = Rejection(RESULT_PERMANENT, SOURCE_SERVICE_USER, 2)
PROTOCOL_VERSION_NOT_SUPPORTED = Rejection(RESULT_PERMANENT, SOURCE_PROVIDER_ACSE, 2)


def describe_abort(source: int | None, reason: int | None) -> str:
    """Human text for an A-ABORT received from the peer."""
    if source == 2:
        return f"aborted by peer's service provider: {_ABORT_REASONS.get(reason or 0, 'reason ' + str(reason))}"
    return "aborted by peer"


@dataclass(frozen=True)
class AcceptedContext:
    """A presentation context both sides agreed on."""

    context_id: int
    abstract_syntax: str
    transfer_syntax: str

    @property
    def implicit_vr(self) -> bool:
        """True when datasets on this context are Implicit VR Little Endian."""
        return self.transfer_syntax == IMPLICIT_VR_LE


class PeerAborted(Exception):
    """The peer sent an A-ABORT."""


def _user_information(max_pdu: int) -> UserInformationItem:
    info = UserInformationItem()
    max_length = MaximumLengthSubItem()
    max_length.maximum_length_received = max_pdu
    class_uid = ImplementationClassUIDSubItem()
    class_uid.implementation_class_uid = IMPLEMENTATION_CLASS_UID
    version = ImplementationVersionNameSubItem()
    version.implementation_version_name = IMPLEMENTATION_VERSION
    info.user_data = [max_length, class_uid, version]
    return info


def _application_context() -> ApplicationContextItem:
    item = ApplicationContextItem()
    item.application_context_name = APPLICATION_CONTEXT
    return item


@functools.lru_cache(maxsize=4096)
def association_request(
    *,
    called_ae: str,
    calling_ae: str,
    abstract_syntaxes: tuple[str, ...],
    max_pdu: int = DEFAULT_MAX_PDU,
) -> bytes:
    """An encoded A-ASSOCIATE-RQ proposing each abstract syntax once (ids 1, 3, 5...).

    Memoised: a sweep sends the same request to hundreds of servers.
    """
    pdu = A_ASSOCIATE_RQ()
    pdu.called_ae_title = called_ae
    pdu.calling_ae_title = calling_ae
    items: list[Any] = [_application_context()]
    for index, abstract in enumerate(abstract_syntaxes):
        context = PresentationContextItemRQ()
        context.presentation_context_id = 2 * index + 1
        abstract_item = AbstractSyntaxSubItem()
        abstract_item.abstract_syntax_name = abstract
        subitems: list[Any] = [abstract_item]
        for syntax in TRANSFER_SYNTAXES:
            ts_item = TransferSyntaxSubItem()
            ts_item.transfer_syntax_name = syntax
            subitems.append(ts_item)
        context.abstract_transfer_syntax_sub_items = subitems
        items.append(context)
    items.append(_user_information(max_pdu))
    pdu.variable_items = items
    return bytes(pdu.encode())


def read_acceptance(
    ac: A_ASSOCIATE_AC, abstract_syntaxes: Sequence[str]
) -> tuple[dict[int, AcceptedContext], int]:
    """The accepted contexts of an A-ASSOCIATE-AC and the peer's max PDU (0 = unlimited)."""
    contexts: dict[int, AcceptedContext] = {}
    for item in ac.presentation_context:
        context_id = item.presentation_context_id
        if item.result_reason != _CONTEXT_ACCEPTED or context_id is None:
            continue
        index = (context_id - 1) // 2
        syntax = item.transfer_syntax
        if context_id % 2 == 1 and 0 <= index < len(abstract_syntaxes) and syntax:
            contexts[context_id] = AcceptedContext(
                context_id, abstract_syntaxes[index], str(syntax)
            )
    info = ac.user_information
    peer_max = info.maximum_length if info is not None else None
    return contexts, peer_max or 0


@functools.lru_cache(maxsize=4096)
def acceptance(
    raw: bytes, abstract_syntaxes: tuple[str, ...]
) -> tuple[tuple[AcceptedContext, ...], int]:
    """``read_acceptance`` of an encoded A-ASSOCIATE-AC, memoised (peers answer alike)."""
    ac = decode_pdu(0x02, raw)
    if not isinstance(ac, A_ASSOCIATE_AC):  # pragma: no cover - decode_pdu keeps the type
        raise PduError("not an A-ASSOCIATE-AC")
    contexts, peer_max = read_acceptance(ac, abstract_syntaxes)
    return tuple(contexts.values()), peer_max


@dataclass(frozen=True)
class AssociationRequest:
    """What an association requestor asked for, as the responder sees it."""

    called_ae: str
    calling_ae: str
    peer: str  # "address:port"
    abstract_syntaxes: tuple[str, ...]


def parse_request(rq: A_ASSOCIATE_RQ, peer: str) -> AssociationRequest:
    """The parts of an A-ASSOCIATE-RQ a responder decides on."""
    abstracts = tuple(str(c.abstract_syntax) for c in rq.presentation_context if c.abstract_syntax)
    return AssociationRequest(
        called_ae=rq.called_ae_title.strip(),
        calling_ae=rq.calling_ae_title.strip(),
        peer=peer,
        abstract_syntaxes=abstracts,
    )


def request_fault(rq: A_ASSOCIATE_RQ) -> Rejection | None:
    """A rejection when the request itself is unacceptable (version, context)."""
    if not rq.protocol_version & 0x01:
        return PROTOCOL_VERSION_NOT_SUPPORTED
    if str(rq.application_context_name) != APPLICATION_CONTEXT:
        return APPLICATION_CONTEXT_NOT_SUPPORTED
    return None


def negotiate(
    rq: A_ASSOCIATE_RQ,
    supported: Iterable[str],
    *,
    max_pdu: int = DEFAULT_MAX_PDU,
) -> tuple[bytes, dict[int, AcceptedContext], int]:
    """Accept what we support of ``rq``: (encoded A-ASSOCIATE-AC, contexts, peer max PDU).

    Each context gets the first of its proposed transfer syntaxes that we can
    encode (Implicit or Explicit VR Little Endian); user identity and other
    extended negotiation items are ignored, which the standard allows.
    """
    known = set(supported)
    ac = A_ASSOCIATE_AC()
    ac.reserved_aet = rq.called_ae_title
    ac.reserved_aec = rq.calling_ae_title
    items: list[Any] = [_application_context()]
    contexts: dict[int, AcceptedContext] = {}
    for proposed in rq.presentation_context:
        context_id = proposed.presentation_context_id
        abstract = str(proposed.abstract_syntax or "")
        offered = [str(ts) for ts in proposed.transfer_syntax]
        item = PresentationContextItemAC()
        item.presentation_context_id = context_id
        chosen = next((ts for ts in offered if ts in TRANSFER_SYNTAXES), None)
        if abstract not in known:
            item.result_reason = _CONTEXT_ABSTRACT_NOT_SUPPORTED
        elif chosen is None:
            item.result_reason = _CONTEXT_TRANSFER_NOT_SUPPORTED
        else:
            item.result_reason = _CONTEXT_ACCEPTED
            if context_id is not None:
                contexts[context_id] = AcceptedContext(context_id, abstract, chosen)
        ts_item = TransferSyntaxSubItem()
        ts_item.transfer_syntax_name = chosen or IMPLICIT_VR_LE
        item.transfer_syntax_sub_item = [ts_item]
        items.append(item)
    items.append(_user_information(max_pdu))
    ac.variable_items = items
    info = rq.user_information
    peer_max = info.maximum_length if info is not None else None
    return bytes(ac.encode()), contexts, peer_max or 0


@dataclass(frozen=True)
class Negotiated:
    """An A-ASSOCIATE-RQ as the responder decides on it, with the answer if accepted."""

    called_ae: str
    calling_ae: str
    abstract_syntaxes: tuple[str, ...]
    fault: Rejection | None  # the request itself is unacceptable
    accept_pdu: bytes
    contexts: tuple[AcceptedContext, ...]
    peer_max_pdu: int

    def request(self, peer: str) -> AssociationRequest:
        """The view an admission policy gets."""
        return AssociationRequest(self.called_ae, self.calling_ae, peer, self.abstract_syntaxes)


def negotiate_raw(raw: bytes, supported: tuple[str, ...], max_pdu: int) -> Negotiated:
    """Decode and negotiate an encoded A-ASSOCIATE-RQ; ``PduError`` when malformed.

    Small requests are memoised on their bytes: a fleet sweep sends the same
    request over and over, and decoding plus encoding is most of the CPU an
    association costs.
    """
    if len(raw) <= 4096:
        return _negotiate_cached(raw, supported, max_pdu)
    return _negotiate_bytes(raw, supported, max_pdu)


def _negotiate_bytes(raw: bytes, supported: tuple[str, ...], max_pdu: int) -> Negotiated:
    rq = decode_pdu(0x01, raw)
    if not isinstance(rq, A_ASSOCIATE_RQ):  # pragma: no cover - decode_pdu keeps the type
        raise PduError("not an A-ASSOCIATE-RQ")
    request = parse_request(rq, "")
    accept, contexts, peer_max = negotiate(rq, supported, max_pdu=max_pdu)
    return Negotiated(
        called_ae=request.called_ae,
        calling_ae=request.calling_ae,
        abstract_syntaxes=request.abstract_syntaxes,
        fault=request_fault(rq),
        accept_pdu=accept,
        contexts=tuple(contexts.values()),
        peer_max_pdu=peer_max,
    )


_negotiate_cached = functools.lru_cache(maxsize=4096)(_negotiate_bytes)


def encode_message(message: DIMSEMessage, context_id: int, peer_max_pdu: int) -> bytes:
    """A DIMSE message (built with ``primitive_to_message``) as P-DATA-TF PDUs."""
    return b"".join(
        P_DATA_TF(primitive).encode() for primitive in message.encode_msg(context_id, peer_max_pdu)
    )


def encode_command(message: DIMSEMessage, context_id: int, peer_max_pdu: int) -> bytes:
    """Only the command-set PDUs of ``message`` (its data set is sent separately)."""
    data_set = message.data_set
    message.data_set = None
    try:
        return encode_message(message, context_id, peer_max_pdu)
    finally:
        message.data_set = data_set


def encode_data_set(data: bytes, context_id: int, peer_max_pdu: int) -> bytes:
    """An encoded data set as P-DATA-TF PDUs, fragmented to the peer's max PDU."""
    # A PDV item adds 6 bytes (length, context id, control header) to its fragment.
    size = peer_max_pdu - 6 if peer_max_pdu > 6 else max(len(data), 1)
    pdus = []
    for start in range(0, max(len(data), 1), size):
        last = start + size >= len(data)
        primitive = P_DATA()
        header = b"\x02" if last else b"\x00"  # data set fragment, last or not (PS3.8 E.2)
        primitive.presentation_data_value_list.append(
            (context_id, header + data[start : start + size])
        )
        pdus.append(P_DATA_TF(primitive).encode())
    return b"".join(pdus)


def encode_identifier(dataset: Dataset, context: AcceptedContext) -> BytesIO:
    """``dataset`` encoded in the context's transfer syntax, as DIMSE wants it."""
    encoded = encode(dataset, context.implicit_vr, True)
    if encoded is None:
        raise ValueError("dataset cannot be encoded")
    return BytesIO(encoded)


def decode_identifier(data: BytesIO, context: AcceptedContext) -> Dataset:
    """Decode an identifier received on ``context``."""
    return decode(data, context.implicit_vr, True)


class Association:
    """An established association: DIMSE messages in, DIMSE messages out.

    Callers bound every wait with ``asyncio.timeout``; this class never
    sleeps or retries on its own.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        contexts: Mapping[int, AcceptedContext],
        *,
        peer_max_pdu: int,
        max_pdu: int = DEFAULT_MAX_PDU,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.contexts = dict(contexts)
        self.peer_max_pdu = peer_max_pdu
        # Peers count the max PDU as the body; allow the header and some slack.
        self.receive_limit = max(max_pdu, DEFAULT_MAX_PDU) + 1024
        self._partial: DIMSEMessage | None = None
        self._partial_context: int | None = None
        self._expect_data_set = False
        # One P-DATA-TF may complete several messages; the extra ones wait here.
        self._ready: deque[DIMSEMessage] = deque()

    def context_for(self, abstract_syntax: str) -> AcceptedContext | None:
        """The accepted context for ``abstract_syntax``, if any."""
        for context in self.contexts.values():
            if context.abstract_syntax == abstract_syntax:
                return context
        return None

    async def send(self, message: DIMSEMessage, context_id: int) -> None:
        """Send a DIMSE message (built with ``primitive_to_message``) on a context."""
        await write_pdus(self.writer, encode_message(message, context_id, self.peer_max_pdu))

    async def send_encoded(self, pdus: bytes) -> None:
        """Send PDUs encoded earlier (e.g. a memoised C-ECHO response)."""
        await write_pdus(self.writer, pdus)

    async def receive(self) -> DIMSEMessage | A_RELEASE_RQ | A_RELEASE_RP:
        """The next complete DIMSE message, or a release request/response.

        A P-DATA-TF may carry any number of PDVs, complete several messages
        and end inside the next one; a message's command or data set may be
        cut across any number of PDUs (PS3.8 §9.3.5, Annex E). Messages come
        back one per call, in order. Raises ``PeerAborted``, ``PeerClosed``
        or ``PduError`` (unexpected or malformed PDU, data on a context that
        was never accepted, or fragments that do not form a message).
        """
        while not self._ready:
            pdu_type, raw = await read_pdu(self.reader, max_length=self.receive_limit)
            pdu = decode_pdu(pdu_type, raw)
            if isinstance(pdu, A_ABORT_RQ):
                raise PeerAborted(describe_abort(pdu.source, pdu.reason_diagnostic))
            if isinstance(pdu, A_RELEASE_RQ | A_RELEASE_RP):
                if self._partial is not None:
                    raise PduError(
                        f"{type(pdu).__name__} in the middle of a DIMSE message",
                        ABORT_UNEXPECTED_PDU,
                    )
                return pdu
            if not isinstance(pdu, P_DATA_TF):
                raise PduError(f"unexpected {type(pdu).__name__}", ABORT_UNEXPECTED_PDU)
            for item in pdu.presentation_data_value_items:
                self._feed(item.presentation_context_id, item.presentation_data_value)
        return self._ready.popleft()

    def _feed(self, context_id: int | None, data: bytes | None) -> None:
        """Add one PDV (control header + fragment, PS3.8 E.2) to the message being built."""
        if context_id not in self.contexts or not data:
            raise PduError(f"P-DATA on unknown presentation context {context_id}")
        is_command = bool(data[0] & 0x01)
        if self._partial is None:
            self._partial, self._partial_context = DIMSEMessage(), context_id
        elif context_id != self._partial_context:
            raise PduError(
                f"PDV on context {context_id} inside a message on context {self._partial_context}"
            )
        if is_command == self._expect_data_set:
            part = "command" if is_command else "data set"
            raise PduError(f"unexpected {part} fragment (PS3.8 E.2)")
        primitive = P_DATA()
        primitive.presentation_data_value_list.append((context_id, data))
        try:
            complete = self._partial.decode_msg(primitive)
        except Exception as exc:  # pydicom/pynetdicom raise assorted errors on garbage
            raise PduError(f"malformed DIMSE message: {exc}") from exc
        if complete:
            self._ready.append(self._partial)
            self._partial, self._partial_context, self._expect_data_set = None, None, False
        elif is_command and data[0] & 0x02:
            self._expect_data_set = True  # the last command fragment announced a data set

    async def release(self) -> None:
        """Send A-RELEASE-RQ and return once the peer confirms (PS3.8 §7.2, §9.2 Sta7-Sta11).

        DIMSE messages still arriving are dropped (AR-6). A release collision
        (the peer's own A-RELEASE-RQ crosses ours) is resolved as the
        requestor must: answer A-RELEASE-RP first, then wait for the peer's
        (AR-8, AR-9). Callers bound the wait with ``asyncio.timeout``; raises
        ``PeerAborted``, ``PeerClosed``, ``PduError`` or ``OSError``.
        """
        await write_pdus(self.writer, release_rq_pdu())
        while True:
            answer = await self.receive()
            if isinstance(answer, A_RELEASE_RP):
                return
            if isinstance(answer, A_RELEASE_RQ):
                await write_pdus(self.writer, release_rp_pdu())

    async def abort(self, source: int = 0, reason: int = 0) -> None:
        """Send an A-ABORT (best effort) and close the connection."""
        with contextlib.suppress(OSError, RuntimeError):
            self.writer.write(abort_pdu(source, reason))
        await self.close()

    async def close(self) -> None:
        """Close the connection without waiting long for the peer."""
        await close_quietly(self.writer)


async def close_quietly(writer: asyncio.StreamWriter) -> None:
    """Close a stream, swallowing the errors a dead peer causes."""
    writer.close()
    with contextlib.suppress(OSError, RuntimeError, asyncio.TimeoutError):
        async with asyncio.timeout(1.0):
            await writer.wait_closed()
