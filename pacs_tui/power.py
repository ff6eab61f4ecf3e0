"""Power vocabulary shared by probes, batches and the simulator (Redfish words)."""

from __future__ import annotations

from enum import StrEnum


class PowerState(StrEnum):
    """Redfish ``ComputerSystem.PowerState`` values, plus ``Unknown`` when unread."""

    ON = "On"
    OFF = "Off"
    POWERING_ON = "PoweringOn"
    POWERING_OFF = "PoweringOff"
    PAUSED = "Paused"
    UNKNOWN = "Unknown"


class ResetType(StrEnum):
    """Redfish ``ResetType`` values a ``ComputerSystem.Reset`` action may accept."""

    ON = "On"
    FORCE_OFF = "ForceOff"
    GRACEFUL_SHUTDOWN = "GracefulShutdown"
    GRACEFUL_RESTART = "GracefulRestart"
    FORCE_RESTART = "ForceRestart"
    NMI = "Nmi"
    FORCE_ON = "ForceOn"
    PUSH_POWER_BUTTON = "PushPowerButton"
    POWER_CYCLE = "PowerCycle"
