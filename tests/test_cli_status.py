"""``pacs-tui status`` against the simulator in its own process: JSON shape and exit codes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from sim_process import RunningSim, running_sim, wait_until

PACS_TUI = [sys.executable, "-m", "pacs_tui"]
PROBE_KEYS = ("power", "network", "dicom", "ssh")


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSim]:
    out = tmp_path_factory.mktemp("status") / "dc"
    with running_sim(out, "--servers", "12", "--time-scale", "0.05") as running:
        yield running


def status(sim: RunningSim, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PACS_TUI, "status", "--inventory", str(sim.out / "inventory.yaml"), *args],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def control(sim: RunningSim, path: str, body: dict) -> None:
    request = urllib.request.Request(
        sim.control_url + path, data=json.dumps(body).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        assert reply.status in (200, 202)


def test_json_has_every_server_and_probe_and_exit_0_when_healthy(sim: RunningSim) -> None:
    done = status(sim, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    views = json.loads(done.stdout)
    assert [v["name"] for v in views] == [s["name"] for s in sim.servers()]
    for view in views:
        assert {"name", "site", "role", *PROBE_KEYS} <= set(view)
        for key in PROBE_KEYS:
            assert set(view[key]) >= {"state", "latency_ms", "detail", "age_s"}
        assert view["power"]["state"] == "On"
        assert view["network"]["state"] == "ok" and view["network"]["latency_ms"] is not None
        rack = view["rack-power"]  # its draw and inlet, as numbers
        assert rack["state"] == "ok" and rack["watts"] > 0 and rack["inlet_c"] > 0
    storage = next(v for v in views if v["role"] == "storage")
    assert storage["dicom"]["state"] == "n/a"
    archive = next(v for v in views if v["role"] == "archive")
    assert archive["dicom"]["state"] == "ok"
    password = sim.bmc_credentials()[1]
    assert password not in done.stdout and password not in done.stderr


def test_select_and_table_output(sim: RunningSim) -> None:
    done = status(sim, "--select", "role=archive")
    assert done.returncode == 0, done.stderr
    archives = [s["name"] for s in sim.servers("archive")]
    body = done.stdout
    assert all(name in body for name in archives)
    assert "stor-001" not in body
    assert f"{len(archives)}/{len(archives)} servers healthy" in body
    assert re.search(r"^\S+ +dc-main +archive +On \d+ms .* ok \d+W$", body, re.M), body


def test_bad_selector_points_at_the_character(sim: RunningSim) -> None:
    done = status(sim, "--select", "role=archive & (site=x")
    assert done.returncode == 2
    assert "expected ')'" in done.stderr and "^" in done.stderr


def test_bad_inventory_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "inventory.yaml"
    bad.write_text("servers:\n  - name: a\n")
    done = subprocess.run(
        [*PACS_TUI, "status", "--inventory", str(bad)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert f"{bad}:" in done.stderr


def test_a_powered_off_server_makes_status_exit_1(sim: RunningSim) -> None:
    victim = sim.servers("web-viewer")[0]["name"]
    control(sim, f"/hosts/{victim}/power", {"reset_type": "ForceOff"})
    try:
        done = wait_until(
            lambda: (r := status(sim, "--json", "--select", victim)).returncode == 1 and r,
            30,
            0.2,
            "status to see the server off",
        )
        view = json.loads(done.stdout)[0]
        assert view["power"]["state"] == "Off"
        assert view["ssh"]["state"] != "ok"
        assert view["healthy"] is False
    finally:
        control(sim, f"/hosts/{victim}/power", {"reset_type": "On"})


def test_watch_keeps_printing_fresh_readings(sim: RunningSim) -> None:
    process = subprocess.Popen(
        [*PACS_TUI, "status", "--inventory", str(sim.out / "inventory.yaml"), "--select",
         "role=archive", "--json", "--watch", "--interval", "0.5"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    decoder = json.JSONDecoder()
    documents: list[list[dict]] = []
    buffer = ""
    try:
        assert process.stdout is not None
        while len(documents) < 3:
            line = process.stdout.readline()
            assert line, (
                f"status --watch ended early: {process.stderr.read() if process.stderr else ''}"
            )
            buffer += line
            try:
                document, end = decoder.raw_decode(buffer.lstrip())
            except json.JSONDecodeError:
                continue
            documents.append(document)
            buffer = buffer.lstrip()[end:]
    finally:
        process.terminate()
        process.wait(timeout=30)
    archives = {s["name"] for s in sim.servers("archive")}
    assert all({v["name"] for v in doc} == archives for doc in documents)
    # The monitor keeps polling: readings in the last document are younger than the watch.
    last = documents[-1]
    assert all(v["network"]["age_s"] is not None and v["network"]["age_s"] < 10 for v in last)
