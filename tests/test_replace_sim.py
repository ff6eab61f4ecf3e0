"""``pacs-tui replace`` against the simulator in its own process (Redfish over TLS,
SSH and the control API on loopback): a server dead on arrival is replaced by a
spare from the pool, and afterwards is powered and polled at the spare's BMC
under its own name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sim_process import RunningSim, audit_rows, running_sim, wait_until

PACS_TUI = [sys.executable, "-m", "pacs_tui"]
SERVER = "db-001"
SPARE = "spare-01"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSim]:
    out = tmp_path_factory.mktemp("replace") / "dc"
    with running_sim(out, "--servers", "12", "--time-scale", "0.05") as running:
        yield running


def run(
    sim: RunningSim, data: Path, *args: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PACS_TUI_DATA_DIR=str(data))
    return subprocess.run(
        [*PACS_TUI, *args], input=stdin, capture_output=True, text=True, timeout=120, env=env
    )


def power_state(sim: RunningSim, name: str) -> str:
    return str(sim.control("GET", f"/hosts/{name}")["power_state"])


def test_a_dead_on_arrival_server_is_replaced_by_a_spare(sim: RunningSim, tmp_path: Path) -> None:
    data = tmp_path / "data"
    inventory = str(sim.out / "inventory.yaml")
    spare = next(s for s in sim.inventory["spares"] if s["name"] == SPARE)
    address = next(s for s in sim.servers() if s["name"] == SERVER)["ssh"]["host"]
    port = sim.defaults["ssh"]["port"]

    # The truck arrives: db-001 was shut down, and does not come back.
    sim.control("POST", f"/hosts/{SERVER}/faults", {"dead_on_arrival": True})
    sim.control("POST", f"/hosts/{SERVER}/power", {"reset_type": "ForceOff"})
    wait_until(lambda: power_state(sim, SERVER) == "Off", 10, what="db-001 off")
    sim.control("POST", f"/hosts/{SERVER}/power", {"reset_type": "On"})
    time.sleep(0.5)  # 0.1 s would be the whole PoweringOn at this time scale
    assert power_state(sim, SERVER) == "Off"

    # A spare whose BMC reports another serial than the inventory's is refused.
    wrong = sim.out / "inventory-wrong-serial.yaml"
    wrong.write_text(
        (sim.out / "inventory.yaml").read_text().replace(spare["serial"], "SPWRONG0000")
    )
    refused = run(sim, data, "replace", SERVER, "--with", SPARE, "-i", str(wrong), "--yes")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert f"reports serial {spare['serial']}" in refused.stderr
    assert "nothing was changed" in refused.stderr and not data.exists()

    # Dry run with the spare still on the bench: the old BMC answers, so a warning.
    dry = run(sim, data, "replace", SERVER, "--with", SPARE, "-i", inventory, "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert f"-> {spare['serial']} (read from the spare's BMC)" in dry.stdout
    assert "still answers" in dry.stdout and "dry run: nothing was changed" in dry.stdout
    assert not data.exists()

    # Racked in db-001's place: the old BMC is gone, the spare's manages the host.
    sim.control("POST", f"/spares/{SPARE}/rack", {"server": SERVER})
    done = run(
        sim, data, "replace", SERVER, "--with", SPARE, "-i", inventory, stdin=f"{SERVER}\ny\n"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "old BMC does not answer" in done.stdout
    assert f"{SERVER}: replaced by {SPARE} (serial {spare['serial']}); custody: racked" in (
        done.stdout
    )
    assert "SSH: removed 1 old key line(s)" in done.stdout
    known = (sim.out / "known_hosts").read_text()
    assert f"[{address}]:{port} " not in known and known.strip()  # only db-001's line went

    recorded = json.loads((data / "replacements.json").read_text())["replacements"]
    assert [(r["server"], r["spare"], r["serial"], r["bmc_address"]) for r in recorded] == [
        (SERVER, SPARE, spare["serial"], spare["bmc"]["address"])
    ]
    assert sorted(recorded[0]["macs"]) == sorted(spare["macs"])
    rows = audit_rows(data)
    assert [(r["kind"], r["server"], r["outcome"]) for r in rows] == [
        ("replace", SERVER, "replaced"),
        ("custody-correction", SERVER, "racked"),
    ]
    custody = json.loads((data / "custody.json").read_text())
    assert custody["servers"][SERVER]["state"] == "racked"

    # The spare is used now.
    again = run(sim, data, "replace", SERVER, "--with", SPARE, "-i", inventory, "--dry-run")
    assert again.returncode == 2 and "already took db-001's place" in again.stderr

    # Powered on through the spare's BMC, under db-001's name; status reads it there.
    on = run(
        sim, data, "power", "on", "-i", inventory, "-s", f"name={SERVER}", "--yes",
        "--gate", "database=power",
    )  # fmt: skip
    assert on.returncode == 0, on.stdout + on.stderr
    assert f"https://{spare['bmc']['address']}:" in on.stdout
    status = run(sim, data, "status", "-i", inventory, "-s", f"name={SERVER}", "--json")
    view = json.loads(status.stdout)[0]
    assert view["name"] == SERVER and view["power"]["state"] == "On", status.stdout
    # The new box's SSH key is not trusted by itself: the old one was forgotten.
    assert view["ssh"]["state"] != "ok"
    assert sim.bmc(SERVER)["base_url"].endswith(f"{spare['bmc']['address']}:8443")
