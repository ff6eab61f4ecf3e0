"""Credential references and their resolution; secrets never reach a log.

An inventory never holds a password. It names where one lives:

- ``env:NAME`` -- an environment variable of the pacs-tui process;
- ``file:PATH`` -- a file readable by its owner only (mode 0600 or 0400),
  owned by the current user or root; one trailing newline is dropped;
- ``keyring:SERVICE`` or ``keyring:SERVICE/USER`` -- the desktop keyring
  (needs the optional ``keyring`` package); without ``/USER`` the
  credential set's username is used.

Resolved values are wrapped in :class:`Secret`, whose ``repr``/``str``/format
are redacted, and every value revealed through a resolver is registered with
a :class:`SecretRedactor` that scrubs it from log records as a second line of
defence. Error messages name the reference, never the value.
"""

from __future__ import annotations

import hmac
import importlib
import logging
import os
import re
import stat
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)

Scheme = Literal["env", "file", "keyring"]
SCHEMES: tuple[Scheme, ...] = ("env", "file", "keyring")
REDACTED = "********"

# Secret files are small; a multi-megabyte "secret" is a wrong path, not a key.
MAX_SECRET_FILE_BYTES = 64 * 1024
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

KeyringLookup = Callable[[str, str], "str | None"]


class Secret:
    """A secret string that will not print itself.

    ``reveal()`` is the only way to the value, so every use is greppable.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret value; hand it straight to the protocol library."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({REDACTED!r})"

    def __str__(self) -> str:
        return REDACTED

    def __format__(self, spec: str) -> str:
        return REDACTED

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        # Constant time, so equality checks cannot leak the value by timing.
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    __hash__ = None  # type: ignore[assignment]  # equal secrets must not be dict keys


class CredentialError(Exception):
    """A reference that cannot be resolved; the message never contains a secret."""

    def __init__(self, ref: SecretRef | str, reason: str, *, credential_set: str = "") -> None:
        self.ref = str(ref)
        self.reason = reason
        self.credential_set = credential_set
        where = f"credential set {credential_set!r}: " if credential_set else ""
        super().__init__(f"{where}{self.ref}: {reason}")


@dataclass(frozen=True)
class SecretRef:
    """Where a secret lives: ``scheme`` and its ``target`` (variable, path, keyring entry)."""

    scheme: Scheme
    target: str

    @classmethod
    def parse(cls, text: str, *, base_dir: Path | None = None) -> SecretRef:
        """Parse ``env:NAME``, ``file:PATH`` or ``keyring:SERVICE[/USER]``.

        A relative ``file:`` path is made absolute against ``base_dir`` (the
        inventory's folder) so the reference means the same from any working
        directory. Raises ``ValueError`` with a message that does not repeat
        ``text``, since a mistyped reference is often the secret itself.
        """
        scheme, sep, target = text.partition(":")
        if not sep or scheme not in SCHEMES:
            raise ValueError(
                "not a credential reference; write env:NAME, file:PATH or "
                "keyring:SERVICE[/USER] (passwords never go in the inventory)"
            )
        if not target:
            raise ValueError(f"{scheme}: reference has nothing after the colon")
        if scheme == "env" and not _ENV_NAME.match(target):
            raise ValueError(f"env: reference needs a variable name, got {target!r}")
        if scheme == "file":
            path = Path(target).expanduser()
            if not path.is_absolute() and base_dir is not None:
                path = base_dir / path
            target = str(path)
        if scheme == "keyring" and target.endswith("/"):
            raise ValueError("keyring: reference ends with '/' but names no user")
        return cls(scheme, target)  # scheme was checked against SCHEMES

    def __str__(self) -> str:
        return f"{self.scheme}:{self.target}"


@dataclass(frozen=True)
class CredentialSet:
    """A named login as the inventory declares it: a username and secret references."""

    name: str
    username: str
    password: SecretRef | None = None
    private_key: SecretRef | None = None
    passphrase: SecretRef | None = None  # for an encrypted private key

    def refs(self) -> tuple[SecretRef, ...]:
        """Every reference of this set."""
        return tuple(r for r in (self.password, self.private_key, self.passphrase) if r)


@dataclass(frozen=True)
class Credentials:
    """A resolved credential set, ready for a protocol library."""

    name: str
    username: str
    password: Secret | None = None
    private_key: Secret | None = None
    passphrase: Secret | None = None


class SecretRedactor(logging.Filter):
    """A logging filter that replaces known secret values in records.

    Attach it to handlers (``install``): a filter on a logger does not see
    records propagated from child loggers, a handler filter does.
    """

    # Shorter values would redact ordinary words; such passwords are bad anyway.
    MIN_LENGTH = 4

    def __init__(self) -> None:
        super().__init__()
        self._values: set[str] = set()
        self._lock = threading.Lock()

    def add(self, secret: Secret) -> None:
        """Remember ``secret`` (and each line of a multi-line one, e.g. a key)."""
        value = secret.reveal()
        with self._lock:
            for part in (value, *value.splitlines()):
                if len(part.strip()) >= self.MIN_LENGTH:
                    self._values.add(part.strip())

    def redact(self, text: str) -> str:
        """``text`` with every known secret replaced by ``********``."""
        with self._lock:
            values = sorted(self._values, key=len, reverse=True)
        for value in values:
            if value in text:
                text = text.replace(value, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message (and traceback text) when it holds a secret."""
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


# The process-wide redactor; resolvers register every revealed value here by default.
REDACTOR = SecretRedactor()


def _keyring_lookup(service: str, username: str) -> str | None:
    try:
        # Optional dependency, imported on first use only (and untyped for mypy).
        keyring = importlib.import_module("keyring")
    except ImportError as exc:
        raise LookupError(
            "keyring: references need the 'keyring' package (pip install keyring)"
        ) from exc
    value = keyring.get_password(service, username)
    return value if value is None else str(value)


class CredentialResolver:
    """Turns references into secrets, caching each one.

    Resolve once when a fleet is loaded (``check``) rather than inside a
    poll loop: a keyring lookup may block on the desktop session bus.
    ``environ`` and ``keyring_lookup`` are injectable for tests and embedding.
    """

    def __init__(
        self,
        *,
        environ: Mapping[str, str] | None = None,
        keyring_lookup: KeyringLookup | None = None,
        redactor: SecretRedactor | None = REDACTOR,
    ) -> None:
        self._environ = os.environ if environ is None else environ
        self._keyring_lookup = keyring_lookup or _keyring_lookup
        self._redactor = redactor
        self._cache: dict[tuple[SecretRef, str], Secret] = {}
        self._lock = threading.Lock()

    def resolve(self, ref: SecretRef, *, username: str = "") -> Secret:
        """The secret ``ref`` points to; ``username`` completes ``keyring:SERVICE``.

        Raises :class:`CredentialError` naming the reference and the reason.
        """
        key = (ref, username if ref.scheme == "keyring" else "")
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None:
            return cached
        secret = Secret(self._read(ref, username))
        if self._redactor is not None:
            self._redactor.add(secret)
        with self._lock:
            self._cache[key] = secret
        log.debug("resolved %s", ref)  # the reference only, never the value
        return secret

    def credentials(self, credential_set: CredentialSet) -> Credentials:
        """Resolve every reference of ``credential_set``."""

        def one(ref: SecretRef | None) -> Secret | None:
            return None if ref is None else self.resolve(ref, username=credential_set.username)

        return Credentials(
            name=credential_set.name,
            username=credential_set.username,
            password=one(credential_set.password),
            private_key=one(credential_set.private_key),
            passphrase=one(credential_set.passphrase),
        )

    def check(self, credential_sets: Iterable[CredentialSet]) -> list[CredentialError]:
        """Resolve every set now; return the failures (an empty list when all resolve)."""
        failures: list[CredentialError] = []
        for credential_set in credential_sets:
            for ref in credential_set.refs():
                try:
                    self.resolve(ref, username=credential_set.username)
                except CredentialError as exc:
                    failures.append(
                        CredentialError(ref, exc.reason, credential_set=credential_set.name)
                    )
        return failures

    def forget(self) -> None:
        """Drop cached secrets, e.g. after a password rotation."""
        with self._lock:
            self._cache.clear()

    # -- per scheme -------------------------------------------------------------

    def _read(self, ref: SecretRef, username: str) -> str:
        if ref.scheme == "env":
            value = self._environ.get(ref.target, "")
            if not value:
                raise CredentialError(ref, "environment variable is not set or empty")
            return value
        if ref.scheme == "file":
            return _read_secret_file(ref)
        service, sep, user = ref.target.rpartition("/")
        if not sep:
            service, user = ref.target, username
        if not user:
            raise CredentialError(ref, "no user: write keyring:SERVICE/USER or give a username")
        try:
            found = self._keyring_lookup(service, user)
        except LookupError as exc:
            raise CredentialError(ref, str(exc)) from None
        except Exception as exc:  # keyring backends raise their own types
            raise CredentialError(ref, f"keyring lookup failed: {type(exc).__name__}") from None
        if not found:
            raise CredentialError(ref, f"no keyring entry for user {user!r}")
        return found


def _read_secret_file(ref: SecretRef) -> str:
    path = Path(ref.target)
    try:
        # Open first, then check the opened file: no window to swap the file in between.
        with path.open("rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise CredentialError(ref, "not a regular file")
            if info.st_mode & 0o077:
                mode = stat.S_IMODE(info.st_mode)
                raise CredentialError(
                    ref,
                    f"file mode is {mode:04o}, readable by others; run: chmod 600 {path}",
                )
            if info.st_uid not in (os.geteuid(), 0):
                raise CredentialError(
                    ref, f"file is owned by uid {info.st_uid}, not by this user or root"
                )
            data = handle.read(MAX_SECRET_FILE_BYTES + 1)
    except FileNotFoundError:
        raise CredentialError(ref, "file does not exist") from None
    except IsADirectoryError:
        raise CredentialError(ref, "not a regular file") from None
    except PermissionError:
        raise CredentialError(ref, "permission denied") from None
    if len(data) > MAX_SECRET_FILE_BYTES:
        raise CredentialError(ref, f"file is larger than {MAX_SECRET_FILE_BYTES} bytes")
    try:
        text = data.decode()
    except UnicodeDecodeError:
        raise CredentialError(ref, "file is not UTF-8 text") from None
    text = text.removesuffix("\n").removesuffix("\r")
    if not text:
        raise CredentialError(ref, "file is empty")
    return text
