"""The audit log: SQLite in WAL mode, append-only, no secrets, readable by ``pacs-tui audit``."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pacs_tui.batch.audit import (
    AuditLog,
    default_audit_path,
    host_name,
    parse_since,
    process_token,
    utc_stamp,
)
from pacs_tui.batch.interrupted import (
    Liveness,
    NotInterrupted,
    acknowledge,
    interrupted_batches,
)
from pacs_tui.credentials import REDACTOR, Secret

PACS_TUI = [sys.executable, "-m", "pacs_tui"]


def test_default_path_follows_the_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PACS_TUI_DATA_DIR", str(tmp_path / "data"))
    assert default_audit_path() == tmp_path / "data" / "audit.sqlite3"
    monkeypatch.delenv("PACS_TUI_DATA_DIR")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_audit_path() == tmp_path / "xdg" / "pacs-tui" / "audit.sqlite3"


def test_events_are_committed_in_wal_mode_and_private(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite3"
    log = AuditLog(path, operator="alice")
    log.record("b1", "step", verb="off", server="db-001", wave=2, call="POST x", outcome="ok")
    # Another connection sees the row at once: it was committed, not buffered.
    other = sqlite3.connect(path)
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    rows = other.execute("SELECT operator, kind, server, wave, outcome FROM events").fetchall()
    assert rows == [("alice", "step", "db-001", 2, "ok")]
    other.close()
    assert path.stat().st_mode & 0o777 == 0o600
    assert log.integrity() == "ok"
    log.close()


def test_the_log_is_append_only(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.sqlite3")
    log.record("b1", "plan", verb="off", outcome="planned")
    raw = sqlite3.connect(tmp_path / "audit.sqlite3")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        raw.execute("UPDATE events SET outcome = 'nothing happened'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        raw.execute("DELETE FROM events")
    raw.close()
    assert [e.outcome for e in log.events()] == ["planned"]
    log.close()


def test_secrets_never_reach_the_log(tmp_path: Path) -> None:
    secret = "hunter2-" + "very-secret-pw"
    REDACTOR.add(Secret(secret))
    log = AuditLog(tmp_path / "audit.sqlite3")
    log.record("b1", "step", call=f"POST /x?pw={secret}", detail=f"BMC said: bad password {secret}")
    log.close()
    assert secret.encode() not in (tmp_path / "audit.sqlite3").read_bytes()
    wal = tmp_path / "audit.sqlite3-wal"
    assert not wal.exists() or secret.encode() not in wal.read_bytes()
    events = AuditLog(tmp_path / "audit.sqlite3").events()
    assert "******" in events[0].detail and "******" in events[0].call


def test_since_accepts_durations_and_iso_times() -> None:
    now = datetime(2024, 5, 17, 22, 0, tzinfo=UTC)
    assert parse_since("90m", now) == "2024-05-17T20:30:00.000000Z"
    assert parse_since("2d", now) == "2024-05-15T22:00:00.000000Z"
    assert parse_since("2024-05-17T21:00:00Z", now) == "2024-05-17T21:00:00.000000Z"
    assert parse_since("2024-05-17T23:00:00+02:00") == "2024-05-17T21:00:00.000000Z"
    with pytest.raises(ValueError, match="duration"):
        parse_since("last tuesday")
    # Fixed-width stamps: text order is time order.
    assert utc_stamp(datetime(2024, 1, 1, 9, tzinfo=UTC)) < utc_stamp(
        datetime(2024, 1, 1, 10, tzinfo=UTC)
    )


def test_audit_cli_prints_text_and_json_and_filters(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    env = {**os.environ, "PACS_TUI_DATA_DIR": str(data)}
    log = AuditLog(data / "audit.sqlite3", operator="bob")
    log.record("old", "plan", verb="off", outcome="planned")
    log.close()
    # An old row, written with a stamp from 2020 straight through SQLite (triggers allow INSERT).
    raw = sqlite3.connect(data / "audit.sqlite3")
    raw.execute(
        "INSERT INTO events (ts, batch, operator, kind) VALUES (?, 'ancient', 'bob', 'plan')",
        ("2020-01-01T00:00:00.000000Z",),
    )
    raw.commit()
    raw.close()
    done = subprocess.run(
        [*PACS_TUI, "audit", "--json"], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["batch"] for r in rows] == ["old", "ancient"]
    recent = subprocess.run(
        [*PACS_TUI, "audit", "--since", "1h"], capture_output=True, text=True, env=env, timeout=60
    )
    assert recent.returncode == 0
    assert "old" in recent.stdout and "ancient" not in recent.stdout and "bob" in recent.stdout
    bad = subprocess.run(
        [*PACS_TUI, "audit", "--since", "soon"], capture_output=True, text=True, env=env, timeout=60
    )
    assert bad.returncode == 2 and "--since" in bad.stderr


# -- interrupted batches: which start rows with no end are named ----------------------------


def add_row(path: Path, batch: str, kind: str, **columns: Any) -> None:
    """A row as another process (host, pid, proc) would have written it."""
    row = {"ts": utc_stamp(), "batch": batch, "operator": "carol", "kind": kind, **columns}
    raw = sqlite3.connect(path)
    raw.execute(
        f"INSERT INTO events ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})",
        tuple(row.values()),
    )
    raw.commit()
    raw.close()


def start_batch(path: Path, batch: str, servers: list[str], **process: Any) -> None:
    waves = json.dumps([servers])
    add_row(path, batch, "plan", verb="off", outcome="planned", detail=f"off: x; waves {waves}")
    add_row(path, batch, "batch-start", verb="off", **process)


def test_a_batch_is_interrupted_only_when_its_process_is_gone(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite3"
    AuditLog(path).close()
    here = host_name()
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        alive = {"host": here, "pid": sleeper.pid, "proc": process_token(sleeper.pid)}
        start_batch(path, "live", ["a"], **alive)
        # Our own pid, but a process token from another start: the pid was reused.
        start_batch(path, "reused", ["b"], host=here, pid=os.getpid(), proc="boot/1")
        start_batch(path, "elsewhere", ["c"], host="other-laptop", pid=sleeper.pid, proc="x/1")
        names = {i.batch: i for i in interrupted_batches(path)}
        assert set(names) == {"reused", "elsewhere"}
        assert names["reused"].process is Liveness.GONE
        assert names["elsewhere"].process is Liveness.UNKNOWN
        assert "cannot check it" in names["elsewhere"].line()
        with AuditLog(path) as log, pytest.raises(NotInterrupted, match="still running"):
            acknowledge(log, "live")
    finally:
        sleeper.kill()
        sleeper.wait()
    assert {i.batch for i in interrupted_batches(path)} == {"live", "reused", "elsewhere"}


def test_what_an_interrupted_batch_reached_and_what_resolves_it(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite3"
    AuditLog(path).close()
    gone = {"host": "other-laptop", "pid": 1, "proc": ""}
    start_batch(path, "b1", ["web-1", "web-2", "app-1", "db-1"], **gone)
    add_row(path, "b1", "server", server="web-1", outcome="reached")
    add_row(path, "b1", "server", server="web-2", outcome="skipped")
    add_row(
        path,
        "b1",
        "step",
        server="app-1",
        outcome="ok",
        call="ssh ops@h:22 systemctl stop pacs pacs-web",
    )
    add_row(
        path,
        "b1",
        "step",
        server="db-1",
        outcome="failed (ignored)",
        call="ssh ops@h:22 systemctl stop pg",
    )
    [item] = interrupted_batches(path)
    assert item.reached == ("web-1", "web-2")
    assert item.not_reached == ("app-1", "db-1")
    assert item.units_stopped == {"app-1": ("pacs", "pacs-web")}  # db-1's stop failed
    assert (
        "2/4 reached target (web-1, web-2); 2 not confirmed at target: app-1, db-1" in item.line()
    )
    assert "PACS units stopped and not started again: app-1 (pacs pacs-web)" in item.line()
    # A later batch on some of its servers ended: they drop out, the batch stays named.
    start_batch(path, "b2", ["app-1"], **gone)
    add_row(path, "b2", "batch-end", outcome="ok")
    [item] = interrupted_batches(path)
    assert item.not_reached == ("db-1",) and item.units_stopped == {}
    # One that is only planned (a dry run) or still without an end resolves nothing.
    add_row(
        path, "b3", "plan", outcome="dry-run", detail='off: x; waves [["web-1","web-2","db-1"]]'
    )
    assert [i.batch for i in interrupted_batches(path)] == ["b1"]
    # Every server of it in later ended batches: no longer named.
    start_batch(path, "b4", ["web-1", "web-2", "db-1"], **gone)
    add_row(path, "b4", "batch-end", outcome="incomplete")
    assert interrupted_batches(path) == []


def test_acknowledging_is_audited_and_refused_for_what_is_not_interrupted(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite3"
    AuditLog(path).close()
    start_batch(path, "dead", ["a"], host="other-laptop", pid=1, proc="")
    start_batch(path, "done", ["z"], host="other-laptop", pid=1, proc="")
    add_row(path, "done", "batch-end", outcome="ok")
    add_row(path, "planned", "plan", outcome="planned")
    with AuditLog(path, operator="dave") as log:
        for batch, why in (
            ("nope", "no batch 'nope'"),
            ("done", "ended normally"),
            ("planned", "never started"),
        ):
            with pytest.raises(NotInterrupted, match=why):
                acknowledge(log, batch)
        assert acknowledge(log, "dead").batch == "dead"
        with pytest.raises(NotInterrupted, match="already acknowledged"):
            acknowledge(log, "dead")
        ack = [e for e in log.events(batch="dead") if e.kind == "ack"]
    assert [(a.operator, a.outcome, a.pid) for a in ack] == [("dave", "acknowledged", os.getpid())]
    assert interrupted_batches(path) == []


def test_a_log_from_before_the_process_columns_still_opens(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite3"
    raw = sqlite3.connect(path)
    raw.executescript(
        "CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, ts TEXT NOT NULL,"
        " batch TEXT NOT NULL, operator TEXT NOT NULL, kind TEXT NOT NULL,"
        " verb TEXT NOT NULL DEFAULT '', server TEXT NOT NULL DEFAULT '', wave INTEGER,"
        " call TEXT NOT NULL DEFAULT '', outcome TEXT NOT NULL DEFAULT '',"
        " detail TEXT NOT NULL DEFAULT '');"
        "INSERT INTO events (ts, batch, operator, kind, verb)"
        " VALUES ('2024-05-17T22:00:00.000000Z', 'old', 'erin', 'batch-start', 'off');"
    )
    raw.commit()
    raw.close()
    with AuditLog(path) as log:
        log.record("new", "plan", verb="on", outcome="planned")
        old, new = log.events()
    assert (old.pid, old.host) == (None, "") and (new.pid, new.host) == (os.getpid(), host_name())
    [item] = interrupted_batches(path)
    assert item.batch == "old" and item.process is Liveness.UNKNOWN
    assert "no process recorded" in item.line()
