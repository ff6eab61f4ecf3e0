"""Health gates: when a powered-on server counts as really back.

A wave of a power-on batch ends when each of its servers passes its gate,
and only then does the next wave start: xCAT and vSphere wait a fixed
delay, we wait for the DICOM service to answer. The checks, per role:

- ``power``: the BMC reports PowerState On;
- ``ssh``: SSH logs in (the OS is up);
- ``services``: every unit of the server is ``active``;
- ``dicom``: a C-ECHO is answered.

A check that does not apply (no SSH endpoint, no DICOM) is left out. Each
round polls fresh readings through the fleet's scheduler.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from pacs_tui.batch.pacing import Pacer
from pacs_tui.batch.readings import DICOM_PROBE, POWER_PROBE, SSH_PROBE, Readings
from pacs_tui.inventory import Server
from pacs_tui.plugin_api import ProbeResult
from pacs_tui.power import PowerState

POWER, SSH, SERVICES, DICOM = "power", "ssh", "services", "dicom"
GATE_CHECKS = (POWER, SSH, SERVICES, DICOM)
_SSH_UP = ("ok", "degraded")  # the SSH probe's states once a login worked


@dataclass(frozen=True)
class GatePolicy:
    """Which checks gate a server, per role, and how long to wait for them."""

    checks: tuple[str, ...] = GATE_CHECKS
    by_role: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    timeout_s: float = 600.0
    poll_s: float = 1.0

    def __post_init__(self) -> None:
        for checks in (self.checks, *self.by_role.values()):
            unknown = set(checks) - set(GATE_CHECKS)
            if unknown:
                raise ValueError(
                    f"unknown gate check(s) {', '.join(sorted(unknown))} "
                    f"(known: {', '.join(GATE_CHECKS)})"
                )

    def checks_for(self, server: Server) -> tuple[str, ...]:
        """The checks that apply to ``server``: its role's list, minus what it lacks."""
        wanted = self.by_role.get(server.role, self.checks)
        applicable = []
        for check in wanted:
            if check == POWER and server.bmc is None:
                continue
            if check == SSH and server.ssh is None:
                continue
            if check == SERVICES and (server.ssh is None or not server.services):
                continue
            if check == DICOM and server.dicom is None:
                continue
            applicable.append(check)
        return tuple(applicable)


def parse_gate_spec(text: str) -> dict[str, tuple[str, ...]]:
    """``role=check+check;role=check`` (``--gate``) as a per-role mapping."""
    out: dict[str, tuple[str, ...]] = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        role, sep, checks = part.partition("=")
        if not sep or not role.strip():
            raise ValueError(f"gate {part!r}: expected ROLE=CHECK+CHECK")
        names = tuple(c.strip() for c in checks.split("+") if c.strip())
        unknown = set(names) - set(GATE_CHECKS)
        if unknown:
            raise ValueError(f"gate {part!r}: unknown check(s) {', '.join(sorted(unknown))}")
        out[role.strip()] = names
    return out


@dataclass(frozen=True)
class GateVerdict:
    """Whether a server's gate holds now, and what is still missing."""

    passed: bool
    missing: tuple[str, ...]  # e.g. "dicom: refused"


def judge(checks: tuple[str, ...], results: Mapping[str, ProbeResult | None]) -> GateVerdict:
    """Judge ``checks`` against readings keyed by probe name."""
    missing: list[str] = []
    power = results.get(POWER_PROBE)
    ssh = results.get(SSH_PROBE)
    dicom = results.get(DICOM_PROBE)
    for check in checks:
        if check == POWER and (power is None or power.state != PowerState.ON):
            missing.append(f"power: {power.state if power else 'not read'}")
        elif check == SSH and (ssh is None or ssh.state not in _SSH_UP):
            missing.append(f"ssh: {_why(ssh)}")
        elif check == SERVICES and (ssh is None or ssh.state != "ok"):
            missing.append(f"services: {_why(ssh)}")
        elif check == DICOM and (dicom is None or dicom.state != "ok"):
            missing.append(f"dicom: {_why(dicom)}")
    return GateVerdict(not missing, tuple(missing))


def _why(result: ProbeResult | None) -> str:
    if result is None:
        return "not read"
    return f"{result.state} ({result.detail})" if result.detail else result.state


async def read_gate(readings: Readings, server: Server, checks: tuple[str, ...]) -> GateVerdict:
    """One round: read what ``checks`` need now (power first; the rest only once On)."""
    results: dict[str, ProbeResult | None] = {}
    if POWER in checks:
        power = results[POWER_PROBE] = await readings.read(server, POWER_PROBE)
        if power is None or power.state != PowerState.ON:
            return judge(checks, results)
    wanted = []
    if SSH in checks or SERVICES in checks:
        wanted.append(SSH_PROBE)
    if DICOM in checks:
        wanted.append(DICOM_PROBE)
    found = await asyncio.gather(*(readings.read(server, p) for p in wanted))
    results.update(zip(wanted, found, strict=True))
    return judge(checks, results)


async def wait_gate(
    readings: Readings,
    server: Server,
    checks: tuple[str, ...],
    *,
    timeout_s: float,
    poll_s: float,
    stop: Callable[[], bool] = lambda: False,
    pacer: Pacer | None = None,
) -> tuple[GateVerdict, float]:
    """Poll until the gate holds, ``timeout_s`` passes or ``stop()``; return the last verdict.

    Rounds start every ``poll_s`` seconds; with a ``pacer``, as it says (finer
    around the shortest gate of the same checks in the batch), and a gate that
    holds teaches it how long it took. ``waited`` is in seconds.
    """
    started = time.monotonic()
    kind = f"gate:{'+'.join(checks)}"
    rounds = 0
    previous = 0.0  # when the last round that did not hold ended
    while True:
        verdict = await read_gate(readings, server, checks)
        rounds += 1
        waited = time.monotonic() - started
        if verdict.passed and pacer is not None and rounds > 1:  # held at once: says nothing
            pacer.learn(kind, waited, previous)
        if verdict.passed or waited >= timeout_s or stop():
            return verdict, waited
        previous = waited
        step = pacer.next_read_in(kind, waited) if pacer is not None else poll_s
        await asyncio.sleep(min(step, max(0.0, timeout_s - waited)))
