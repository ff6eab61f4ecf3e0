"""Two real Orthanc archives that know each other: a primary and its replica.

The primary lists the replica in ``DicomModalities`` (so it can C-MOVE to
it), the replica lists the primary (so it accepts its C-STOREs); both know
the test's calling AE. ``limit_find_results`` caps the primary's C-FIND
answers as Orthanc's ``LimitFindResults`` does (a final 0xFE00). Studies are
made with pydicom and uploaded through Orthanc's REST API.
"""

from __future__ import annotations

import io
import json
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from dicom_peers import (
    ORTHANC_KNOWN_AET,
    RunningOrthanc,
    _terminate,
    dcmtk_env,
    free_port,
    orthanc_upload,
    wait_for_port,
)
from pacs_tui.inventory import DicomEndpoint, Server
from peers import require_binary


@contextmanager
def orthanc_archive(
    root: Path,
    aet: str,
    *,
    dicom_port: int,
    peers: dict[str, tuple[str, int]],
    limit_find_results: int = 0,
) -> Iterator[RunningOrthanc]:
    """Start Orthanc as ``aet`` on ``dicom_port``, knowing ``peers`` (AE -> (name, port))."""
    binary = require_binary("Orthanc", "/usr/sbin/Orthanc")
    http_port = free_port()
    (root / "storage").mkdir(parents=True)
    (root / "index").mkdir()
    modalities: dict[str, list[object]] = {"scu": [ORTHANC_KNOWN_AET, "127.0.0.1", 4242]}
    for peer_aet, (name, port) in peers.items():
        modalities[name] = [peer_aet, "127.0.0.1", port]
    config = {
        "Name": aet,
        "StorageDirectory": str(root / "storage"),
        "IndexDirectory": str(root / "index"),
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": aet,
        "DicomCheckCalledAet": True,
        "DicomAlwaysAllowEcho": False,
        "DicomAlwaysAllowStore": False,
        "DicomAlwaysAllowFind": False,
        "DicomAlwaysAllowMove": False,
        "DicomAlwaysAllowGet": False,
        "DicomCheckModalityHost": False,
        "DicomModalities": modalities,
        "LimitFindResults": limit_find_results,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "Plugins": [],
    }
    (root / "config.json").write_text(json.dumps(config))
    log = root / "orthanc.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [binary, str(root / "config.json")],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=dcmtk_env(),
        )
    try:
        running = RunningOrthanc(dicom_port, http_port, aet, ORTHANC_KNOWN_AET, log)
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"Orthanc exited: {log.read_text()[-2000:]}")
            try:
                running.rest("/system")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"Orthanc not ready: {log.read_text()[-2000:]}") from None
                time.sleep(0.05)
        wait_for_port("127.0.0.1", dicom_port)
        yield running
    finally:
        _terminate(process)


@dataclass(frozen=True)
class OrthancPair:
    primary: RunningOrthanc
    replica: RunningOrthanc

    def servers(self) -> tuple[Server, Server]:
        return archive("pacs-a", self.primary), archive("pacs-b", self.replica)

    def inventory(self, path: Path) -> Path:
        path.write_text(
            "sites: [{name: dc-main, kind: datacenter}]\nservers:\n"
            + "".join(
                f"  - {{name: {name}, site: dc-main, role: archive, dicom: {{host: 127.0.0.1, "
                f"port: {peer.dicom_port}, ae_title: {peer.aet}, "
                f"calling_ae_title: {peer.known_aet}}}}}\n"
                for name, peer in (("pacs-a", self.primary), ("pacs-b", self.replica))
            )
        )
        return path


@contextmanager
def orthanc_pair(
    root: Path, *, limit_find_results: int = 0, primary_knows_replica: bool = True
) -> Iterator[OrthancPair]:
    """Start the primary (``PRIMARY``) and its replica (``REPLICA``)."""
    primary_port, replica_port = free_port(), free_port()
    with ExitStack() as stack:
        replica = stack.enter_context(
            orthanc_archive(
                root / "replica",
                "REPLICA",
                dicom_port=replica_port,
                peers={"PRIMARY": ("primary", primary_port)},
            )
        )
        primary = stack.enter_context(
            orthanc_archive(
                root / "primary",
                "PRIMARY",
                dicom_port=primary_port,
                peers={"REPLICA": ("replica", replica_port)} if primary_knows_replica else {},
                limit_find_results=limit_find_results,
            )
        )
        yield OrthancPair(primary, replica)


def archive(name: str, peer: RunningOrthanc) -> Server:
    """The inventory entry of an Orthanc (talk to it on loopback only)."""
    return Server(
        name=name,
        site="dc-main",
        role="archive",
        dicom=DicomEndpoint(
            host="127.0.0.1",
            port=peer.dicom_port,
            ae_title=peer.aet,
            calling_ae_title=peer.known_aet,
        ),
    )


@dataclass(frozen=True)
class StudySpec:
    """A small study: its UID, day, time, modality and how many instances."""

    uid: str
    day: date
    time: str = "101500"
    modality: str = "CT"
    instances: int = 1


def new_study(
    day: date, time_of_day: str = "101500", modality: str = "CT", instances: int = 1
) -> StudySpec:
    return StudySpec(generate_uid(prefix=None), day, time_of_day, modality, instances)


def instance_file(study: StudySpec, number: int) -> bytes:
    """Instance ``number`` (1-based) of ``study`` as a DICOM Part 10 file (fixed UIDs)."""
    sop_uid = UID(f"{study.uid}.1.{number}")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = study.uid
    ds.SeriesInstanceUID = f"{study.uid}.1"
    ds.PatientID = "P" + study.uid[-6:]
    ds.PatientName = "TEST^REPLICATION"
    ds.StudyDate = study.day.strftime("%Y%m%d")
    ds.StudyTime = study.time
    ds.AccessionNumber = "A" + study.uid[-8:]
    ds.Modality = study.modality
    ds.SeriesNumber = 1
    ds.InstanceNumber = number
    ds.Rows = ds.Columns = 2
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = bytes(4)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def upload(peer: RunningOrthanc, study: StudySpec, instances: int | None = None) -> None:
    """Store the first ``instances`` (default all) instances of ``study`` in ``peer``."""
    for number in range(1, (study.instances if instances is None else instances) + 1):
        orthanc_upload(peer, instance_file(study, number))
