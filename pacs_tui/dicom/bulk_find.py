"""A study-level C-FIND SCU for bulk listings: thousands of answers, little CPU.

``c_find_studies`` decodes each answer with pynetdicom and pydicom (~0.5 ms);
a replication proof reads ~2 400 answers a day per archive over years. This
SCU reads the P-DATA-TF PDUs itself (PS3.8 9.3.5), takes Status from each
response's command set and only the asked-for elements from each identifier
(``element_codec``), falling back to pydicom for an identifier it cannot
read. Same rules as the probe's client (PS3.4 C.4.1.1.4): complete only on a
final Success; a Cancel we never asked for (0xFE00, a result limit), a
failure status, a timeout or an abort is not a listing.
"""

from __future__ import annotations

import asyncio
import ssl
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from io import BytesIO

from pynetdicom.dimse_messages import C_FIND_RQ
from pynetdicom.dimse_primitives import C_FIND

from pacs_tui.dicom.association import (
    STUDY_ROOT_FIND,
    AcceptedContext,
    Association,
    PeerAborted,
    decode_identifier,
    describe_abort,
    encode_identifier,
)
from pacs_tui.dicom.client import identifier_fields, study_query
from pacs_tui.dicom.element_codec import read_elements, tag_of, text
from pacs_tui.dicom.pdu_stream import PduError, read_pdu
from pacs_tui.dicom.requestor import Requestor

_PENDING = (0xFF00, 0xFF01)
_CANCELLED = 0xFE00
_STATUS_TAG = 0x00000900
_DATA_SET_TYPE_TAG = 0x00000800
_ERROR_COMMENT_TAG = 0x00000902
_RESPONDED_TO_TAG = 0x00000120  # MessageIDBeingRespondedTo (PS3.7 §9.3.2.2)
_COMMAND_TAGS = {
    _STATUS_TAG: "Status",
    _DATA_SET_TYPE_TAG: "Type",
    _ERROR_COMMENT_TAG: "Comment",
    _RESPONDED_TO_TAG: "RespondedTo",
}
_MESSAGE_ID = 1  # the one C-FIND-RQ of the association
_NO_DATA_SET = 0x0101
_PDV = struct.Struct(">IBB")  # item length, context id, message control header


@dataclass
class Rows:
    """A bulk C-FIND's answer: ``rows`` hold the return keys' texts in the asked order.

    ``state``: ok, incomplete (0xFE00), error (a failure status or protocol
    error), rejected, aborted, refused or timeout; ``complete`` only for ok.
    """

    state: str = "ok"
    detail: str = ""
    rows: list[tuple[str, ...]] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """True only when the peer ended with Success."""
        return self.state == "ok"

    @property
    def count(self) -> int:
        """How many matches arrived."""
        return len(self.rows)


def _request(query: Mapping[str, str], context: AcceptedContext) -> C_FIND_RQ:
    primitive = C_FIND()
    primitive.MessageID = _MESSAGE_ID
    primitive.AffectedSOPClassUID = STUDY_ROOT_FIND
    primitive.Priority = 2  # low: a listing must not compete with clinical queries
    primitive.Identifier = encode_identifier(study_query(query), context)
    request = C_FIND_RQ()
    request.primitive_to_message(primitive)
    return request


class _Reader:
    """Reassembles command and data-set fragments of one association's P-DATA."""

    def __init__(self, context: AcceptedContext, keys: Sequence[str]) -> None:
        self.context = context
        self.keys = tuple(keys)
        self.wanted = {tag_of(k)[0]: k for k in keys}
        self.command = bytearray()
        self.data = bytearray()
        self.awaiting_data = False
        self.status, self.comment = 0xFF00, ""  # of the command whose data set is awaited

    def feed(self, raw: bytes) -> list[tuple[int, str, tuple[str, ...] | None]]:
        """Complete responses in one P-DATA-TF PDU: (status, comment, row or None)."""
        done: list[tuple[int, str, tuple[str, ...] | None]] = []
        offset, end = 6, len(raw)
        while offset < end:
            if offset + 6 > end:
                raise PduError("truncated PDV item")
            length, context_id, header = _PDV.unpack_from(raw, offset)
            value = raw[offset + 6 : offset + 4 + length]
            offset += 4 + length
            if context_id != self.context.context_id or length < 2:
                raise PduError(f"P-DATA on unexpected presentation context {context_id}")
            last = bool(header & 0x02)
            if header & 0x01:
                self.command += value
                if last:
                    fields = read_elements(bytes(self.command), True, _COMMAND_TAGS)
                    self.command.clear()
                    responded = fields.get("RespondedTo")
                    if (
                        responded is not None
                        and int.from_bytes(responded[:2], "little") != _MESSAGE_ID
                    ):
                        raise PduError(
                            "C-FIND response answers message "
                            f"{int.from_bytes(responded[:2], 'little')}, we sent message {_MESSAGE_ID}"
                        )
                    status = int.from_bytes(fields.get("Status", b"\xff\xff")[:2], "little")
                    has_data = int.from_bytes(fields.get("Type", b"\x01\x01")[:2], "little")
                    comment = text(fields.get("Comment", b""))
                    if has_data != _NO_DATA_SET:
                        self.awaiting_data = True
                        self.status, self.comment = status, comment
                    else:
                        done.append((status, comment, None))
            else:
                if not self.awaiting_data:
                    raise PduError("a data set without its command")
                self.data += value
                if last:
                    done.append((self.status, self.comment, self._row(bytes(self.data))))
                    self.data.clear()
                    self.awaiting_data = False
        return done

    def _row(self, data: bytes) -> tuple[str, ...]:
        try:
            found = read_elements(data, self.context.implicit_vr, self.wanted)
            return tuple(text(found.get(k, b"")) for k in self.keys)
        except ValueError:  # something our reader does not handle: let pydicom read it
            fields = identifier_fields(decode_identifier(BytesIO(data), self.context))
            return tuple(fields.get(k, "") for k in self.keys)


async def find_rows(
    host: str,
    port: int,
    *,
    called_ae: str,
    query: Mapping[str, str],
    return_keys: Sequence[str],
    calling_ae: str = "PACSTUI",
    timeout: float = 30.0,
    tls: ssl.SSLContext | None = None,
) -> Rows:
    """A Study Root C-FIND at STUDY level (PS3.4 C.4.1) keeping ``return_keys`` of every match.

    ``timeout`` bounds each wait (connect, association, each response,
    release), so a long answer that keeps flowing is never cut, and a peer
    that stalls costs at most ``timeout``. Never raises for network or
    protocol failures; ``ValueError`` for a key that is not a DICOM keyword.
    """
    for key in (*query, *return_keys):
        tag_of(key)
    session = Requestor(timeout)
    association: Association | None = None
    result = Rows()
    try:
        association = await session.associate(
            host,
            port,
            called_ae=called_ae,
            calling_ae=calling_ae,
            abstract_syntaxes=(STUDY_ROOT_FIND,),
            tls=tls,
        )
        context = association.context_for(STUDY_ROOT_FIND)
        if context is None:
            await association.abort()
            return Rows("error", "Study Root FIND was not accepted")
        async with session.bounded("C-FIND"):
            await association.send(_request(query, context), context.context_id)
        reader = _Reader(context, return_keys)
        status, comment = 0xFF00, ""
        while status in _PENDING:
            async with session.bounded("C-FIND"):
                pdu_type, raw = await read_pdu(
                    association.reader, max_length=association.receive_limit
                )
            if pdu_type == 0x07:
                raise PeerAborted(
                    describe_abort(raw[8] if len(raw) > 9 else 0, raw[9] if len(raw) > 9 else 0)
                )
            if pdu_type != 0x04:
                raise PduError(f"unexpected PDU type 0x{pdu_type:02X} during C-FIND")
            for answer in reader.feed(raw):
                status, comment, row = answer
                if status in _PENDING:
                    if row is not None:
                        result.rows.append(row)
                    continue
                break
        note = await session.release(association)
        word = "study" if result.count == 1 else "studies"
        if status == 0x0000:
            result.detail = f"{result.count} {word}{note}"
        elif status == _CANCELLED:
            result.state = "incomplete"
            result.detail = (
                f"C-FIND incomplete: peer stopped after {result.count} {word} (status 0xFE00){note}"
            )
        else:
            result.state = "error"
            result.detail = (
                f"C-FIND failed: status 0x{status:04X}" + (f": {comment}" if comment else "") + note
            )
        return result
    except asyncio.CancelledError:
        if association is not None:
            association.writer.close()  # the caller gave up; do not leak the socket
        raise
    except Exception as exc:
        failure = session.failure(exc)
        if association is not None:
            await association.abort()
        result.state, result.detail = failure.state, failure.detail
        return result
