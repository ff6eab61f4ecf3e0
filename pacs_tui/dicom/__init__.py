"""pacs-tui's DICOM upper layer on asyncio: a responder (SCP) and a probe client (SCU).

PDUs and DIMSE messages are pynetdicom's classes and datasets are pydicom's;
the association state machine is ours, so an association costs about 1 ms of
CPU and no thread on either side.
"""

from pacs_tui.dicom.client import DicomOutcome, FindOutcome, c_echo, c_find_studies
from pacs_tui.dicom.responder import Admission, DicomResponder, FindFailure

__all__ = [
    "Admission",
    "DicomOutcome",
    "DicomResponder",
    "FindFailure",
    "FindOutcome",
    "c_echo",
    "c_find_studies",
]
