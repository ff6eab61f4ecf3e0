"""One simulated server: power, operating system and systemd units, coupled.

The BMC, SSH and DICOM endpoints of a simulated server are thin protocol
front-ends over a ``SimulatedHost``. The host owns the truth: a BMC reset or
an SSH ``poweroff`` changes its power state, and the host starts and stops
the SSH and DICOM listeners as its OS boots and shuts down, so a server that
is Off refuses connections while its BMC still answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

from pacs_tui.power import PowerState, ResetType
from pacs_tui.roles import DICOM_UNIT
from pacs_tui.sim.faults import HostFaults

log = logging.getLogger(__name__)

OsState = Literal["down", "booting", "up", "shutting-down"]


class Listener(Protocol):
    """A network endpoint of a host that exists only while the OS runs.

    ``start`` and ``stop`` must be idempotent: the host may call either twice.
    ``stop`` closes the listening socket and drops open connections.
    """

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass(frozen=True)
class HostTimings:
    """How long the phases of a power transition take, in seconds."""

    power_transition_s: float = 2.0  # PoweringOn / PoweringOff as the BMC reports it
    boot_s: float = 6.0  # from On until sshd answers
    service_start_s: float = 2.0  # from sshd up until the units are active
    shutdown_s: float = 3.0  # OS shutdown: units stop, then power goes off

    def scaled(self, factor: float) -> HostTimings:
        """The same timings multiplied by ``factor`` (tests use small factors)."""
        return replace(
            self,
            power_transition_s=self.power_transition_s * factor,
            boot_s=self.boot_s * factor,
            service_start_s=self.service_start_s * factor,
            shutdown_s=self.shutdown_s * factor,
        )


@dataclass(frozen=True)
class HardwareFacts:
    """What the BMC reports about the box (used by the move-weekend baseline)."""

    manufacturer: str
    model: str
    serial_number: str
    mac_addresses: tuple[str, ...]
    bios_version: str
    bmc_firmware: str


class ResetRejected(Exception):
    """The host cannot perform a reset in its current state."""


@dataclass
class SimulatedHost:
    """The simulated machine behind one inventory server."""

    name: str
    role: str
    site: str
    address: str
    units: tuple[str, ...]
    hardware: HardwareFacts
    timings: HostTimings = field(default_factory=HostTimings)
    speaks_dicom: bool = False
    depends_on: list[SimulatedHost] = field(default_factory=list)
    faults: HostFaults = field(default_factory=HostFaults)
    power_state: PowerState = PowerState.ON
    os_state: OsState = "up"
    ssh_listener: Listener | None = None
    dicom_listener: Listener | None = None
    # Called after every change of power_state / os_state / units (e.g. for logs).
    on_change: Callable[[SimulatedHost], None] | None = None

    def __post_init__(self) -> None:
        self._unit_active: dict[str, bool] = {u: self.os_state == "up" for u in self.units}
        self._transition: asyncio.Task[None] | None = None
        self._booted_at = time.monotonic()
        # A host that starts On is long past its boot (no power peak at simulator start).
        self._powered_on_at = time.monotonic() - 3600.0

    # -- state seen from outside ------------------------------------------------

    def unit_state(self, unit: str) -> str:
        """``systemctl is-active`` word for ``unit``: active, inactive, failed, activating, ..."""
        if unit not in self._unit_active:
            return "inactive"  # systemd says this for unknown units too
        if self.os_state == "booting":
            return "activating"
        if self.os_state == "shutting-down":
            return "deactivating" if self._unit_active[unit] else "inactive"
        if not self._unit_active[unit]:
            return "inactive"
        if unit == self.faults.flapping_unit:
            period = max(self.faults.flap_period_s, 0.05)
            if int(time.monotonic() / period) % 2:
                return "failed"
        if not self.dependencies_up():
            return "failed"  # e.g. the PACS cannot reach its database
        return "active"

    def dependencies_up(self) -> bool:
        """True when every server this one depends on is up and healthy."""
        return all(dep.is_up() for dep in self.depends_on)

    def is_up(self) -> bool:
        """Powered, booted, and every unit active (dependencies included)."""
        if self.power_state is not PowerState.ON or self.os_state != "up":
            return False
        return all(self.unit_state(u) == "active" for u in self.units)

    def uptime_s(self) -> float:
        """Seconds since the OS finished booting (0 when down)."""
        return time.monotonic() - self._booted_at if self.os_state == "up" else 0.0

    def seconds_since_power_on(self) -> float:
        """Seconds since the power last went On (an hour and more for a host that started On)."""
        return time.monotonic() - self._powered_on_at

    def snapshot(self) -> dict[str, object]:
        """A JSON-able view for the control API."""
        return {
            "name": self.name,
            "role": self.role,
            "site": self.site,
            "address": self.address,
            "power_state": str(self.power_state),
            "os_state": self.os_state,
            "units": {u: self.unit_state(u) for u in self.units},
            "faults": self.faults.active(),
        }

    # -- commands ---------------------------------------------------------------

    def reset(self, reset_type: ResetType | str) -> None:
        """Start a power transition as a BMC ``ComputerSystem.Reset`` would.

        Returns at once; the transition runs in the background. A command that
        makes no change (On while On) is accepted and does nothing, as on most
        BMCs; vendor flavours that reject such resets do so in the BMC layer.
        """
        kind = ResetType(reset_type)
        powered = self.power_state in (PowerState.ON, PowerState.POWERING_ON)
        if kind in (ResetType.ON, ResetType.FORCE_ON):
            if not powered:
                self._start(self._power_on())
        elif kind is ResetType.FORCE_OFF:
            if self.power_state is not PowerState.OFF:
                self._start(self._force_off())
        elif kind is ResetType.GRACEFUL_SHUTDOWN:
            if powered and not self.faults.ignore_graceful_shutdown:
                self._start(self._graceful_shutdown())
        elif kind is ResetType.PUSH_POWER_BUTTON:
            if powered:
                if not self.faults.ignore_graceful_shutdown:
                    self._start(self._graceful_shutdown())
            else:
                self._start(self._power_on())
        elif kind is ResetType.GRACEFUL_RESTART:
            if not powered:
                raise ResetRejected("the system is powered off")
            if not self.faults.ignore_graceful_shutdown:
                self._start(self._restart(graceful=True))
        elif kind in (ResetType.FORCE_RESTART, ResetType.POWER_CYCLE):
            self._start(self._restart(graceful=False))
        elif kind is ResetType.NMI and not powered:
            raise ResetRejected("the system is powered off")

    def os_shutdown(self) -> None:
        """``shutdown -h now`` / ``poweroff`` from a shell on the host."""
        self._start(self._graceful_shutdown())

    def os_reboot(self) -> None:
        """``reboot`` from a shell on the host."""
        self._start(self._restart(graceful=True))

    async def systemctl(self, verb: str, units: Sequence[str]) -> tuple[int, str]:
        """Run ``systemctl VERB UNIT...``; return (exit status, output) like systemd."""
        if verb == "is-active":
            words = [self.unit_state(u) for u in units]
            status = 0 if words and all(w == "active" for w in words) else 3
            return status, "".join(f"{w}\n" for w in words)
        if verb in ("start", "stop", "restart"):
            missing = [u for u in units if u not in self._unit_active]
            if missing:
                return (
                    5,
                    f"Failed to {verb} {missing[0]}.service: Unit {missing[0]}.service not found.\n",
                )
            for unit in units:
                self._unit_active[unit] = verb != "stop"
            await self._sync_dicom_listener()
            self._changed()
            return 0, ""
        return 1, f"Unknown command verb {verb}.\n"

    async def sync_listeners(self) -> None:
        """Open or close the DICOM listener to match the OS, units and faults now."""
        await self._sync_dicom_listener()

    async def stop(self) -> None:
        """Cancel any running transition (simulator shutdown)."""
        if self._transition and not self._transition.done():
            self._transition.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._transition

    async def wait_idle(self) -> None:
        """Wait until the current power transition, if any, has finished."""
        if self._transition is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self._transition)

    # -- transitions ------------------------------------------------------------

    def _start(self, transition: Coroutine[Any, Any, None]) -> None:
        previous = self._transition
        if previous is not None and not previous.done():
            previous.cancel()

        async def run() -> None:
            try:
                if previous is not None and not previous.done():
                    with contextlib.suppress(asyncio.CancelledError):
                        await previous
            except BaseException:
                transition.close()  # never started: avoid "was never awaited"
                raise
            await transition

        self._transition = asyncio.get_running_loop().create_task(run(), name=f"power:{self.name}")

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(self)

    def _set_power(self, state: PowerState) -> None:
        self.power_state = state
        self._changed()

    async def _sync_dicom_listener(self) -> None:
        if self.dicom_listener is None:
            return
        serving = (
            self.os_state == "up"
            and self._unit_active.get(DICOM_UNIT, False)
            and not self.faults.dicom_never_ready
        )
        if serving:
            await self.dicom_listener.start()
        else:
            await self.dicom_listener.stop()

    async def _os_down(self) -> None:
        self.os_state = "down"
        for unit in self._unit_active:
            self._unit_active[unit] = False
        await self._sync_dicom_listener()
        if self.ssh_listener is not None:
            await self.ssh_listener.stop()

    async def _power_on(self) -> None:
        if self.faults.dead_on_arrival:
            log.info("%s: power-on accepted, but the box is dead on arrival", self.name)
            return  # no PoweringOn, no boot: PowerState stays Off
        self._set_power(PowerState.POWERING_ON)
        await asyncio.sleep(self.timings.power_transition_s)
        self.os_state = "booting"
        self._powered_on_at = time.monotonic()
        self._set_power(PowerState.ON)
        await asyncio.sleep(self.timings.boot_s)
        if self.ssh_listener is not None:
            await self.ssh_listener.start()
        await asyncio.sleep(self.timings.service_start_s)
        self.os_state = "up"
        self._booted_at = time.monotonic()
        for unit in self._unit_active:
            self._unit_active[unit] = True
        await self._sync_dicom_listener()
        self._changed()

    async def _force_off(self) -> None:
        await self._os_down()
        self._set_power(PowerState.OFF)

    async def _graceful_shutdown(self) -> None:
        if self.power_state is PowerState.POWERING_ON or self.os_state == "booting":
            # ACPI shutdown during boot: the firmware powers off without an OS shutdown.
            await self._force_off()
            return
        self.os_state = "shutting-down"
        for unit in self._unit_active:
            self._unit_active[unit] = False
        await self._sync_dicom_listener()
        self._changed()
        await asyncio.sleep(self.timings.shutdown_s)
        await self._os_down()
        self._set_power(PowerState.POWERING_OFF)
        await asyncio.sleep(self.timings.power_transition_s / 2)
        self._set_power(PowerState.OFF)

    async def _restart(self, *, graceful: bool) -> None:
        if graceful and self.power_state is PowerState.ON:
            await self._graceful_shutdown()
        else:
            await self._force_off()
        await self._power_on()
