"""The instances of a synthetic study, built when a C-MOVE sends them.

Like the studies themselves, instances are never stored: each one's UIDs
derive from the study UID, series number and instance number, so moving a
study twice sends the same SOP Instance UIDs (a store SCP keeps one copy).
"""

from __future__ import annotations

from collections.abc import Iterator

from pydicom.dataset import Dataset

from pacs_tui.dicom.store import SECONDARY_CAPTURE, STORAGE_BY_MODALITY
from pacs_tui.sim.studies import Study


def instance_uids(study: Study) -> Iterator[tuple[int, int, str]]:
    """(series number, instance number, SOP Instance UID) of every instance, in order."""
    per_series = max(1, study.instances // max(study.series, 1))
    number = 0
    for series in range(1, study.series + 1):
        last = study.instances if series == study.series else number + per_series
        while number < last:
            number += 1
            yield series, number, f"{study.study_uid}.{series}.{number}"


def synthetic_instances(study: Study) -> Iterator[Dataset]:
    """Minimal image datasets (no pixels) for every instance of ``study``, lazily."""
    sop_class = STORAGE_BY_MODALITY.get(study.modality, SECONDARY_CAPTURE)
    date_text = study.study_date.strftime("%Y%m%d")
    for series, number, sop_uid in instance_uids(study):
        ds = Dataset()
        ds.SOPClassUID = sop_class
        ds.SOPInstanceUID = sop_uid
        ds.StudyInstanceUID = study.study_uid
        ds.SeriesInstanceUID = f"{study.study_uid}.{series}"
        ds.StudyDate = date_text
        ds.StudyTime = study.study_time
        ds.Modality = study.modality
        ds.PatientID = study.patient_id
        ds.PatientName = study.patient_name
        ds.AccessionNumber = study.accession_number
        ds.StudyDescription = study.description
        ds.SeriesNumber = series
        ds.InstanceNumber = number
        yield ds
