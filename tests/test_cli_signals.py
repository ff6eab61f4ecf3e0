"""SIGTERM ends long-running commands as cleanly as Ctrl-C: every BMC session logged out.

The simulator (its own process) counts live Redfish sessions per BMC
(``GET /hosts/NAME/bmc`` → ``sessions``); a command killed by the default
SIGTERM action leaves one per BMC open until the BMC's idle timeout.
"""

from __future__ import annotations

import contextlib
import json
import os
import pty
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from sim_process import RunningSim, audit_rows, running_sim, wait_until

PACS_TUI = [sys.executable, "-m", "pacs_tui"]
WATCHED = ["web-001", "web-002", "ris-001"]


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSim]:
    out = tmp_path_factory.mktemp("signal-sim") / "dc"
    with running_sim(out, "--servers", "12", "--time-scale", "0.05") as running:
        yield running


def sessions(sim: RunningSim, names: list[str]) -> dict[str, int]:
    return {n: int(sim.control("GET", f"/hosts/{n}/bmc")["sessions"]) for n in names}


def start(sim: RunningSim, data: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PACS_TUI_DATA_DIR": str(data)}
    return subprocess.Popen(
        [*PACS_TUI, *args, "--inventory", str(sim.out / "inventory.yaml")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip


def stop(process: subprocess.Popen[str], sig: signal.Signals) -> tuple[int, str, str]:
    process.send_signal(sig)
    try:
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, out, err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_status_watch_logs_out_on_sigterm_and_sigint(
    sim: RunningSim, tmp_path: Path, sig: signal.Signals
) -> None:
    assert sessions(sim, WATCHED) == dict.fromkeys(WATCHED, 0)
    process = start(
        sim, tmp_path, "status", "--watch", "--interval", "0.2", "--probe", "power",
        "--select", ",".join(WATCHED),
    )  # fmt: skip
    try:
        wait_until(
            lambda: all(n >= 1 for n in sessions(sim, WATCHED).values()),
            timeout=60, what="a Redfish session on every watched BMC",
        )  # fmt: skip
    except AssertionError:
        process.kill()
        raise
    code, out, err = stop(process, sig)
    assert code == 0, err
    assert "Traceback" not in err
    assert "healthy" in out
    assert sessions(sim, WATCHED) == dict.fromkeys(WATCHED, 0)


def test_sigterm_at_the_confirmation_prompt_sends_nothing_and_logs_out(
    sim: RunningSim, tmp_path: Path
) -> None:
    target = ["web-001"]
    env = {**os.environ, "PACS_TUI_DATA_DIR": str(tmp_path)}
    process = subprocess.Popen(
        [*PACS_TUI, "power", "force-off", "--inventory", str(sim.out / "inventory.yaml"),
         "--select", target[0], "--poll", "0.1"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        prompt = ""
        while "Type 1 to confirm" not in prompt:
            char = process.stderr.read(1)
            assert char, f"no prompt; stderr so far: {prompt!r}"
            prompt += char
        assert sessions(sim, target)[target[0]] >= 1  # the plan read its PowerState
    except BaseException:
        process.kill()
        raise
    # stdin stays open until it exits: an EOF would answer the prompt (declined).
    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    err = prompt + process.stderr.read()
    assert process.stdin is not None
    process.stdin.close()
    assert code == 128 + signal.SIGTERM, err
    assert "SIGTERM: stopped; nothing was sent" in err and "Traceback" not in err
    assert sessions(sim, target) == {target[0]: 0}
    assert sim.control("GET", f"/hosts/{target[0]}/bmc")["resets"] == []
    rows = [(r["kind"], r["outcome"]) for r in audit_rows(tmp_path)]
    assert rows[-1] == ("abort", "stopped") and not any(k == "step" for k, _ in rows)


def test_sigterm_mid_batch_aborts_audits_and_logs_out(sim: RunningSim, tmp_path: Path) -> None:
    victims = ["bkp-arch-01", "ris-001", "gw-northgate-1"]
    for name in victims:  # slow BMCs, so the batch is still running at the signal
        sim.control("POST", f"/hosts/{name}/faults", {"bmc_delay_s": 0.3})
    before = {n: len(sim.control("GET", f"/hosts/{n}/bmc")["resets"]) for n in victims}
    process = start(
        sim, tmp_path, "power", "force-off", "--select", ",".join(victims), "--yes", "--json",
        "--concurrency", "1", "--poll", "0.1", "--timeout", "30",
    )  # fmt: skip
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if json.loads(line)["kind"] == "step":
                break
        code, out, err = stop(process, signal.SIGTERM)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for name in victims:
            sim.control("DELETE", f"/hosts/{name}/faults")
    assert code == 1, err  # not every server reached its target
    result = json.loads(out.splitlines()[-1])
    assert result["kind"] == "result" and result["aborted"]
    assert "aborted" in result["counts"]
    assert "SIGTERM: aborting" in err and "Traceback" not in err
    rows = audit_rows(tmp_path)
    abort = [r for r in rows if r["kind"] == "abort"]
    assert len(abort) == 1 and abort[0]["detail"].startswith("SIGTERM: stopped")
    assert rows[-1]["kind"] == "batch-end"  # ended, so not an interrupted batch
    assert sessions(sim, victims) == dict.fromkeys(victims, 0)
    # Each BMC received at most one reset, and exactly the ones the audit says were sent.
    total = 0
    for name in victims:
        received = sim.control("GET", f"/hosts/{name}/bmc")["resets"][before[name] :]
        audited = [r for r in rows if r["kind"] == "step" and r["server"] == name]
        assert len(received) <= 1, (name, received)
        assert len([r for r in audited if "ForceOff" in r["call"]]) == len(received), (
            name, audited, received,
        )  # fmt: skip
        total += len(received)
    assert total >= 1  # the signal came after a step, so something was sent
    # Put back what was forced off, for the other tests on this simulator.
    for name in victims:
        with contextlib.suppress(urllib.error.HTTPError):  # a strict BMC refuses On when On
            sim.control("POST", f"/hosts/{name}/power", {"reset_type": "On"})


@pytest.mark.parametrize("command", ["wall", "run"])
def test_the_wall_and_the_control_room_log_out_on_sigterm(
    sim: RunningSim, tmp_path: Path, command: str
) -> None:
    names = [s["name"] for s in sim.servers()]
    before = sessions(sim, names)  # what an earlier test may have left: compared, not assumed 0
    primary, secondary = pty.openpty()
    env = {**os.environ, "PACS_TUI_DATA_DIR": str(tmp_path), "TERM": "xterm-256color",
           "COLUMNS": "160", "LINES": "50"}  # fmt: skip
    process = subprocess.Popen(
        [*PACS_TUI, command, "--inventory", str(sim.out / "inventory.yaml")],
        stdin=secondary, stdout=secondary, stderr=secondary, env=env, start_new_session=True,
    )  # fmt: skip
    os.close(secondary)
    drained: list[bytes] = []

    def drain() -> None:  # the app blocks if nobody reads its screen
        with contextlib.suppress(OSError):
            while chunk := os.read(primary, 65536):
                drained.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        wait_until(
            lambda: [n for n, c in sessions(sim, names).items() if c > before[n]] or None,
            timeout=90, what="a Redfish session opened by the app",
        )  # fmt: skip
        time.sleep(1.0)  # let the first sweep log in to the rest
        logged_in = [n for n, c in sessions(sim, names).items() if c > before[n]]
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(primary)
    screen = b"".join(drained).decode(errors="replace")
    assert process.returncode == 0, screen[-2000:]
    assert "Traceback" not in screen
    assert logged_in and sessions(sim, logged_in) == {n: before[n] for n in logged_in}


REPAIR_REPORT = {
    "format": "pacs-tui-replication-check", "version": 2, "primary": "a", "replica": "b",
    "missing": [{"study_uid": "1.2.3.4"}], "partial": [],
}  # fmt: skip


@pytest.mark.parametrize("at_prompt", [True, False], ids=["at-prompt", "mid-repair"])
def test_sigterm_stops_a_replication_repair_with_its_stop_audited(
    tmp_path: Path, at_prompt: bool
) -> None:
    import socket

    # A "primary" that accepts the connection and never answers: the repair stalls in it.
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        "sites: [{name: dc-main, kind: datacenter}]\nservers:\n"
        f"  - {{name: a, site: dc-main, role: archive, dicom: {{host: 127.0.0.1, port: {port}, ae_title: A}}}}\n"
        f"  - {{name: b, site: dc-main, role: archive, dicom: {{host: 127.0.0.1, port: {port}, ae_title: B}}}}\n"
    )
    report = tmp_path / "check.json"
    report.write_text(json.dumps(REPAIR_REPORT))
    data = tmp_path / "data"
    args = ["replication", "repair", str(report), "-i", str(inventory), "--timeout", "120"]
    process = subprocess.Popen(
        [*PACS_TUI, *args, *([] if at_prompt else ["--yes"])],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PACS_TUI_DATA_DIR": str(data)},
    )  # fmt: skip
    try:
        if at_prompt:
            assert process.stderr is not None
            said = ""
            while "to confirm: " not in said:  # the prompt ends without a newline
                chunk = os.read(process.stderr.fileno(), 4096).decode()
                assert chunk, f"the repair ended before its prompt: {said}"
                said += chunk
            time.sleep(0.3)  # the prompt is printed just before its read starts
        else:
            listener.settimeout(60)
            held, _ = listener.accept()  # the repair is now waiting on the primary
        process.send_signal(signal.SIGTERM)
        # stdin stays open until the command exits: an EOF would be a declined answer.
        process.wait(timeout=30)
        assert process.stderr is not None
        err = process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        listener.close()
    assert process.returncode == 143, err
    assert "Traceback" not in err
    rows = audit_rows(data)
    kinds = [(r["kind"], r["outcome"]) for r in rows]
    if not at_prompt:
        held.close()
    if at_prompt:
        assert ("confirm", "refused") in kinds and "stopped by a signal" in rows[-1]["detail"]
        assert "batch-start" not in [k for k, _ in kinds]
    else:
        assert kinds[-1] == ("batch-end", "aborted"), kinds
        assert ("batch-start", "") in kinds
    audit = subprocess.run(
        [*PACS_TUI, "audit", "--interrupted"], capture_output=True, text=True, timeout=60,
        env={**os.environ, "PACS_TUI_DATA_DIR": str(data)},
    )  # fmt: skip
    assert "INTERRUPTED" not in audit.stdout + audit.stderr
