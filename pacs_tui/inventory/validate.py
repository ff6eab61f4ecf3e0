"""Inventory validation: located YAML in, an ``Inventory`` or every problem out.

Each block has a spec mapping its keys to converters. A converter raises
``_Invalid``; the checker records a problem at the key's line and carries on,
so one run reports every mistake of a 300-server file. Nothing is returned
half-built: any problem means no inventory.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import stat
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pacs_tui.input_file import (
    CERTIFICATE,
    KNOWN_HOSTS,
    PRIVATE_KEY,
    SECRETS,
    FileKind,
    InputFileError,
    check_file,
)
from pacs_tui.inventory.model import (
    DEFAULT_CALLING_AE_TITLE,
    DICOM_TLS_PORT,
    SITE_KINDS,
    BmcEndpoint,
    CredentialRef,
    DicomEndpoint,
    DicomTls,
    Inventory,
    Server,
    Site,
    SshEndpoint,
)
from pacs_tui.inventory.problems import InventoryError, Problem
from pacs_tui.inventory.yaml_source import LocatedList, LocatedMap
from pacs_tui.roles import default_units

SUPPORTED_VERSION = 1
TOP_LEVEL = ("version", "read_only", "sites", "credentials", "defaults", "servers")
BLOCKS = ("bmc", "dicom", "ssh")
# Keys that would put a secret in the inventory file; refused with a pointer to the right way.
SECRET_KEYS = ("password", "secret", "passphrase", "token", "private_key", "api_key")
NEVER_INLINE = "secrets never inline; use password_env or file (or key_file for SSH keys)"


class _Invalid(ValueError):
    """A value its converter refuses; the message says what was expected."""


# -- converters -----------------------------------------------------------------------

_HOST_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\Z")
_SERVER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def describe(value: Any) -> str:
    """How a wrong value reads in a message (never used for secret keys)."""
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        # YAML reads yes/no/on/off as booleans and 0123 as a number.
        quote = " (quote it)" if isinstance(value, bool | int | float) else ""
        raise _Invalid(f"expected text, got {describe(value)}{quote}")
    return value.strip()


def _server_name(value: Any) -> str:
    text = _text(value)
    if not _SERVER_NAME.match(text):
        raise _Invalid(f"{text!r} is not a valid name (letters, digits, '.', '_', '-')")
    return text


def _host(value: Any) -> str:
    """An IPv4/IPv6 address or a DNS host name."""
    text = _text(value)
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    labels = text.rstrip(".").split(".")
    if (
        len(text) <= 253
        and all(_HOST_LABEL.match(label) for label in labels)
        and not labels[-1].isdigit()  # 10.0.0.300 is a bad address, not a host name
    ):
        return text
    raise _Invalid(f"{text!r} is not an IP address or a valid host name")


def _port(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid(f"expected a port number 1-65535, got {describe(value)}")
    if not 1 <= value <= 65535:
        raise _Invalid(f"port {value} is out of range 1-65535")
    return value


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(f"expected true or false, got {describe(value)}")
    return value


def _word_list(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _Invalid(f"expected a list, got {describe(value)}")
    return tuple(dict.fromkeys(_text(item) for item in value))  # drop repeats, keep order


def _scheme(value: Any) -> str:
    text = _text(value)
    if text not in ("https", "http"):
        raise _Invalid(f"expected https or http, got {text!r}")
    return text


def _bmc_auth(value: Any) -> str:
    text = _text(value)
    if text not in ("auto", "session", "basic"):
        raise _Invalid(f"expected auto, session or basic, got {text!r}")
    return text


def _seconds(value: Any) -> float:
    """A positive time in seconds, at most an hour."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Invalid(f"expected a number of seconds, got {describe(value)}")
    if not 0 < value <= 3600:
        raise _Invalid(f"{value!r} s is out of range (0, 3600]")
    return float(value)


def _system_id(value: Any) -> str:
    """A Redfish ComputerSystem member Id (``Blade2``) or its path."""
    text = _text(value)
    if any(c.isspace() for c in text) or "?" in text or "#" in text:
        raise _Invalid(f"{text!r} is not a ComputerSystem Id or /redfish/v1/Systems/... path")
    if "/" in text and not text.startswith("/redfish/v1/Systems/"):
        raise _Invalid(f"a system path must start with /redfish/v1/Systems/, got {text!r}")
    return text


def _ae_title(value: Any) -> str:
    """A DICOM AE title: 1-16 characters of the default repertoire, no backslash."""
    if not isinstance(value, str):
        raise _Invalid(f"expected an AE title (text), got {describe(value)}")
    if not value.strip():
        raise _Invalid("an AE title cannot be empty or all spaces")
    if len(value) > 16:
        raise _Invalid(f"AE title {value!r} is longer than 16 characters")
    if "\\" in value or not value.isascii() or not value.isprintable():
        raise _Invalid(f"AE title {value!r} contains a backslash or a control character")
    return value.strip()  # leading/trailing spaces are not significant in AE titles


def _env_name(value: Any) -> str:
    text = _text(value)
    if not _ENV_NAME.match(text):
        raise _Invalid(f"{text!r} is not an environment variable name")
    return text


def _site_kind(value: Any) -> str:
    text = _text(value)
    if text not in SITE_KINDS:
        raise _Invalid(f"kind {text!r} is not one of {', '.join(SITE_KINDS)}")
    return text


Converter = Callable[[Any], Any]


@dataclass(frozen=True)
class _Nested:
    """A block inside a block (``dicom.tls``): each of its keys is reported at its own line.

    ``build`` turns the converted keys into the value and raises ``_Invalid``
    for a combination of keys that is wrong (reported at the block's line).
    """

    spec: Mapping[str, Converter]
    build: Callable[[dict[str, Any]], Any]

    def __call__(self, value: Any) -> Any:
        """Convert without locating problems (a default block applied to a server)."""
        if not isinstance(value, Mapping):
            raise _Invalid(f"expected a mapping, got {describe(value)}")
        values: dict[str, Any] = {}
        for key, item in value.items():
            if key not in self.spec:
                raise _Invalid(f"unknown key {key!r}")
            if item is not None:
                values[key] = self.spec[key](item)
        return self.build(values)


def _dicom_tls(values: dict[str, Any]) -> DicomTls:
    if ("cert_file" in values) != ("key_file" in values):
        raise _Invalid(
            "cert_file and key_file go together (the client certificate and its private key)"
        )
    return DicomTls(**values)


@dataclass
class _Check:
    """Shared state of one validation run."""

    file: Path
    problems: list[Problem] = field(default_factory=list)
    # (path, kind) -> its stat, or the problem message; one check per file, not per server.
    checked_files: dict[tuple[Path, FileKind], os.stat_result | str] = field(default_factory=dict)
    # Servers that failed their own checks: naming them in depends_on is no second error.
    failed: set[str] = field(default_factory=set)

    def problem(self, line: int, key: str, message: str) -> None:
        self.problems.append(Problem(self.file, line, key, message))

    def path(self, value: Any) -> Path:
        """A path from the file, made absolute against the inventory's folder."""
        path = Path(_text(value)).expanduser()
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
            raise _Invalid(result)
        return path, result

    def certificate_path(self, value: Any) -> Path:
        """A CA bundle or certificate file: regular, at most 4 MiB."""
        return self._checked(value, CERTIFICATE)[0]

    def known_hosts_path(self, value: Any) -> Path:
        """A known_hosts file, which may not exist yet; when it does, a regular file."""
        path = self.path(value)
        if os.path.lexists(path):
            self._checked(value, KNOWN_HOSTS)
        return path

    def private_path(self, value: Any, kind: FileKind = PRIVATE_KEY) -> Path:
        """A file that must exist and be readable by its owner only."""
        path, info = self._checked(value, kind)
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            raise _Invalid(f"file {path} has mode {mode:04o}; it must be 0600 (chmod 600 {path})")
        return path

    def secrets_path(self, value: Any) -> Path:
        """A secrets file: private, at most 1 MiB."""
        return self.private_path(value, SECRETS)


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.7)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _read(
    check: _Check, data: LocatedMap, spec: Mapping[str, Converter], key_path: str
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
                check.problem(line, here, f"unknown key{_suggest(str(key), spec)}; known: {known}")
            continue
        if value is None:
            continue  # `rack: null` means absent, so `show --json` output loads back
        convert = spec[key]
        if isinstance(convert, _Nested):
            nested = _read_nested(check, convert, value, line, here)
            if nested is not None:
                out[key] = nested
            continue
        try:
            out[key] = convert(value)
        except _Invalid as exc:
            check.problem(line, here, str(exc))
    return out


def _read_nested(check: _Check, nested: _Nested, value: Any, line: int, key_path: str) -> Any:
    """A nested block's value, or None after reporting its problems."""
    body = _mapping(check, value, line, key_path)
    if body is None:
        return None
    before = len(check.problems)
    values = _read(check, body, nested.spec, key_path)
    if len(check.problems) > before:
        return None
    try:
        return nested.build(values)
    except _Invalid as exc:
        check.problem(body.line or line, key_path, str(exc))
        return None


def _mapping(check: _Check, value: Any, line: int, key_path: str) -> LocatedMap | None:
    if isinstance(value, LocatedMap):
        return value
    check.problem(line, key_path, f"expected a mapping, got {describe(value)}")
    return None


# -- specs ----------------------------------------------------------------------------


def _specs(check: _Check) -> dict[str, dict[str, Converter]]:
    server: dict[str, Converter] = {
        "name": _server_name,
        "site": _text,
        "role": _text,
        "rack": _text,
        "tags": _word_list,
        "depends_on": _word_list,
        "services": _word_list,
    }
    return {
        "bmc": {
            "address": _host,
            "port": _port,
            "scheme": _scheme,
            "verify_tls": _flag,
            "ca_file": check.certificate_path,
            "credentials": _text,
            "system": _system_id,
            "auth": _bmc_auth,
            "timeout_s": _seconds,
            "login_timeout_s": _seconds,
            "tls_legacy": _flag,
        },
        "dicom": {
            "host": _host,
            "port": _port,
            "ae_title": _ae_title,
            "calling_ae_title": _ae_title,
            "tls": _Nested(
                {
                    "ca_file": check.certificate_path,
                    "cert_file": check.certificate_path,
                    "key_file": check.private_path,
                    "verify": _flag,
                },
                _dicom_tls,
            ),
        },
        "ssh": {
            "host": _host,
            "port": _port,
            "user": _text,
            "credentials": _text,
            "known_hosts": check.known_hosts_path,
        },
        "server": server,
        "defaults": {k: v for k, v in server.items() if k != "name"},
        "site": {"name": _text, "kind": _site_kind},
        "credential": {
            "username": _text,
            "password_env": _env_name,
            "file": check.secrets_path,
            "key_file": check.private_path,
        },
    }


REQUIRED = {"bmc": ("address",), "dicom": ("host", "ae_title"), "ssh": ("host", "user")}


# -- the run --------------------------------------------------------------------------


def build_inventory(data: Any, file: Path, problems: Iterable[Problem] = ()) -> Inventory:
    """Validate located YAML ``data`` read from ``file`` and build the inventory.

    ``problems`` are earlier findings (e.g. duplicate keys) that also make the
    file unusable. Raises :class:`InventoryError` listing every problem.
    """
    check = _Check(file=file, problems=list(problems))
    specs = _specs(check)
    if data is None:
        check.problem(1, "", "the file is empty; expected a mapping with 'servers:'")
        raise InventoryError(check.problems)
    if not isinstance(data, LocatedMap):
        line = data.line if isinstance(data, LocatedList) else 1
        check.problem(line, "", f"the top level must be a mapping, got {describe(data)}")
        raise InventoryError(check.problems)

    for key in data:
        if key not in TOP_LEVEL:
            hint = (
                NEVER_INLINE
                if str(key).lower() in SECRET_KEYS
                else (f"unknown key{_suggest(str(key), TOP_LEVEL)}; known: {', '.join(TOP_LEVEL)}")
            )
            check.problem(data.line_of(key), str(key), hint)
    if "version" in data and (
        isinstance(data["version"], bool) or data["version"] != SUPPORTED_VERSION
    ):
        check.problem(
            data.line_of("version"),
            "version",
            f"version {data['version']!r} is not supported; only {SUPPORTED_VERSION}",
        )
    read_only = False
    if "read_only" in data:
        try:
            read_only = _flag(data["read_only"])
        except _Invalid as exc:
            check.problem(data.line_of("read_only"), "read_only", str(exc))

    sites = _sites(check, data, specs)
    credentials = _credentials(check, data, specs)
    defaults = _defaults(check, data, specs)
    servers = _servers(check, data, specs, defaults)
    _cross_check(check, servers, sites, credentials)
    if check.problems:
        raise InventoryError(check.problems)
    return Inventory(
        path=file,
        sites={s.name: s for s in sites.values()},
        servers=tuple(s for s, _ in servers),
        credentials=credentials,
        read_only=read_only,
    )


def _sites(
    check: _Check, data: LocatedMap, specs: dict[str, dict[str, Converter]]
) -> dict[str, Site]:
    raw = data.get("sites")
    sites: dict[str, Site] = {}
    if raw is None:
        return sites
    if not isinstance(raw, LocatedList):
        check.problem(data.line_of("sites"), "sites", f"expected a list, got {describe(raw)}")
        return sites
    first_line: dict[str, int] = {}
    for i, item in enumerate(raw):
        key_path = f"sites[{i}]"
        body = _mapping(check, item, raw.line_of(i), key_path)
        if body is None:
            continue
        values = _read(check, body, specs["site"], key_path)
        missing = [k for k in ("name", "kind") if body.get(k) is None]
        for key in missing:
            check.problem(body.line, f"{key_path}.{key}", "missing required key")
        if "name" not in values or "kind" not in values:
            continue
        name = values["name"]
        if name in sites:
            check.problem(
                body.line_of("name"),
                f"{key_path}.name",
                f"duplicate site {name!r} (also on line {first_line[name]})",
            )
            continue
        sites[name] = Site(name=name, kind=values["kind"])
        first_line[name] = body.line_of("name")
    return sites


def _credentials(
    check: _Check, data: LocatedMap, specs: dict[str, dict[str, Converter]]
) -> dict[str, CredentialRef]:
    raw = data.get("credentials")
    refs: dict[str, CredentialRef] = {}
    if raw is None:
        return refs
    if not isinstance(raw, LocatedMap):
        check.problem(data.line_of("credentials"), "credentials", "expected a mapping of names")
        return refs
    for name, body in raw.items():
        key_path = f"credentials.{name}"
        line = raw.line_of(name)
        if not isinstance(body, LocatedMap):
            # describe(body) is not used: a plain string here is most likely a password.
            check.problem(line, key_path, f"expected a mapping; {NEVER_INLINE}")
            continue
        values = _read(check, body, specs["credential"], key_path)
        sources = [k for k in ("password_env", "file", "key_file") if k in body]
        if not sources:
            check.problem(line, key_path, "no secret source: give password_env, file or key_file")
        elif len(sources) > 1:
            check.problem(
                line, key_path, f"two secret sources ({', '.join(sources)}); give exactly one"
            )
        refs[str(name)] = CredentialRef(name=str(name), **values)
    return refs


def _defaults(
    check: _Check, data: LocatedMap, specs: dict[str, dict[str, Converter]]
) -> LocatedMap:
    raw = data.get("defaults")
    if raw is None:
        return LocatedMap(0)
    body = _mapping(check, raw, data.line_of("defaults"), "defaults")
    if body is None:
        return LocatedMap(0)
    # Checked once here, so a bad default is reported once and not per server.
    plain = LocatedMap(body.line)
    for key, value in body.items():
        if key in BLOCKS:
            block = _mapping(check, value, body.line_of(key), f"defaults.{key}")
            if block is not None:
                _read(check, block, specs[key], f"defaults.{key}")
        elif key == "name":
            check.problem(body.line_of(key), "defaults.name", "a name cannot have a default")
        else:
            plain[key] = value
            plain.key_lines[key] = body.line_of(key)
    _read(check, plain, specs["defaults"], "defaults")
    return body


def _merged(default: Any, own: LocatedMap) -> LocatedMap:
    """``own`` over ``default``: keys the server sets win, lines follow the value's origin."""
    merged = LocatedMap(own.line)
    for source in (default, own):
        if isinstance(source, LocatedMap):
            for key, value in source.items():
                merged[key] = value
                merged.key_lines[key] = source.line_of(key)
    return merged


def _servers(
    check: _Check,
    data: LocatedMap,
    specs: dict[str, dict[str, Converter]],
    defaults: LocatedMap,
) -> list[tuple[Server, str]]:
    raw = data.get("servers")
    if raw is None:
        check.problem(data.line, "servers", "missing required key")
        return []
    if not isinstance(raw, LocatedList):
        check.problem(data.line_of("servers"), "servers", f"expected a list, got {describe(raw)}")
        return []
    built: list[tuple[Server, str]] = []
    first_line: dict[str, int] = {}
    for i, item in enumerate(raw):
        key_path = f"servers[{i}]"
        own = _mapping(check, item, raw.line_of(i), key_path)
        if own is None:
            continue
        # Judged on the raw name, so a duplicate of a server with other problems still shows.
        name = own.get("name")
        if isinstance(name, str) and name.strip():
            seen = first_line.setdefault(name.strip(), own.line)
            if seen != own.line:
                check.problem(
                    own.line_of("name"),
                    f"{key_path}.name",
                    f"duplicate server name {name.strip()!r} (also on line {seen})",
                )
        server = _server(check, own, key_path, specs, defaults)
        if server is not None:
            built.append((server, key_path))
    return built


def _server(
    check: _Check,
    own: LocatedMap,
    key_path: str,
    specs: dict[str, dict[str, Converter]],
    defaults: LocatedMap,
) -> Server | None:
    before = len(check.problems)
    plain = LocatedMap(own.line)
    for key, value in own.items():
        if key not in BLOCKS:
            plain[key] = value
            plain.key_lines[key] = own.line_of(key)
    # Default scalars apply where the server is silent; they were checked already.
    values = {
        k: specs["defaults"][k](v)
        for k, v in defaults.items()
        if k in specs["defaults"] and k not in own and _quiet(specs["defaults"][k], v)
    }
    values.update(_read(check, plain, specs["server"], key_path))
    for key in ("name", "site", "role"):
        if key not in values and own.get(key) is None:
            check.problem(own.line, f"{key_path}.{key}", "missing required key")

    blocks: dict[str, dict[str, Any] | None] = {}
    for block in BLOCKS:
        value = own.get(block)
        if value is None:
            blocks[block] = None  # absent: a default block does not create one
            continue
        body = _mapping(check, value, own.line_of(block), f"{key_path}.{block}")
        if body is None:
            continue
        merged = _merged(defaults.get(block), body)
        # Only the server's own keys are reported; defaults were checked once.
        block_values = _read(check, body, specs[block], f"{key_path}.{block}")
        for key, default_value in merged.items():
            if key not in body and key in specs[block] and _quiet(specs[block][key], default_value):
                block_values[key] = specs[block][key](default_value)
        for key in REQUIRED[block]:
            if merged.get(key) is None:
                check.problem(body.line, f"{key_path}.{block}.{key}", "missing required key")
        blocks[block] = block_values
    if len(check.problems) > before:
        if "name" in values:
            check.failed.add(values["name"])
        return None

    bmc = blocks["bmc"]
    if bmc is not None and "port" not in bmc:
        bmc["port"] = 80 if bmc.get("scheme") == "http" else 443
    dicom = blocks["dicom"]
    if dicom is not None:
        dicom.setdefault("calling_ae_title", DEFAULT_CALLING_AE_TITLE)
        if dicom.get("tls") is not None:
            dicom.setdefault("port", DICOM_TLS_PORT)
    return Server(
        name=values["name"],
        site=values["site"],
        role=values["role"],
        rack=values.get("rack"),
        tags=values.get("tags", ()),
        depends_on=values.get("depends_on", ()),
        services=values.get("services", default_units(values["role"])),
        bmc=None if bmc is None else BmcEndpoint(**bmc),
        dicom=None if dicom is None else DicomEndpoint(**dicom),
        ssh=None if blocks["ssh"] is None else SshEndpoint(**blocks["ssh"]),
        line=own.line,
    )


def _quiet(convert: Converter, value: Any) -> bool:
    """True when a default value converts (a bad one was reported under defaults)."""
    try:
        convert(value)
    except _Invalid:
        return False
    return True


def _cross_check(
    check: _Check,
    servers: list[tuple[Server, str]],
    sites: dict[str, Site],
    credentials: dict[str, CredentialRef],
) -> None:
    """Facts that span servers: unique names, declared references, no cycles."""
    first: dict[str, Server] = {}
    for server, _ in servers:
        first.setdefault(server.name, server)  # duplicates were reported while reading
    for server, key_path in servers:
        if server.site not in sites:
            check.problem(
                server.line,
                f"{key_path}.site",
                f"unknown site {server.site!r}{_suggest(server.site, sites)}; "
                "declare it under 'sites:'",
            )
        for dep in server.depends_on:
            if dep == server.name:
                check.problem(
                    server.line, f"{key_path}.depends_on", "a server cannot depend on itself"
                )
            elif dep not in first and dep not in check.failed:
                check.problem(
                    server.line,
                    f"{key_path}.depends_on",
                    f"unknown server {dep!r}{_suggest(dep, first)}",
                )
        for block, endpoint in (("bmc", server.bmc), ("ssh", server.ssh)):
            ref = getattr(endpoint, "credentials", None)
            if ref is not None and ref not in credentials:
                check.problem(
                    server.line,
                    f"{key_path}.{block}.credentials",
                    f"unknown credential reference {ref!r}{_suggest(ref, credentials)}; "
                    "declare it under 'credentials:'",
                )
    _check_cycles(check, servers)
    _check_shared_bmcs(check, servers)


def _check_shared_bmcs(check: _Check, servers: list[tuple[Server, str]]) -> None:
    """Servers behind one BMC (a blade enclosure) must each name their own system.

    Without it a reset would go to whichever system the BMC lists first: the
    wrong server powered off.
    """
    by_bmc: dict[tuple[str, int], list[tuple[Server, str]]] = {}
    for server, key_path in servers:
        if server.bmc is not None:
            by_bmc.setdefault((server.bmc.address, server.bmc.port), []).append((server, key_path))
    for (address, port), group in by_bmc.items():
        if len(group) < 2:
            continue
        names = ", ".join(s.name for s, _ in group)
        seen: dict[str, str] = {}
        for server, key_path in group:
            assert server.bmc is not None
            system = server.bmc.system
            if system is None:
                check.problem(
                    server.line,
                    f"{key_path}.bmc.system",
                    f"BMC {address}:{port} is shared by {names}; "
                    "name this server's ComputerSystem (member Id or path)",
                )
                continue
            member = system.rstrip("/").rsplit("/", 1)[-1]
            if member in seen:
                check.problem(
                    server.line,
                    f"{key_path}.bmc.system",
                    f"system {member!r} of BMC {address}:{port} is already {seen[member]}",
                )
            else:
                seen[member] = server.name


def _check_cycles(check: _Check, servers: list[tuple[Server, str]]) -> None:
    by_name = {s.name: (s, k) for s, k in servers}
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    for start, _ in servers:
        if start.name in state:
            continue
        path: list[str] = []
        stack: list[tuple[str, int]] = [(start.name, 0)]
        while stack:
            name, index = stack.pop()
            if index == 0:
                state[name] = 1
                path.append(name)
            deps = [d for d in by_name[name][0].depends_on if d in by_name and d != name]
            if index < len(deps):
                stack.append((name, index + 1))
                dep = deps[index]
                if state.get(dep) == 1:
                    cycle = [*path[path.index(dep) :], dep]
                    server, key_path = by_name[dep]
                    check.problem(
                        server.line,
                        f"{key_path}.depends_on",
                        f"dependency cycle: {' -> '.join(cycle)}",
                    )
                elif dep not in state:
                    stack.append((dep, 0))
            else:
                state[name] = 2
                path.pop()
