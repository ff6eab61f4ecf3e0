"""``pacs-tui rehearse`` end to end on a small simulated fleet (the simulator in its own process).

A clean weekend passes; each planted fault is caught and named, and the exit
code is non-zero. The names come from what the checks found (the comparison,
the replication check), never from the list of plants.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from pacs_tui.batch.audit import AuditLog
from pacs_tui.cli import rehearse as rehearse_cli
from sim_process import random_octet

FLEET = "20"


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PACS_TUI_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def rehearse(report: Path, *extra: str) -> int:
    parser = argparse.ArgumentParser()
    rehearse_cli.register(parser.add_subparsers())
    args = parser.parse_args(
        ["rehearse", "--servers", FLEET, "--report", str(report), "--replication-days", "3",
         "--address-octet", str(random_octet()), "--transit", "0.5", *extra]
    )  # fmt: skip
    return int(args.handler(args))


@pytest.mark.slow
def test_clean_rehearsal_passes(
    tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "report"
    assert rehearse(report) == 0, capsys.readouterr().out
    out = capsys.readouterr().out
    assert "PASSED: the move is proven same-or-better" in out
    assert "FOUND" not in out
    summary = (report / "rehearsal.md").read_text()
    for phase in ("Pre-checks", "Replication verified", "Baseline before the move",
                  "Shutdown waves", "Transit", "Power-up waves", "Compare with the baseline"):  # fmt: skip
        assert f"| {phase} |" in summary
    assert "**PASSED**" in summary
    for name in ("baseline-before.json", "baseline-after.json", "report.md", "report.html"):
        assert (report / name).stat().st_size > 0
    custody = json.loads((report / "custody.json").read_text())["servers"]
    # Everything moved ends verified; the remote backup never left.
    assert custody["bkp-arch-01"]["state"] == "running"
    moved = {n: e["state"] for n, e in custody.items() if not n.startswith("bkp-")}
    assert set(moved.values()) == {"verified"} and len(moved) == 18
    with AuditLog(data_dir / "audit.sqlite3") as audit:
        events = audit.events()
    verbs = [e.verb for e in events if e.kind == "batch-start"]
    assert verbs == ["off", "on"]
    assert sum(1 for e in events if e.kind == "custody") == 18 * 5


@pytest.mark.slow
def test_slow_storage_is_caught_and_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "report"
    assert rehearse(report, "--plant", "slow-storage", "--json") == 1
    result = json.loads(capsys.readouterr().out)
    assert result["faults"] == ["slow-storage"]
    (line,) = result["detections"]
    assert line.startswith("slow-storage: archive find latency worse: median ")
    before, after = (float(x.split()[0]) for x in line.split("median ")[1].split(" → "))
    assert after - before >= 80  # the planted tier adds 100 ms to every C-FIND
    assert "**FAILED**: slow-storage" in (report / "rehearsal.md").read_text()
    assert "NOT PROVEN" in (report / "report.md").read_text()


@pytest.mark.slow
def test_swapped_server_is_caught_and_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert rehearse(tmp_path / "report", "--plant", "swapped-server") == 1
    out = capsys.readouterr().out
    found = [line for line in out.splitlines() if line.startswith("FOUND ")]
    assert len(found) == 1, out
    assert "swapped-server: web-002 and web-003 are racked in each other's place" in found[0]
    assert "FAILED: swapped-server" in out


def test_missing_studies_stop_before_shutdown(
    tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "report"
    assert rehearse(report, "--plant", "missing-studies") == 1
    out = capsys.readouterr().out
    assert "FOUND missing-studies: replica bkp-arch-01 lacks " in out
    assert "NOT SAFE to shut down arch-001" in out
    assert "stopped at Replication verified" in out
    # Nothing was shut down: no baseline, no batch, every server still running.
    assert not (report / "baseline-before.json").exists()
    custody = json.loads((report / "custody.json").read_text())["servers"]
    assert {e["state"] for e in custody.values()} == {"running"}
    with AuditLog(data_dir / "audit.sqlite3") as audit:
        assert not [e for e in audit.events() if e.kind == "batch-start"]
