"""``pacs-tui preflight`` against the simulator's site links, in its own process.

The simulator runs as ``pacs-tui sim`` (its gateways behind relays that add
each link's latency and loss); preflight runs here, over real TCP and DICOM.
Faults are planted through the control API: ``link_down``,
``link_latency_ms``, ``link_loss_percent``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pacs_tui.cli import main
from sim_process import RunningSim, running_sim

CLINIC = "clinic-harbour"
SLOW_CLINIC = "clinic-summit"
HOSPITAL = "hosp-northgate"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSim]:
    out = tmp_path_factory.mktemp("preflight") / "sim"
    with running_sim(out, "--servers", "12", "--time-scale", "0.02") as running:
        yield running


def preflight(
    sim: RunningSim, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, dict[str, Any]]:
    """Run preflight with --json; (exit code, the JSON document)."""
    capsys.readouterr()
    code = main(["preflight", "-i", str(sim.out / "inventory.yaml"), "--json", *args])
    return code, json.loads(capsys.readouterr().out)


def by_site(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["site"]: row for row in document["links"]}


def test_every_hospital_and_clinic_link_is_ok_and_a_baseline_is_written(
    sim: RunningSim, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    baseline = tmp_path / "links.json"
    code, document = preflight(sim, capsys, "--samples", "5", "--baseline-out", str(baseline))
    rows = by_site(document)
    assert code == 0, [(r["site"], r["reasons"]) for r in document["links"] if r["reasons"]]
    assert len(rows) == 6 + 13  # every hospital and clinic, one link each
    assert {r["verdict"] for r in rows.values()} == {"ok"}
    row = rows[CLINIC]
    assert row["tcp"]["answered"] == row["echo"]["answered"] == 5
    assert row["find"]["state"] == "ok"
    saved = json.loads(baseline.read_text())
    assert {f"{e['site']}/{e['link']}" for e in saved["links"]} == {
        f"{site}/wan-1" for site in rows
    }


def test_a_clinic_link_down_is_unreachable_and_named(
    sim: RunningSim, capsys: pytest.CaptureFixture[str]
) -> None:
    sim.control("POST", f"/sites/{CLINIC}/link", {"link_down": True})
    try:
        capsys.readouterr()
        inventory = str(sim.out / "inventory.yaml")
        code = main(["preflight", "-i", inventory, "-n", "4", "--site", CLINIC, "--site", HOSPITAL])
        text = capsys.readouterr().out
        json_code, down = preflight(sim, capsys, "--samples", "10", "--site", CLINIC)
    finally:
        sim.control("DELETE", f"/sites/{CLINIC}/link")
    assert code == json_code == 1
    assert f"{CLINIC}/wan-1: unreachable: every sample lost" in text
    assert "connection refused" in text
    hospital_row = next(line for line in text.splitlines() if line.startswith(HOSPITAL))
    assert " ok " in hospital_row
    row = by_site(down)[CLINIC]
    # Three lost rounds are enough: a dead link does not cost every sample's timeout.
    assert (row["verdict"], row["tcp"]["attempted"], row["echo"]["attempted"]) == (
        "unreachable",
        3,
        3,
    )
    assert row["find"]["state"] == "skipped"
    code, document = preflight(sim, capsys, "--samples", "4", "--site", CLINIC)
    assert (code, by_site(document)[CLINIC]["verdict"]) == (0, "ok")  # the link is back


def test_a_slow_link_is_degraded_and_worse_than_its_baseline(
    sim: RunningSim, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    baseline = tmp_path / "links.json"
    code, _ = preflight(
        sim, capsys, "--samples", "5", "--site", SLOW_CLINIC, "--baseline-out", str(baseline)
    )
    assert code == 0
    sim.control("POST", f"/sites/{SLOW_CLINIC}/link", {"link_latency_ms": 150})
    try:
        code, document = preflight(
            sim, capsys, "--samples", "5", "--site", SLOW_CLINIC, "--baseline", str(baseline)
        )
    finally:
        sim.control("DELETE", f"/sites/{SLOW_CLINIC}/link")
    row = by_site(document)[SLOW_CLINIC]
    assert code == 1
    assert row["verdict"] == "degraded"
    assert "C-ECHO median over" in row["reasons"][0]
    # Two round trips cross the link per echo (A-ASSOCIATE, C-ECHO): about 300 ms.
    assert 290 <= row["echo"]["p50_ms"] < 600
    assert row["baseline"]["verdict"] == "worse"
    assert any(d.startswith("C-ECHO worse") for d in row["baseline"]["details"])


def test_a_lossy_link_is_degraded_by_its_loss(
    sim: RunningSim, capsys: pytest.CaptureFixture[str]
) -> None:
    sim.control("POST", f"/sites/{HOSPITAL}/link", {"link_loss_percent": 100})
    try:
        code, document = preflight(sim, capsys, "--samples", "4", "--site", HOSPITAL)
    finally:
        sim.control("DELETE", f"/sites/{HOSPITAL}/link")
    row = by_site(document)[HOSPITAL]
    assert code == 1
    # The relay resets DICOM connections; the kernel still completes TCP handshakes.
    assert row["tcp"]["loss_percent"] == 0
    assert row["echo"]["loss_percent"] == 100
    assert row["verdict"] == "degraded"
    assert row["find"]["state"] == "skipped"  # never "ok" on what was not measured


def test_link_faults_are_checked_by_the_control_api(sim: RunningSim) -> None:
    sites = {s["site"]: s for s in sim.control("GET", "/sites")}
    assert len(sites) == 19 and sites[CLINIC]["up"]
    with pytest.raises(Exception, match="400"):
        sim.control("POST", f"/sites/{CLINIC}/link", {"link_latency_ms": -1})
    with pytest.raises(Exception, match="404"):
        sim.control("POST", "/sites/dc-main/link", {"link_down": True})


def test_one_site_against_a_whole_fleet_baseline_misses_nothing(
    sim: RunningSim, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # The trial's case: a baseline of every site, then the preflight of one (--site).
    baseline = tmp_path / "all-links.json"
    code, _ = preflight(sim, capsys, "--samples", "2", "--baseline-out", str(baseline))
    assert code == 0
    code, document = preflight(
        sim, capsys, "--samples", "3", "--site", CLINIC, "--baseline", str(baseline)
    )
    assert code == 0, document
    assert document["baseline_missing"] == [], document["baseline_missing"]
    assert {row["site"] for row in document["links"]} == {CLINIC}
