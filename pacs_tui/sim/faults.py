"""Faults that can be planted in a simulated server, at start or at run time."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any


@dataclass
class HostFaults:
    """Mutable fault switches of one simulated server; all off by default.

    Each component reads the switches on every request, so a change through the
    control API takes effect on the next request without restarting anything
    (``bmc_unreachable`` and ``ssh_host_key_changed`` also restart listeners).
    """

    bmc_unreachable: bool = False  # the BMC's listener is closed (connection refused)
    bmc_delay_s: float = 0.0  # every BMC answer is delayed this long
    bmc_503: bool = False  # every BMC request gets 503 Service Unavailable + Retry-After
    bmc_401: bool = False  # every BMC login / authenticated request gets 401
    bmc_malformed_json: bool = False  # BMC bodies are truncated JSON
    bmc_sessions_exhausted: bool = False  # new Redfish sessions fail as when the limit is hit
    dicom_reject: str = ""  # "" or a reason: calling-ae, called-ae, busy, no-reason
    dicom_abort: bool = False  # associations are accepted, then aborted (A-ABORT)
    dicom_never_ready: bool = False  # after a power-on, the DICOM service never starts
    ssh_host_key_changed: bool = False  # SSH presents a different host key
    ssh_burst_limit: int = 0  # >0: drop new connections beyond this many unauthenticated ones
    flapping_unit: str = ""  # this systemd unit alternates active/failed
    flap_period_s: float = 2.0
    ignore_graceful_shutdown: bool = False  # the OS ignores GracefulShutdown / ACPI button

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
            setattr(self, key, value)

    def active(self) -> dict[str, Any]:
        """The switches that differ from the default."""
        default = HostFaults()
        return {
            n: getattr(self, n) for n in self.names() if getattr(self, n) != getattr(default, n)
        }
