"""Inventory validation: located YAML/CSV data in, a ``Fleet`` or every problem out.

Each section has a spec mapping its keys to converters. A converter raises
``_Invalid`` with a message; the checker records it at the key's location and
carries on, so one run reports every mistake in a 300-server file.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pacs_tui.credentials import CredentialSet, SecretRef
from pacs_tui.inventory.located import LocatedList, LocatedMap
from pacs_tui.inventory.model import (
    BmcAccess,
    DicomAccess,
    Fleet,
    Server,
    Site,
    SshAccess,
)
from pacs_tui.inventory.problems import Problem, SourceLocation
from pacs_tui.roles import ROLES

SUPPORTED_VERSION = 1
SECTIONS = ("bmc", "dicom", "ssh")
SECRET_WORDS = ("password", "passphrase", "private_key", "secret", "token", "key")


class _Invalid(ValueError):
    """A value that fails its converter; the message says what was expected."""


# -- converters -----------------------------------------------------------------

_HOSTNAME = re.compile(r"(?=.{1,253}\Z)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?)+\Z")
_SERVER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,252}\Z")
_SPLIT = re.compile(r"[\s,;]+")
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if value is None:
        return "nothing"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        # YAML reads yes/no/on/off as booleans and 0123 as a number.
        quote = " (quote it in YAML)" if isinstance(value, bool | int | float) else ""
        raise _Invalid(f"expected text, got {_kind(value)}{quote}")
    return value.strip()


def _server_name(value: Any) -> str:
    text = _text(value)
    if not _SERVER_NAME.match(text):
        raise _Invalid(f"{text!r} is not a server name (letters, digits, '.', '_', '-')")
    return text


def _host(value: Any) -> str:
    text = _text(value)
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    if _HOSTNAME.match(text) and not text.replace(".", "").isdigit():
        return text.lower().rstrip(".")
    raise _Invalid(f"{text!r} is neither an IP address nor a host name")


def _port(value: Any) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)  # CSV cells are text
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise _Invalid(f"expected a port 1-65535, got {_kind(value)}")
    return value


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise _Invalid(f"expected true or false, got {_kind(value)}")


def _names(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        items: list[Any] = [v for v in _SPLIT.split(value) if v]
    elif isinstance(value, list):
        items = list(value)
    else:
        raise _Invalid(f"expected a list, got {_kind(value)}")
    names = tuple(_text(item) for item in items)
    return tuple(dict.fromkeys(names))  # drop repeats, keep order


def _scheme(value: Any) -> str:
    text = _text(value).lower()
    if text not in ("https", "http"):
        raise _Invalid(f"expected https or http, got {text!r}")
    return text


def _fingerprint(value: Any) -> str:
    text = _text(value).lower().removeprefix("sha256:").replace(":", "")
    if not re.fullmatch(r"[0-9a-f]{64}", text):
        raise _Invalid("expected a SHA-256 fingerprint: 64 hex digits, colons allowed")
    return text


def _ae_title(value: Any) -> str:
    text = _text(value)
    if len(text) > 16:
        raise _Invalid(f"AE title {text!r} is longer than 16 characters")
    if "\\" in text or not text.isascii() or not text.isprintable():
        raise _Invalid(f"AE title {text!r} may hold printable ASCII only, without '\\'")
    return text


def _url_path(value: Any) -> str:
    text = _text(value)
    if not text.startswith("/"):
        raise _Invalid(f"expected a path starting with '/', got {text!r}")
    return text.rstrip("/")


Converter = Callable[[Any], Any]


@dataclass
class _Context:
    """Shared state of one validation run."""

    base_dir: Path
    problems: list[Problem] = field(default_factory=list)
    # Servers that failed validation: others may still name them without a second error.
    failed: set[str] = field(default_factory=set)

    def error(self, where: SourceLocation, message: str) -> None:
        self.problems.append(Problem(where, message))

    def warn(self, where: SourceLocation, message: str) -> None:
        self.problems.append(Problem(where, message, "warning"))

    def path(self, value: Any) -> Path:
        path = Path(_text(value)).expanduser()
        return path if path.is_absolute() else self.base_dir / path

    def secret_ref(self, value: Any) -> SecretRef:
        if not isinstance(value, str):
            # Never echo the value: it may be the password itself.
            raise _Invalid(
                "expected a credential reference (env:NAME, file:PATH or keyring:SERVICE[/USER])"
            )
        try:
            return SecretRef.parse(value.strip(), base_dir=self.base_dir)
        except ValueError as exc:
            raise _Invalid(str(exc)) from None


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _read(
    ctx: _Context, data: LocatedMap, spec: Mapping[str, Converter], label: str
) -> dict[str, Any]:
    """Convert every key of ``data`` by ``spec``; report unknown keys and bad values."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        where = data.where(key)
        if not isinstance(key, str) or key not in spec:
            hint = _suggest(str(key), spec)
            if not hint and any(w in str(key).lower() for w in SECRET_WORDS):
                hint = (
                    "; secrets belong in a credential set under 'credentials:', "
                    "as env:, file: or keyring: references"
                )
            ctx.error(where, f"{label}: unknown key {key!r}{hint}")
            continue
        try:
            out[key] = spec[key](value)
        except _Invalid as exc:
            ctx.error(where, f"{label}.{key}: {exc}")
    return out


def _section(ctx: _Context, parent: LocatedMap, key: str, label: str) -> LocatedMap | bool | None:
    """A nested mapping; ``False`` when switched off (``dicom: false``), None when absent."""
    if key not in parent:
        return None
    value = parent[key]
    if value is None or value is False or (isinstance(value, str) and value.lower() in _FALSE):
        return False
    if isinstance(value, LocatedMap):
        return value
    ctx.error(parent.where(key), f"{label}.{key}: expected a mapping or false, got {_kind(value)}")
    return None


# -- specs ------------------------------------------------------------------------


def _specs(ctx: _Context) -> dict[str, dict[str, Converter]]:
    bmc: dict[str, Converter] = {
        "address": _host,
        "port": _port,
        "scheme": _scheme,
        "credentials": _text,
        "verify_tls": _flag,
        "ca_file": ctx.path,
        "fingerprint": _fingerprint,
        "system_path": _url_path,
    }
    dicom: dict[str, Converter] = {"ae_title": _ae_title, "port": _port, "calling_ae": _ae_title}
    ssh: dict[str, Converter] = {
        "port": _port,
        "credentials": _text,
        "known_hosts": ctx.path,
    }
    return {
        "bmc": bmc,
        "dicom": dicom,
        "ssh": ssh,
        # Per-server facts make no sense as defaults.
        "defaults.bmc": {k: v for k, v in bmc.items() if k != "address"},
        "defaults.dicom": {k: v for k, v in dicom.items() if k != "ae_title"},
        "defaults.ssh": ssh,
        "server": {
            "name": _server_name,
            "role": _text,
            "site": _text,
            "address": _host,
            "services": _names,
            "depends_on": _names,
            "tags": _names,
            "rack": _text,
        },
        "site": {"name": _text, "kind": _text, "description": _text},
        "credential": {
            "username": _text,
            "password": ctx.secret_ref,
            "private_key": ctx.secret_ref,
            "passphrase": ctx.secret_ref,
        },
    }


TOP_LEVEL = ("version", "sites", "credentials", "defaults", "servers", "servers_from")


@dataclass
class _Defaults:
    site: str | None = None
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)


# -- the run ----------------------------------------------------------------------


def build_fleet(
    documents: list[tuple[Any, SourceLocation]],
    *,
    base_dir: Path,
    load_extra: Callable[[str, SourceLocation], tuple[LocatedList | None, list[Problem]]]
    | None = None,
    problems: Iterable[Problem] = (),
    sources: Iterable[Path] = (),
) -> tuple[Fleet | None, list[Problem]]:
    """Validate the main document and build the fleet.

    ``documents`` holds one (data, location) pair: a YAML mapping or a CSV row
    list. ``load_extra`` reads a ``servers_from`` file. Returns the fleet
    (None when any error was found) and all problems, warnings included.
    """
    ctx = _Context(base_dir=base_dir, problems=list(problems))
    specs = _specs(ctx)
    (data, where) = documents[0]
    sites: list[Site] = []
    credentials: dict[str, tuple[CredentialSet, SourceLocation]] = {}
    defaults = _Defaults()
    rows: list[tuple[Any, SourceLocation, str]] = []

    if isinstance(data, LocatedList):  # a bare CSV (or a YAML list of servers)
        rows = [(row, data.where(i), f"servers[{i}]") for i, row in enumerate(data)]
    elif isinstance(data, LocatedMap):
        for key in data:
            if key not in TOP_LEVEL:
                ctx.error(
                    data.where(key), f"unknown top-level key {key!r}{_suggest(str(key), TOP_LEVEL)}"
                )
        if "version" in data and data["version"] != SUPPORTED_VERSION:
            ctx.error(
                data.where("version"),
                f"inventory version {data['version']!r} is not supported (this pacs-tui reads {SUPPORTED_VERSION})",
            )
        sites = _sites(ctx, data, specs)
        credentials = _credentials(ctx, data, specs)
        defaults = _defaults(ctx, data, specs)
        servers = data.get("servers")
        if isinstance(servers, LocatedList):
            rows = [(row, servers.where(i), f"servers[{i}]") for i, row in enumerate(servers)]
        elif servers is not None:
            ctx.error(data.where("servers"), f"servers: expected a list, got {_kind(servers)}")
        rows += _servers_from(ctx, data, load_extra)
    elif data is not None:
        ctx.error(where, f"expected a mapping with 'servers:', got {_kind(data)}")

    built = [
        s for s in (_server(ctx, row, loc, label, specs, defaults) for row, loc, label in rows) if s
    ]
    if not built and not any(p.severity == "error" for p in ctx.problems):
        ctx.error(where, "the inventory lists no servers")
    _cross_check(ctx, built, sites, credentials)
    if any(p.severity == "error" for p in ctx.problems):
        return None, ctx.problems
    fleet = Fleet(
        built,
        sites=sites,
        credentials=[c for c, _ in credentials.values()],
        warnings=[p for p in ctx.problems if p.severity == "warning"],
        sources=sources,
    )
    return fleet, ctx.problems


def _sites(ctx: _Context, data: LocatedMap, specs: dict[str, dict[str, Converter]]) -> list[Site]:
    raw = data.get("sites")
    if raw is None:
        return []
    if not isinstance(raw, LocatedList):
        ctx.error(data.where("sites"), f"sites: expected a list, got {_kind(raw)}")
        return []
    sites: dict[str, Site] = {}
    for i, item in enumerate(raw):
        where = raw.where(i)
        if isinstance(item, str):
            values: dict[str, Any] = {"name": item.strip()}
        elif isinstance(item, LocatedMap):
            values = _read(ctx, item, specs["site"], f"sites[{i}]")
        else:
            ctx.error(where, f"sites[{i}]: expected a name or a mapping, got {_kind(item)}")
            continue
        if not values.get("name"):
            if isinstance(item, LocatedMap) and "name" not in item:
                ctx.error(where, f"sites[{i}]: 'name' is required")
            continue
        if values["name"] in sites:
            ctx.error(where, f"sites[{i}]: duplicate site {values['name']!r}")
            continue
        sites[values["name"]] = Site(**values)
    return list(sites.values())


def _credentials(
    ctx: _Context, data: LocatedMap, specs: dict[str, dict[str, Converter]]
) -> dict[str, tuple[CredentialSet, SourceLocation]]:
    raw = data.get("credentials")
    if raw is None:
        return {}
    if not isinstance(raw, LocatedMap):
        ctx.error(
            data.where("credentials"),
            f"credentials: expected a mapping of named sets, got {_kind(raw)}",
        )
        return {}
    out: dict[str, tuple[CredentialSet, SourceLocation]] = {}
    for name, body in raw.items():
        where = raw.where(name)
        label = f"credentials.{name}"
        if not isinstance(body, LocatedMap):
            # Not _kind(body): a plain string here is most likely a password.
            ctx.error(where, f"{label}: expected a mapping with username and references")
            continue
        values = _read(ctx, body, specs["credential"], label)
        if "username" not in values:
            if "username" not in body:
                ctx.error(where, f"{label}: 'username' is required")
            continue
        out[str(name)] = (CredentialSet(name=str(name), **values), where)
    return out


def _defaults(ctx: _Context, data: LocatedMap, specs: dict[str, dict[str, Converter]]) -> _Defaults:
    raw = data.get("defaults")
    defaults = _Defaults()
    if raw is None:
        return defaults
    if not isinstance(raw, LocatedMap):
        ctx.error(data.where("defaults"), f"defaults: expected a mapping, got {_kind(raw)}")
        return defaults
    for key in raw:
        if key not in (*SECTIONS, "site"):
            ctx.error(
                raw.where(key),
                f"defaults: unknown key {key!r}{_suggest(str(key), (*SECTIONS, 'site'))}"
                " (defaults may set bmc, dicom, ssh and site)",
            )
    if "site" in raw:
        try:
            defaults.site = _text(raw["site"])
        except _Invalid as exc:
            ctx.error(raw.where("site"), f"defaults.site: {exc}")
    for name in SECTIONS:
        section = _section(ctx, raw, name, "defaults")
        if isinstance(section, LocatedMap):
            defaults.sections[name] = _read(
                ctx, section, specs[f"defaults.{name}"], f"defaults.{name}"
            )
    return defaults


def _servers_from(
    ctx: _Context,
    data: LocatedMap,
    load_extra: Callable[[str, SourceLocation], tuple[LocatedList | None, list[Problem]]] | None,
) -> list[tuple[Any, SourceLocation, str]]:
    raw = data.get("servers_from")
    if raw is None:
        return []
    where = data.where("servers_from")
    try:
        files = _names(raw) if not isinstance(raw, str) else (raw.strip(),)
    except _Invalid as exc:
        ctx.error(where, f"servers_from: {exc}")
        return []
    rows: list[tuple[Any, SourceLocation, str]] = []
    for name in files:
        if load_extra is None:
            ctx.error(where, "servers_from: only an inventory file can include other files")
            continue
        extra, problems = load_extra(name, where)
        ctx.problems.extend(problems)
        if extra is not None:
            rows += [(row, extra.where(i), f"{name} row {i + 1}") for i, row in enumerate(extra)]
    return rows


def _server(
    ctx: _Context,
    row: Any,
    where: SourceLocation,
    label: str,
    specs: dict[str, dict[str, Converter]],
    defaults: _Defaults,
) -> Server | None:
    if not isinstance(row, LocatedMap):
        ctx.error(where, f"{label}: expected a mapping, got {_kind(row)}")
        return None
    before = len(ctx.problems)
    plain = LocatedMap(row.location)
    for key, value in row.items():
        if key not in SECTIONS:
            plain[key] = value
            plain.key_locations[key] = row.where(key)
    if isinstance(row.get("name"), str) and _SERVER_NAME.match(row["name"].strip()):
        label = f"server {row['name'].strip()}"
    values = _read(ctx, plain, specs["server"], label)
    if "site" not in values and defaults.site:
        values["site"] = defaults.site
    for required in ("name", "role", "site", "address"):
        if required not in values and required not in row:
            ctx.error(where, f"{label}: {required!r} is required")
    sections: dict[str, Any] = {}
    for name in SECTIONS:
        section = _section(ctx, row, name, label)
        if section is False:
            sections[name] = None
            continue
        merged = dict(defaults.sections.get(name, {}))
        if isinstance(section, LocatedMap):
            merged.update(_read(ctx, section, specs[name], f"{label}.{name}"))
        sections[name] = (merged, row.where(name) if name in row else where, section)
    if any(p.severity == "error" for p in ctx.problems[before:]):
        if "name" in values:
            ctx.failed.add(values["name"])
        return None

    role = values["role"]
    known_role = ROLES.get(role)
    services = values.get("services")
    if services is None:
        if known_role is None:
            ctx.error(
                row.where("role"),
                f"{label}: role {role!r} is not a built-in role{_suggest(role, ROLES)}; "
                "give 'services' (the systemd units to check)",
            )
            ctx.failed.add(values["name"])
            return None
        services = known_role.units
    elif known_role is None:
        hint = _suggest(role, ROLES)
        if hint:
            ctx.warn(row.where("role"), f"{label}: custom role {role!r}{hint}")

    bmc = ssh = dicom = None
    if sections["bmc"] is not None:
        merged, at, section = sections["bmc"]
        if "address" in merged:
            bmc = BmcAccess(**merged)
        elif isinstance(section, LocatedMap):
            ctx.error(at, f"{label}.bmc: 'address' is required")
            ctx.failed.add(values["name"])
            return None
    if sections["ssh"] is not None:
        ssh = SshAccess(**sections["ssh"][0])
    if sections["dicom"] is not None:
        merged, at, section = sections["dicom"]
        wants_dicom = isinstance(section, LocatedMap) or (
            known_role is not None and known_role.speaks_dicom
        )
        if wants_dicom:
            if "ae_title" not in merged:
                ctx.error(
                    at,
                    f"{label}: role {role!r} speaks DICOM; give dicom.ae_title "
                    "(or 'dicom: false' if this server offers no DICOM service)",
                )
                ctx.failed.add(values["name"])
                return None
            dicom = DicomAccess(**merged)

    return Server(
        name=values["name"],
        role=role,
        site=values["site"],
        address=values["address"],
        services=tuple(services),
        depends_on=values.get("depends_on", ()),
        bmc=bmc,
        dicom=dicom,
        ssh=ssh,
        tags=frozenset(values.get("tags", ())),
        rack=values.get("rack", ""),
        location=where,
    )


def _cross_check(
    ctx: _Context,
    servers: list[Server],
    sites: list[Site],
    credentials: dict[str, tuple[CredentialSet, SourceLocation]],
) -> None:
    """Facts that span servers: uniqueness, references, dependency cycles."""
    by_name: dict[str, Server] = {}
    folded: dict[str, Server] = {}
    for server in list(servers):
        first = folded.get(server.name.lower())
        if first is not None:
            same = "" if first.name == server.name else f" ({first.name!r} differs only in case)"
            ctx.error(
                server.location,
                f"server {server.name}: duplicate name{same}, first at {first.location}",
            )
            servers.remove(server)
            continue
        folded[server.name.lower()] = server
        by_name[server.name] = server

    site_names = {s.name for s in sites}
    bmc_endpoints: dict[tuple[str, int], Server] = {}
    ae_titles: dict[str, Server] = {}
    for server in servers:
        label = f"server {server.name}"
        if site_names and server.site not in site_names:
            ctx.error(
                server.location,
                f"{label}: unknown site {server.site!r}{_suggest(server.site, site_names)}",
            )
        for dep in server.depends_on:
            if dep == server.name:
                ctx.error(server.location, f"{label}: depends on itself")
            elif dep not in by_name and dep not in ctx.failed:
                ctx.error(
                    server.location,
                    f"{label}: depends on unknown server {dep!r}{_suggest(dep, by_name)}",
                )
        for kind, access in (("bmc", server.bmc), ("ssh", server.ssh)):
            name = getattr(access, "credentials", None)
            if name is not None and name not in credentials:
                ctx.error(
                    server.location,
                    f"{label}: {kind}.credentials names unknown set {name!r}"
                    f"{_suggest(name, credentials)}",
                )
        if server.bmc is not None:
            endpoint = (server.bmc.address, server.bmc.port)
            other = bmc_endpoints.setdefault(endpoint, server)
            if other is not server:
                ctx.error(
                    server.location,
                    f"{label}: BMC {server.bmc.url} is already the BMC of {other.name} "
                    f"({other.location})",
                )
        if server.dicom is not None:
            other = ae_titles.setdefault(server.dicom.ae_title, server)
            if other is not server:
                ctx.warn(
                    server.location,
                    f"{label}: AE title {server.dicom.ae_title!r} is also used by {other.name}; "
                    "DICOM peers may route to the wrong one",
                )
    _check_cycles(ctx, servers, by_name)


def _check_cycles(ctx: _Context, servers: list[Server], by_name: dict[str, Server]) -> None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    reported: set[frozenset[str]] = set()
    for start in servers:
        if start.name in state:
            continue
        path: list[str] = []
        stack: list[tuple[str, int]] = [(start.name, 0)]
        while stack:
            name, index = stack.pop()
            if index == 0:
                state[name] = 1
                path.append(name)
            deps = [d for d in by_name[name].depends_on if d in by_name and d != name]
            if index < len(deps):
                stack.append((name, index + 1))
                dep = deps[index]
                if state.get(dep) == 1:
                    cycle = [*path[path.index(dep) :], dep]
                    if frozenset(cycle) not in reported:
                        reported.add(frozenset(cycle))
                        ctx.error(
                            by_name[dep].location,
                            f"dependency cycle: {' -> '.join(cycle)}",
                        )
                elif dep not in state:
                    stack.append((dep, 0))
            else:
                state[name] = 2
                path.pop()
