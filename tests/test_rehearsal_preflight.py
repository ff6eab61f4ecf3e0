"""``pacs-tui rehearse``: the preflight before power-up at the new site, on the real simulator.

After the rack and before the power-up batch, every site's WAN link is measured
with ``pacs-tui preflight``'s code and every moved server's ``rack-power`` read
while it is Off. A clinic whose link is down has its servers held Off (the
simulated BMCs never receive a power-on) and is named, never called
same-or-better; a supply without input is named with its bay before anything
is powered on, and its server still powers up on the other supply.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from pacs_tui.cli import rehearse as rehearse_cli
from pacs_tui.rehearsal import Rehearsal, RehearsalOptions, SimControl
from sim_process import random_octet

FLEET = "20"  # the smallest fleet the other rehearsal tests use; no clinic has a server
CLINIC_FLEET = 48  # the smallest with a server at a clinic (gw-oakwood-1 at clinic-oakwood)


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PACS_TUI_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def rehearse(report: Path, *extra: str) -> int:
    parser = argparse.ArgumentParser()
    rehearse_cli.register(parser.add_subparsers())
    args = parser.parse_args(
        ["rehearse", "--servers", FLEET, "--report", str(report), "--replication-days", "2",
         "--address-octet", str(random_octet()), "--transit", "0.2", "--samples", "3",
         "--json", *extra]
    )  # fmt: skip
    return int(args.handler(args))


def phase_names(result: dict[str, Any]) -> list[str]:
    return [p["name"] for p in result["phases"]]


def test_a_clean_weekend_passes_its_preflight_and_stays_same_or_better(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "report"
    code = rehearse(report)
    result = json.loads(capsys.readouterr().out)
    assert code == 0, result
    assert result["ok"] and not result["detections"] and not result["held"]
    names = phase_names(result)
    assert names.index("Rack and cable") + 1 == names.index("Preflight at the new site")
    assert names.index("Preflight at the new site") + 1 == names.index("Power-up waves")
    preflight = result["phases"][names.index("Preflight at the new site")]
    # 6 hospitals and 13 clinics, each with one link; 18 moved servers, all still Off.
    assert preflight["ok"], preflight
    assert preflight["summary"].startswith(
        "19 of 19 WAN link(s) ok; rack power of 18 server(s) read (18 Off), 18 ok"
    )
    summary = (report / "rehearsal.md").read_text()
    assert "**PASSED**: the move is proven same-or-better." in summary
    assert "Not proven" not in summary and "Held Off" not in summary
    custody = json.loads((report / "custody.json").read_text())["servers"]
    assert (
        sorted(e["state"] for n, e in custody.items() if not n.startswith("bkp-"))
        == ["verified"] * 18
    )


def test_a_clinic_whose_link_is_down_is_named_and_its_servers_stay_off(
    tmp_path: Path, data_dir: Path
) -> None:
    report = tmp_path / "report"
    watched = ("gw-oakwood-1", "gw-northgate-1")  # the clinic's server; a hospital's
    resets: dict[str, list[str]] = {}
    links: list[dict[str, Any]] = []

    async def count_at_the_simulator(control: SimControl) -> None:
        for name in watched:
            resets[name] = (await control.call("GET", f"/hosts/{name}/bmc"))["resets"]
        links.extend(await control.call("GET", "/sites"))

    options = RehearsalOptions(
        report_dir=report, servers=CLINIC_FLEET, plants=("clinic-link-down",),
        address_octet=random_octet(), transit_s=0.2, replication_days=2, samples=3,
    )  # fmt: skip
    result = asyncio.run(Rehearsal(options, inspect=count_at_the_simulator).run())

    assert not result.ok and result.faults == ["clinic-link-down"], result.detections
    (detection,) = result.detections
    assert detection.message.startswith("clinic-oakwood: WAN link wan-1 (vpn) unreachable")
    assert "held Off, not powered on: gw-oakwood-1" in detection.message
    assert "NOT proven same-or-better for clinic-oakwood" in detection.message
    assert result.held == {"gw-oakwood-1": "clinic-oakwood's WAN link is down"}
    assert list(result.not_proven) == ["clinic-oakwood"]
    # What the simulated BMCs received: the clinic's server was shut down and never
    # sent a power-on; the hospital's gateway beside it was powered up.
    assert resets["gw-oakwood-1"] and "On" not in resets["gw-oakwood-1"], resets
    assert resets["gw-northgate-1"][-1] == "On", resets
    (down,) = [link for link in links if not link["up"]]
    assert down["site"] == "clinic-oakwood" and down["faults"] == {"link_down": True}

    summary = (report / "rehearsal.md").read_text()
    assert "**FAILED**: clinic-link-down" in summary and "PASSED" not in summary
    assert "- Not proven same-or-better for: clinic-oakwood (WAN link down; " in summary
    assert "- Held Off at power-up (never powered on, never verified): gw-oakwood-1" in summary
    assert "- link clinic-oakwood/wan-1: unreachable: every sample lost" in summary
    custody = json.loads((report / "custody.json").read_text())["servers"]
    assert custody["gw-oakwood-1"]["state"] == "racked"
    assert custody["gw-northgate-1"]["state"] == "verified"
    assert "clinic-oakwood (no service)" in summary
    # Held Off: neither measured at the new site nor judged (or called missing) by the report.
    after = json.loads((report / "baseline-after.json").read_text())["servers"]
    assert "gw-oakwood-1" not in after
    assert "gw-oakwood-1" not in (report / "report.md").read_text()


def test_an_unplugged_supply_is_named_with_its_bay_before_power_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "report"
    code = rehearse(report, "--plant", "psu-unplugged")
    result = json.loads(capsys.readouterr().out)
    assert code == 1, result
    assert result["faults"] == ["psu-unplugged"], result
    (line,) = result["detections"]
    assert line.startswith(
        "psu-unplugged: stor-001: power supply PSU 2 (Bay2) has no input (LineInputStatus "
        "LossOfInput): power redundancy lost, DEGRADED (read while Off, before power-up)"
    ), line
    names = phase_names(result)
    preflight = result["phases"][names.index("Preflight at the new site")]
    assert not preflight["ok"] and "(18 Off), 17 ok" in preflight["summary"]
    assert names.index("Preflight at the new site") < names.index("Power-up waves")
    # Not held: it runs on its other supply (powered, gate passed), but never verified.
    assert result["held"] == {}
    assert result["not_proven"] == {"stor-001": "power redundancy lost: PSU 2 (Bay2) without input"}
    custody = json.loads((report / "custody.json").read_text())["servers"]
    assert custody["stor-001"]["state"] == "powered"
    assert custody["db-001"]["state"] == "verified"  # its dependents powered up and compared
    summary = (report / "rehearsal.md").read_text()
    assert "**FAILED**: psu-unplugged" in summary
    assert "- rack-power stor-001: psu-fault: PSU 2 (Bay2) without input" in summary


INVENTORY = """
version: 1
sites:
  - {name: dc, kind: datacenter}
  - name: clinic-a
    kind: clinic
    links: [{name: wan-1, kind: vpn, expected_latency_ms: 4, tcp: "127.0.0.1:9"}]
  - name: clinic-b
    kind: clinic
    links: [{name: wan-1, kind: vpn, expected_latency_ms: 4, tcp: "127.0.0.1:9"}]
servers:
  - {name: stor-1, site: dc, role: storage}
  - {name: gw-a, site: clinic-a, role: edge-gateway, depends_on: [stor-1]}
  - {name: rep-1, site: dc, role: web-viewer, depends_on: [gw-a]}
  - {name: gw-b, site: clinic-b, role: edge-gateway, depends_on: [stor-1]}
"""


def test_a_down_site_holds_its_servers_and_their_dependents_nothing_else(tmp_path: Path) -> None:
    """The rules without a simulator: a link down holds the site's servers and what
    depends on them; a degraded link holds nothing but proves nothing; a rack-power
    read that is missing or hot is never read as fine."""
    from pacs_tui.inventory import load_inventory
    from pacs_tui.links import LinkReport
    from pacs_tui.plugin_api import Health, ProbeResult
    from pacs_tui.rehearsal.preflight import (
        PreflightFindings,
        hold_dependents,
        link_findings,
        rack_power_findings,
    )

    path = tmp_path / "inventory.yaml"
    path.write_text(INVENTORY)
    inventory = load_inventory(path)

    def report(site: str, verdict: Any, reason: str) -> LinkReport:
        link = inventory.sites[site].links[0]
        return LinkReport(site, "clinic", link, None, None, None, verdict, (reason,))

    found = PreflightFindings()
    reports = [report("clinic-a", "unreachable", "every sample lost"), report("clinic-b", "degraded", "TCP loss 40 %")]  # fmt: skip
    link_findings(reports, inventory.servers, found)
    hot = ProbeResult.make("inlet-hot", Health.DOWN, detail="inlet 41.0 °C ≥ 35 °C critical")
    rack_power_findings({"stor-1": None, "gw-b": hot}, found)
    hold_dependents(inventory, inventory.servers, found)
    assert found.held == {
        "gw-a": "clinic-a's WAN link is down",
        "gw-b": "inlet hot: inlet 41.0 °C ≥ 35 °C critical",
        "rep-1": "depends on gw-a, held",
    }
    assert found.not_proven == {
        "clinic-a": "WAN link down; held Off, not powered on: gw-a",
        "clinic-b": "WAN link degraded",
        "stor-1": "rack power not read",
        "gw-b": "rack-power inlet-hot",
    }
    assert [d.fault for d in found.detections] == [
        "clinic-link-down", "link-degraded", "rack-power-unknown", "inlet-hot",
    ]  # fmt: skip
    assert found.summary().startswith("0 of 2 WAN link(s) ok; rack power of 2 server(s) read")
