"""The study-level replication proof and repair between two real Orthanc archives.

The primary knows the replica as a DICOM modality (it C-MOVEs to it), the
replica knows the primary (it accepts its C-STOREs). Studies are pydicom-made
and uploaded through Orthanc's REST API.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import date
from pathlib import Path

import pytest

from orthanc_pair import new_study, orthanc_pair, upload
from pacs_tui.cli import replication as replication_cli
from pacs_tui.inventory import DicomEndpoint, Server
from pacs_tui.replication import check_replication

D1, D2, D3 = date(2025, 3, 10), date(2025, 3, 11), date(2025, 3, 12)


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    replication_cli.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    code: int = args.handler(args)
    return code


async def test_partial_and_swapped_studies_then_repair_makes_it_safe(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PACS_TUI_DATA_DIR", str(tmp_path / "data"))
    common = [new_study(D1, "081000", "CT", 2), new_study(D2, "093000", "MR", 1)]
    partial = new_study(D1, "101500", "CT", 3)
    swapped_out, swapped_in = new_study(D2, "111500", "US"), new_study(D2, "111500", "US")
    with orthanc_pair(tmp_path) as pair:
        for study in common:
            upload(pair.primary, study)
            upload(pair.replica, study)
        primary, replica = pair.servers()

        identical = await check_replication(primary, replica, date_from=D1, date_to=D3, timeout=10)
        assert identical.safe_to_shutdown, identical.verdict()
        assert identical.primary_total == identical.replica_total == 2

        upload(pair.primary, partial)
        upload(pair.replica, partial, instances=1)
        upload(pair.primary, swapped_out)
        upload(pair.replica, swapped_in)
        report = await check_replication(primary, replica, date_from=D1, date_to=D3, timeout=10)
        assert not report.safe_to_shutdown
        assert (report.primary_total, report.replica_total) == (4, 4)  # counts agree
        assert [f.study_uid for f in report.of_kind("missing")] == [swapped_out.uid]
        assert [
            (f.study_uid, f.primary_instances, f.replica_instances)
            for f in report.of_kind("partial")
        ] == [(partial.uid, 3, 1)]
        assert [f.study_uid for f in report.of_kind("extra")] == [swapped_in.uid]

        inventory = pair.inventory(tmp_path / "inventory.yaml")
        base = ["replication", "check", "-i", str(inventory), "--primary", "pacs-a"]
        base += ["--replica", "pacs-b", "--from", str(D1), "--to", str(D3), "--no-progress"]
        assert await asyncio.to_thread(run_cli, *base) == 1
        out = capsys.readouterr().out
        assert f"missing      20250311 111500 US     {swapped_out.uid}" in out
        assert (
            f"partial      20250310 101500 CT     {partial.uid}  (replica 1 of 3 instances)" in out
        )
        assert out.strip().endswith(
            "NOT SAFE to shut down pacs-a: 1 study missing on the replica; 1 study partial (fewer instances)"
        )
        assert await asyncio.to_thread(run_cli, *base, "--json") == 1
        report_file = tmp_path / "check.json"
        report_file.write_text(capsys.readouterr().out)
        body = json.loads(report_file.read_text())
        assert body["missing"][0]["study_uid"] == swapped_out.uid
        assert body["partial"][0]["study_uid"] == partial.uid
        assert body["replica_ae"] == "REPLICA"

        repair = ["replication", "repair", str(report_file), "-i", str(inventory), "--pause", "0"]
        assert await asyncio.to_thread(run_cli, *repair, "--dry-run") == 0
        assert (
            "dry run: would C-MOVE 2 studies (1 missing, 1 partial; 4 instances)"
            in capsys.readouterr().out
        )
        assert await asyncio.to_thread(run_cli, *repair, "--yes") == 0
        out = capsys.readouterr().out
        assert "REPAIRED: 2 of 2 studies repaired" in out
        assert (
            f"{partial.uid}: C-MOVE ok (3 sent, 0 failed); re-check ok: pacs-b holds 3 of 3 instances"
            in out
        )

        assert await asyncio.to_thread(run_cli, *base) == 0
        assert "SAFE to shut down pacs-a" in capsys.readouterr().out

    from pacs_tui.batch.audit import AuditLog

    with AuditLog() as audit:
        events = [(e.kind, e.outcome) for e in audit.events()]
    assert events[:2] == [("plan", ""), ("confirm", "accepted")]
    assert events.count(("move", "ok")) == 2 and events.count(("recheck", "ok")) == 2
    assert events[-1] == ("batch-end", "ok")


async def test_capped_archive_is_split_or_reported_incomplete(tmp_path: Path) -> None:
    # Five studies of the same CT quarter hour and two more elsewhere in the day.
    crowded = [new_study(D1, f"0801{n:02d}", "CT") for n in range(5)]
    others = [new_study(D1, "140000", "MR"), new_study(D1, "160000", "US")]
    with orthanc_pair(tmp_path, limit_find_results=6) as pair:
        for study in crowded + others:
            upload(pair.primary, study)
            upload(pair.replica, study)
        primary, replica = pair.servers()
        report = await check_replication(primary, replica, date_from=D1, date_to=D1, timeout=10)
        assert report.safe_to_shutdown, report.verdict()  # the day was asked again, by hours
        assert report.windows_split == 1 and report.primary_total == 7

    with orthanc_pair(tmp_path / "tight", limit_find_results=3) as pair:
        for study in crowded + others:
            upload(pair.primary, study)
            upload(pair.replica, study)
        primary, replica = pair.servers()
        report = await check_replication(
            primary, replica, date_from=D1, date_to=D1, modalities=["CT", "MR", "US"], timeout=10
        )
        assert not report.safe_to_shutdown
        assert report.errors == (
            "2025-03-10 08:00–08:15 CT: pacs-a stopped after 3 matches (status 0xFE00: a result limit)",
        )
        assert report.verdict() == "NOT SAFE to shut down pacs-a: 1 window incomplete"


async def test_primary_that_does_not_know_the_replica_stops_the_repair(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PACS_TUI_DATA_DIR", str(tmp_path / "data"))
    lost = [new_study(D1), new_study(D1, "120000")]
    with orthanc_pair(tmp_path, primary_knows_replica=False) as pair:
        for study in lost:
            upload(pair.primary, study)
        inventory = pair.inventory(tmp_path / "inventory.yaml")
        check = ["replication", "check", "-i", str(inventory), "--primary", "pacs-a"]
        check += ["--replica", "pacs-b", "--from", str(D1), "--to", str(D1), "--json"]
        assert await asyncio.to_thread(run_cli, *check, "--no-progress") == 1
        report_file = tmp_path / "check.json"
        report_file.write_text(capsys.readouterr().out)
        repair = ["replication", "repair", str(report_file), "-i", str(inventory), "--yes"]
        assert await asyncio.to_thread(run_cli, *repair, "--pause", "0") == 1
        captured = capsys.readouterr()
    # Orthanc 1.10 answers an unknown destination with 0xC000, not 0xA801.
    assert "stopped: pacs-a sent nothing to REPLICA: C-MOVE status 0xC000" in captured.err
    assert "Check that pacs-a knows REPLICA (pacs-b) as a DICOM destination" in captured.err
    assert "NOT REPAIRED: 0 of 2 studies repaired" in captured.out


async def test_an_unanswered_query_is_never_safe(tmp_path: Path) -> None:
    with orthanc_pair(tmp_path) as pair:
        upload(pair.primary, new_study(D1))
        gone = Server(
            name="pacs-gone",
            site="dc-backup",
            role="archive",
            dicom=DicomEndpoint(host="127.0.0.1", port=1, ae_title="GONE"),
        )
        report = await check_replication(
            pair.servers()[0], gone, date_from=D1, date_to=D1, timeout=5
        )
    assert not report.safe_to_shutdown and report.findings == []
    assert report.errors == ("2025-03-10: pacs-gone: connection refused",)


def test_bad_report_and_bad_input_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        "sites: [{name: dc-main, kind: datacenter}]\nservers:\n"
        "  - {name: a, site: dc-main, role: archive, dicom: {host: 127.0.0.1, port: 1, ae_title: A}}\n"
        "  - {name: b, site: dc-main, role: archive, dicom: {host: 127.0.0.1, port: 2, ae_title: B}}\n"
    )
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "pacs-tui-replication-check", "version": 2,\n "primary": "a"}')
    assert run_cli("replication", "repair", str(bad), "-i", str(inventory)) == 2
    assert f"{bad}: replica: expected a server name" in capsys.readouterr().err
    bad.write_text(
        json.dumps(
            {
                "format": "pacs-tui-replication-check",
                "version": 2,
                "primary": "a",
                "replica": "b",
                "missing": [{"study_uid": "1.2.3", "primary_instances": "many"}],
            }
        )
    )
    assert run_cli("replication", "repair", str(bad), "-i", str(inventory)) == 2
    assert (
        "missing[0].primary_instances: expected a number or null, got 'many'"
        in capsys.readouterr().err
    )
    bad.write_text("{not json")
    assert run_cli("replication", "repair", str(bad), "-i", str(inventory)) == 2
    assert f"{bad}: line 1: not JSON" in capsys.readouterr().err
    check = ["replication", "check", "-i", str(inventory), "--primary", "a", "--replica", "a"]
    assert run_cli(*check) == 2
    assert "primary and replica name the same server" in capsys.readouterr().err


def test_a_read_only_inventory_refuses_repair_before_any_association(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        "read_only: true\nsites: [{name: dc-main, kind: datacenter}]\nservers:\n"
        f"  - {{name: a, site: dc-main, role: archive, dicom: {{host: 127.0.0.1, port: {port}, ae_title: A}}}}\n"
        f"  - {{name: b, site: dc-main, role: archive, dicom: {{host: 127.0.0.1, port: {port}, ae_title: B}}}}\n"
    )
    report = tmp_path / "check.json"
    report.write_text(
        json.dumps(
            {"format": "pacs-tui-replication-check", "version": 2, "primary": "a",
             "replica": "b", "missing": [{"study_uid": "1.2.3"}], "partial": []}
        )
    )  # fmt: skip
    try:
        assert run_cli("replication", "repair", str(report), "-i", str(inventory), "--yes") == 2
        with pytest.raises(TimeoutError):
            listener.accept()  # neither archive was contacted
    finally:
        listener.close()
    assert "marked read_only; repair sends C-MOVE requests and is disabled" in (
        capsys.readouterr().err
    )
