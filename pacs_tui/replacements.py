"""Recorded replacements: which spare took which server's place.

``pacs-tui replace SERVER --with SPARE`` writes one entry to
``replacements.json`` in the data directory (next to the audit log and the
custody board)::

    {"version": 1,
     "replacements": [
       {"inventory": "/srv/move/inventory.yaml", "server": "db-001", "spare": "spare-01",
        "serial": "MC00A1B2", "macs": ["02:50:ac:00:10:00"],
        "bmc_address": "127.42.9.1", "bmc_port": 8443,
        "old_serial": "HA1F2E3D00004", "at": "2026-12-01T11:02:03.123456Z",
        "operator": "alice"}]}

The entries are a history: the last one for an (inventory, server) pair is in
force. ``apply_replacements`` gives every command that loads the inventory
(``status``, ``power``, ``serve``, ``baseline capture``, ...) the server as it
is now: same name, role, dependencies, DICOM and SSH endpoints, the spare's
BMC. The file is written like the custody board (``write_json_atomic`` under
``board_lock``) and checked field by field when read.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pacs_tui.batch.audit import AuditLog, data_dir, utc_stamp
from pacs_tui.custody_file import board_lock, write_json_atomic
from pacs_tui.input_file import MIB, FileKind, InputFileError, read_json
from pacs_tui.inventory import BmcEndpoint, Inventory, Server

if TYPE_CHECKING:
    from pacs_tui.custody import CustodyBoard

REPLACEMENTS_FILE = "replacements.json"
REPLACEMENTS_VERSION = 1
REPLACEMENTS = FileKind("replacements file", 4 * MIB)  # ~300 bytes an entry
_FIELDS: dict[str, type | tuple[type, ...]] = {
    "inventory": str,
    "server": str,
    "spare": str,
    "serial": str,
    "macs": list,
    "bmc_address": str,
    "bmc_port": int,
    "old_serial": (str, type(None)),
    "at": str,
    "operator": str,
}


class ReplacementsError(ValueError):
    """The replacements file cannot be used; the message names the file, entry and field."""


@dataclass(frozen=True)
class Replacement:
    """One spare racked in a server's place, as the spare's BMC reported it.

    ``serial`` and ``macs`` were read from the spare's BMC (Redfish), never
    taken from the inventory alone; ``old_serial`` is what the server's old
    BMC reported, None when it did not answer. ``at`` is a ``utc_stamp``.
    """

    inventory: str  # the inventory file (absolute) the replacement was made against
    server: str
    spare: str
    serial: str
    macs: tuple[str, ...]
    bmc_address: str
    bmc_port: int
    old_serial: str | None
    at: str
    operator: str

    def to_json(self) -> dict[str, Any]:
        """The entry as it is stored."""
        data = asdict(self)
        data["macs"] = list(self.macs)
        return data


def default_replacements_path() -> Path:
    """Where replacements are recorded: the data directory."""
    return data_dir() / REPLACEMENTS_FILE


def read_replacements(path: Path | None = None) -> list[Replacement]:
    """Every recorded replacement in order; ``[]`` when the file does not exist.

    Raises :class:`ReplacementsError` for a file that is not a regular UTF-8
    file of at most 4 MiB, not JSON, or has an entry with a missing or
    mistyped field.
    """
    path = path or default_replacements_path()
    if not path.exists():
        return []
    try:
        data = read_json(path, REPLACEMENTS)
    except InputFileError as exc:
        raise ReplacementsError(str(exc)) from None
    if not isinstance(data, dict) or not isinstance(data.get("replacements"), list):
        raise ReplacementsError(f"{path}: expected an object with a 'replacements' list")
    if data.get("version") != REPLACEMENTS_VERSION:
        raise ReplacementsError(
            f"{path}: version {data.get('version')!r} is not supported "
            f"(this reads {REPLACEMENTS_VERSION})"
        )
    out: list[Replacement] = []
    for index, entry in enumerate(data["replacements"]):
        where = f"{path}: replacements[{index}]"
        if not isinstance(entry, dict):
            raise ReplacementsError(f"{where}: expected an object")
        for key, kind in _FIELDS.items():
            value = entry.get(key)
            if key not in entry or not isinstance(value, kind) or isinstance(value, bool):
                raise ReplacementsError(f"{where}.{key}: missing or of the wrong type")
        extra = sorted(set(entry) - set(_FIELDS))
        if extra:
            raise ReplacementsError(f"{where}: unknown field(s) {', '.join(extra)}")
        if not all(isinstance(m, str) for m in entry["macs"]):
            raise ReplacementsError(f"{where}.macs: expected a list of strings")
        out.append(Replacement(**{**entry, "macs": tuple(entry["macs"])}))
    return out


def record_replacement(replacement: Replacement, path: Path | None = None) -> None:
    """Append ``replacement`` to the file, atomically and under the file's change lock.

    ``ReplacementsError``: the existing file is bad and is left alone.
    """
    path = path or default_replacements_path()
    with board_lock(path):
        entries = read_replacements(path)
        entries.append(replacement)
        write_json_atomic(
            path,
            {"version": REPLACEMENTS_VERSION, "replacements": [e.to_json() for e in entries]},
        )


def replace_server(
    inventory: Inventory,
    server: Server,
    spare: str,
    *,
    serial: str,
    macs: Iterable[str],
    old_serial: str | None,
    audit: AuditLog,
    board: CustodyBoard | None,
    path: Path | None = None,
) -> Replacement:
    """Record that ``spare`` took ``server``'s place, everywhere it must be recorded.

    ``inventory`` is the file as written (its spares); ``server`` as it is
    polled now (its current BMC is the "before"). ``serial``/``macs`` were
    read from the spare's BMC, ``old_serial`` from the old one (None: it did
    not answer). Appends to the replacements file at ``path`` (default: the
    data dir), writes one ``replace`` row to ``audit`` and sets the server's
    custody to ``racked`` on ``board`` (a correction naming the spare), when
    one is given. Raises ``ReplacementsError``/``OSError`` before anything is
    recorded when the file cannot be written; ``CustodyError`` from the board
    after the replacement is recorded.
    """
    from pacs_tui.custody import CustodyState

    declared = inventory.spares[spare]
    before = server.bmc
    entry = Replacement(
        inventory=str(Path(inventory.path).absolute()),
        server=server.name,
        spare=spare,
        serial=serial,
        macs=tuple(sorted(m.lower() for m in macs)),
        bmc_address=declared.bmc.address,
        bmc_port=declared.bmc.port,
        old_serial=old_serial,
        at=utc_stamp(),
        operator=audit.operator,
    )
    record_replacement(entry, path)
    old_bmc = "none" if before is None else f"{before.address}:{before.port}"
    audit.record(
        f"replace-{secrets.token_hex(4)}",
        "replace",
        verb="replace",
        server=server.name,
        call=f"{spare}: serial {old_serial or '?'} -> {serial}; "
        f"BMC {old_bmc} -> {entry.bmc_address}:{entry.bmc_port}",
        outcome="replaced",
        detail=f"MACs {', '.join(entry.macs) or 'none'}",
    )
    if board is not None and board.state(server.name) is not CustodyState.RACKED:
        board.correct(
            [server.name],
            CustodyState.RACKED,
            reason=f"replaced by spare {spare} (serial {serial})",
        )
    return entry


def in_force(replacements: Iterable[Replacement], inventory: Inventory) -> dict[str, Replacement]:
    """The replacement in force per server of ``inventory`` (the last one recorded).

    Entries made against another inventory file, or naming a server this
    inventory lacks, are left out.
    """
    own = str(Path(inventory.path).absolute())
    names = set(inventory.names())
    out: dict[str, Replacement] = {}
    for entry in replacements:
        if entry.inventory == own and entry.server in names:
            out[entry.server] = entry
    return out


def replaced_bmc(server: Server, entry: Replacement, inventory: Inventory) -> BmcEndpoint:
    """The BMC a replaced server is reached at: the spare's endpoint as declared in
    ``spares:``, else the server's with the recorded address and port (the spare was
    taken off the list after the move)."""
    spare = inventory.spares.get(entry.spare)
    if spare is not None and spare.bmc.address == entry.bmc_address:
        return spare.bmc
    if server.bmc is None:
        return BmcEndpoint(address=entry.bmc_address, port=entry.bmc_port)
    return replace(server.bmc, address=entry.bmc_address, port=entry.bmc_port, system=None)


def apply_replacements(
    inventory: Inventory, replacements: Iterable[Replacement] | Mapping[str, Replacement]
) -> Inventory:
    """``inventory`` with each replaced server's BMC set to its spare's.

    The server keeps its name, site, role, rack, tags, dependencies, services
    and its DICOM and SSH endpoints (its service identity). Returns
    ``inventory`` itself when nothing applies.
    """
    force = (
        dict(replacements)
        if isinstance(replacements, Mapping)
        else in_force(replacements, inventory)
    )
    if not force:
        return inventory
    servers = tuple(
        replace(s, bmc=replaced_bmc(s, force[s.name], inventory)) if s.name in force else s
        for s in inventory.servers
    )
    return replace(inventory, servers=servers)  # everything else (racks, spares) kept


def load_applied(inventory: Inventory, path: Path | None = None) -> Inventory:
    """``inventory`` with the replacements recorded at ``path`` (default: the data dir)."""
    return apply_replacements(inventory, read_replacements(path))
