"""Two processes changing the custody board at once lose no change (the board's flock)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from pacs_tui.custody import CustodyBoard, CustodyState

CHANGES_EACH = 100

# Each worker opens its own board (as the CLI and the control room do), waits for
# the start signal so both run at the same moment, then advances its own servers
# one change at a time through the public API.
WORKER = """\
import sys, time
from pathlib import Path
from pacs_tui.batch.audit import AuditLog
from pacs_tui.custody import CustodyBoard

board_path, go, audit_path, prefix, count, total = sys.argv[1:7]
names = [f"{p}-{i:03d}" for p in ("a", "b") for i in range(int(total))]
with AuditLog(Path(audit_path), operator=prefix) as audit:
    board = CustodyBoard(names, path=Path(board_path), audit=audit)
    print("ready", flush=True)
    while not Path(go).exists():
        time.sleep(0.001)
    for i in range(int(count)):
        board.advance([f"{prefix}-{i:03d}"])
print("done", flush=True)
"""


def test_two_processes_making_100_changes_each_lose_none(tmp_path: Path) -> None:
    board_path = tmp_path / "custody.json"
    go = tmp_path / "go"
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WORKER,
                str(board_path),
                str(go),
                str(tmp_path / f"audit-{prefix}.sqlite3"),
                prefix,
                str(CHANGES_EACH),
                str(CHANGES_EACH),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for prefix in ("a", "b")
    ]
    for worker in workers:
        assert worker.stdout is not None
        assert worker.stdout.readline() == "ready\n"
    started = time.monotonic()
    go.touch()
    for worker in workers:
        _out, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err
    elapsed = time.monotonic() - started
    names = [f"{p}-{i:03d}" for p in ("a", "b") for i in range(CHANGES_EACH)]
    board = CustodyBoard(names, path=board_path)
    lost = [n for n in names if board.state(n) is not CustodyState.SHUT_DOWN]
    assert lost == [], f"{len(lost)} of {len(names)} changes lost ({elapsed:.1f} s)"
    assert all(board.since(n) for n in names)
    saved = json.loads(board_path.read_text())["servers"]
    assert len(saved) == 2 * CHANGES_EACH
    # Nothing else was left behind: no temporary files next to the board.
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")) == []
