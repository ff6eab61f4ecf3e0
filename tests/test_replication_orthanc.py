"""The replication check against two real Orthanc archives holding different studies."""

from __future__ import annotations

import argparse
import asyncio
import io
from collections.abc import Iterable
from datetime import date
from pathlib import Path

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from dicom_peers import RunningOrthanc, orthanc, orthanc_upload
from pacs_tui.cli import replication as replication_cli
from pacs_tui.inventory import DicomEndpoint, Server
from pacs_tui.replication import check_replication

D1, D2, D3, D4, D5 = (date(2025, 3, d) for d in (10, 11, 12, 13, 14))


def study(day: date, modality: str, number: int) -> bytes:
    """One small single-instance study as a DICOM Part 10 file."""
    sop_uid = generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientID = f"P{number:05d}"
    ds.PatientName = "TEST^REPLICATION"
    ds.StudyDate = day.strftime("%Y%m%d")
    ds.StudyTime = "101500"
    ds.AccessionNumber = f"A{number:05d}"
    ds.Modality = modality
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
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


def load(peer: RunningOrthanc, studies: Iterable[tuple[date, str, int]]) -> None:
    for day, modality, number in studies:
        orthanc_upload(peer, study(day, modality, number))


def archive(name: str, peer: RunningOrthanc) -> Server:
    return Server(
        name=name,
        site="dc-main",
        role="archive",
        dicom=DicomEndpoint(
            host="127.0.0.1",  # Orthanc binds every address; talk to it on loopback only
            port=peer.dicom_port,
            ae_title=peer.aet,
            calling_ae_title=peer.known_aet,
        ),
    )


# Both archives hold these; the replica lacks the D2 CT study and every D3/D4 study,
# and has one extra MR study on D4 that the primary lacks (so D4's total differs too).
COMMON = [(D1, "CT", 1), (D1, "MR", 2), (D2, "MR", 4), (D5, "US", 9)]
PRIMARY_ONLY = [(D2, "CT", 3), (D3, "CT", 5), (D3, "US", 6), (D4, "CT", 7)]
REPLICA_ONLY = [(D4, "MR", 8), (D4, "MR", 10)]


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    replication_cli.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    code: int = args.handler(args)
    return code


async def test_differing_days_and_modalities_of_two_orthancs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with orthanc(tmp_path / "primary") as primary, orthanc(tmp_path / "replica") as replica:
        load(primary, COMMON + PRIMARY_ONLY)
        load(replica, COMMON + REPLICA_ONLY)
        report = await check_replication(
            archive("pacs-a", primary),
            archive("pacs-b", replica),
            date_from=D1,
            date_to=D5,
            modalities=["CT", "MR", "US"],
            timeout=10,
        )
        assert report.errors == ()
        assert not report.safe_to_shutdown
        assert (report.primary_total, report.replica_total) == (8, 6)
        got = {(d.day, d.modality): (d.primary, d.replica) for d in report.differences}
        assert got == {
            (D2, None): (2, 1),
            (D2, "CT"): (1, 0),
            (D3, None): (2, 0),
            (D3, "CT"): (1, 0),
            (D3, "US"): (1, 0),
            (D4, None): (1, 2),
            (D4, "CT"): (1, 0),
            (D4, "MR"): (0, 2),
        }
        assert report.ranges() == [(D2, D4)]
        assert report.to_json()["ranges"] == [["2025-03-11", "2025-03-13"]]

        # Day totals alone, over a range with a matching day in the middle.
        split = await check_replication(
            archive("pacs-a", primary), archive("pacs-b", replica), date_from=D1, date_to=D2
        )
        assert [(d.day, d.modality) for d in split.differences] == [(D2, None)]
        assert split.ranges() == [(D2, D2)]

        inventory = tmp_path / "inventory.yaml"
        inventory.write_text(
            "sites: [{name: dc-main, kind: datacenter}]\nservers:\n"
            + "".join(
                f"  - {{name: {name}, site: dc-main, role: archive, dicom: {{host: 127.0.0.1, "
                f"port: {peer.dicom_port}, ae_title: {peer.aet}, "
                f"calling_ae_title: {peer.known_aet}}}}}\n"
                for name, peer in (("pacs-a", primary), ("pacs-b", replica))
            )
        )
        base = ["replication", "check", "--inventory", str(inventory), "--primary", "pacs-a"]
        base += ["--from", str(D1), "--to", str(D5)]
        code = await asyncio.to_thread(run_cli, *base, "--replica", "pacs-b", "--by-modality")
        assert code == 1
        out = capsys.readouterr().out
        assert "2025-03-13  MR   primary       0  replica       2  (+2)" in out
        assert out.strip().endswith(
            "NOT SAFE to shut down pacs-a: counts differ on 2025-03-11..2025-03-13"
        )
        code = await asyncio.to_thread(run_cli, *base, "--replica", "pacs-a", "--json")
        assert code == 2  # the same server twice is an input error


async def test_identical_archives_are_safe_to_shut_down(tmp_path: Path) -> None:
    with orthanc(tmp_path / "primary") as primary, orthanc(tmp_path / "replica") as replica:
        for peer in (primary, replica):
            load(peer, COMMON)
        report = await check_replication(
            archive("pacs-a", primary),
            archive("pacs-b", replica),
            date_from=D1,
            date_to=D5,
            modalities=["CT", "MR", "US", "NM"],
            timeout=10,
        )
        assert report.differences == () and report.errors == ()
        assert report.safe_to_shutdown
        assert report.primary_total == report.replica_total == 4
        assert report.verdict().startswith("SAFE to shut down pacs-a")


async def test_an_unanswered_query_is_never_safe(tmp_path: Path) -> None:
    with orthanc(tmp_path / "primary") as primary:
        load(primary, COMMON)
        gone = Server(
            name="pacs-gone",
            site="dc-backup",
            role="archive",
            dicom=DicomEndpoint(host="127.0.0.1", port=1, ae_title="GONE"),
        )
        report = await check_replication(
            archive("pacs-a", primary), gone, date_from=D1, date_to=D1, timeout=5
        )
        assert report.differences == ()
        assert not report.safe_to_shutdown
        assert report.errors == ("pacs-gone 2025-03-10: connection refused",)
