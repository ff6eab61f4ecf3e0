"""The synthetic study index: deterministic, realistic volumes, C-FIND matching."""

from __future__ import annotations

from datetime import date

import pytest
from pydicom.dataset import Dataset

from pacs_tui.sim.studies import QueryError, StudyIndex

JAN = StudyIndex(42, date(2026, 1, 1), date(2026, 1, 31), studies_per_day=2000)


def _query(**keys: str) -> Dataset:
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "STUDY"
    for keyword in ("StudyInstanceUID", "StudyDate", "ModalitiesInStudy", "PatientID"):
        setattr(identifier, keyword, "")
    for keyword, value in keys.items():
        setattr(identifier, keyword, value)
    return identifier


def test_same_seed_same_archive_other_seed_other_archive() -> None:
    again = StudyIndex(42, date(2026, 1, 1), date(2026, 1, 31), studies_per_day=2000)
    other = StudyIndex(43, date(2026, 1, 1), date(2026, 1, 31), studies_per_day=2000)
    day = date(2026, 1, 14)
    assert [JAN.day_count(day, m) for m in JAN.modalities] == [
        again.day_count(day, m) for m in again.modalities
    ]
    assert JAN.study(day, "CT", 3) == again.study(day, "CT", 3)
    assert [JAN.day_count(day, m) for m in JAN.modalities] != [
        other.day_count(day, m) for m in other.modalities
    ]
    assert JAN.study(day, "CT", 0).study_uid != other.study(day, "CT", 0).study_uid


def test_volumes_look_like_a_hospital_group() -> None:
    year = StudyIndex(1, date(2025, 1, 1), date(2025, 12, 31), studies_per_day=2200)
    per_day = year.count() / 365
    assert 2000 < per_day < 2400
    monday, sunday = date(2025, 3, 10), date(2025, 3, 16)
    assert year.count(monday, monday) > 2 * year.count(sunday, sunday)
    by_modality = {m: year.count(modality=m) for m in year.modalities}
    assert set(by_modality) == {"CR", "DX", "CT", "US", "MR", "MG", "XA", "NM", "PT"}
    assert by_modality["CR"] > by_modality["MR"] > by_modality["XA"] > 0
    assert sum(by_modality.values()) == year.count()


def test_count_agrees_with_the_generated_studies() -> None:
    first, last = date(2026, 1, 10), date(2026, 1, 12)
    studies = list(JAN.studies(first, last))
    assert len(studies) == JAN.count(first, last)
    assert len({s.study_uid for s in studies}) == len(studies)
    assert all(len(s.study_uid) <= 64 for s in studies)
    ct = [s for s in studies if s.modality == "CT"]
    assert len(ct) == JAN.count(first, last, "CT") > 0
    # Ranges are clipped to the archive; an inverted range is empty.
    assert JAN.count(date(2025, 12, 1), date(2026, 1, 1)) == JAN.count(
        date(2026, 1, 1), date(2026, 1, 1)
    )
    assert JAN.count(last, first) == 0
    assert JAN.count(modality="XX") == 0


def test_archive_scale_is_not_materialised() -> None:
    decade = StudyIndex(9, date(2016, 1, 1), date(2025, 12, 31), studies_per_day=3000)
    total = decade.count()
    assert 10_000_000 < total < 12_000_000
    first_five = list(decade.match(_query(), limit=5))
    assert len(first_five) == 5
    assert {str(d.StudyDate) for d in first_five} == {"20160101"}


def test_match_date_range_and_modalities() -> None:
    answers = list(JAN.match(_query(StudyDate="20260105-20260106", ModalitiesInStudy="CT\\MR")))
    expected = JAN.count(date(2026, 1, 5), date(2026, 1, 6), "CT") + JAN.count(
        date(2026, 1, 5), date(2026, 1, 6), "MR"
    )
    assert len(answers) == expected
    assert {str(a.ModalitiesInStudy) for a in answers} == {"CT", "MR"}
    single = list(JAN.match(_query(StudyDate="20260107")))
    assert len(single) == JAN.count(date(2026, 1, 7), date(2026, 1, 7))
    open_end = sum(1 for _ in JAN.match(_query(StudyDate="20260130-", ModalitiesInStudy="PT")))
    assert open_end == JAN.count(date(2026, 1, 30), None, "PT")
    open_start = sum(1 for _ in JAN.match(_query(StudyDate="-20260101", ModalitiesInStudy="NM")))
    assert open_start == JAN.count(None, date(2026, 1, 1), "NM")


def test_match_returns_the_requested_keys_only() -> None:
    identifier = _query(StudyDate="20260108", ModalitiesInStudy="MG")
    identifier.NumberOfStudyRelatedInstances = ""
    identifier.InstitutionName = ""  # unknown to the index: returned empty
    answer = next(iter(JAN.match(identifier)))
    keywords = {e.keyword for e in answer}
    assert keywords == {
        "QueryRetrieveLevel",
        "StudyInstanceUID",
        "StudyDate",
        "ModalitiesInStudy",
        "PatientID",
        "NumberOfStudyRelatedInstances",
        "InstitutionName",
    }
    assert int(answer.NumberOfStudyRelatedInstances) > 0
    assert answer.InstitutionName == ""


def test_match_by_patient_id_wildcards_and_uid_list() -> None:
    studies = list(JAN.studies(date(2026, 1, 20), date(2026, 1, 20), "US"))
    target = studies[5]
    exact = list(JAN.match(_query(StudyDate="20260120", PatientID=target.patient_id)))
    assert target.study_uid in {str(a.StudyInstanceUID) for a in exact}
    pattern = target.patient_id[:4] + "*"
    wild = list(JAN.match(_query(StudyDate="20260120", PatientID=pattern)))
    assert all(str(a.PatientID).startswith(target.patient_id[:4]) for a in wild)
    assert 0 < len(wild) < JAN.count(date(2026, 1, 20), date(2026, 1, 20))
    question = target.patient_id[:-1] + "?"
    assert any(
        str(a.StudyInstanceUID) == target.study_uid
        for a in JAN.match(_query(StudyDate="20260120", PatientID=question))
    )
    uids = [studies[0].study_uid, studies[7].study_uid, "1.2.3.4.5"]
    by_uid = list(JAN.match(_query(StudyInstanceUID="\\".join(uids))))
    assert [str(a.StudyInstanceUID) for a in by_uid] == uids[:2]


def test_bad_queries_are_query_errors() -> None:
    for bad in ("2026", "20261399"):
        with pytest.warns(UserWarning):  # pydicom, too, says the DA value is invalid
            identifier = _query(StudyDate=bad)
        with pytest.raises(QueryError, match=r"(?i)date"):
            JAN.match(identifier)
    series = _query()
    series.QueryRetrieveLevel = "SERIES"
    with pytest.raises(QueryError, match="STUDY"):
        JAN.match(series)


def test_replica_lacks_exactly_the_missing_days() -> None:
    missing = [date(2026, 1, 3), date(2026, 1, 4)]
    replica = JAN.replica(missing_days=missing)
    lost = sum(JAN.count(d, d) for d in missing)
    assert lost > 0
    assert replica.count() == JAN.count() - lost
    assert replica.count(date(2026, 1, 5), date(2026, 1, 31)) == JAN.count(
        date(2026, 1, 5), date(2026, 1, 31)
    )
    kept = JAN.study(date(2026, 1, 5), "CR", 0)
    gone = JAN.study(date(2026, 1, 3), "CR", 0)
    assert replica.find_uid(kept.study_uid) == kept
    assert replica.find_uid(gone.study_uid) is None
    assert JAN.find_uid(gone.study_uid) == gone
    # A replica of a replica keeps the earlier gaps.
    assert replica.replica([date(2026, 1, 10)]).count() == replica.count() - JAN.count(
        date(2026, 1, 10), date(2026, 1, 10)
    )
    assert all(
        d not in missing
        for d in (s.study_date for s in replica.studies(date(2026, 1, 1), date(2026, 1, 5)))
    )
