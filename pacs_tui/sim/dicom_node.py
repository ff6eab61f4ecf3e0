"""The DICOM service of one simulated server (its ``pacs`` unit).

A thin front-end over ``DicomResponder``: it binds the host's own loopback
address, maps the host's planted faults to association rejections and
aborts, and answers C-FIND from a ``StudyIndex`` while the server's
dependencies (its database) are up. The host starts and stops it with the
``pacs`` unit, so a powered-off server refuses connections.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydicom.dataset import Dataset

from pacs_tui.dicom.association import (
    CALLED_AE_NOT_RECOGNIZED,
    CALLING_AE_NOT_RECOGNIZED,
    LOCAL_LIMIT_EXCEEDED,
    NO_REASON,
    AssociationRequest,
    Rejection,
)
from pacs_tui.dicom.responder import Admission, DicomResponder, FindFailure
from pacs_tui.sim.host import SimulatedHost
from pacs_tui.sim.studies import QueryError, StudyIndex

# HostFaults.dicom_reject words and the A-ASSOCIATE-RJ each one plants.
REJECTIONS: dict[str, Rejection] = {
    "calling-ae": CALLING_AE_NOT_RECOGNIZED,
    "called-ae": CALLED_AE_NOT_RECOGNIZED,
    "busy": LOCAL_LIMIT_EXCEEDED,
    "no-reason": NO_REASON,
}
DEPENDENCY_DOWN_COMMENT = "archive database unavailable"
# Upper bound of identifiers per C-FIND; a real archive caps answers too
# (Orthanc's LimitFindResults), and it keeps one query from eating the CPU.
MAX_FIND_RESULTS = 100_000


class DicomNode:
    """The simulated DICOM SCP of ``host``: a ``Listener`` the host starts and stops.

    ``find_latency_s`` is public and mutable: each C-FIND waits that long,
    which models the speed of the archive's storage tier. The host's
    ``dicom_find_delay_s`` fault (a slower tier after a move) is added to it.
    """

    def __init__(
        self,
        host: SimulatedHost,
        *,
        port: int,
        ae_title: str,
        studies: StudyIndex | None = None,
        allowed_calling_aes: frozenset[str] | None = None,
        find_latency_s: float = 0.0,
    ) -> None:
        self.host = host
        self.port = port
        self.ae_title = ae_title
        self.studies = studies
        self._base_latency_s = max(0.0, find_latency_s)
        self.responder = DicomResponder(
            ae_title,
            find=self._find if studies is not None else None,
            admit=self._admit,
            allowed_calling_aes=allowed_calling_aes,
            find_latency_s=find_latency_s,
        )

    @property
    def find_latency_s(self) -> float:
        """Seconds each C-FIND waits before answering (without the fault's delay)."""
        return self._base_latency_s

    @find_latency_s.setter
    def find_latency_s(self, value: float) -> None:
        self._base_latency_s = max(0.0, value)
        self.sync_find_latency()

    def sync_find_latency(self) -> None:
        """Apply the storage speed plus the host's ``dicom_find_delay_s`` fault now."""
        self.responder.find_latency_s = self._base_latency_s + self.host.faults.dicom_find_delay_s

    @property
    def serving(self) -> bool:
        """True while the node accepts connections."""
        return self.responder.serving

    async def start(self) -> None:
        """Listen on the host's address; does nothing when already listening."""
        await self.responder.start(self.host.address, self.port)

    async def stop(self) -> None:
        """Close the listening socket and drop open associations (idempotent)."""
        await self.responder.stop()

    def _admit(self, request: AssociationRequest) -> Admission:
        faults = self.host.faults
        self.sync_find_latency()  # a fault planted since the last association counts now
        if faults.dicom_reject:
            return Admission(reject=REJECTIONS.get(faults.dicom_reject, NO_REASON))
        find_failure = None if self.host.dependencies_up() else DEPENDENCY_DOWN_COMMENT
        return Admission(abort_after_accept=faults.dicom_abort, find_failure=find_failure)

    def _find(self, identifier: Dataset) -> Iterable[Dataset]:
        if self.studies is None:  # not registered as a handler then; keeps mypy sure
            return ()
        try:
            return self.studies.match(identifier, limit=MAX_FIND_RESULTS)
        except QueryError as exc:
            raise FindFailure(str(exc)) from exc
