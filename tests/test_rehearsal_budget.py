"""``pacs-tui rehearse`` with rack power budgets, on the real simulator.

Every rehearsal gives the moved racks budgets from the draw measured before
the move, and the power-up plan staggers within them. The
``rack-over-budget`` plant cuts one rack's circuit to its steady draw plus a
single boot peak and arms the simulator's breaker there: the power-up must
stagger that rack's waves, and the breaker must hold.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from test_rehearsal import data_dir  # noqa: F401  (autouse: each test's own data dir)
from test_rehearsal_preflight import rehearse


def test_a_rack_over_budget_is_staggered_and_its_breaker_holds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "report"
    code = rehearse(report, "--plant", "rack-over-budget")
    result = json.loads(capsys.readouterr().out)
    assert code == 1, result  # found: the rehearsal names it, like every plant
    assert result["faults"] == ["rack-over-budget"], result["detections"]
    (found,) = result["detections"]
    assert found.startswith("rack-over-budget: R01: a wave booting at once would pass its ")
    assert "staggered into groups" in found and "breaker held" in found
    (line,) = [r for r in result["rack_power"] if r.startswith("R01:")]
    assert "breaker at" in line and line.endswith("held")
    budget = float(line.split("budget ", 1)[1].split(" W", 1)[0])
    expected = float(line.split("expected peak ", 1)[1].split(" W", 1)[0])
    at_once = float(line.split("(", 1)[1].split(" W had", 1)[0])
    assert expected <= budget < at_once  # staggered because booting at once would not fit
    summary = (report / "rehearsal.md").read_text()
    assert "## Rack power at power-up" in summary and "breaker at" in summary
    # The phase shows the budget in force, the planted one, not the one it replaced.
    assert f"R01 {budget:.0f} W (planted)" in summary
    # Everything still came up and was verified: the plant costs time, not service.
    custody = json.loads((report / "custody.json").read_text())
    assert {e["state"] for e in custody["servers"].values()} == {"verified", "running"}
