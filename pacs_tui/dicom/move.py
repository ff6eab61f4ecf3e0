"""C-MOVE SCU: ask an archive to send one study to another AE (PS3.4 C.4.2).

The archive (the move SCP) opens its own association to the destination AE,
which it must know by title (its own AE table); the answer carries the
sub-operation counts. Network and protocol failures become outcome states,
never exceptions.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass

from pydicom.dataset import Dataset
from pynetdicom.dimse_messages import C_MOVE_RQ, C_MOVE_RSP
from pynetdicom.dimse_primitives import C_MOVE

from pacs_tui.dicom.association import Association, encode_identifier
from pacs_tui.dicom.pdu_stream import PduError
from pacs_tui.dicom.requestor import Requestor

STUDY_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"

STATUS_SUCCESS = 0x0000
STATUS_WARNING = 0xB000  # some sub-operations failed
STATUS_DESTINATION_UNKNOWN = 0xA801
_PENDING = (0xFF00,)

# Failure statuses of C-MOVE (PS3.4 C.4.2.1.5) as text for the operator.
_STATUS_WORDS = {
    0xA701: "Refused: Out of resources - unable to calculate number of matches",
    0xA702: "Refused: Out of resources - unable to perform sub-operations",
    0xA801: "Refused: Move Destination unknown",
    0xA900: "Identifier does not match SOP Class",
    0xB000: "Warning: sub-operations complete, one or more failures",
    0xFE00: "Cancel: sub-operations terminated",
}


@dataclass(frozen=True)
class MoveOutcome:
    """The result of one C-MOVE.

    ``state``: ok (Success, every sub-operation done), warning (0xB000: some
    instances failed), destination-unknown (0xA801), failed (any other
    status), or the association states rejected, aborted, refused, timeout,
    error. ``completed``/``failed``/``warning`` are the peer's last reported
    sub-operation counts (instances).
    """

    state: str
    latency_ms: float
    detail: str
    status: int | None = None
    completed: int = 0
    failed: int = 0
    warning: int = 0

    @property
    def ok(self) -> bool:
        """True only for Success with no failed sub-operation."""
        return self.state == "ok"


def _request(study_uid: str, destination_ae: str, association: Association) -> C_MOVE_RQ:
    context = association.context_for(STUDY_ROOT_MOVE)
    assert context is not None
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "STUDY"
    identifier.StudyInstanceUID = study_uid
    primitive = C_MOVE()
    primitive.MessageID = 1
    primitive.AffectedSOPClassUID = STUDY_ROOT_MOVE
    primitive.Priority = 2  # low: a repair must not compete with clinical retrievals
    primitive.MoveDestination = destination_ae
    primitive.Identifier = encode_identifier(identifier, context)
    request = C_MOVE_RQ()
    request.primitive_to_message(primitive)
    return request


def _count(response: C_MOVE_RSP, keyword: str) -> int:
    value = response.command_set.get(keyword)
    return int(value) if value not in (None, "") else 0


async def c_move_study(
    host: str,
    port: int,
    *,
    called_ae: str,
    destination_ae: str,
    study_uid: str,
    calling_ae: str = "PACSTUI",
    timeout: float = 60.0,
    tls: ssl.SSLContext | None = None,
) -> MoveOutcome:
    """Ask ``called_ae`` to C-MOVE the study ``study_uid`` to ``destination_ae``.

    ``timeout`` bounds each wait (connect, association, each response,
    release): a big study keeps sending pending responses, so the whole move
    may take longer. Never raises for network or protocol failures.
    """
    session = Requestor(timeout)
    association: Association | None = None
    try:
        association = await session.associate(
            host,
            port,
            called_ae=called_ae,
            calling_ae=calling_ae,
            abstract_syntaxes=(STUDY_ROOT_MOVE,),
            tls=tls,
        )
        context = association.context_for(STUDY_ROOT_MOVE)
        if context is None:
            await association.abort()
            return MoveOutcome("error", session.elapsed_ms(), "Study Root MOVE was not accepted")
        async with session.bounded("C-MOVE"):
            await association.send(
                _request(study_uid, destination_ae, association), context.context_id
            )
        while True:
            response = await session.response(association, "C-MOVE")
            if not isinstance(response, C_MOVE_RSP):
                raise PduError(f"unexpected {type(response).__name__} in answer to C-MOVE")
            status = int(response.command_set.Status)
            if status not in _PENDING:
                break
        completed = _count(response, "NumberOfCompletedSuboperations")
        failed = _count(response, "NumberOfFailedSuboperations")
        warned = _count(response, "NumberOfWarningSuboperations")
        note = await session.release(association)
        comment = str(response.command_set.get("ErrorComment", "") or "").strip()
        counts = f"{completed} sent, {failed} failed" + (f", {warned} warning" if warned else "")
        if status == STATUS_SUCCESS and failed == 0:
            return MoveOutcome(
                "ok", session.elapsed_ms(), counts + note, status, completed, failed, warned
            )
        words = _STATUS_WORDS.get(status, "failed")
        detail = f"C-MOVE status 0x{status:04X} {words}" + (f": {comment}" if comment else "")
        state = (
            "destination-unknown"
            if status == STATUS_DESTINATION_UNKNOWN
            else "warning"
            if status in (STATUS_WARNING, STATUS_SUCCESS)
            else "failed"
        )
        return MoveOutcome(
            state,
            session.elapsed_ms(),
            f"{detail} ({counts}){note}",
            status,
            completed,
            failed,
            warned,
        )
    except asyncio.CancelledError:
        if association is not None:
            association.writer.close()  # the caller gave up; do not leak the socket
        raise
    except Exception as exc:
        failure = session.failure(exc)
        if association is not None:
            await association.abort()
        return MoveOutcome(failure.state, session.elapsed_ms(), failure.detail)
