"""The custody board file: bounded reading, validation, the change lock, durable writes.

The board is a small JSON document::

    {"version": 1, "updated": "2024-05-17T20:42:00Z",
     "servers": {"db-001": {"state": "shut-down", "since": "2024-05-17T20:40:00Z"}}}

Readers (the wall, a read-only room) never lock: every write replaces the
file in one ``rename``, so a reader sees the old board or the new one, never
half of one. Writers take an exclusive ``flock`` on a sibling lock file
(``.custody.json.lock``) around read-modify-write, so the CLI and the
control room changing the board at once cannot lose either change.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import stat
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BOARD_VERSION = 1
# A board entry is ~70 bytes; 4 MiB holds ~50 000 servers. Anything larger is
# not a board (a log, a disk image, /dev/zero) and is refused before reading it.
MAX_BOARD_BYTES = 4 * 1024 * 1024
LOCK_WAIT_S = 5.0  # a change waits this long for another one to finish
ENTRY_FIELDS = ("state", "since")
_MAX_PROBLEMS = 20  # listed per file; the rest are counted


class CustodyError(ValueError):
    """A custody change that is not allowed; nothing was changed."""


class CustodyFileError(CustodyError):
    """The board file cannot be used: unreadable, not a board, or invalid.

    ``problems`` holds one line per fault, each starting with the file (and
    ``:line:column`` for JSON syntax) and naming the server and field.
    """

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        shown = problems[:_MAX_PROBLEMS]
        more = len(problems) - len(shown)
        super().__init__("\n".join(shown) + (f"\n{path}: ... and {more} more" if more else ""))


@dataclass(frozen=True)
class BoardEntry:
    """One server's line on the board: its state word and when it entered it."""

    state: str  # a CustodyState value, already checked
    since: str  # utc_stamp, "" when it never changed


@dataclass(frozen=True)
class FileStamp:
    """What identifies one version of the file: a replace changes the inode."""

    inode: int
    mtime_ns: int
    size: int


def file_stamp(path: Path) -> FileStamp | None:
    """The file's current stamp (None when it is missing or unreadable)."""
    try:
        st = path.stat()
    except OSError:
        return None
    return FileStamp(st.st_ino, st.st_mtime_ns, st.st_size)


def read_board(
    path: Path, states: tuple[str, ...]
) -> tuple[dict[str, BoardEntry], FileStamp] | None:
    """The entries of the board at ``path`` by server name, and the stamp read.

    None when the file does not exist (every server is then ``running``).
    ``states`` are the known state words. Raises ``CustodyFileError`` for a
    path that is not a regular file, a file over ``MAX_BOARD_BYTES``, bytes
    that are not UTF-8, JSON syntax errors (with line and column) and any
    entry that is not ``{"state": STATE, "since": STAMP}``.
    """
    got = _read_bounded(path)
    if got is None:
        return None
    data, stamp = got
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CustodyFileError(
            path, [f"{path}: byte {exc.start}: not UTF-8 text (is this a custody board?)"]
        ) from None
    try:
        raw = json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as exc:
        raise CustodyFileError(
            path, [f"{path}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}"]
        ) from None
    except _DuplicateKeyError as exc:
        raise CustodyFileError(path, [f"{path}: {exc}"]) from None
    return validate_board(path, raw, states), stamp


def validate_board(path: Path, raw: object, states: tuple[str, ...]) -> dict[str, BoardEntry]:
    """The entries of an already parsed board; ``CustodyFileError`` lists every fault."""
    if not isinstance(raw, dict):
        raise CustodyFileError(
            path,
            [f"{path}: the board must be a JSON object with a 'servers' object, not {_kind(raw)}"],
        )
    problems: list[str] = []
    version = raw.get("version", BOARD_VERSION)
    if version != BOARD_VERSION or isinstance(version, bool):
        problems.append(
            f"{path}: version: {version!r} is not supported (this reads {BOARD_VERSION})"
        )
    if "servers" not in raw:
        problems.append(f"{path}: servers: missing (an object of server name -> entry)")
        raise CustodyFileError(path, problems)
    servers = raw["servers"]
    if not isinstance(servers, dict):
        problems.append(f"{path}: servers: must be an object, not {_kind(servers)}")
        raise CustodyFileError(path, problems)
    entries: dict[str, BoardEntry] = {}
    known = ", ".join(states)
    for name, entry in servers.items():
        where = f"{path}: server {name!r}"
        if not isinstance(entry, dict):
            problems.append(
                f'{where}: must be an object like {{"state": "racked"}}, not {_kind(entry)}'
            )
            continue
        extra = sorted(set(entry) - set(ENTRY_FIELDS))
        if extra:
            problems.append(
                f"{where}: unknown field(s) {', '.join(map(repr, extra))} "
                f"(known: {', '.join(ENTRY_FIELDS)})"
            )
        state = entry.get("state")
        since = entry.get("since", "")
        ok = True
        if state is None:
            problems.append(f"{where}: field 'state': missing (known: {known})")
            ok = False
        elif not isinstance(state, str) or state not in states:
            problems.append(
                f"{where}: field 'state': unknown custody state {state!r} (known: {known})"
            )
            ok = False
        if not isinstance(since, str):
            problems.append(
                f"{where}: field 'since': must be a time stamp string, not {_kind(since)}"
            )
            ok = False
        if ok and not extra:
            entries[name] = BoardEntry(str(state), str(since))
    if problems:
        raise CustodyFileError(path, problems)
    return entries


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "true/false"
    if value is None:
        return "null"
    names = {dict: "an object", list: "a list", str: "a string", int: "a number", float: "a number"}
    described = names.get(type(value), type(value).__name__)
    return f"{described} ({_short(value)})" if isinstance(value, (str, int, float)) else described


def _short(value: object) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


class _DuplicateKeyError(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json keeps the last of two equal keys silently: on a custody board that
    # hides which state a server is really in.
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKeyError(f"key {key!r} appears twice in one object")
        seen[key] = value
    return seen


def _read_bounded(path: Path) -> tuple[bytes, FileStamp] | None:
    # O_NONBLOCK: opening a FIFO must not wait for a writer; the type is checked
    # on the open descriptor so it cannot be swapped between check and read.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CustodyFileError(path, [f"{path}: cannot open: {exc.strerror}"]) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise CustodyFileError(
                path, [f"{path}: not a regular file ({_file_type(st.st_mode)}); not a board"]
            )
        if st.st_size > MAX_BOARD_BYTES:
            raise CustodyFileError(
                path,
                [f"{path}: {st.st_size} bytes is over the {MAX_BOARD_BYTES} byte cap for a board"],
            )
        chunks: list[bytes] = []
        total = 0
        while total <= MAX_BOARD_BYTES:
            chunk = os.read(fd, min(65536, MAX_BOARD_BYTES + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > MAX_BOARD_BYTES:  # grew while being read
            raise CustodyFileError(
                path, [f"{path}: more than the {MAX_BOARD_BYTES} byte cap for a board"]
            )
    except OSError as exc:
        raise CustodyFileError(path, [f"{path}: cannot read: {exc.strerror}"]) from None
    finally:
        os.close(fd)
    return b"".join(chunks), FileStamp(st.st_ino, st.st_mtime_ns, st.st_size)


def _file_type(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a file"


def lock_path(path: Path) -> Path:
    """The sibling file a change locks: ``.custody.json.lock`` next to ``custody.json``."""
    return path.with_name(f".{path.name}.lock")


@contextlib.contextmanager
def board_lock(path: Path, *, wait_s: float = LOCK_WAIT_S) -> Iterator[None]:
    """Hold the exclusive change lock of the board at ``path``.

    Waits up to ``wait_s`` seconds for another change (another process or
    board object) to finish, then raises ``CustodyError``: a stuck writer
    must not freeze the control room. The lock is released when the block
    ends, and by the kernel if the process dies.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = lock_path(path)
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise CustodyError(f"{lock}: cannot open the board's lock file: {exc.strerror}") from None
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise CustodyError(f"{lock}: cannot lock: {exc.strerror}") from None
                if time.monotonic() >= deadline:
                    raise CustodyError(
                        f"{path}: another custody change has held the board for over "
                        f"{wait_s:g} s; nothing was changed, try again"
                    ) from None
                time.sleep(0.005)
        yield
    finally:
        os.close(fd)  # closing the only descriptor releases the flock


def write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    """Replace ``path`` with ``data`` as JSON, atomically and durably.

    The JSON goes to a temporary file in the same directory, is flushed and
    fsync'ed, renamed over ``path`` and the directory is fsync'ed, so after a
    crash or power cut the file holds the old content or the new, never a mix
    or nothing. On any failure the previous file is left as it was.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = (json.dumps(data, indent=2) + "\n").encode("utf-8")
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        mode = 0o644  # a board holds no secrets; the wall may run as another user
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(payload)
            out.flush()
            os.fchmod(out.fileno(), mode)
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    # The rename is only durable once the directory entry is on disk.
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
