"""Reading PowerState back: how the runner verifies a call instead of trusting it.

- ``wait_power``: re-read until a WAIT step's condition holds (down, On,
  Off), its timeout passes or the batch is aborted. A BMC that answered 204
  and did nothing is caught here.
- ``already_there``: after a refused reset (400/409, a failed task), whether
  the server is at the reset's target anyway (then it is no failure).

Both read through ``Readings`` (the fleet's power probe), never a BMC directly.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from pacs_tui.batch.pacing import Pacer
from pacs_tui.batch.plan import PlannedStep, WaitFor
from pacs_tui.batch.readings import POWER_PROBE, SSH_PROBE, Readings
from pacs_tui.inventory import Server
from pacs_tui.power import PowerState

# SSH probe states that show a server's OS is gone (a restart passed through Off unseen).
_SSH_GONE = ("down", "refused", "timeout", "unreachable")
# The PowerState a call leaves a server in, for reading back after a refusal.
_CALL_TARGET = {
    "On": PowerState.ON,
    "ForceOn": PowerState.ON,
    "ForceOff": PowerState.OFF,
    "GracefulShutdown": PowerState.OFF,
    "shutdown": PowerState.OFF,
}
_LEFT_ON = (PowerState.OFF, PowerState.POWERING_OFF, PowerState.POWERING_ON)


async def already_there(readings: Readings, server: Server, step: PlannedStep) -> str | None:
    """After a refused call: the PowerState it aimed at, if the server is there now.

    ``None`` when the call has no PowerState target or the server is not at it.
    """
    assert step.action_step is not None
    params = step.action_step.params
    target = _CALL_TARGET.get(params.get("reset_type", step.action_step.verb))
    if target is None:
        return None
    reading = await readings.read(server, POWER_PROBE)
    if reading is not None and reading.state == target:
        return str(target)
    return None


async def wait_power(
    readings: Readings,
    server: Server,
    step: PlannedStep,
    *,
    poll_s: float,
    stop: Callable[[], bool],
    pacer: Pacer | None = None,
) -> tuple[str, str]:
    """Re-read PowerState until the step's condition, a timeout or ``stop()``.

    Polls every ``poll_s`` seconds (at most 0.25 s while waiting for a server to
    go down); with a ``pacer``, a wait for On or Off reads as it says (finer
    around the shortest such wait of the batch) and teaches it this one.
    Returns ``(label, detail)``: label ``"ok"``, ``"timeout"`` or ``"aborted"``;
    detail the line for the audit log.
    """
    wanted = step.wait_for
    started = time.monotonic()
    deadline = started + step.timeout_s
    # A reboot may pass through Off in a second: look more often.
    interval = min(poll_s, 0.25) if wanted is WaitFor.DOWN else poll_s
    kind = f"wait:{wanted}"
    watch_ssh = wanted is WaitFor.DOWN and server.ssh is not None and readings.has(SSH_PROBE)
    state = str(PowerState.UNKNOWN)
    answered_at: float | None = None  # when the BMC last gave a usable answer
    lost = ""
    reads = 0
    previous = 0.0  # when the last read that did not end the wait was made
    while True:
        reading = await readings.read(server, POWER_PROBE)
        reads += 1
        state = reading.state if reading is not None else str(PowerState.UNKNOWN)
        elapsed = time.monotonic() - started
        if reading is not None and reading.endpoint_failed:
            lost = reading.detail
        else:
            answered_at, lost = elapsed, ""
        if wanted is WaitFor.DOWN:
            if state in _LEFT_ON:
                return "ok", f"went down (PowerState={state}) after {elapsed:.1f} s"
            if watch_ssh:
                ssh = await readings.read(server, SSH_PROBE)
                if ssh is not None and ssh.state in _SSH_GONE:
                    return "ok", f"went down (SSH {ssh.state}) after {elapsed:.1f} s"
        elif state == str(wanted):
            if pacer is not None and reads > 1:  # true at the first read: says nothing
                pacer.learn(kind, elapsed, previous)
            return "ok", f"PowerState={state} after {elapsed:.1f} s"
        previous = elapsed
        if stop():
            return "aborted", f"aborted while waiting; PowerState={state}"
        now = time.monotonic()
        if now >= deadline:
            what = "did not go down" if wanted is WaitFor.DOWN else f"not {wanted}"
            if lost:
                since = f"after {answered_at:.0f} s" if answered_at is not None else "throughout"
                return "timeout", (
                    f"{what} after {step.timeout_s:g} s: BMC lost — it stopped answering "
                    f"{since} ({lost})"
                )
            return "timeout", f"{what} after {step.timeout_s:g} s (PowerState={state})"
        if pacer is not None and wanted is not WaitFor.DOWN:
            interval = pacer.next_read_in(kind, now - started)
        await asyncio.sleep(min(interval, deadline - now))
