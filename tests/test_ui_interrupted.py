"""The control room and interrupted batches: it names the ones it finds, and leaves none.

Against the real simulator in-process (see ``test_ui_batch``). A batch whose
process is gone is written by a separate Python process that exits at once,
exactly what the audit sees after a ``kill -9``.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from test_ui_batch import control_room
from ui_pilot import notifications, wait_for

pytestmark = pytest.mark.timeout(240)

DEAD_WRITER = """
import json, sys
from pacs_tui.batch.audit import AuditLog
with AuditLog() as log:
    waves = json.dumps([["gw-northgate-1"], ["rtr-001"]])
    log.record("deadbeef0001", "plan", verb="off", detail=f"2 servers; waves {waves}")
    log.record("deadbeef0001", "batch-start", verb="off", detail="2 servers in 2 waves")
    log.record("deadbeef0001", "server", verb="off", server="gw-northgate-1", outcome="reached")
"""


async def test_the_room_names_a_batch_whose_process_died(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {**os.environ, "PACS_TUI_DATA_DIR": str(tmp_path / "data")}
    await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", DEAD_WRITER], env=env, check=True, timeout=60
    )
    async with control_room(tmp_path, monkeypatch) as room:
        app, pilot = room.app, room.pilot
        await wait_for(
            pilot,
            lambda: any("INTERRUPTED batch deadbeef0001" in n for n in notifications(app)),
            30,
            "a toast naming the interrupted batch",
        )
        toast = next(n for n in notifications(app) if "deadbeef0001" in n)
        assert "1/2 reached target (gw-northgate-1)" in toast
        assert "1 not confirmed at target: rtr-001" in toast
        # Before a plan on its servers, the room says where they are now.
        await room.mark("rtr-001")
        await room.plan_screen("O")
        assert any(
            "batch deadbeef0001 (off) was interrupted; its servers now: rtr-001 On" in n
            for n in notifications(app)
        ), notifications(app)
        await pilot.press("escape")
        assert room.power("rtr-001").value == "On"  # the plan sent nothing


@pytest.mark.parametrize("late", [False, True], ids=["prompt-answer", "late-answer"])
async def test_closing_the_room_mid_batch_leaves_no_interrupted_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, late: bool
) -> None:
    async with control_room(tmp_path, monkeypatch) as room:
        app, pilot, center = room.app, room.pilot, room.center
        if late:  # the reset is carried out at once; its answer comes 4 s later
            center.hosts["gw-northgate-1"].faults.bmc_post_answer_delay_s = 4.0
        else:  # answered at once, but the box never goes Off: the batch waits for it
            # (at time scale 0.02 a whole off batch takes 0.3 s: it must still run at close)
            center.hosts["gw-northgate-1"].faults.ignore_graceful_shutdown = True
        await room.mark("gw-northgate-1", "rtr-001")
        await room.plan_screen("O")
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.batch_active, 30, "the batch to start")
        batch = app.runner.batch_id if app.runner is not None else ""
        if late:
            await wait_for(
                pilot, lambda: bool(center.bmc and center.bmc.resets("gw-northgate-1")), 30,
                "the reset POST to reach gw-northgate-1's BMC",
            )  # fmt: skip
        # Leaving the block closes the room while the batch runs.
    assert center.bmc is not None
    sent = {name: center.bmc.resets(name) for name in ("gw-northgate-1", "rtr-001")}
    # One reset per server per step at most, none re-sent on close, however late the answer.
    assert all(len(types) <= 1 for types in sent.values()), sent
    if late:
        assert sent["gw-northgate-1"] == ["GracefulShutdown"], sent
    # Asked from another process: the room's own process still runs, so only the end row
    # (not liveness) can keep the batch from being named.
    rows = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "pacs_tui", "audit", "--json"],
        env={**os.environ, "PACS_TUI_DATA_DIR": str(tmp_path / "data")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    ends = [
        json.loads(line)
        for line in rows.stdout.splitlines()
        if line.startswith("{") and '"batch-end"' in line
    ]
    assert [e["batch"] for e in ends] == [batch], rows.stdout[-2000:]
    assert '"kind": "interrupted"' not in rows.stdout
    # What the BMCs received is what the audit says was sent, call for call.
    events = [json.loads(line) for line in rows.stdout.splitlines() if line.startswith("{")]
    for name, types in sent.items():
        audited = [e for e in events if e["kind"] == "step" and e["server"] == name]
        assert len([e for e in audited if "GracefulShutdown" in e["call"]]) == len(types), (
            name, audited, types,
        )  # fmt: skip
