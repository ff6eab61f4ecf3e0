"""Inventory validation: located YAML in, an ``Inventory`` or every problem out.

Each block has a spec mapping its keys to converters. A converter raises
``Invalid``; the checker records a problem at the key's line and carries on,
so one run reports every mistake of a 300-server file. Nothing is returned
half-built: any problem means no inventory.

Here: the run (top level, sites, credentials, defaults, each server). Beside
it: ``values`` (the converters), ``checker`` (the problem collector and the
file checks), ``blocks`` (each block's spec) and ``cross_check`` (facts that
span servers).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pacs_tui.inventory.blocks import BLOCKS, REQUIRED, block_specs
from pacs_tui.inventory.checker import (
    NEVER_INLINE,
    SECRET_KEYS,
    Check,
    mapping,
    read_block,
    suggest,
)
from pacs_tui.inventory.cross_check import cross_check
from pacs_tui.inventory.links import read_links
from pacs_tui.inventory.model import (
    DEFAULT_CALLING_AE_TITLE,
    DICOM_TLS_PORT,
    BmcEndpoint,
    CredentialRef,
    DicomEndpoint,
    Inventory,
    Server,
    Site,
    SiteLink,
    SshEndpoint,
)
from pacs_tui.inventory.problems import InventoryError, Problem
from pacs_tui.inventory.racks import cross_check_racks, read_racks
from pacs_tui.inventory.spares import cross_check_spares, read_spares
from pacs_tui.inventory.values import Converter, Invalid, describe, flag
from pacs_tui.inventory.yaml_source import LocatedList, LocatedMap
from pacs_tui.roles import default_units

SUPPORTED_VERSION = 1
TOP_LEVEL = (
    "version",
    "read_only",
    "sites",
    "credentials",
    "defaults",
    "servers",
    "spares",
    "racks",
)


# -- the run --------------------------------------------------------------------------


def build_inventory(
    data: Any, file: Path, problems: Iterable[Problem] = (), *, check_files: bool = True
) -> Inventory:
    """Validate located YAML ``data`` read from ``file`` and build the inventory.

    ``problems`` are earlier findings (e.g. duplicate keys) that also make the
    file unusable. Raises :class:`InventoryError` listing every problem.
    ``check_files=False`` leaves the files it names (CA, keys, secrets) unopened.
    """
    check = Check(file=file, problems=list(problems), check_files=check_files)
    specs = block_specs(check)
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
                else (f"unknown key{suggest(str(key), TOP_LEVEL)}; known: {', '.join(TOP_LEVEL)}")
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
            read_only = flag(data["read_only"])
        except Invalid as exc:
            check.problem(data.line_of("read_only"), "read_only", str(exc))

    sites = _sites(check, data, specs)
    credentials = _credentials(check, data, specs)
    defaults = _defaults(check, data, specs)
    servers = _servers(check, data, specs, defaults)
    cross_check(check, servers, sites, credentials)
    spares = {}
    if data.get("spares") is not None:
        spares = read_spares(
            check, data["spares"], data.line_of("spares"), specs["bmc"], defaults.get("bmc")
        )
        cross_check_spares(check, spares, servers, credentials)
    racks = {}
    if data.get("racks") is not None:
        racks = read_racks(check, data["racks"], data.line_of("racks"))
    cross_check_racks(check, racks, servers)
    if check.problems:
        raise InventoryError(check.problems)
    return Inventory(
        path=file,
        sites={s.name: s for s in sites.values()},
        servers=tuple(s for s, _ in servers),
        credentials=credentials,
        read_only=read_only,
        spares=spares,
        racks=racks,
    )


def _sites(
    check: Check, data: LocatedMap, specs: dict[str, dict[str, Converter]]
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
        body = mapping(check, item, raw.line_of(i), key_path)
        if body is None:
            continue
        # links: a list whose items report at their own lines, read apart from the scalars.
        scalars = LocatedMap(body.line)
        for key, value in body.items():
            if key != "links":
                scalars[key] = value
                scalars.key_lines[key] = body.line_of(key)
        values = read_block(check, scalars, specs["site"], key_path)
        links: tuple[SiteLink, ...] = ()
        if body.get("links") is not None:
            links = read_links(check, body["links"], body.line_of("links"), f"{key_path}.links")
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
        sites[name] = Site(name=name, kind=values["kind"], links=links)
        first_line[name] = body.line_of("name")
    return sites


def _credentials(
    check: Check, data: LocatedMap, specs: dict[str, dict[str, Converter]]
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
        values = read_block(check, body, specs["credential"], key_path)
        sources = [k for k in ("password_env", "file", "key_file") if k in body]
        if not sources:
            check.problem(line, key_path, "no secret source: give password_env, file or key_file")
        elif len(sources) > 1:
            check.problem(
                line, key_path, f"two secret sources ({', '.join(sources)}); give exactly one"
            )
        refs[str(name)] = CredentialRef(name=str(name), **values)
    return refs


def _defaults(check: Check, data: LocatedMap, specs: dict[str, dict[str, Converter]]) -> LocatedMap:
    raw = data.get("defaults")
    if raw is None:
        return LocatedMap(0)
    body = mapping(check, raw, data.line_of("defaults"), "defaults")
    if body is None:
        return LocatedMap(0)
    # Checked once here, so a bad default is reported once and not per server.
    plain = LocatedMap(body.line)
    for key, value in body.items():
        if key in BLOCKS:
            block = mapping(check, value, body.line_of(key), f"defaults.{key}")
            if block is not None:
                read_block(check, block, specs[key], f"defaults.{key}")
        elif key == "name":
            check.problem(body.line_of(key), "defaults.name", "a name cannot have a default")
        else:
            plain[key] = value
            plain.key_lines[key] = body.line_of(key)
    read_block(check, plain, specs["defaults"], "defaults")
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
    check: Check,
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
        own = mapping(check, item, raw.line_of(i), key_path)
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
    check: Check,
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
    values.update(read_block(check, plain, specs["server"], key_path))
    for key in ("name", "site", "role"):
        if key not in values and own.get(key) is None:
            check.problem(own.line, f"{key_path}.{key}", "missing required key")

    blocks: dict[str, dict[str, Any] | None] = {}
    for block in BLOCKS:
        value = own.get(block)
        if value is None:
            blocks[block] = None  # absent: a default block does not create one
            continue
        body = mapping(check, value, own.line_of(block), f"{key_path}.{block}")
        if body is None:
            continue
        merged = _merged(defaults.get(block), body)
        # Only the server's own keys are reported; defaults were checked once.
        block_values = read_block(check, body, specs[block], f"{key_path}.{block}")
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
        circuit=values.get("circuit"),
        nameplate_w=values.get("nameplate_w"),
        boot_peak_factor=values.get("boot_peak_factor"),
        tags=values.get("tags", ()),
        depends_on=values.get("depends_on", ()),
        services=values.get("services", default_units(values["role"])),
        bmc=None if bmc is None else BmcEndpoint(**bmc),
        dicom=None if dicom is None else DicomEndpoint(**dicom),
        ssh=None if blocks["ssh"] is None else SshEndpoint(**blocks["ssh"]),
        line=own.line,
        key_lines={str(k): own.line_of(k) for k in own},
    )


def _quiet(convert: Converter, value: Any) -> bool:
    """True when a default value converts (a bad one was reported under defaults)."""
    try:
        convert(value)
    except Invalid:
        return False
    return True
