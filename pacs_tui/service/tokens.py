"""Who may do what on ``pacs-tui serve``: bearer tokens with a name and a role.

The tokens file is YAML, mode 0600 (group and others may not read it)::

    tokens:
      - name: lead            # written in the audit log beside every write
        role: operator        # batches and custody
        token: 3q2+7w...      # at least 32 characters; `pacs-tui token add` makes one
      - name: wall
        role: viewer          # reads everything, changes nothing

A request carries ``Authorization: Bearer <token>`` (RFC 6750, section 2.1).
Tokens are compared in constant time and never printed: ``Caller`` holds the
name and role only.
"""

from __future__ import annotations

import hmac
import os
import secrets
import stat
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import yaml

from pacs_tui.credentials import Secret
from pacs_tui.input_file import SECRETS, InputFileError, decode_text, read_checked

MIN_TOKEN_LENGTH = 32


class Role(StrEnum):
    """What a token may do."""

    VIEWER = "viewer"  # read every endpoint, change nothing
    OPERATOR = "operator"  # also batches and custody


class TokenFileError(ValueError):
    """The tokens file is missing, open to others, or malformed; the message names the place."""


@dataclass(frozen=True)
class Caller:
    """Who made a request: the token's name and role (never the token itself)."""

    name: str
    role: Role

    @property
    def may_write(self) -> bool:
        """True for operators."""
        return self.role is Role.OPERATOR


@dataclass(frozen=True)
class _Entry:
    caller: Caller
    token: Secret


class TokenTable:
    """The callers of one tokens file."""

    def __init__(self, entries: list[_Entry], path: Path | None = None) -> None:
        self._entries = entries
        self.path = path

    @property
    def callers(self) -> list[Caller]:
        """Every caller, in file order."""
        return [entry.caller for entry in self._entries]

    def caller(self, authorization: str | None) -> Caller | None:
        """The caller of an ``Authorization`` header value; None when absent or unknown."""
        if not authorization:
            return None
        scheme, _, presented = authorization.partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            return None
        given = presented.strip().encode()
        found: Caller | None = None
        for entry in self._entries:  # every entry is compared: no early exit to time
            if hmac.compare_digest(given, entry.token.reveal().encode()):
                found = entry.caller
        return found


def load_tokens(path: Path | str) -> TokenTable:
    """Read and check a tokens file; ``TokenFileError`` names the file, entry and reason."""
    path = Path(path)
    try:
        data, info = read_checked(path, SECRETS)
        text = decode_text(data, path)
    except InputFileError as exc:
        raise TokenFileError(str(exc)) from None
    if stat.S_IMODE(info.st_mode) & 0o077:
        raise TokenFileError(
            f"{path}: mode {stat.S_IMODE(info.st_mode):04o} lets others read the tokens; "
            f"chmod 600 {path}"
        )
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise TokenFileError(f"{path}{where}: not YAML: {getattr(exc, 'problem', exc)}") from None
    items = document.get("tokens") if isinstance(document, dict) else None
    if not isinstance(items, list) or not items:
        raise TokenFileError(f"{path}: expected a 'tokens:' list with at least one entry")
    entries: list[_Entry] = []
    names: set[str] = set()
    seen: set[str] = set()
    for index, item in enumerate(items, start=1):
        where = f"{path}: tokens[{index}]"
        if not isinstance(item, dict):
            raise TokenFileError(f"{where}: expected name, role and token")
        name, role, token = item.get("name"), item.get("role"), item.get("token")
        if not isinstance(name, str) or not name.strip():
            raise TokenFileError(f"{where}: 'name' is missing")
        if name in names:
            raise TokenFileError(f"{where}: name {name!r} is used twice")
        if role not in tuple(Role):
            raise TokenFileError(f"{where} ({name}): 'role' must be viewer or operator")
        if not isinstance(token, str) or len(token.strip()) < MIN_TOKEN_LENGTH:
            raise TokenFileError(
                f"{where} ({name}): 'token' must be at least {MIN_TOKEN_LENGTH} characters"
            )
        if token.strip() in seen:
            raise TokenFileError(f"{where} ({name}): the same token as an earlier entry")
        names.add(name)
        seen.add(token.strip())
        entries.append(_Entry(Caller(name, Role(role)), Secret(token.strip())))
    return TokenTable(entries, path)


def new_token() -> str:
    """A fresh random token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def add_token(path: Path | str, name: str, role: Role) -> str:
    """Add a caller to the tokens file (created 0600 if missing); return its token.

    ``TokenFileError`` when the file is bad or the name is taken.
    """
    path = Path(path)
    document: dict[str, list[dict[str, str]]] = {"tokens": []}
    if path.exists():
        table = load_tokens(path)  # checks mode and shape before anything is added
        if name in {c.name for c in table.callers}:
            raise TokenFileError(f"{path}: a token named {name!r} exists already")
        loaded = yaml.safe_load(decode_text(read_checked(path, SECRETS)[0], path))
        document = {"tokens": list(loaded["tokens"])}
    token = new_token()
    document["tokens"].append({"name": name, "role": role.value, "token": token})
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        yaml.safe_dump(document, handle, sort_keys=False)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    return token
