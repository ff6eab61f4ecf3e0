"""Opening an association as the requestor: TCP, optional TLS, A-ASSOCIATE (PS3.8 §7.1).

One place for every SCU (C-ECHO, C-FIND, C-MOVE, C-STORE): the caller gives
``bounded(phase)``, a timeout per phase, so a failure names where it
happened ("connect", "TLS handshake", "association"); TLS (PS3.15 Annex
B.1) starts after TCP for the same reason.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable

from pynetdicom.pdu import A_ABORT_RQ, A_ASSOCIATE_RJ

from pacs_tui.dicom.association import (
    DEFAULT_MAX_PDU,
    MAX_ASSOCIATE_PDU,
    Association,
    PeerAborted,
    Rejection,
    acceptance,
    association_request,
    close_quietly,
    describe_abort,
)
from pacs_tui.dicom.pdu_stream import PduError, decode_pdu, read_pdu, write_pdus

__all__ = ["AssociationRejected", "open_association"]


class AssociationRejected(Exception):
    """The peer answered A-ASSOCIATE-RJ; ``rejection`` says who and why (PS3.8 §9.3.4)."""

    def __init__(self, rejection: Rejection) -> None:
        super().__init__(f"rejected: {rejection.describe()}")
        self.rejection = rejection


async def open_association(
    host: str,
    port: int,
    *,
    called_ae: str,
    calling_ae: str,
    abstract_syntaxes: tuple[str, ...],
    bounded: Callable[[str], asyncio.Timeout],
    tls: ssl.SSLContext | None = None,
    on_tls: Callable[[ssl.SSLContext], None] | None = None,
) -> Association:
    """Connect, start TLS when ``tls`` is given, negotiate; the open association.

    Raises ``AssociationRejected``, ``PeerAborted``, ``PduError``,
    ``TimeoutError`` (from ``bounded``) and ``OSError``/``ssl.SSLError``;
    ``on_tls`` is called once the handshake is done (callers read a later
    hang-up as a TLS verdict).
    """
    async with bounded("connect"):
        reader, writer = await asyncio.open_connection(host, port)
    try:
        if tls is not None:
            async with bounded("TLS handshake"):
                await writer.start_tls(tls, server_hostname=host)
            if on_tls is not None:
                on_tls(tls)
        async with bounded("association"):
            await write_pdus(
                writer,
                association_request(
                    called_ae=called_ae,
                    calling_ae=calling_ae,
                    abstract_syntaxes=abstract_syntaxes,
                    max_pdu=DEFAULT_MAX_PDU,
                ),
            )
            pdu_type, raw = await read_pdu(reader, max_length=MAX_ASSOCIATE_PDU)
        if pdu_type == 0x02:
            contexts, peer_max = acceptance(raw, abstract_syntaxes)
            return Association(
                reader, writer, {c.context_id: c for c in contexts}, peer_max_pdu=peer_max
            )
        pdu = decode_pdu(pdu_type, raw)
        if isinstance(pdu, A_ASSOCIATE_RJ):
            raise AssociationRejected(
                Rejection(pdu.result or 0, pdu.source or 0, pdu.reason_diagnostic or 0)
            )
        if isinstance(pdu, A_ABORT_RQ):
            raise PeerAborted(describe_abort(pdu.source, pdu.reason_diagnostic))
        raise PduError(f"unexpected {type(pdu).__name__} in answer to A-ASSOCIATE-RQ")
    except BaseException:
        await close_quietly(writer)
        raise
