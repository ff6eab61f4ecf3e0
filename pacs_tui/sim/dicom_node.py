"""The DICOM service of one simulated server (its ``pacs`` unit).

A thin front-end over ``DicomResponder``: it binds the host's own loopback
address, maps the host's planted faults to association rejections and
aborts, and answers C-FIND from a ``StudyIndex`` while the server's
dependencies (its database) are up. An archive also answers C-MOVE by
C-STOREing the study's synthetic instances to the destination AE (looked up
in the simulator's AE table, as a real archive's modality list), and accepts
C-STORE into its index. The host starts and stops it with the ``pacs`` unit,
so a powered-off server refuses connections.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable, Iterator, MutableMapping
from datetime import date

from pydicom.dataset import Dataset

from pacs_tui.dicom.association import (
    CALLED_AE_NOT_RECOGNIZED,
    CALLING_AE_NOT_RECOGNIZED,
    LOCAL_LIMIT_EXCEEDED,
    NO_REASON,
    AssociationRequest,
    Rejection,
)
from pacs_tui.dicom.responder import (
    STATUS_MOVE_DESTINATION_UNKNOWN,
    STATUS_UNABLE_TO_PROCESS,
    Admission,
    DicomResponder,
    EncodedAnswer,
    FindFailure,
    MoveResult,
)
from pacs_tui.dicom.store import STORAGE_SOP_CLASSES, store_instances
from pacs_tui.sim.host import SimulatedHost
from pacs_tui.sim.listen import open_listener
from pacs_tui.sim.studies import QueryError, Study, StudyIndex
from pacs_tui.sim.study_instances import synthetic_instances

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
STATUS_CANCEL = 0xFE00  # what an archive with a result limit ends an answer with
STATUS_WARNING = 0xB000


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
        known_aes: MutableMapping[str, tuple[str, int]] | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        # DICOM over TLS (PS3.15 Annex B.1), e.g. FleetPki.dicom_server_ssl_context; None: plain.
        self.tls = tls
        self.port = port
        self.ae_title = ae_title
        self.studies = studies
        # The AE table C-MOVE destinations are looked up in: AE title -> (address, port).
        self.known_aes: MutableMapping[str, tuple[str, int]] = (
            known_aes if known_aes is not None else {}
        )
        self.moves = 0  # C-MOVE requests answered, for tests and the sim's stats
        self._base_latency_s = max(0.0, find_latency_s)
        self.responder = DicomResponder(
            ae_title,
            find=self._find if studies is not None else None,
            admit=self._admit,
            allowed_calling_aes=allowed_calling_aes,
            find_latency_s=find_latency_s,
            move=self._move if studies is not None else None,
            store=self._store if studies is not None else None,
            store_sop_classes=STORAGE_SOP_CLASSES,
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
        await open_listener(
            "DICOM",
            self.host.address,
            self.port,
            self.responder.start(self.host.address, self.port, tls=self.tls),
        )

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

    def _find(self, identifier: Dataset) -> Iterable[EncodedAnswer]:
        if self.studies is None:  # not registered as a handler then; keeps mypy sure
            return ()
        limit = self.host.faults.dicom_find_limit or MAX_FIND_RESULTS
        try:
            # One more than the limit tells "exactly the limit" from "stopped early".
            answers = self.studies.match_encoded(identifier, limit=limit + 1)
        except QueryError as exc:
            raise FindFailure(str(exc)) from exc
        return _capped(answers, limit)

    async def _move(self, identifier: Dataset, destination: str, calling_ae: str) -> MoveResult:
        """C-MOVE SCP (PS3.4 C.4.2): send every instance of the asked studies to ``destination``."""
        self.moves += 1
        address = self.known_aes.get(destination)
        if address is None:
            return MoveResult(
                status=STATUS_MOVE_DESTINATION_UNKNOWN,
                comment=f"move destination {destination} unknown",
            )
        if not self.host.dependencies_up():
            return MoveResult(status=STATUS_UNABLE_TO_PROCESS, comment=DEPENDENCY_DOWN_COMMENT)
        assert self.studies is not None
        value = identifier.get("StudyInstanceUID")
        uids = [value] if isinstance(value, str) else list(value or ())
        studies = [
            s for s in (self.studies.find_uid(str(u).strip()) for u in uids) if s is not None
        ]
        if not studies:
            return MoveResult()  # nothing matched: Success with no sub-operations
        outcome = await store_instances(
            address[0],
            address[1],
            called_ae=destination,
            calling_ae=self.ae_title,
            instances=(ds for study in studies for ds in synthetic_instances(study)),
            move_originator=(calling_ae, 1),
        )
        total = sum(s.instances for s in studies)
        failed = total - outcome.completed
        if failed == 0:
            return MoveResult(completed=outcome.completed)
        status = STATUS_WARNING if outcome.completed else STATUS_UNABLE_TO_PROCESS
        return MoveResult(outcome.completed, failed, status, f"to {destination}: {outcome.detail}")

    def _store(self, dataset: Dataset, calling_ae: str) -> int:
        """C-STORE SCP (PS3.4 B.2): the instance joins this archive's index."""
        assert self.studies is not None
        study_uid = str(dataset.StudyInstanceUID)
        if self.studies.generated(study_uid) is None:
            self.studies.plants.add_extra(_study_of(dataset))
        self.studies.plants.receive(study_uid, str(dataset.SOPInstanceUID))
        return 0x0000


def _capped(answers: Iterable[EncodedAnswer], limit: int) -> Iterator[EncodedAnswer]:
    for sent, answer in enumerate(answers):
        if sent >= limit:
            raise FindFailure(f"result limit of {limit} matches reached", STATUS_CANCEL)
        yield answer


def _study_of(dataset: Dataset) -> Study:
    """A study-level record for an instance of a study this archive never generated."""
    text = str(dataset.get("StudyDate", "") or "19700101")
    return Study(
        study_uid=str(dataset.StudyInstanceUID),
        study_date=date(int(text[0:4]), int(text[4:6]), int(text[6:8])),
        study_time=str(dataset.get("StudyTime", "") or "000000")[:6],
        modality=str(dataset.get("Modality", "") or "OT"),
        patient_id=str(dataset.get("PatientID", "") or ""),
        patient_name=str(dataset.get("PatientName", "") or ""),
        accession_number=str(dataset.get("AccessionNumber", "") or ""),
        description=str(dataset.get("StudyDescription", "") or ""),
        series=1,
        instances=0,
    )
