"""Non-ASCII C-FIND values (PS3.5 §6.1, PS3.3 C.12.1.1.2), on the wire and against Orthanc.

Before: ``PatientName=山田*`` went out without a Specific Character Set,
pydicom replaced each kanji with ``?`` (a one-character wildcard) and
Orthanc matched all 6 studies below instead of the 3 Yamadas.
"""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from dicom_peers import RunningOrthanc, orthanc, orthanc_upload
from pacs_tui.dicom import FindOutcome, c_find_studies
from pacs_tui.dicom.association import EXPLICIT_VR_LE, AcceptedContext, encode_identifier
from pacs_tui.dicom.client import study_query

# (Specific Character Set, PatientName): 3 Yamadas among 6 names in 3 character sets.
PATIENTS: tuple[tuple[str | list[str], str], ...] = (
    ("ISO_IR 192", "山田^太郎"),
    ("ISO_IR 192", "山田^花子"),
    ("ISO_IR 192", "山田^次郎"),
    ("ISO_IR 192", "田中^一郎"),
    ("ISO_IR 100", "Müller^Jürgen"),
    (["", "ISO 2022 IR 87"], "Tanaka^Ichiro=田中^一郎"),
)
CONTEXT = AcceptedContext(1, "1.2.840.10008.5.1.4.1.2.2.1", EXPLICIT_VR_LE)


def test_a_non_ascii_value_goes_out_as_utf8_under_iso_ir_192() -> None:
    identifier = study_query({"PatientName": "山田*"})
    assert identifier.SpecificCharacterSet == "ISO_IR 192"
    wire = encode_identifier(identifier, CONTEXT).getvalue()
    assert "山田*".encode() in wire
    assert b"??*" not in wire


def test_an_ascii_query_declares_no_character_set() -> None:
    assert "SpecificCharacterSet" not in study_query({"PatientName": "SMITH*"})


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"StudyDate": "２０２６０１０１"}, "default character repertoire"),
        ({"PatientName": "bad\udcff*"}, "cannot be encoded in UTF-8"),
    ],
)
def test_a_value_that_cannot_be_sent_unchanged_is_refused(
    query: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        study_query(query)


async def test_c_find_refuses_before_connecting() -> None:
    with pytest.raises(ValueError, match="default character repertoire"):
        await c_find_studies("127.0.0.1", 9, called_ae="ANY", query={"ModalitiesInStudy": "ＣＴ"})


def _study(charset: str | list[str], name: str, index: int) -> bytes:
    ds = Dataset()
    ds.SpecificCharacterSet = charset
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientName = name
    ds.PatientID = f"CS{index}"
    ds.StudyDate = "20260115"
    ds.Modality = "OT"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


@pytest.mark.peer("orthanc")
async def test_orthanc_matches_exactly_the_yamadas_and_names_decode(tmp_path: Path) -> None:
    # Orthanc answers in its DefaultEncoding, dropping what it cannot hold; Japanese sites use Utf8.
    with orthanc(tmp_path, open_to_all=True, extra={"DefaultEncoding": "Utf8"}) as peer:
        for index, (charset, name) in enumerate(PATIENTS):
            orthanc_upload(peer, _study(charset, name, index))
        assert peer.rest("/statistics")["CountStudies"] == 6  # type: ignore[index]
        yamada = await _names(peer, "山田*")
        muller = await _names(peer, "Müller*")
        tanaka = await _names(peer, "*田中*")
    assert yamada == ["山田^太郎", "山田^次郎", "山田^花子"]
    assert muller == ["Müller^Jürgen"]
    assert tanaka == ["Tanaka^Ichiro=田中^一郎", "田中^一郎"]


@pytest.mark.peer("orthanc")
async def test_latin1_orthanc_answers_decode_by_the_declared_character_set(
    tmp_path: Path,
) -> None:
    with orthanc(tmp_path, open_to_all=True, extra={"DefaultEncoding": "Latin1"}) as peer:
        for index, (charset, name) in enumerate(PATIENTS):
            orthanc_upload(peer, _study(charset, name, index))
        yamada = await _find(peer, "山田*")
        muller = await _find(peer, "Müller*")
    # Still exactly the 3 Yamadas; Latin-1 cannot carry their names, so Orthanc drops the kanji.
    assert yamada.count == 3
    assert {s.get("SpecificCharacterSet") for s in yamada.studies} == {"ISO_IR 100"}
    assert [s["PatientName"] for s in muller.studies] == ["Müller^Jürgen"]
    assert muller.studies[0]["SpecificCharacterSet"] == "ISO_IR 100"


async def _find(peer: RunningOrthanc, pattern: str) -> FindOutcome:
    find = await c_find_studies(
        peer.address, peer.dicom_port, called_ae=peer.aet, query={"PatientName": pattern}
    )
    assert find.state == "ok" and find.complete, find.detail
    assert find.count == len(find.studies)
    return find


async def _names(peer: RunningOrthanc, pattern: str) -> list[str]:
    return sorted(study["PatientName"] for study in (await _find(peer, pattern)).studies)
