"""Vendor flavours of the simulated Redfish BMCs.

Real fleets mix BMC generations and vendors, and a power tool must cope with
all of them: one lacks ``GracefulRestart``, one refuses a reset that makes no
sense in the current power state, one answers a reset with a task monitor.
Each flavour is a profile of those behaviours plus plausible resource ids and
vendor strings (fictional vendors, matching ``fleet``'s hardware; the
behaviours and ids follow OpenBMC-, Supermicro-, iLO- and iDRAC-like BMCs),
so a client that hard-codes ``Systems/1`` fails here as it would in the field.

Every flavour, one line each (knobs in ``FlavourTimings``, defaults in brackets):

- ``generic``: every common ResetType; a no-op reset is accepted.
- ``no-graceful-restart``: GracefulRestart is neither listed nor accepted.
- ``strict-state``: 409 for a reset that makes no sense in the power state.
- ``task-monitor``: a reset answers 202 + a task monitor, 200 once done (iDRAC-like ids).
- ``blade-enclosure``: one BMC in front of several ComputerSystems ``Blade1``..``BladeN``
  (one host each), an ``Enclosure`` chassis plus a ``BladeN`` chassis per system.
- ``session-redirect``: POST ``.../Sessions`` answers 308 to ``.../Sessions/``; only
  the POST to the trailing-slash path logs in.
- ``session-redirect-301``: the same with 301 (clients turn the POST into a GET).
- ``no-session-post``: no ``Links.Sessions`` in the service root; POST ``.../Sessions``
  answers 405 with a Redfish error; HTTP Basic works everywhere.
- ``html-401``: sessions idle out fast [``html_401_session_timeout_s`` = 30 s]; a stale or
  unknown token gets 401 ``text/html`` chunked, the connection closed before any chunk.
- ``extended-info-only``: errors say only "See @Message.ExtendedInfo for more
  information."; the ExtendedInfo entries carry MessageId + MessageArgs, no Message.
- ``extended-info-vendor``: the same, vendor-spelled: ``@Message.ExtendedInfo`` at the
  top level (beside ``error``), entries keyed ``MessageID`` and ``MessageArguments``.
- ``task-204``: like task-monitor, but a finished task's monitor answers 204 No Content.
- ``task-503-once``: like task-monitor, but each task's first monitor poll gets 503 +
  ``Retry-After: 1``.
- ``slow-login``: the session is created on arrival; the answer takes
  [``login_delay_s`` = 6 s].
- ``slow-answers``: every request is carried out at once; its answer takes
  [``answer_delay_s`` = 3 s].
- ``legacy-tls``: the TLS listener offers only TLS 1.2 with ``AES256-SHA`` (an RSA cert).
- ``null-power-state``: the ComputerSystem's ``PowerState`` is JSON null.
- ``legacy-power``: the chassis serves only the legacy ``Power`` and ``Thermal``
  (deprecated since Redfish 2020.4, still what most fielded BMCs serve).
- ``dual-power``: the chassis serves both those and the newer ones, as the DMTF's
  rack-server mockup does. Every other flavour serves only the newer ``PowerSubsystem``,
  ``ThermalSubsystem`` and ``EnvironmentMetrics``.
- ``no-power-telemetry``: the chassis links none of them (a BMC without power or
  thermal telemetry, e.g. an older or whitebox one; sushy-emulator serves no power).

All but blade-enclosure can also be planted per server with the ``bmc_flavour`` fault.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from pacs_tui.power import PowerState, ResetType

_R = ResetType


class BmcFlavour(StrEnum):
    """How a simulated BMC behaves; see ``FlavourProfile`` for the details."""

    GENERIC = "generic"  # every common ResetType, no-op resets accepted
    NO_GRACEFUL_RESTART = "no-graceful-restart"  # GracefulRestart missing and refused
    STRICT_STATE = "strict-state"  # refuses resets that make no sense in the power state
    TASK_MONITOR = "task-monitor"  # Reset answers 202 + a task monitor (iDRAC-like ids)
    BLADE_ENCLOSURE = "blade-enclosure"  # one BMC, several ComputerSystems Blade1..N
    SESSION_REDIRECT = "session-redirect"  # POST .../Sessions -> 308 to .../Sessions/
    SESSION_REDIRECT_301 = "session-redirect-301"  # the same with 301
    NO_SESSION_POST = "no-session-post"  # no Links.Sessions; session POST is 405
    HTML_401 = "html-401"  # short sessions; stale token -> 401 text/html, cut off
    EXTENDED_INFO_ONLY = "extended-info-only"  # errors explained only in ExtendedInfo
    EXTENDED_INFO_VENDOR = "extended-info-vendor"  # the same, vendor-spelled keys
    TASK_204 = "task-204"  # a finished task monitor answers 204 No Content
    TASK_503_ONCE = "task-503-once"  # each task monitor's first poll is 503
    SLOW_LOGIN = "slow-login"  # the session POST answers after login_delay_s
    SLOW_ANSWERS = "slow-answers"  # every answer after answer_delay_s
    LEGACY_TLS = "legacy-tls"  # TLS 1.2 with AES256-SHA only
    NULL_POWER_STATE = "null-power-state"  # ComputerSystem.PowerState is null
    LEGACY_POWER = "legacy-power"  # the chassis has only Power and Thermal
    DUAL_POWER = "dual-power"  # the chassis has both Power/Thermal and PowerSubsystem/...
    NO_POWER_TELEMETRY = "no-power-telemetry"  # the chassis links no power or thermal resource


class ErrorStyle(StrEnum):
    """How a BMC spells its error bodies."""

    STANDARD = "standard"  # DSP0266: error.message and every ExtendedInfo field
    EXTENDED_ONLY = "extended-info-only"  # the reason only in ExtendedInfo MessageId/Args
    VENDOR = "extended-info-vendor"  # top-level ExtendedInfo, MessageID/MessageArguments


@dataclass(frozen=True)
class FlavourTimings:
    """The delays of the slow flavours; tests scale them down, the defaults are real."""

    login_delay_s: float = 6.0  # slow-login: until the session POST answers
    answer_delay_s: float = 3.0  # slow-answers: until every answer
    html_401_session_timeout_s: float = 30.0  # html-401: idle timeout (the schema's minimum)


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
    enclosure: bool = False  # ComputerSystems Blade1..N (``system_id`` is the prefix)
    session_redirect: int = 0  # 301 / 308: POST .../Sessions redirects to .../Sessions/
    session_post: bool = True  # False: no Links.Sessions, POST .../Sessions is 405
    html_401: bool = False
    error_style: ErrorStyle = ErrorStyle.STANDARD
    task_done_status: int = 200  # what a finished task's monitor answers (200 or 204)
    task_503_once: bool = False
    slow_login: bool = False
    slow_answers: bool = False
    legacy_tls: bool = False
    null_power_state: bool = False
    # Which chassis power/thermal schemas are served: subsystem (PowerSubsystem,
    # ThermalSubsystem, EnvironmentMetrics), legacy (Power, Thermal), both or none.
    power_schemas: str = "subsystem"


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


_F = BmcFlavour

# Each behaviour flavour shows one misbehaviour on top of a plain flavour, whose
# vendor (and so the fleet's hardware facts) it keeps.
BASE_FLAVOUR: dict[BmcFlavour, BmcFlavour] = {
    _F.SESSION_REDIRECT: _F.GENERIC,
    _F.SESSION_REDIRECT_301: _F.GENERIC,
    _F.NO_SESSION_POST: _F.GENERIC,
    _F.HTML_401: _F.GENERIC,
    _F.EXTENDED_INFO_ONLY: _F.GENERIC,
    _F.EXTENDED_INFO_VENDOR: _F.GENERIC,
    _F.TASK_204: _F.TASK_MONITOR,
    _F.TASK_503_ONCE: _F.TASK_MONITOR,
    _F.SLOW_LOGIN: _F.GENERIC,
    _F.SLOW_ANSWERS: _F.GENERIC,
    _F.LEGACY_TLS: _F.GENERIC,
    _F.NULL_POWER_STATE: _F.GENERIC,
    _F.LEGACY_POWER: _F.GENERIC,
    _F.DUAL_POWER: _F.GENERIC,
    _F.NO_POWER_TELEMETRY: _F.GENERIC,
}
_KNOBS: dict[BmcFlavour, dict[str, Any]] = {
    _F.SESSION_REDIRECT: {"session_redirect": 308},
    _F.SESSION_REDIRECT_301: {"session_redirect": 301},
    _F.NO_SESSION_POST: {"session_post": False},
    _F.HTML_401: {"html_401": True},
    _F.EXTENDED_INFO_ONLY: {"error_style": ErrorStyle.EXTENDED_ONLY},
    _F.EXTENDED_INFO_VENDOR: {"error_style": ErrorStyle.VENDOR},
    _F.TASK_204: {"task_done_status": 204},
    _F.TASK_503_ONCE: {"task_503_once": True},
    _F.SLOW_LOGIN: {"slow_login": True},
    _F.SLOW_ANSWERS: {"slow_answers": True},
    _F.LEGACY_TLS: {"legacy_tls": True},
    _F.NULL_POWER_STATE: {"null_power_state": True},
    _F.LEGACY_POWER: {"power_schemas": "legacy"},
    _F.DUAL_POWER: {"power_schemas": "both"},
    _F.NO_POWER_TELEMETRY: {"power_schemas": "none"},
}
for _flavour, _base in BASE_FLAVOUR.items():
    PROFILES[_flavour] = replace(PROFILES[_base], **_KNOBS[_flavour])

PROFILES[_F.BLADE_ENCLOSURE] = replace(
    PROFILES[_F.GENERIC],
    vendor="Stellan Blade Systems",
    product="Stellan Enclosure Manager",
    redfish_version="1.14.0",
    system_id="Blade",
    manager_id="CMM",
    chassis_id="Enclosure",
    nic_ids=("1", "2", "3", "4"),
    manager_model="SB-CMM 2",
    enclosure=True,
)
BASE_FLAVOUR[_F.BLADE_ENCLOSURE] = _F.BLADE_ENCLOSURE

# Flavours the faults file may plant on one server: an enclosure changes addressing.
PLANTABLE = tuple(f for f in BmcFlavour if f is not _F.BLADE_ENCLOSURE)
ENCLOSURE_SIZE = 4  # blades per enclosure in a generated fleet


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


def system_id(p: FlavourProfile, index: int) -> str:
    """Id of the ``index``-th ComputerSystem (0-based): ``BladeN`` in an enclosure."""
    return f"{p.system_id}{index + 1}" if p.enclosure else p.system_id


def system_view(p: FlavourProfile, index: int) -> FlavourProfile:
    """``p`` as the ``index``-th system sees it: in an enclosure, its own system and
    blade chassis ids, so every per-system resource body stays one function."""
    if not p.enclosure:
        return p
    blade = system_id(p, index)
    return replace(p, system_id=blade, chassis_id=blade)


def group_blades(
    servers: Iterable[tuple[str, BmcFlavour]], size: int = ENCLOSURE_SIZE
) -> list[list[str]]:
    """Enclosures of up to ``size`` consecutive blade-enclosure servers, in order."""
    groups: list[list[str]] = []
    current: list[str] = []
    for name, flavour in servers:
        if flavour is not _F.BLADE_ENCLOSURE:
            continue
        if len(current) == size:
            groups.append(current)
            current = []
        current.append(name)
    if current:
        groups.append(current)
    return groups


def parse_mix(text: str) -> tuple[tuple[BmcFlavour, float], ...]:
    """``FLAVOUR=WEIGHT,...`` as (flavour, weight) pairs; ``ValueError`` says what is wrong."""
    mix: dict[BmcFlavour, float] = {}
    for item in (part.strip() for part in text.split(",")):
        name, sep, weight = item.partition("=")
        try:
            flavour = BmcFlavour(name.strip())
        except ValueError:
            known = ", ".join(BmcFlavour)
            raise ValueError(f"unknown BMC flavour {name.strip()!r} (known: {known})") from None
        try:
            value = float(weight) if sep else float("nan")
        except ValueError:
            value = float("nan")
        if not value > 0 or value == float("inf"):
            raise ValueError(f"{item!r}: expected FLAVOUR=WEIGHT with a weight > 0")
        if flavour in mix:
            raise ValueError(f"BMC flavour {flavour} given twice")
        mix[flavour] = value
    return tuple(mix.items())
