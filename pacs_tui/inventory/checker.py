"""The problem collector of one validation run: every mistake, at its file and line.

``Check`` holds the run's problems and checks the files an inventory names
(CA bundles, keys, secrets files: regular, within their size cap, private
where they must be), once per file. ``read_block`` converts a block's keys
by a spec (``Converter`` per key, or ``Nested`` for a block inside a block),
recording a problem for each unknown key, inline secret or bad value and
carrying on, so one run reports every mistake of a 300-server file.
"""

from __future__ import annotations

import difflib
import os
import stat
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from pacs_tui.input_file import (
    CERTIFICATE,
    KNOWN_HOSTS,
    PRIVATE_KEY,
    SECRETS,
    FileKind,
    InputFileError,
    check_file,
)
from pacs_tui.inventory.problems import Problem
from pacs_tui.inventory.values import Converter, Invalid, as_text, describe
from pacs_tui.inventory.yaml_source import LocatedList, LocatedMap

# Keys that would put a secret in the inventory file; refused with a pointer to the right way.
SECRET_KEYS = ("password", "secret", "passphrase", "token", "private_key", "api_key")
NEVER_INLINE = "secrets never inline; use password_env or file (or key_file for SSH keys)"


@dataclass(frozen=True)
class Nested:
    """A block inside a block (``dicom.tls``): each of its keys is reported at its own line.

    ``build`` turns the converted keys into the value and raises ``Invalid``
    for a combination of keys that is wrong (reported at the block's line).
    """

    spec: Mapping[str, Converter]
    build: Callable[[dict[str, Any]], Any]

    def __call__(self, value: Any) -> Any:
        """Convert without locating problems (a default block applied to a server)."""
        if not isinstance(value, Mapping):
            raise Invalid(f"expected a mapping, got {describe(value)}")
        values: dict[str, Any] = {}
        for key, item in value.items():
            if key not in self.spec:
                raise Invalid(f"unknown key {key!r}")
            if item is not None:
                values[key] = self.spec[key](item)
        return self.build(values)


@dataclass
class Check:
    """Shared state of one validation run."""

    file: Path
    problems: list[Problem] = field(default_factory=list)
    # (path, kind) -> its stat, or the problem message; one check per file, not per server.
    checked_files: dict[tuple[Path, FileKind], os.stat_result | str] = field(default_factory=dict)
    # Servers that failed their own checks: naming them in depends_on is no second error.
    failed: set[str] = field(default_factory=set)
    # False for a screen's copy of a service's inventory: its files live on the
    # service's machine and are never opened here, so only their paths are kept.
    check_files: bool = True

    def problem(self, line: int, key: str, message: str) -> None:
        self.problems.append(Problem(self.file, line, key, message))

    def path(self, value: Any) -> Path:
        """A path from the file, made absolute against the inventory's folder."""
        path = Path(as_text(value)).expanduser()
        return path if path.is_absolute() else (self.file.parent / path).resolve()

    def _checked(self, value: Any, kind: FileKind) -> tuple[Path, os.stat_result]:
        """A regular file within ``kind``'s size cap (a FIFO here would hang the TLS or
        SSH library that reads it later); each path is checked once per inventory."""
        path = self.path(value)
        if (path, kind) not in self.checked_files:
            try:
                self.checked_files[path, kind] = check_file(path, kind)
            except InputFileError as exc:
                if exc.reason == "no such file":
                    message = f"file {path} is missing"
                elif exc.reason.startswith("is "):
                    message = f"file {path} {exc.reason}"
                else:
                    message = f"file {path}: {exc.reason}"
                self.checked_files[path, kind] = message
        result = self.checked_files[path, kind]
        if isinstance(result, str):
            raise Invalid(result)
        return path, result

    def certificate_path(self, value: Any) -> Path:
        """A CA bundle or certificate file: regular, at most 4 MiB."""
        if not self.check_files:
            return self.path(value)
        return self._checked(value, CERTIFICATE)[0]

    def known_hosts_path(self, value: Any) -> Path:
        """A known_hosts file, which may not exist yet; when it does, a regular file."""
        path = self.path(value)
        if self.check_files and os.path.lexists(path):
            self._checked(value, KNOWN_HOSTS)
        return path

    def private_path(self, value: Any, kind: FileKind = PRIVATE_KEY) -> Path:
        """A file that must exist and be readable by its owner only."""
        if not self.check_files:
            return self.path(value)
        path, info = self._checked(value, kind)
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            raise Invalid(f"file {path} has mode {mode:04o}; it must be 0600 (chmod 600 {path})")
        return path

    def secrets_path(self, value: Any) -> Path:
        """A secrets file: private, at most 1 MiB."""
        return self.private_path(value, SECRETS)


def suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.7)
    return f" (did you mean {close[0]!r}?)" if close else ""


def read_block(
    check: Check, data: LocatedMap, spec: Mapping[str, Converter], key_path: str
) -> dict[str, Any]:
    """Convert each key of ``data`` by ``spec``; report unknown keys and bad values."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        line = data.line_of(key)
        here = f"{key_path}.{key}" if key_path else str(key)
        if not isinstance(key, str) or key not in spec:
            if str(key).lower() in SECRET_KEYS:
                check.problem(line, here, NEVER_INLINE)
            else:
                known = ", ".join(spec)
                check.problem(line, here, f"unknown key{suggest(str(key), spec)}; known: {known}")
            continue
        if value is None:
            continue  # `rack: null` means absent, so `show --json` output loads back
        convert = spec[key]
        if isinstance(convert, Nested):
            nested = read_nested(check, convert, value, line, here)
            if nested is not None:
                out[key] = nested
            continue
        try:
            out[key] = convert(value)
        except Invalid as exc:
            check.problem(line, here, str(exc))
    return out


def read_nested(check: Check, nested: Nested, value: Any, line: int, key_path: str) -> Any:
    """A nested block's value, or None after reporting its problems."""
    body = mapping(check, value, line, key_path)
    if body is None:
        return None
    before = len(check.problems)
    values = read_block(check, body, nested.spec, key_path)
    if len(check.problems) > before:
        return None
    try:
        return nested.build(values)
    except Invalid as exc:
        check.problem(body.line or line, key_path, str(exc))
        return None


def mapping(check: Check, value: Any, line: int, key_path: str) -> LocatedMap | None:
    """``value`` if it is a mapping, else None after reporting it at ``line``."""
    if isinstance(value, LocatedMap):
        return value
    check.problem(line, key_path, f"expected a mapping, got {describe(value)}")
    return None


class Named(Protocol):
    """An item of a named list (a link, a rack, a circuit)."""

    @property
    def name(self) -> str: ...


N = TypeVar("N", bound=Named)


def read_named_list(
    check: Check,
    raw: Any,
    line: int,
    key_path: str,
    what: str,
    read_one: Callable[[LocatedMap, str], N | None],
) -> dict[str, N]:
    """Each mapping of the list ``raw`` (at ``key_path``) read by ``read_one``, by name.

    ``read_one(body, here)`` reports its own problems and returns None for an
    item it cannot build; a second item of one name is reported at its
    ``name`` line and left out. Problems go to ``check``; nothing raises.
    """
    if not isinstance(raw, LocatedList):
        check.problem(line, key_path, f"expected a list of {what}s, got {describe(raw)}")
        return {}
    out: dict[str, N] = {}
    first_line: dict[str, int] = {}
    for i, item in enumerate(raw):
        here = f"{key_path}[{i}]"
        body = mapping(check, item, raw.line_of(i), here)
        if body is None:
            continue
        value = read_one(body, here)
        if value is None:
            continue
        if value.name in first_line:
            check.problem(
                body.line_of("name"),
                f"{here}.name",
                f"duplicate {what} {value.name!r} (also on line {first_line[value.name]})",
            )
            continue
        first_line[value.name] = body.line_of("name")
        out[value.name] = value
    return out
