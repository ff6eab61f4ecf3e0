"""Vendor flavours of the simulated Redfish BMCs.

Real fleets mix BMC generations and vendors, and a power tool must cope with
all of them: one lacks ``GracefulRestart``, one refuses a reset that makes no
sense in the current power state, one answers a reset with a task monitor.
Each flavour is a profile of those behaviours plus plausible resource ids and
vendor strings (fictional vendors, matching ``fleet``'s hardware; the
behaviours and ids follow OpenBMC-, Supermicro-, iLO- and iDRAC-like BMCs),
so a client that hard-codes ``Systems/1`` fails here as it would in the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pacs_tui.power import PowerState, ResetType

_R = ResetType


class BmcFlavour(StrEnum):
    """How a simulated BMC behaves; see ``FlavourProfile`` for the details."""

    GENERIC = "generic"  # every common ResetType, no-op resets accepted
    NO_GRACEFUL_RESTART = "no-graceful-restart"  # GracefulRestart missing and refused
    STRICT_STATE = "strict-state"  # refuses resets that make no sense in the power state
    TASK_MONITOR = "task-monitor"  # Reset answers 202 + a task monitor (iDRAC-like ids)


@dataclass(frozen=True)
class FlavourProfile:
    """Everything that differs between flavours, in one place."""

    vendor: str  # ServiceRoot.Vendor
    product: str  # ServiceRoot.Product
    redfish_version: str
    system_id: str
    manager_id: str
    chassis_id: str
    nic_ids: tuple[str, ...]  # EthernetInterface ids, one per MAC (the last repeats)
    manager_model: str
    reset_types: tuple[ResetType, ...]
    allowable_values_inline: bool  # ResetType@Redfish.AllowableValues beside the ActionInfo
    strict_state: bool
    reset_via_task: bool
    session_limit_status: int  # HTTP status when the session table is full
    session_limit_message_id: str
    session_limit_message: str
    task_id_prefix: str


_BASE = "Base.1.12"

PROFILES: dict[BmcFlavour, FlavourProfile] = {
    BmcFlavour.GENERIC: FlavourProfile(
        vendor="Meridian Compute",
        product="Meridian BMC",
        redfish_version="1.15.0",
        system_id="1",
        manager_id="1",
        chassis_id="1",
        nic_ids=("eth0", "eth1", "eth2", "eth3"),
        manager_model="MBMC 2600",
        reset_types=(
            _R.ON,
            _R.FORCE_OFF,
            _R.GRACEFUL_SHUTDOWN,
            _R.GRACEFUL_RESTART,
            _R.FORCE_RESTART,
            _R.PUSH_POWER_BUTTON,
            _R.NMI,
        ),
        allowable_values_inline=True,
        strict_state=False,
        reset_via_task=False,
        session_limit_status=503,
        session_limit_message_id=f"{_BASE}.SessionLimitExceeded",
        session_limit_message=(
            "The session establishment failed due to the number of simultaneous "
            "sessions exceeding the limit of the implementation."
        ),
        task_id_prefix="",
    ),
    BmcFlavour.NO_GRACEFUL_RESTART: FlavourProfile(
        vendor="Halvard Systems",
        product="Halvard Redfish BMC",
        redfish_version="1.11.0",
        system_id="1",
        manager_id="1",
        chassis_id="1",
        nic_ids=("1", "2", "3", "4"),
        manager_model="HX12 BMC",
        reset_types=(
            _R.ON,
            _R.FORCE_OFF,
            _R.GRACEFUL_SHUTDOWN,
            _R.FORCE_RESTART,
            _R.POWER_CYCLE,
            _R.PUSH_POWER_BUTTON,
            _R.NMI,
        ),
        allowable_values_inline=False,
        strict_state=False,
        reset_via_task=False,
        session_limit_status=503,
        session_limit_message_id=f"{_BASE}.SessionLimitExceeded",
        session_limit_message=(
            "The session establishment failed because the session limit is reached "
            "(maximum number of simultaneous sessions)."
        ),
        task_id_prefix="",
    ),
    BmcFlavour.STRICT_STATE: FlavourProfile(
        vendor="Quillon Servers",
        product="Quillon Lights-Out 5",
        redfish_version="1.13.0",
        system_id="1",
        manager_id="1",
        chassis_id="1",
        nic_ids=("1", "2", "3", "4"),
        manager_model="QLO 5",
        reset_types=(
            _R.ON,
            _R.FORCE_OFF,
            _R.GRACEFUL_SHUTDOWN,
            _R.GRACEFUL_RESTART,
            _R.FORCE_RESTART,
            _R.NMI,
            _R.PUSH_POWER_BUTTON,
        ),
        allowable_values_inline=True,
        strict_state=True,
        reset_via_task=False,
        session_limit_status=403,
        session_limit_message_id=f"{_BASE}.CreateLimitReachedForResource",
        session_limit_message=(
            "The create operation failed because the session limit is reached: "
            "the maximum number of login sessions is in use."
        ),
        task_id_prefix="",
    ),
    BmcFlavour.TASK_MONITOR: FlavourProfile(
        vendor="Torvik Data",
        product="Torvik Remote Access Controller",
        redfish_version="1.17.0",
        system_id="System.Embedded.1",
        manager_id="iDRAC.Embedded.1",
        chassis_id="System.Embedded.1",
        nic_ids=("NIC.Integrated.1-1-1", "NIC.Integrated.1-2-1", "NIC.Slot.1-1-1"),
        manager_model="TRAC 9",
        reset_types=(
            _R.ON,
            _R.FORCE_OFF,
            _R.FORCE_RESTART,
            _R.GRACEFUL_RESTART,
            _R.GRACEFUL_SHUTDOWN,
            _R.PUSH_POWER_BUTTON,
            _R.NMI,
            _R.POWER_CYCLE,
        ),
        allowable_values_inline=True,
        strict_state=False,
        reset_via_task=True,
        session_limit_status=400,
        session_limit_message_id="TRAC.2.9.RAC0218",
        session_limit_message="The maximum number of user sessions is reached.",
        task_id_prefix="JID_",
    ),
}


def profile(flavour: BmcFlavour) -> FlavourProfile:
    """The behaviour profile of ``flavour``."""
    return PROFILES[flavour]


def nic_id(profile: FlavourProfile, index: int) -> str:
    """The EthernetInterface id of the ``index``-th NIC (0-based)."""
    if index < len(profile.nic_ids):
        return profile.nic_ids[index]
    return f"{profile.nic_ids[-1]}.{index}"


def state_conflict(kind: ResetType, power: PowerState) -> bool:
    """True when a strict BMC refuses ``kind`` in power state ``power``.

    Turning on what is on, or off / restarting what is off, is refused; the
    power button always works, as on the front panel.
    """
    powered = power in (PowerState.ON, PowerState.POWERING_ON)
    if kind in (ResetType.ON, ResetType.FORCE_ON):
        return powered
    if kind is ResetType.PUSH_POWER_BUTTON:
        return False
    return not powered
