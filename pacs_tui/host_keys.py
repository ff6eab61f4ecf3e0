"""Forgetting a host's SSH key in a known_hosts file (what ``ssh-keygen -R`` does).

A server replaced by a spare runs on another box: its SSH host key changes
and strict checking rightly refuses it. pacs-tui never learns the new key
by itself; it only removes the old one when the operator confirms, so the
next ``ssh`` (the operator's, with the fingerprint checked against the
console) learns the new key. Plain and hashed (``|1|salt|hash``) entries are
matched; ``@cert-authority`` and ``@revoked`` lines are never touched.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import shlex
from pathlib import Path


def host_pattern(host: str, port: int) -> str:
    """How known_hosts names ``host:port``: ``host`` for 22, else ``[host]:port``."""
    return host if port == 22 else f"[{host}]:{port}"


def _matches(field: str, pattern: str) -> bool:
    for name in field.split(","):
        if name.startswith("|1|"):
            parts = name.split("|")
            if len(parts) != 4:
                continue
            try:
                salt, digest = base64.b64decode(parts[2]), base64.b64decode(parts[3])
            except ValueError:
                continue
            mine = hmac.new(salt, pattern.encode(), hashlib.sha1).digest()
            if hmac.compare_digest(mine, digest):
                return True
        elif name == pattern:
            return True
    return False


def matching_lines(text: str, host: str, port: int) -> list[int]:
    """0-based indexes of the lines of ``text`` that hold a key for ``host:port``."""
    pattern = host_pattern(host, port)
    out: list[int] = []
    for index, line in enumerate(text.splitlines()):
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", "@")):
            continue
        if _matches(stripped.split(None, 1)[0], pattern):
            out.append(index)
    return out


def forget_command(path: Path, host: str, port: int) -> str:
    """The OpenSSH command that removes the key, for an operator who prefers it."""
    return f"ssh-keygen -R {shlex.quote(host_pattern(host, port))} -f {shlex.quote(str(path))}"


def forget_host(path: Path, host: str, port: int) -> int:
    """Remove every key line of ``host:port`` from ``path``; return how many went.

    The file is replaced atomically (a temporary file renamed over it), keeping
    its mode; a missing file removes nothing.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return 0
    drop = set(matching_lines(text, host, port))
    if not drop:
        return 0
    kept = [line for i, line in enumerate(text.splitlines(keepends=True)) if i not in drop]
    mode = path.stat().st_mode & 0o777
    tmp = path.with_name(f".{path.name}.pacs-tui.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write("".join(kept))
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    return len(drop)
