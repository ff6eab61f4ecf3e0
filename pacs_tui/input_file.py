"""Reading a file the user named: regular files only, bounded, strict UTF-8.

Every file the product takes from an operator (inventory, CSV export,
secrets, CA and keys, baseline, runbook, reports, config) goes through here,
so a wrong path fails fast with one clear sentence instead of hanging on a
FIFO, filling memory from ``/dev/zero`` or dying in a decoder:

- the path is ``stat``-ed first and opened with ``O_NONBLOCK`` and then
  ``fstat``-ed, so a FIFO (with or without a writer), a directory, a device or
  a socket is refused by name and never read;
- each :class:`FileKind` has a size cap; the file is read to at most one
  byte past the cap, so a file that grows while read is still bounded;
- text is UTF-8 (a leading byte-order mark is dropped); the first invalid
  byte and the first NUL character are reported with their line and column.

Errors are :class:`InputFileError`, printed ``PATH:LINE:COLUMN: reason`` (or
``PATH: reason`` for the whole file).
"""

from __future__ import annotations

import errno
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MIB = 1024 * 1024


@dataclass(frozen=True)
class FileKind:
    """What a file is for (used in messages) and how large it may be, in bytes."""

    name: str
    max_bytes: int


# Parsing costs about 4 us and 7 KB of memory per server. A server takes ~170 bytes
# as `pacs-tui sim` writes it (30 000 servers: 5.2 MB, 20 s, 480 MB measured) and
# ~300 in block style, so 8 MiB still holds 28 000-49 000 servers, while the densest
# file under the cap (75 bytes a server, 110 000 servers) stays near 20 s and 0.8 GB.
# The reported 50 MB file of 412 000 servers (198 s, 4 GB) is refused before parsing.
INVENTORY = FileKind("inventory", 8 * MIB)
CSV_EXPORT = FileKind("CSV export", 8 * MIB)
SECRETS = FileKind("secrets file", 1 * MIB)  # a few passwords; megabytes mean a wrong path
# A CA bundle: the whole Debian system store is ~220 KiB.
CERTIFICATE = FileKind("certificate file", 4 * MIB)
PRIVATE_KEY = FileKind("private key file", 1 * MIB)
KNOWN_HOSTS = FileKind("known_hosts file", 16 * MIB)
BASELINE = FileKind("baseline", 64 * MIB)  # per server: units, versions, latency samples
RUNBOOK = FileKind("runbook", 4 * MIB)
REPORT = FileKind("replication report", 256 * MIB)  # one line per missing study
CONFIG = FileKind("config file", 1 * MIB)
FAULTS = FileKind("faults file", 4 * MIB)

_NOT_REGULAR = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class InputFileError(Exception):
    """A user-supplied file that cannot be used.

    ``line`` and ``column`` are 1-based, 0 when the problem is the whole file;
    ``reason`` never quotes the file's content (it may be a secrets file).
    """

    def __init__(self, path: Path | str, reason: str, line: int = 0, column: int = 0) -> None:
        self.path = Path(path)
        self.reason = reason
        self.line = line
        self.column = column
        where = str(self.path)
        if line:
            where += f":{line}" + (f":{column}" if column else "")
        super().__init__(f"{where}: {reason}")


def _size(count: int) -> str:
    return f"{count / MIB:.1f} MiB" if count >= MIB else f"{count} bytes"


def _check_type(path: Path, info: os.stat_result) -> None:
    for test, what in _NOT_REGULAR:
        if test(info.st_mode):
            raise InputFileError(path, f"is {what}, not a regular file")
    if not stat.S_ISREG(info.st_mode):
        raise InputFileError(path, "is not a regular file")


def _too_large(path: Path, kind: FileKind, shown: str) -> InputFileError:
    article = "an" if kind.name[0] in "aeiou" else "a"
    return InputFileError(
        path, f"is {shown}; {article} {kind.name} may be at most {_size(kind.max_bytes)}"
    )


def _os_reason(exc: OSError) -> str:
    if exc.errno == errno.ENOENT:
        return "no such file"
    if exc.errno == errno.EACCES:
        return "permission denied"
    if exc.errno == errno.ENOTDIR:
        return "a folder on the path is not a directory"
    return (exc.strerror or str(exc)).lower()


def check_file(path: Path | str, kind: FileKind) -> os.stat_result:
    """``stat`` of ``path`` after checking it is a readable regular file within the cap.

    For files a library reads itself (a CA file handed to ``ssl``, a key to
    ``asyncssh``): they must not hang or flood that library either. Raises
    :class:`InputFileError` ("no such file", "is a FIFO, not a regular file",
    "is 52.0 MiB; a certificate file may be at most 4.0 MiB", ...).
    """
    path = Path(path)
    fd, info = _open(path, kind)
    os.close(fd)
    return info


def _open(path: Path, kind: FileKind) -> tuple[int, os.stat_result]:
    try:
        # stat before open: opening some devices has side effects (a tape rewinds).
        _check_type(path, os.stat(path))
        # O_NONBLOCK: should the path become a FIFO after the stat, open still returns.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # a socket, or a FIFO swapped in after the stat
            raise InputFileError(path, "is not a regular file") from None
        raise InputFileError(path, _os_reason(exc)) from None
    try:
        info = os.fstat(fd)
        _check_type(path, info)
        if info.st_size > kind.max_bytes:
            raise _too_large(path, kind, _size(info.st_size))
    except BaseException:
        os.close(fd)
        raise
    return fd, info


def read_bytes(path: Path | str, kind: FileKind) -> bytes:
    """The content of a regular file of at most ``kind.max_bytes`` bytes.

    Raises :class:`InputFileError` for a missing, unreadable, non-regular or
    too large file (also one that grows past the cap while being read).
    """
    return read_checked(path, kind)[0]


def read_checked(path: Path | str, kind: FileKind) -> tuple[bytes, os.stat_result]:
    """:func:`read_bytes` plus the ``fstat`` of the very file read.

    For checks that must concern the content read (a secrets file's mode and
    owner), not whatever the path names a moment later.
    """
    path = Path(path)
    fd, info = _open(path, kind)
    chunks: list[bytes] = []
    total = 0
    try:
        while True:
            try:
                chunk = os.read(fd, min(kind.max_bytes + 1 - total, 4 * MIB))
            except OSError as exc:
                raise InputFileError(path, _os_reason(exc)) from None
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > kind.max_bytes:  # it grew while being read
                raise _too_large(path, kind, f"more than {_size(kind.max_bytes)}")
    finally:
        os.close(fd)
    return b"".join(chunks), info


def decode_text(data: bytes, path: Path | str) -> str:
    """``data`` as UTF-8 text without a leading byte-order mark.

    Raises :class:`InputFileError` at the line and column (in characters) of
    the first byte that is not UTF-8, or of the first NUL character.
    """
    path = Path(path)
    bom = b"\xef\xbb\xbf"
    if data.startswith(bom):  # editors on Windows and spreadsheet exports add one
        data = data[len(bom) :]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, column = _position(data, exc.start)
        byte = data[exc.start]
        raise InputFileError(
            path, f"not UTF-8 text (byte 0x{byte:02x}); save the file as UTF-8", line, column
        ) from None
    nul = text.find("\0")
    if nul >= 0:
        line = text.count("\n", 0, nul) + 1
        column = nul - (text.rfind("\n", 0, nul) + 1) + 1
        raise InputFileError(path, "holds a NUL byte; not a text file", line, column)
    return text


def _position(data: bytes, offset: int) -> tuple[int, int]:
    """1-based line and character column of byte ``offset``, all valid UTF-8 before it."""
    line_start = data.rfind(b"\n", 0, offset) + 1
    column = len(data[line_start:offset].decode("utf-8")) + 1
    return data.count(b"\n", 0, offset) + 1, column


def read_text(path: Path | str, kind: FileKind) -> str:
    """A regular, bounded, strictly UTF-8 file as text (see :func:`read_bytes`)."""
    return decode_text(read_bytes(path, kind), path)


def read_json(path: Path | str, kind: FileKind) -> Any:
    """A bounded UTF-8 file (:func:`read_text`) parsed as JSON.

    ``InputFileError`` for the file itself, and for text that is not JSON
    (``FILE:LINE:COLUMN: not JSON: why``).
    """
    text = read_text(path, kind)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputFileError(path, f"not JSON: {exc.msg}", exc.lineno, exc.colno) from None
