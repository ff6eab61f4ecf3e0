"""The audit log: every plan, confirmation, step, result and abort, append-only.

One SQLite database in the user's data directory (``$PACS_TUI_DATA_DIR``,
else ``$XDG_DATA_HOME/pacs-tui``, else ``~/.local/share/pacs-tui``), in WAL
mode. Each event is committed on its own as it happens: a ``kill -9`` in the
middle of a batch loses no step that had completed (WAL with
``synchronous=NORMAL`` survives the death of the process; only a power cut
of the laptop may lose the last commits). Triggers refuse UPDATE and DELETE.
Details pass through the credential redactor, so a secret that found its way
into a device's error text never lands on disk.

Every row also names the process that wrote it (``host``, ``pid`` and
``proc``, the boot id and start time of that pid), so a reader can tell a
batch that is still running in another process from one whose process died
(``interrupted``). Databases from before these columns get them added on
open; their old rows carry none.
"""

from __future__ import annotations

import copy
import getpass
import json
import os
import re
import socket
import sqlite3
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pacs_tui.credentials import REDACTOR

DATA_DIR_ENV = "PACS_TUI_DATA_DIR"
AUDIT_FILE = "audit.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    ts       TEXT NOT NULL,      -- ISO 8601 UTC, microseconds: sorts as text
    batch    TEXT NOT NULL,
    operator TEXT NOT NULL,      -- the OS user who ran the batch
    kind     TEXT NOT NULL,      -- plan, refused, confirm, batch-start, wave-start, step, ...
    verb     TEXT NOT NULL DEFAULT '',
    server   TEXT NOT NULL DEFAULT '',
    wave     INTEGER,
    call     TEXT NOT NULL DEFAULT '',
    outcome  TEXT NOT NULL DEFAULT '',
    detail   TEXT NOT NULL DEFAULT '',
    host     TEXT NOT NULL DEFAULT '',  -- the writer: host name, pid, boot id/start ticks
    pid      INTEGER,
    proc     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS events_ts ON events (ts);
CREATE INDEX IF NOT EXISTS events_kind ON events (kind);
CREATE INDEX IF NOT EXISTS events_batch ON events (batch);
CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""


def data_dir() -> Path:
    """The user's pacs-tui data directory (not created here)."""
    explicit = os.environ.get(DATA_DIR_ENV)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "pacs-tui"


def default_audit_path() -> Path:
    """Where the audit database lives for this user."""
    return data_dir() / AUDIT_FILE


def operator_name() -> str:
    """The OS user running pacs-tui (who pressed the key)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"


# Columns added after the first release: (name, declaration) for ALTER TABLE.
_ADDED_COLUMNS = (
    ("host", "TEXT NOT NULL DEFAULT ''"),
    ("pid", "INTEGER"),
    ("proc", "TEXT NOT NULL DEFAULT ''"),
)
_COLUMNS = (
    "id, ts, batch, operator, kind, verb, server, wave, call, outcome, detail, host, pid, proc"
)


def host_name() -> str:
    """This machine's host name, as rows record it."""
    return socket.gethostname()


def process_token(pid: int) -> str:
    """``BOOT_ID/START_TICKS`` of a live process on this host; "" where /proc cannot say.

    A pid alone is reused; the kernel's start time of the process (``/proc/PID/stat``
    field 22, clock ticks since boot) and the boot id make it unique on this host.
    """
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    fields = stat[stat.rfind(")") + 2 :].split()
    if len(fields) < 20:
        return ""
    return f"{boot}/{fields[19]}"


def utc_stamp(moment: datetime | None = None) -> str:
    """``2024-05-17T22:01:02.123456Z``: fixed width, so text order is time order."""
    when = (moment or datetime.now(UTC)).astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class AuditEvent:
    """One row of the audit log."""

    id: int
    ts: str
    batch: str
    operator: str
    kind: str
    verb: str
    server: str
    wave: int | None
    call: str
    outcome: str
    detail: str
    host: str = ""  # who wrote the row: host name, process id, process token
    pid: int | None = None
    proc: str = ""

    def to_json(self) -> dict[str, Any]:
        """The event as a JSON-able dict."""
        return asdict(self)


class AuditLog:
    """Appends events to the audit database; reads them back for ``pacs-tui audit``."""

    def __init__(self, path: Path | None = None, *, operator: str | None = None) -> None:
        """Open (and create, mode 0600) the database at ``path`` or the default place."""
        self.path = path or default_audit_path()
        self.operator = operator or operator_name()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            # The log says who switched what off: only its owner may read it.
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
            os.close(fd)
        self._db = sqlite3.connect(self.path, isolation_level=None, timeout=10.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._add_columns()
        self._host = host_name()
        self._pid = os.getpid()
        self._proc = process_token(self._pid)

    def for_operator(self, operator: str) -> AuditLog:
        """The same log, recording ``operator`` as who acted (``pacs-tui serve``'s callers).

        The copy shares this log's database connection: close only the original.
        """
        view = copy.copy(self)
        view.operator = operator
        return view

    def _add_columns(self) -> None:
        """Give a database from before the process columns those columns."""
        have = {row[1] for row in self._db.execute("PRAGMA table_info(events)")}
        for name, declaration in _ADDED_COLUMNS:
            if name in have:
                continue
            try:
                self._db.execute(f"ALTER TABLE events ADD COLUMN {name} {declaration}")
            except sqlite3.OperationalError as exc:
                # Another process opening the same log at the same moment added it first.
                if "duplicate column" not in str(exc):
                    raise

    def record(
        self,
        batch: str,
        kind: str,
        *,
        verb: str = "",
        server: str = "",
        wave: int | None = None,
        call: str = "",
        outcome: str = "",
        detail: str = "",
    ) -> int:
        """Append one event and commit it before returning; return its id."""
        cursor = self._db.execute(
            "INSERT INTO events (ts, batch, operator, kind, verb, server, wave, call, outcome,"
            " detail, host, pid, proc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                utc_stamp(),
                batch,
                self.operator,
                kind,
                verb,
                server,
                wave,
                REDACTOR.redact(call),
                outcome,
                REDACTOR.redact(detail),
                self._host,
                self._pid,
                self._proc,
            ),
        )
        row_id = cursor.lastrowid
        return int(row_id) if row_id is not None else 0

    def events(self, since: str | None = None, batch: str | None = None) -> list[AuditEvent]:
        """Events in order, optionally from ``since`` (a ``utc_stamp``) and of one batch."""
        return list(self.iter_events(since, batch))

    def iter_events(
        self, since: str | None = None, batch: str | None = None
    ) -> Iterator[AuditEvent]:
        """Like ``events``, one row at a time."""
        query = f"SELECT {_COLUMNS} FROM events"
        where: list[str] = []
        args: list[Any] = []
        if since is not None:
            where.append("ts >= ?")
            args.append(since)
        if batch is not None:
            where.append("batch = ?")
            args.append(batch)
        if where:
            query += " WHERE " + " AND ".join(where)
        query += " ORDER BY id"
        for row in self._db.execute(query, args):
            yield AuditEvent(*row)

    def select(self, where: str, args: tuple[Any, ...] = ()) -> Iterator[AuditEvent]:
        """Events matching an SQL ``where`` clause over the ``events`` columns, in order.

        For readers that must not scan the whole log (it grows by every step of
        every batch); ``where`` is code, never operator input: values go in ``args``.
        """
        query = f"SELECT {_COLUMNS} FROM events WHERE {where} ORDER BY id"
        for row in self._db.execute(query, args):
            yield AuditEvent(*row)

    def integrity(self) -> str:
        """SQLite's ``integrity_check`` answer (``ok`` when sound)."""
        return str(self._db.execute("PRAGMA integrity_check").fetchone()[0])

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str, now: datetime | None = None) -> str:
    """``--since`` as a ``utc_stamp``: a duration back from now (``90m``, ``2h``, ``7d``)
    or an ISO date/time (a time without zone is local time). Raise ``ValueError``."""
    moment = now or datetime.now(UTC)
    match = _DURATION.match(text)
    if match:
        return utc_stamp(moment - timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)]))
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"--since {text!r}: expected a duration like 30m, 2h, 7d or an ISO time "
            "like 2024-05-17T22:00"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.astimezone()  # local time, as an operator types it
    return utc_stamp(parsed)


def event_line(event: AuditEvent) -> str:
    """One event as a line of text for ``pacs-tui audit``."""
    parts = [event.ts, event.operator, event.batch, event.kind]
    if event.verb:
        parts.append(event.verb)
    if event.wave is not None:
        parts.append(f"wave {event.wave}")
    if event.server:
        parts.append(event.server)
    if event.call:
        parts.append(event.call)
    if event.outcome:
        parts.append(f"-> {event.outcome}")
    if event.detail:
        parts.append(f"({event.detail})")
    return "  ".join(parts)


def event_json(event: AuditEvent) -> str:
    """One event as a JSON line."""
    return json.dumps(event.to_json(), sort_keys=False)
