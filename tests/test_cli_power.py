"""``pacs-tui power`` as a subprocess against the simulated data center (its own process).

Dry run, refusal, read-only, typed confirmation, exit codes, and a kill -9
in the middle of a batch that must lose no completed step.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from peers import require_module
from sim_process import RunningSim, audit_rows, running_sim

PACS_TUI = [sys.executable, "-m", "pacs_tui"]
FAST = ["--poll", "0.1", "--gate-timeout", "30", "--timeout", "30"]


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSim]:
    out = tmp_path_factory.mktemp("power-sim") / "dc"
    with running_sim(out, "--servers", "12", "--time-scale", "0.05") as running:
        yield running


def power(
    sim: RunningSim, data: Path, *args: str, stdin: str = "", inventory: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PACS_TUI_DATA_DIR": str(data)}
    return subprocess.run(
        [*PACS_TUI, "power", *args, "--inventory", str(inventory or sim.out / "inventory.yaml")],
        input=stdin, capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip


def dmtf(sim: RunningSim, name: str, path: str | None = None) -> dict[str, Any]:
    """GET a server's ComputerSystem (or ``path``) with the DMTF reference client."""
    require_module("redfish")
    import redfish

    username, password = sim.bmc_credentials()
    server = next(s for s in sim.servers() if s["name"] == name)
    client = redfish.redfish_client(
        base_url=f"https://{server['bmc']['address']}:{sim.defaults['bmc']['port']}",
        username=username, password=password, cafile=str(sim.out / "ca.pem"), timeout=10,
    )  # fmt: skip
    client.login(auth="session")
    try:
        if path is None:
            path = client.get("/redfish/v1/Systems").dict["Members"][0]["@odata.id"]
        return dict(client.get(path).dict)
    finally:
        client.logout()


def states(sim: RunningSim, names: list[str]) -> dict[str, str]:
    return {n: dmtf(sim, n)["PowerState"] for n in names}


def test_dry_run_shows_every_call_and_changes_nothing(sim: RunningSim, tmp_path: Path) -> None:
    names = [s["name"] for s in sim.servers()]
    before = states(sim, names)
    tasks_before = dmtf(sim, "db-001", "/redfish/v1/TaskService/Tasks")["Members"]
    done = power(sim, tmp_path, "off", "--select", "*", "--dry-run", "--json")
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert plan["kind"] == "plan" and not plan["refusals"]
    order = [[s["server"] for s in w["servers"]] for w in plan["waves"]]
    flat = [n for wave in order for n in wave]
    assert sorted(flat) == sorted(names)
    assert flat.index("img-001") < flat.index("arch-001") < flat.index("db-001")
    arch = next(s for w in plan["waves"] for s in w["servers"] if s["server"] == "arch-001")
    calls = [step["call"] for step in arch["steps"]]
    assert calls[0].startswith("ssh pacsops@") and calls[0].endswith(
        "systemctl stop pacs pacs-archive"
    )
    assert calls[1].startswith("POST https://") and calls[1].endswith("ResetType=GracefulShutdown")
    text = power(sim, tmp_path, "off", "--select", "*", "--dry-run")
    assert text.returncode == 0 and "DRY RUN" in text.stdout and "wave 1" in text.stdout
    assert states(sim, names) == before
    # A task-monitor BMC records every reset as a task: no new task, no POST.
    assert dmtf(sim, "db-001", "/redfish/v1/TaskService/Tasks")["Members"] == tasks_before
    rows = audit_rows(tmp_path)
    assert {r["kind"] for r in rows} == {"plan"} and {r["outcome"] for r in rows} == {"dry-run"}


def test_unsafe_plan_is_refused_with_the_reason(sim: RunningSim, tmp_path: Path) -> None:
    done = power(sim, tmp_path, "off", "--select", "arch-001", "--yes")
    assert done.returncode == 2
    assert "arch-001: dependent img-001 is not selected and is still On" in done.stderr
    assert states(sim, ["arch-001"]) == {"arch-001": "On"}
    kinds = [(r["kind"], r["outcome"]) for r in audit_rows(tmp_path)]
    assert ("plan", "refused") in kinds and ("refused", "refused") in kinds
    assert not any(k == "step" for k, _ in kinds)


def test_read_only_refuses_every_power_verb(sim: RunningSim, tmp_path: Path) -> None:
    for verb in ("off", "on", "restart", "force-off"):
        done = power(sim, tmp_path, verb, "--select", "web-001", "--yes", "--read-only")
        assert done.returncode == 2, done.stderr
        assert "read-only" in done.stderr
    document = yaml.safe_load((sim.out / "inventory.yaml").read_text())
    document["read_only"] = True
    marked = sim.out / "inventory-read-only.yaml"
    marked.write_text(yaml.safe_dump(document, sort_keys=False))
    done = power(sim, tmp_path, "force-off", "--select", "web-001", "--yes", inventory=marked)
    assert done.returncode == 2 and "read_only" in done.stderr
    # Refused before any plan: nothing was read from a BMC, nothing audited.
    assert not (tmp_path / "audit.sqlite3").exists()
    assert states(sim, ["web-001"]) == {"web-001": "On"}


def test_force_off_needs_the_typed_count(sim: RunningSim, tmp_path: Path) -> None:
    declined = power(sim, tmp_path, "force-off", "--select", "web-001", *FAST, stdin="yes\n")
    assert declined.returncode == 1
    assert "Type 1 to confirm" in declined.stderr and "not confirmed" in declined.stderr
    assert states(sim, ["web-001"]) == {"web-001": "On"}
    typed = power(sim, tmp_path, "force-off", "--select", "web-001", *FAST, stdin="1\n")
    assert typed.returncode == 0, typed.stdout + typed.stderr
    assert states(sim, ["web-001"]) == {"web-001": "Off"}
    confirms = [r["outcome"] for r in audit_rows(tmp_path) if r["kind"] == "confirm"]
    assert confirms == ["declined", "confirmed"]
    # More servers than the threshold need the count too; --yes skips the question.
    many = power(sim, tmp_path, "on", "--select", "web-001", "--confirm-threshold", "0", *FAST)
    assert many.returncode == 1 and "Type 1" in many.stderr
    back = power(sim, tmp_path, "on", "--select", "web-001", "--yes", "--json", *FAST)
    assert back.returncode == 0, back.stderr
    result = json.loads(back.stdout.splitlines()[-1])
    assert result["kind"] == "result" and result["ok"] and result["counts"] == {"reached": 1}
    assert states(sim, ["web-001"]) == {"web-001": "On"}


def test_exit_1_when_a_server_misses_its_target(sim: RunningSim, tmp_path: Path) -> None:
    sim.control("POST", "/hosts/web-002/faults", {"ignore_graceful_shutdown": True})
    try:
        done = power(sim, tmp_path, "off", "--select", "web-002", "--yes", "--json",
                     "--poll", "0.1", "--timeout", "0.6")  # fmt: skip
        text = power(sim, tmp_path, "off", "--select", "web-002", "--yes",
                     "--poll", "0.1", "--timeout", "0.6")  # fmt: skip
    finally:
        sim.control("DELETE", "/hosts/web-002/faults")
    assert done.returncode == 1
    result = json.loads(done.stdout.splitlines()[-1])
    assert not result["ok"] and result["servers"][0]["status"] == "failed"
    assert states(sim, ["web-002"]) == {"web-002": "On"}
    # Its units were stopped before the shutdown the OS ignored: the PACS is down on a live box.
    host = next(h for h in sim.control("GET", "/hosts") if h["name"] == "web-002")
    units = list(host["units"])
    assert set(host["units"].values()) == {"inactive"}
    assert result["units_stopped_on"] == {"web-002": units}
    assert text.returncode == 1
    last = text.stdout.strip().splitlines()[-1]
    assert last == (
        f"WARNING: 1 server still On with their PACS units stopped: web-002 ({', '.join(units)})"
    )
    ends = [r for r in audit_rows(tmp_path) if r["kind"] == "batch-end"]
    assert all("still On with their PACS units stopped: web-002" in r["detail"] for r in ends)
    # Leave the shared simulator as found: a reboot starts the units again.
    sim.control("POST", "/hosts/web-002/power", {"reset_type": "ForceRestart"})


def test_usage_errors_exit_2(sim: RunningSim, tmp_path: Path) -> None:
    bad_select = power(sim, tmp_path, "off", "--select", "role=(")
    assert bad_select.returncode == 2 and "--select" in bad_select.stderr
    nothing = power(sim, tmp_path, "off", "--select", "no-such-*")
    assert nothing.returncode == 2 and "matches no server" in nothing.stderr
    bad_gate = power(sim, tmp_path, "on", "--select", "web-001", "--gate", "web-viewer=magic")
    assert bad_gate.returncode == 2 and "--gate" in bad_gate.stderr


def test_kill_9_mid_batch_loses_no_completed_step(sim: RunningSim, tmp_path: Path) -> None:
    victims = ["ris-001", "gw-northgate-1", "bkp-arch-01", "bkp-stor-01"]
    for name in victims:  # slow BMCs, so the batch is still running when it is killed
        sim.control("POST", f"/hosts/{name}/faults", {"bmc_delay_s": 0.2})
    env = {**os.environ, "PACS_TUI_DATA_DIR": str(tmp_path)}
    process = subprocess.Popen(
        [*PACS_TUI, "power", "off", "--inventory", str(sim.out / "inventory.yaml"),
         "--select", ",".join(victims), "--yes", "--json", "--concurrency", "1", *FAST],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    reported: list[dict[str, Any]] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            event = json.loads(line)
            if event["kind"] == "step":
                reported.append(event)
            if len(reported) >= 4:
                process.send_signal(signal.SIGKILL)
                break
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for name in victims:
            sim.control("DELETE", f"/hosts/{name}/faults")
    assert process.returncode == -signal.SIGKILL
    assert len(reported) >= 4
    db = sqlite3.connect(tmp_path / "audit.sqlite3")
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = set(
            db.execute("SELECT batch, server, call, outcome FROM events WHERE kind = 'step'")
        )
        kinds = {k for (k,) in db.execute("SELECT kind FROM events")}
    finally:
        db.close()
    for event in reported:
        assert (event["batch"], event["server"], event["call"], event["outcome"]) in rows
    assert "batch-end" not in kinds  # it really died mid-batch


def test_an_interrupted_batch_is_named_until_acknowledged(tmp_path: Path) -> None:
    """kill -9 mid-batch: ``audit`` and the next ``power`` name it and the servers not at target."""
    with running_sim(tmp_path / "dc", "--servers", "12", "--time-scale", "0.05") as own:
        _interrupted_batch_is_named(own, tmp_path / "data")


def _interrupted_batch_is_named(sim: RunningSim, data: Path) -> None:
    victims = ["web-001", "web-002", "gw-northgate-1", "rtr-001"]
    for name in victims:  # slow BMCs, so the batch is still running when it is killed
        sim.control("POST", f"/hosts/{name}/faults", {"bmc_delay_s": 0.3})
    env = {**os.environ, "PACS_TUI_DATA_DIR": str(data)}

    def pacs(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*PACS_TUI, *args], capture_output=True, text=True, env=env, timeout=120
        )

    process = subprocess.Popen(
        [*PACS_TUI, "power", "off", "--inventory", str(sim.out / "inventory.yaml"),
         "--select", ",".join(victims), "--yes", "--json", "--concurrency", "1", *FAST],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    reached: list[str] = []
    stopped_on: str = ""
    batch = ""
    running_seen = None
    try:
        assert process.stdout is not None
        for line in process.stdout:
            event = json.loads(line)
            batch = event.get("batch", batch)
            if event["kind"] == "step" and running_seen is None:
                # The reset follows a unit stop at once (the action borrows the power
                # probe's logged-in client: one POST). Servers after this first one (one
                # at a time) get a BMC slow enough for the kill below to land before their
                # reset is carried out.
                for name in victims:
                    if name != event["server"]:
                        sim.control("POST", f"/hosts/{name}/faults", {"bmc_delay_s": 3.0})
                # While its process lives, the batch is running, not interrupted.
                running_seen = pacs("audit", "--interrupted")
            if event["kind"] == "server" and event["outcome"] == "reached":
                reached.append(event["server"])
            if (
                reached and event["kind"] == "step" and event["outcome"] == "ok"
                and "systemctl stop" in event["call"] and event["server"] not in reached
            ):  # fmt: skip
                stopped_on = event["server"]
                process.send_signal(signal.SIGKILL)
                break
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for name in victims:
            sim.control("DELETE", f"/hosts/{name}/faults")
    assert process.returncode == -signal.SIGKILL and stopped_on, process.stderr
    assert running_seen is not None and running_seen.returncode == 0
    assert "INTERRUPTED" not in running_seen.stdout
    now = states(sim, victims)
    assert now[stopped_on] == "On"  # its units are stopped, its OS still runs
    not_at_target = [n for n in victims if n not in reached]
    assert all(now[n] == "Off" for n in reached)
    host = next(h for h in sim.control("GET", "/hosts") if h["name"] == stopped_on)
    assert set(host["units"].values()) == {"inactive"}, host["units"]
    units = " ".join(host["units"])

    audit = pacs("audit")
    assert audit.returncode == 0, audit.stderr
    named = [line for line in audit.stdout.splitlines() if line.startswith("INTERRUPTED")]
    assert len(named) == 1 and f"batch {batch}: off started" in named[0]
    assert f"{len(reached)}/4 reached target ({', '.join(reached)})" in named[0]
    assert f"{len(not_at_target)} not confirmed at target: " in named[0]
    assert all(n in named[0].split("not confirmed at target: ")[1] for n in not_at_target)
    assert f"units stopped and not started again: {stopped_on} ({units})" in named[0]
    assert "its process" in named[0] and "is gone" in named[0]

    inventory = str(sim.out / "inventory.yaml")
    dry = pacs("power", "on", "--inventory", inventory, "--select", ",".join(victims), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"INTERRUPTED batch {batch}" in dry.stderr
    assert f"units stopped and not started again: {stopped_on}" in dry.stderr
    current = dry.stderr.split("servers now (read from their BMCs): ")[1].splitlines()[0]
    assert f"{stopped_on} On" in current
    assert all(f"{n} {now[n]}" in current for n in not_at_target)
    assert dry.stderr.index("INTERRUPTED") < dry.stderr.index("servers now")
    as_json = pacs(
        "power", "on", "--inventory", inventory, "--select", stopped_on, "--dry-run", "--json"
    )
    plan = json.loads(as_json.stdout)
    assert [i["batch"] for i in plan["interrupted"]] == [batch]
    assert plan["interrupted"][0]["units_stopped"] == {stopped_on: units.split()}

    acked = pacs("audit", "--ack", batch)
    assert acked.returncode == 0 and f"acknowledged interrupted batch {batch}" in acked.stdout
    assert "INTERRUPTED" not in pacs("audit").stdout
    again = pacs("audit", "--ack", batch)
    assert again.returncode == 2 and "already acknowledged" in again.stderr
    assert "Traceback" not in again.stderr
    unknown = pacs("audit", "--ack", "no-such-batch")
    assert unknown.returncode == 2 and "no batch 'no-such-batch'" in unknown.stderr
    acks = [r for r in audit_rows(data) if r["kind"] == "ack"]
    assert [(a["batch"], a["outcome"]) for a in acks] == [(batch, "acknowledged")]
