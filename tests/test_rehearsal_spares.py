"""``pacs-tui rehearse --plant dead-on-arrival``: a server that does not come back after
the truck is seen (power-on taken, PowerState Off), replaced from the simulator's spares
pool as ``pacs-tui replace`` does, powered on through the spare's BMC, and the comparison
calls its new identity ``replaced``, not a swap."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from pacs_tui.batch.audit import AuditLog
from pacs_tui.cli import rehearse as rehearse_cli
from sim_process import random_octet


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PACS_TUI_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def test_a_dead_on_arrival_server_is_replaced_from_the_spares_pool(
    tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "report"
    parser = argparse.ArgumentParser()
    rehearse_cli.register(parser.add_subparsers())
    args = parser.parse_args(
        ["rehearse", "--servers", "20", "--report", str(report), "--replication-days", "2",
         "--address-octet", str(random_octet()), "--transit", "0.2", "--batch-timeout", "6",
         "--plant", "dead-on-arrival", "--json"]
    )  # fmt: skip
    assert args.handler(args) == 1  # found: the rehearsal says so, like every plant
    result = json.loads(capsys.readouterr().out)
    assert result["faults"] == ["dead-on-arrival"], result
    (line,) = result["detections"]
    assert line.startswith("dead-on-arrival: web-001 stayed Off after its power-on; replaced by")
    replaced = json.loads((report / "replacements.json").read_text())["replacements"]
    assert [(r["server"], r["spare"]) for r in replaced] == [("web-001", "spare-01")]
    custody = json.loads((report / "custody.json").read_text())["servers"]
    assert custody["web-001"]["state"] == "verified"  # powered through the spare's BMC
    after = json.loads((report / "baseline-after.json").read_text())["servers"]["web-001"]
    assert after["hardware"]["serial_number"] == replaced[0]["serial"]
    assert "replaced" in (report / "report.md").read_text()
    with AuditLog(data_dir / "audit.sqlite3") as audit:
        kinds = [(e.kind, e.server) for e in audit.events() if e.kind == "replace"]
    assert kinds == [("replace", "web-001")]
