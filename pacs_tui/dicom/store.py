"""C-STORE SCU: send instances to an AE over one association (PS3.4 B.2).

The simulator's archives use it to carry out a C-MOVE (they are the move
SCP, the destination is the store SCP). Failures never raise; they come
back as a ``StoreOutcome`` with the counts reached.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterable
from dataclasses import dataclass

from pydicom.dataset import Dataset
from pynetdicom.dimse_messages import C_STORE_RQ, C_STORE_RSP
from pynetdicom.dimse_primitives import C_STORE

from pacs_tui.dicom.association import Association, encode_identifier
from pacs_tui.dicom.pdu_stream import PduError
from pacs_tui.dicom.requestor import Requestor

# The image storage SOP classes the simulator sends and accepts, by modality.
STORAGE_BY_MODALITY = {
    "CR": "1.2.840.10008.5.1.4.1.1.1",
    "DX": "1.2.840.10008.5.1.4.1.1.1.1",
    "MG": "1.2.840.10008.5.1.4.1.1.1.2",
    "CT": "1.2.840.10008.5.1.4.1.1.2",
    "MR": "1.2.840.10008.5.1.4.1.1.4",
    "US": "1.2.840.10008.5.1.4.1.1.6.1",
    "NM": "1.2.840.10008.5.1.4.1.1.20",
    "XA": "1.2.840.10008.5.1.4.1.1.12.1",
    "PT": "1.2.840.10008.5.1.4.1.1.128",
}
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
STORAGE_SOP_CLASSES = (*dict.fromkeys(STORAGE_BY_MODALITY.values()), SECONDARY_CAPTURE)


@dataclass(frozen=True)
class StoreOutcome:
    """``state`` ok when every instance was stored; else failed or an association state."""

    state: str
    detail: str
    completed: int = 0
    failed: int = 0


async def store_instances(
    host: str,
    port: int,
    *,
    called_ae: str,
    calling_ae: str,
    instances: Iterable[Dataset],
    sop_classes: tuple[str, ...] = STORAGE_SOP_CLASSES,
    move_originator: tuple[str, int] | None = None,
    timeout: float = 30.0,
    tls: ssl.SSLContext | None = None,
) -> StoreOutcome:
    """Store each dataset (it must carry SOPClassUID and SOPInstanceUID) on one association.

    ``move_originator`` is (AE title, message id) of the C-MOVE this serves.
    ``timeout`` bounds each wait. Never raises for network or protocol failures.
    """
    session = Requestor(timeout)
    association: Association | None = None
    completed = failed = 0
    try:
        association = await session.associate(
            host,
            port,
            called_ae=called_ae,
            calling_ae=calling_ae,
            abstract_syntaxes=sop_classes,
            tls=tls,
        )
        for number, dataset in enumerate(instances, start=1):
            context = association.context_for(str(dataset.SOPClassUID))
            if context is None:
                failed += 1
                continue
            primitive = C_STORE()
            primitive.MessageID = number % 0x10000
            primitive.AffectedSOPClassUID = dataset.SOPClassUID
            primitive.AffectedSOPInstanceUID = dataset.SOPInstanceUID
            primitive.Priority = 2
            if move_originator is not None:
                primitive.MoveOriginatorApplicationEntityTitle = move_originator[0]
                primitive.MoveOriginatorMessageID = move_originator[1]
            primitive.DataSet = encode_identifier(dataset, context)
            request = C_STORE_RQ()
            request.primitive_to_message(primitive)
            async with session.bounded("C-STORE"):
                await association.send(request, context.context_id)
            response = await session.response(association, "C-STORE")
            if not isinstance(response, C_STORE_RSP):
                raise PduError(f"unexpected {type(response).__name__} in answer to C-STORE")
            status = int(response.command_set.Status)
            # Warnings (0xB000, 0xB007, 0xB006) still store the instance (PS3.4 B.2.3).
            if status == 0 or status & 0xF000 == 0xB000:
                completed += 1
            else:
                failed += 1
        note = await session.release(association)
        state = "ok" if failed == 0 else "failed"
        return StoreOutcome(state, f"{completed} stored, {failed} failed{note}", completed, failed)
    except asyncio.CancelledError:
        if association is not None:
            association.writer.close()  # the caller gave up; do not leak the socket
        raise
    except Exception as exc:
        failure = session.failure(exc)
        if association is not None:
            await association.abort()
        return StoreOutcome(failure.state, failure.detail, completed, failed)
