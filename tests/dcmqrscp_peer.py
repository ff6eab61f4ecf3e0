"""dcmtk's dcmqrscp, a Q/R archive we did not write, filled with synthetic studies.

The archive is populated the way a modality would: ``storescu`` sends small
pydicom-made Secondary Capture instances. dcmtk binaries are called by
absolute path, because pynetdicom installs its own ``echoscu``/``findscu``
into the venv.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from dicom_peers import _terminate, dcmtk_env, free_port, wait_for_port
from peers import require_dcmtk

QRSCP_AET = "DCMQRSCP"


@dataclass(frozen=True)
class SyntheticStudy:
    """One study to store: its UID, date, modality, patient and number of instances."""

    uid: str
    date: str  # YYYYMMDD
    modality: str
    patient_id: str
    instances: int = 1


def write_instances(directory: Path, studies: Sequence[SyntheticStudy]) -> list[Path]:
    """Small Secondary Capture files (8x8 pixels) for ``studies``; the paths written."""
    paths = []
    for study in studies:
        series_uid = generate_uid()
        for number in range(study.instances):
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
            meta.MediaStorageSOPInstanceUID = generate_uid()
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds = Dataset()
            ds.file_meta = meta
            ds.SOPClassUID = meta.MediaStorageSOPClassUID
            ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
            ds.PatientName = f"Synthetic^{study.patient_id}"
            ds.PatientID = study.patient_id
            ds.StudyInstanceUID = study.uid
            ds.StudyDate = study.date
            ds.StudyTime = "101500"
            ds.AccessionNumber = f"A{study.patient_id}"
            ds.StudyID = "1"
            ds.SeriesInstanceUID = series_uid
            ds.SeriesNumber = 1
            ds.InstanceNumber = number + 1
            ds.Modality = study.modality
            ds.SamplesPerPixel = 1
            ds.PhotometricInterpretation = "MONOCHROME2"
            ds.Rows = ds.Columns = 8
            ds.BitsAllocated = ds.BitsStored = 8
            ds.HighBit = 7
            ds.PixelRepresentation = 0
            ds.PixelData = bytes(64)
            path = directory / f"{meta.MediaStorageSOPInstanceUID}.dcm"
            ds.save_as(path, enforce_file_format=True)
            paths.append(path)
    return paths


@dataclass(frozen=True)
class RunningQrscp:
    """A dcmqrscp on loopback (it binds every address; connect to 127.0.0.1 only)."""

    address: str
    port: int
    aet: str


@contextmanager
def dcmqrscp(tmp_path: Path, studies: Sequence[SyntheticStudy]) -> Iterator[RunningQrscp]:
    """Start dcmqrscp with an empty index, store ``studies`` through storescu, yield it."""
    # Not PATH lookups: the venv's pynetdicom ships a storescu of its own.
    binary = require_dcmtk("dcmqrscp")
    storescu = require_dcmtk("storescu")
    root = tmp_path / "dcmqrscp"
    database = root / "db"
    database.mkdir(parents=True)
    port = free_port()
    config = root / "dcmqrscp.cfg"
    config.write_text(
        f"NetworkTCPPort = {port}\n"
        "MaxPDUSize = 16384\n"
        "MaxAssociations = 16\n"
        "HostTable BEGIN\nHostTable END\n"
        "VendorTable BEGIN\nVendorTable END\n"
        "AETable BEGIN\n"
        f"{QRSCP_AET} {database} RW (100, 64mb) ANY\n"
        "AETable END\n"
    )
    log = root / "dcmqrscp.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [binary, "-c", str(config)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=dcmtk_env(),
        )
    try:
        wait_for_port("127.0.0.1", port, process=process)
        files = root / "files"
        files.mkdir()
        paths = write_instances(files, studies)
        if paths:
            stored = subprocess.run(
                [storescu, "-aet", "MODALITY", "-aec", QRSCP_AET, "127.0.0.1", str(port)]
                + [str(p) for p in paths],
                capture_output=True,
                text=True,
                timeout=60,
                env=dcmtk_env(),
            )
            if stored.returncode != 0:
                raise RuntimeError(f"storescu failed: {stored.stderr}\n{log.read_text()}")
        yield RunningQrscp("127.0.0.1", port, QRSCP_AET)
    finally:
        _terminate(process)
