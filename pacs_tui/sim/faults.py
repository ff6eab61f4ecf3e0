"""Faults that can be planted in a simulated server, at start or at run time."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from pacs_tui.input_file import FAULTS, InputFileError, read_text
from pacs_tui.sim.redfish_flavour import PLANTABLE

PSU_BAYS = 2  # power supplies per simulated server (pacs_tui.sim.redfish_power)


@dataclass
class HostFaults:
    """Mutable fault switches of one simulated server; all off by default.

    Each component reads the switches on every request, so a change through the
    control API takes effect on the next request without restarting anything
    (``bmc_unreachable`` and ``ssh_host_key_changed`` also restart listeners).
    """

    bmc_unreachable: bool = False  # the BMC's listener is closed (connection refused)
    bmc_delay_s: float = 0.0  # every BMC request waits this long before it is carried out
    bmc_answer_delay_s: float = 0.0  # carried out at once; only the answer waits this long
    # The same for POSTs only (a reset acted on at once, answered late), so reads stay quick.
    bmc_post_answer_delay_s: float = 0.0
    bmc_503: bool = False  # every BMC request gets 503 Service Unavailable + Retry-After
    bmc_401: bool = False  # every BMC login / authenticated request gets 401
    bmc_malformed_json: bool = False  # BMC bodies are truncated JSON
    bmc_sessions_exhausted: bool = False  # new Redfish sessions fail as when the limit is hit
    bmc_power_state_word: str = ""  # replaces ComputerSystem.PowerState ("null": JSON null)
    bmc_flavour: str = ""  # this server's BMC behaves as that flavour (not blade-enclosure)
    dicom_reject: str = ""  # "" or a reason: calling-ae, called-ae, busy, no-reason
    dicom_abort: bool = False  # associations are accepted, then aborted (A-ABORT)
    dicom_never_ready: bool = False  # after a power-on, the DICOM service never starts
    dicom_find_delay_s: float = 0.0  # a slower storage tier: added to every C-FIND's latency
    # >0: a C-FIND stops after this many matches with 0xFE00 (Orthanc's LimitFindResults).
    dicom_find_limit: int = 0
    ssh_host_key_changed: bool = False  # SSH presents a different host key
    ssh_burst_limit: int = 0  # >0: drop new connections beyond this many unauthenticated ones
    flapping_unit: str = ""  # this systemd unit alternates active/failed
    flap_period_s: float = 2.0
    ignore_graceful_shutdown: bool = False  # the OS ignores GracefulShutdown / ACPI button
    # Rack power (issue 12): power supply N (1 or 2) has no input, its cable not in the PDU.
    psu_unplugged: int = 0
    inlet_celsius: float = 0.0  # >0: the inlet air reads this (cooling not up at the new site)
    # Dead on arrival (issue 12): a power-on is accepted (the BMC answers 204) and nothing
    # happens; PowerState stays Off. Racking a spare in its place (rack_spare) clears it.
    dead_on_arrival: bool = False

    @classmethod
    def names(cls) -> list[str]:
        """Field names, for the control API and the faults file."""
        return [f.name for f in fields(cls)]

    def update(self, changes: dict[str, Any]) -> None:
        """Apply ``changes``; raise ``ValueError`` naming an unknown fault or a bad value."""
        known = {f.name: f for f in fields(self)}
        for key, value in changes.items():
            if key not in known:
                raise ValueError(f"unknown fault {key!r} (known: {', '.join(known)})")
            current = getattr(self, key)
            if isinstance(current, bool):
                if not isinstance(value, bool):
                    raise ValueError(f"fault {key!r} takes true/false, got {value!r}")
            elif isinstance(current, float):
                if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                    raise ValueError(f"fault {key!r} takes a number >= 0, got {value!r}")
                value = float(value)
            elif isinstance(current, int):
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise ValueError(f"fault {key!r} takes a whole number >= 0, got {value!r}")
            elif not isinstance(value, str):
                raise ValueError(f"fault {key!r} takes a string, got {value!r}")
            elif key == "bmc_flavour" and value and value not in PLANTABLE:
                raise ValueError(
                    f"fault 'bmc_flavour' takes one of {', '.join(PLANTABLE)}, got {value!r}"
                )
            if key == "psu_unplugged" and value > PSU_BAYS:
                raise ValueError(f"fault 'psu_unplugged' takes a bay 1..{PSU_BAYS} (0: none)")
            setattr(self, key, value)

    @classmethod
    def merged(cls, many: Iterable[HostFaults]) -> HostFaults:
        """One view of several servers' faults (the blades behind one BMC): a switch
        is on when any has it on, a delay is the longest, a string the first set."""
        result = cls()
        for faults in many:
            for name in cls.names():
                mine, theirs = getattr(result, name), getattr(faults, name)
                if isinstance(mine, bool):
                    setattr(result, name, mine or theirs)
                elif isinstance(mine, int | float):
                    setattr(result, name, max(mine, theirs))
                elif not mine:
                    setattr(result, name, theirs)
        return result

    def active(self) -> dict[str, Any]:
        """The switches that differ from the default."""
        default = HostFaults()
        return {
            n: getattr(self, n) for n in self.names() if getattr(self, n) != getattr(default, n)
        }


@dataclass(frozen=True)
class PlannedFault:
    """Faults to plant at start on every server whose name matches ``servers`` (a glob)."""

    servers: str
    changes: dict[str, Any]
    line: int


class FaultFileError(ValueError):
    """A faults file that cannot be used; the message names file, line and key."""


def load_fault_plan(path: Path) -> list[PlannedFault]:
    """Read a faults file: ``faults: [{servers: GLOB, <fault>: value, ...}, ...]``."""
    try:
        text = read_text(path, FAULTS)  # a regular file of at most 4 MiB, UTF-8
    except InputFileError as exc:
        raise FaultFileError(str(exc)) from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        raise FaultFileError(f"{path}:{line}: not valid YAML: {exc}") from None
    if not isinstance(root, yaml.MappingNode) or not root.value:
        raise FaultFileError(f"{path}:1: expected a mapping with a 'faults' list")
    plan: list[PlannedFault] = []
    for key_node, value_node in root.value:
        line = key_node.start_mark.line + 1
        if key_node.value != "faults":
            raise FaultFileError(
                f"{path}:{line}: {key_node.value}: unknown key (expected 'faults')"
            )
        if not isinstance(value_node, yaml.SequenceNode):
            raise FaultFileError(f"{path}:{line}: faults: expected a list")
        for i, item in enumerate(value_node.value):
            item_line = item.start_mark.line + 1
            entry = yaml.safe_load(yaml.serialize(item))
            if not isinstance(entry, dict) or not isinstance(entry.get("servers"), str):
                raise FaultFileError(
                    f"{path}:{item_line}: faults[{i}].servers: each entry needs a 'servers' glob"
                )
            changes = {k: v for k, v in entry.items() if k != "servers"}
            try:
                HostFaults().update(changes)
            except ValueError as exc:
                raise FaultFileError(f"{path}:{item_line}: faults[{i}]: {exc}") from None
            plan.append(PlannedFault(entry["servers"], changes, item_line))
    return plan
