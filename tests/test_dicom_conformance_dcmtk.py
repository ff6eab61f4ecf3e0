"""Our client against dcmtk's dcmqrscp, an archive filled by storescu (real TCP, loopback)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dcmqrscp_peer import RunningQrscp, SyntheticStudy, dcmqrscp
from pacs_tui.dicom import c_echo, c_find_studies

STUDIES = [
    SyntheticStudy("1.2.826.0.1.3680043.8.498.901.1", "20260105", "CT", "P1", instances=2),
    SyntheticStudy("1.2.826.0.1.3680043.8.498.901.2", "20260105", "MR", "P2"),
    SyntheticStudy("1.2.826.0.1.3680043.8.498.901.3", "20260106", "CT", "P3"),
]

pytestmark = pytest.mark.peer("dcmtk")


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningQrscp]:
    with dcmqrscp(tmp_path_factory.mktemp("qr"), STUDIES) as running:
        yield running


async def test_echo_with_a_confirmed_release(archive: RunningQrscp) -> None:
    outcome = await c_echo(archive.address, archive.port, called_ae=archive.aet)
    assert (outcome.state, outcome.detail) == ("ok", "echo ok")
    assert outcome.latency_ms < 1000


async def test_find_counts_one_day_and_returns_the_stored_identifiers(
    archive: RunningQrscp,
) -> None:
    outcome = await c_find_studies(
        archive.address, archive.port, called_ae=archive.aet, query={"StudyDate": "20260105"}
    )
    assert (outcome.state, outcome.count, outcome.complete) == ("ok", 2, True), outcome
    assert outcome.detail == "2 studies"  # the release was confirmed: no note
    by_uid = {s["StudyInstanceUID"]: s for s in outcome.studies}
    assert set(by_uid) == {STUDIES[0].uid, STUDIES[1].uid}
    assert by_uid[STUDIES[0].uid]["PatientID"] == "P1"
    assert by_uid[STUDIES[1].uid]["AccessionNumber"] == "AP2"


async def test_find_over_a_range_and_an_empty_day(archive: RunningQrscp) -> None:
    every = await c_find_studies(
        archive.address,
        archive.port,
        called_ae=archive.aet,
        query={"StudyDate": "20260101-20260131"},
        limit=0,
    )
    assert (every.state, every.count, every.complete, every.studies) == ("ok", 3, True, ())
    none = await c_find_studies(
        archive.address, archive.port, called_ae=archive.aet, query={"StudyDate": "20250101"}
    )
    assert (none.state, none.count, none.complete) == ("ok", 0, True)


async def test_wrong_called_ae_is_rejected(archive: RunningQrscp) -> None:
    outcome = await c_echo(archive.address, archive.port, called_ae="NOTTHEARCHIVE")
    assert outcome.state == "rejected"
    assert "called AE title not recognized" in outcome.detail
