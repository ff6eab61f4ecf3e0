"""Whole DICOM upper-layer PDUs on asyncio streams.

A PDU is a 6-byte header (type, reserved, 32-bit big-endian length) and a
body. ``read_pdu`` refuses a length above a guard before reading the body, so
a garbage header cannot make us buffer gigabytes; ``decode_pdu`` turns the
bytes into one of pynetdicom's PDU classes.
"""

from __future__ import annotations

import asyncio
import struct

from pynetdicom.pdu import (
    A_ABORT_RQ,
    A_ASSOCIATE_AC,
    A_ASSOCIATE_RJ,
    A_ASSOCIATE_RQ,
    A_RELEASE_RP,
    A_RELEASE_RQ,
    P_DATA_TF,
)

Pdu = (
    A_ASSOCIATE_RQ
    | A_ASSOCIATE_AC
    | A_ASSOCIATE_RJ
    | P_DATA_TF
    | A_RELEASE_RQ
    | A_RELEASE_RP
    | A_ABORT_RQ
)

PDU_CLASSES: dict[int, type[Pdu]] = {
    0x01: A_ASSOCIATE_RQ,
    0x02: A_ASSOCIATE_AC,
    0x03: A_ASSOCIATE_RJ,
    0x04: P_DATA_TF,
    0x05: A_RELEASE_RQ,
    0x06: A_RELEASE_RP,
    0x07: A_ABORT_RQ,
}

# Fixed body lengths (PS3.8 9.3): a PDU that claims another length is malformed.
_FIXED_LENGTHS = {0x03: 4, 0x05: 4, 0x06: 4, 0x07: 4}
_HEADER = struct.Struct(">BxI")

# A-ABORT reasons when the service provider (source 2) aborts (PS3.8 Table 9-26).
ABORT_UNRECOGNISED_PDU = 1
ABORT_UNEXPECTED_PDU = 2
ABORT_INVALID_PARAMETER = 6


class PduError(Exception):
    """The peer sent bytes that are not a valid PDU; ``abort_reason`` says why."""

    def __init__(self, message: str, abort_reason: int = ABORT_INVALID_PARAMETER) -> None:
        super().__init__(message)
        self.abort_reason = abort_reason


class PeerClosed(Exception):
    """The peer closed the connection (possibly in the middle of a PDU)."""


async def read_pdu(reader: asyncio.StreamReader, *, max_length: int) -> tuple[int, bytes]:
    """Read one whole PDU; return ``(pdu type, raw bytes including the header)``.

    Raises ``PeerClosed`` on end of stream and ``PduError`` for an unknown type
    or a length above ``max_length`` (checked before the body is read).
    """
    try:
        header = await reader.readexactly(6)
    except asyncio.IncompleteReadError as exc:
        raise PeerClosed("connection closed by peer") from exc
    pdu_type, length = _HEADER.unpack(header)
    if pdu_type not in PDU_CLASSES:
        raise PduError(f"unknown PDU type 0x{pdu_type:02X}", ABORT_UNRECOGNISED_PDU)
    fixed = _FIXED_LENGTHS.get(pdu_type)
    if fixed is not None and length != fixed:
        raise PduError(f"PDU type 0x{pdu_type:02X} with length {length}")
    if length > max_length:
        raise PduError(f"PDU of {length} bytes exceeds the limit of {max_length}")
    try:
        body = await reader.readexactly(length)
    except asyncio.IncompleteReadError as exc:
        raise PeerClosed("connection closed in the middle of a PDU") from exc
    return pdu_type, header + body


def decode_pdu(pdu_type: int, raw: bytes) -> Pdu:
    """Decode the raw bytes of a PDU read by ``read_pdu``; ``PduError`` if malformed."""
    pdu = PDU_CLASSES[pdu_type]()
    try:
        pdu.decode(raw)
    except Exception as exc:  # pynetdicom raises assorted errors on bad input
        raise PduError(f"malformed PDU type 0x{pdu_type:02X}: {exc}") from exc
    return pdu


async def write_pdus(writer: asyncio.StreamWriter, *encoded: bytes) -> None:
    """Write already-encoded PDUs in one go and wait for the buffer to drain."""
    writer.write(b"".join(encoded))
    await writer.drain()


def abort_pdu(source: int = 0, reason: int = 0) -> bytes:
    """An encoded A-ABORT-RQ (source 0 = service-user, 2 = service-provider)."""
    pdu = A_ABORT_RQ()
    pdu.source = source
    pdu.reason_diagnostic = reason if source == 2 else 0
    return pdu.encode()


def release_rq_pdu() -> bytes:
    """An encoded A-RELEASE-RQ."""
    return A_RELEASE_RQ().encode()


def release_rp_pdu() -> bytes:
    """An encoded A-RELEASE-RP."""
    return A_RELEASE_RP().encode()
