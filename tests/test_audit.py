"""The audit log: SQLite in WAL mode, append-only, no secrets, readable by ``pacs-tui audit``."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pacs_tui.batch.audit import AuditLog, default_audit_path, parse_since, utc_stamp
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
