"""Resolving credential references; secrets never reach output or logs.

An inventory never holds a password. Each entry under ``credentials:`` names
exactly one source:

- ``password_env: VAR`` -- the password is in environment variable ``VAR``;
- ``file: secrets.yaml`` -- a YAML file of mode 0600 mapping reference names
  to ``{username?, password}``;
- ``key_file: id_ed25519`` -- an SSH private key file of mode 0600 (the path
  is handed to the SSH client, the key is not read here).

:func:`resolve` reads the source when a probe or action needs it, and checks
the file mode again then (the file may have changed since the inventory was
loaded). Passwords come back as :class:`Secret`, whose ``repr``/``str``/format
print ``******``; each one is also registered with :data:`REDACTOR`, a logging
filter that scrubs it from log records as a second line of defence. Error
messages name the reference and its source, never the secret.
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import os
import re
import stat
import threading
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from pacs_tui.input_file import (
    PRIVATE_KEY,
    SECRETS,
    InputFileError,
    check_file,
    decode_text,
    read_checked,
)
from pacs_tui.inventory.model import Inventory

log = logging.getLogger(__name__)

REDACTED = "******"


class Secret:
    """A secret string that will not print itself; ``reveal()`` is the only way in."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret value; hand it straight to the protocol library."""
        return self._value

    def __repr__(self) -> str:
        return repr(REDACTED)

    def __str__(self) -> str:
        return REDACTED

    def __format__(self, spec: str) -> str:
        return REDACTED

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        # Constant time, so comparing cannot leak the value through timing.
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    __hash__ = None  # type: ignore[assignment]  # secrets make poor dict keys


@dataclass(frozen=True)
class Credential:
    """A resolved credential: what a BMC or SSH login needs."""

    username: str | None
    password: Secret | None = None
    key_file: Path | None = None


class CredentialError(Exception):
    """A reference that cannot be resolved; the message never contains a secret."""

    def __init__(self, reference: str, source: str, reason: str) -> None:
        self.reference = reference
        self.source = source
        self.reason = reason
        where = f" ({source})" if source else ""
        super().__init__(f"credential {reference!r}{where}: {reason}")


class SecretRedactor(logging.Filter):
    """A logging filter that replaces known secret values in records.

    Attach it to handlers (:meth:`install`): a logger's own filters do not
    see records propagated from child loggers, a handler's filters do.

    Every registered secret is redacted whatever its length. One of
    :data:`MIN_LENGTH` characters or more is replaced wherever it occurs; a
    shorter one only where it stands as a whole token (not next to a letter,
    digit or underscore), so a password ``abc`` does not blank ``abcde``.
    """

    MIN_LENGTH = 4  # shorter values are matched as whole tokens only

    def __init__(self) -> None:
        super().__init__()
        self._values: set[str] = set()
        self._long: tuple[str, ...] = ()  # longest first, so a secret inside another goes whole
        self._short: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    def add(self, secret: Secret) -> None:
        """Remember ``secret`` itself (a session token, a built header) for scrubbing."""
        self._remember({secret.reveal()})

    def add_password(self, secret: Secret, *, username: str | None = None) -> None:
        """Remember a password and the forms it travels in.

        The forms are the value itself (also without surrounding blanks), its
        base64 and percent- and JSON-escaped spellings, and, with ``username``,
        the base64 of ``username:password`` that an HTTP Basic ``Authorization``
        header carries (RFC 7617 section 2).
        """
        value = secret.reveal()
        forms = {value, value.strip(), _b64(value), urllib.parse.quote(value, safe="")}
        forms.add(json.dumps(value, ensure_ascii=False)[1:-1])
        forms.add(json.dumps(value)[1:-1])
        if username is not None:
            forms.add(_b64(f"{username}:{value}"))
        self._remember(forms)

    def _remember(self, forms: set[str]) -> None:
        forms.discard("")
        with self._lock:
            if forms <= self._values:
                return
            self._values |= forms
            long = [v for v in self._values if len(v) >= self.MIN_LENGTH]
            self._long = tuple(sorted(long, key=len, reverse=True))
            short = sorted(v for v in self._values if len(v) < self.MIN_LENGTH)
            if short:
                # Not next to a letter, digit or underscore: "ab" goes, "abc" and "tab" stay.
                self._short = re.compile(
                    "|".join(rf"(?<!\w){re.escape(v)}(?!\w)" for v in reversed(short))
                )

    def redact(self, text: str) -> str:
        """``text`` with every known secret replaced by ``******``."""
        with self._lock:
            long, short = self._long, self._short
        for value in long:
            if value in text:  # the scan is cheap; most records hold no secret
                text = text.replace(value, REDACTED)
        return text if short is None else short.sub(REDACTED, text)

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message and traceback text when they hold a secret."""
        if not self._values:
            return True
        message = record.getMessage()
        clean = self.redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        return True

    def install(self, logger: logging.Logger | None = None) -> None:
        """Add this filter to every handler of ``logger`` (default: the root logger)."""
        for handler in (logger or logging.getLogger()).handlers:
            if self not in handler.filters:
                handler.addFilter(self)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode("ascii")


# The process-wide redactor: every password resolve() returns is registered here.
REDACTOR = SecretRedactor()


def resolve(
    inventory: Inventory,
    ref_name: str,
    *,
    environ: Mapping[str, str] | None = None,
) -> Credential:
    """Read the credential ``ref_name`` of ``inventory`` from its source.

    ``environ`` defaults to the process environment. Raises
    :class:`CredentialError` naming the reference, the source and the reason.
    Call it once per login, not per poll: a file source is read each time.
    """
    ref = inventory.credentials.get(ref_name)
    if ref is None:
        raise CredentialError(ref_name, "", "no such credential reference in the inventory")
    if ref.password_env is not None:
        source = f"environment variable {ref.password_env}"
        value = (os.environ if environ is None else environ).get(ref.password_env, "")
        if not value:
            raise CredentialError(ref_name, source, "is not set or empty")
        credential = Credential(ref.username, password=Secret(value))
    elif ref.file is not None:
        credential = _from_secrets_file(ref_name, ref.file, ref.username)
    elif ref.key_file is not None:
        credential = _from_key_file(ref_name, ref.key_file, ref.username)
    else:  # the inventory validator refuses this; kept for hand-built inventories
        raise CredentialError(ref_name, "", "has no secret source")
    if credential.password is not None:
        # With the user name: an HTTP Basic header carries base64 of "user:password";
        # clients without a user name send ":password".
        REDACTOR.add_password(credential.password, username=credential.username or "")
    log.debug("resolved credential %r", ref_name)  # the name only, never the value
    return credential


def _check_private(reference: str, source: str, info: os.stat_result, path: Path) -> None:
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise CredentialError(
            reference, source, f"has mode {mode:04o}; it must be 0600 (chmod 600 {path})"
        )
    if info.st_uid not in (os.geteuid(), 0):
        raise CredentialError(
            reference, source, f"is owned by uid {info.st_uid}, not by this user or root"
        )


def _file_problem(reference: str, source: str, exc: InputFileError) -> CredentialError:
    if exc.reason == "no such file":
        return CredentialError(reference, source, "file is missing")
    if exc.line:  # never the byte itself: this is a secrets file
        what = "holds a NUL byte" if "NUL" in exc.reason else "is not UTF-8 text"
        return CredentialError(reference, source, f"{what} (line {exc.line}, column {exc.column})")
    return CredentialError(reference, source, exc.reason)


def _from_key_file(reference: str, path: Path, username: str | None) -> Credential:
    source = f"key file {path}"
    try:
        info = check_file(path, PRIVATE_KEY)
    except InputFileError as exc:
        raise _file_problem(reference, source, exc) from None
    _check_private(reference, source, info, path)
    return Credential(username, key_file=path)


def _from_secrets_file(reference: str, path: Path, username: str | None) -> Credential:
    source = f"secrets file {path}"
    try:
        # One open for the mode check and the read: the checked file is the file read.
        raw, info = read_checked(path, SECRETS)
        _check_private(reference, source, info, path)
        text = decode_text(raw, path)
    except InputFileError as exc:
        raise _file_problem(reference, source, exc) from None
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        # Never the parser's message: it quotes the offending line, which may be a password.
        line = exc.problem_mark.line + 1 if exc.problem_mark else 0
        raise CredentialError(reference, source, f"is not valid YAML (line {line})") from None
    except yaml.YAMLError:
        raise CredentialError(reference, source, "cannot be read as YAML text") from None
    if not isinstance(data, dict):
        raise CredentialError(reference, source, "must map reference names to entries")
    entry = data.get(reference)
    if entry is None:
        raise CredentialError(reference, source, f"has no entry {reference!r}")
    if not isinstance(entry, dict):
        raise CredentialError(reference, source, "entry must be a mapping {username?, password}")
    password = entry.get("password")
    if not isinstance(password, str) or not password:
        raise CredentialError(reference, source, "entry has no password (text)")
    user = entry.get("username", username)
    if user is not None and not isinstance(user, str):
        raise CredentialError(reference, source, "entry's username must be text")
    return Credential(user, password=Secret(password))
