"""``BatchRunner``: runs a ``BatchPlan`` wave by wave, verifying every result.

- A wave runs its servers concurrently, at most ``concurrency`` at a time.
  It ends when every server reached its target or failed; the next wave
  starts only then, and power-on servers reach their target only when their
  health gate holds.
- Every reset is verified by re-reading PowerState through the fleet's
  power probe; a BMC that answers 204 and does nothing is caught.
- A call that certainly did nothing (503, a connection that could not be
  opened) is retried with exponential backoff, honouring ``Retry-After``.
- A call whose outcome is unknown (sent, then a timeout or a dropped
  connection) is never sent again: the next step reads PowerState back.
- A rejected reset (400/409, a failed task) is followed by a read of
  PowerState: a server already at the reset's target is not a failure.
- A failed server either halts the batch (no new server starts, in-flight
  ones finish: ``FailurePolicy.HALT``) or is left out together with the
  servers that need it (``FailurePolicy.LEAVE_OUT``).
- ``abort()`` stops issuing new steps (in-flight calls finish);
  ``pause()``/``resume()`` hold new steps.
- Every step is appended to the audit log and committed as it completes,
  *before* subscribers hear of it.
- A server that did not reach its target after its PACS units were stopped
  is read once more at the end: if it is still On, the result names it with
  its units (``BatchResult.units_stopped_on``), since its PACS is down on a
  running box and nobody else will say so.

The runner needs only a ``WriteGuard`` (``Session`` is one) to refuse a
read-only session; ``Session.runner`` builds it. It never imports the
session module, so the dependency points one way: session → runner.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from pacs_tui.batch.audit import AuditLog
from pacs_tui.batch.confirm import Confirmation, ConfirmationRequired, ConfirmationRule
from pacs_tui.batch.gates import wait_gate
from pacs_tui.batch.plan import (
    TARGET_STATE,
    BatchPlan,
    PlannedStep,
    ServerPlan,
    StepKind,
    WaitFor,
    WavePlan,
    downstream_map,
)
from pacs_tui.batch.progress import BatchProgress, Subscriber, estimate_eta
from pacs_tui.batch.readings import POWER_PROBE, SSH_PROBE, Readings
from pacs_tui.batch.units import STOP_UNITS_VERB, stopped_units
from pacs_tui.inventory import Server
from pacs_tui.plugin_api import Action, ActionOutcome
from pacs_tui.power import PowerState

log = logging.getLogger(__name__)

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


class WriteGuard(Protocol):
    """What refuses to change the fleet in a read-only session (``Session`` is one)."""

    def require_writable(self, what: str) -> None:
        """Raise (``ReadOnlySession``) saying why ``what`` is not possible."""


class FailurePolicy(StrEnum):
    """What a failed server does to the rest of the batch."""

    HALT = "halt"  # finish the current wave's in-flight servers, start nothing more
    LEAVE_OUT = "leave-out"  # go on without it and without the servers that need it


class ServerStatus(StrEnum):
    """How a server ended up."""

    REACHED = "reached"  # at the verb's target, verified
    SKIPPED = "skipped"  # was already there; nothing sent
    FAILED = "failed"
    LEFT_OUT = "left-out"  # a server it needs (or that needs it) failed
    NOT_RUN = "not-run"  # the batch halted first
    ABORTED = "aborted"  # the operator aborted before it finished


_FINE = (ServerStatus.REACHED, ServerStatus.SKIPPED)


class PlanRefused(ValueError):
    """The plan carries refusals and must not run."""


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of transient failures: ``attempts`` more tries, doubling from ``base_s``."""

    attempts: int = 4
    base_s: float = 0.5
    max_s: float = 30.0

    def delay(self, attempt: int, retry_after_s: float | None) -> float:
        """Seconds before retry number ``attempt`` (0-based), with a little jitter."""
        backoff = self.base_s * 2.0**attempt * random.uniform(0.9, 1.1)
        return min(self.max_s, max(backoff, retry_after_s or 0.0))


@dataclass
class ServerResult:
    """The end of one server's part of the batch."""

    server: str
    wave: int
    status: ServerStatus
    detail: str = ""
    started: float | None = None  # time.monotonic()
    ended: float | None = None

    @property
    def duration_s(self) -> float:
        """Seconds from its first step to its result (0 when nothing ran)."""
        if self.started is None or self.ended is None:
            return 0.0
        return self.ended - self.started

    def to_json(self) -> dict[str, Any]:
        """The result as JSON-able data."""
        return {
            "server": self.server,
            "wave": self.wave,
            "status": str(self.status),
            "detail": self.detail,
            "duration_s": round(self.duration_s, 3),
        }


@dataclass
class WaveTiming:
    """When a wave ran, and its slowest server (for the critical path)."""

    index: int
    started: float
    ended: float
    slowest_s: float

    @property
    def duration_s(self) -> float:
        """Wall time of the wave."""
        return self.ended - self.started


@dataclass
class BatchResult:
    """What a batch did to every server of its plan."""

    batch: str
    verb: str
    servers: dict[str, ServerResult] = field(default_factory=dict)
    waves: list[WaveTiming] = field(default_factory=list)
    aborted: bool = False
    halted: bool = False
    elapsed_s: float = 0.0
    # Servers not at target whose PACS units were stopped: read On at the end, or
    # neither On nor Off then (unreadable, PoweringOff...); server → the units stopped.
    units_stopped_on: dict[str, tuple[str, ...]] = field(default_factory=dict)
    units_stopped_unknown: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when every server reached its target (or already was there)."""
        return all(r.status in _FINE for r in self.servers.values())

    @property
    def critical_path_s(self) -> float:
        """Sum over waves of the slowest server in the wave."""
        return sum(w.slowest_s for w in self.waves)

    def stranded_lines(self) -> list[str]:
        """Lines naming servers left running (or unreadable) with their PACS units stopped.

        ``["2 servers still On with their PACS units stopped: arch-001 (pacs,
        pacs-archive), web-002 (pacs-web)"]``; empty when there are none.
        """
        lines = []
        for servers, what in (
            (self.units_stopped_on, "still On"),
            (self.units_stopped_unknown, "not confirmed Off"),
        ):
            if servers:
                names = ", ".join(f"{n} ({', '.join(u)})" for n, u in sorted(servers.items()))
                lines.append(
                    f"{len(servers)} server{'s' if len(servers) != 1 else ''} {what} "
                    f"with their PACS units stopped: {names}"
                )
        return lines

    def counts(self) -> dict[str, int]:
        """Servers per status."""
        out: dict[str, int] = {}
        for result in self.servers.values():
            out[str(result.status)] = out.get(str(result.status), 0) + 1
        return out

    def to_json(self) -> dict[str, Any]:
        """The result as JSON-able data (what ``pacs-tui power --json`` prints last)."""
        return {
            "kind": "result",
            "batch": self.batch,
            "verb": self.verb,
            "ok": self.ok,
            "aborted": self.aborted,
            "halted": self.halted,
            "elapsed_s": round(self.elapsed_s, 3),
            "critical_path_s": round(self.critical_path_s, 3),
            "counts": self.counts(),
            "units_stopped_on": {n: list(u) for n, u in self.units_stopped_on.items()},
            "units_stopped_unknown": {n: list(u) for n, u in self.units_stopped_unknown.items()},
            "servers": [r.to_json() for r in self.servers.values()],
        }


class BatchRunner:
    """Runs one plan once. Build it through ``Session.runner``."""

    def __init__(
        self,
        guard: WriteGuard,
        plan: BatchPlan,
        actions: Mapping[str, Action],
        readings: Readings,
        audit: AuditLog,
        *,
        batch_id: str,
        confirmation: Confirmation | None = None,
        confirm_rule: ConfirmationRule | None = None,
        concurrency: int = 32,
        on_failure: FailurePolicy = FailurePolicy.HALT,
        poll_s: float = 1.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        """Check everything that must hold before a single call is made."""
        guard.require_writable("build a batch runner")
        if plan.refused:
            raise PlanRefused("; ".join(plan.refusals))
        rule = confirm_rule or ConfirmationRule()
        if rule.required(plan) and (confirmation is None or not confirmation.matches(plan)):
            raise ConfirmationRequired(
                f"this batch needs the count {rule.expected(plan)} typed to confirm"
            )
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if poll_s <= 0:
            raise ValueError("poll_s must be > 0")
        self.plan = plan
        self.actions = dict(actions)
        self.readings = readings
        self.audit = audit
        self.batch_id = batch_id
        self.concurrency = concurrency
        self.on_failure = FailurePolicy(on_failure)
        self.poll_s = poll_s
        self.retry = retry or RetryPolicy()
        self.result = BatchResult(batch_id, plan.verb)
        self._subscribers: list[Subscriber] = []
        self._resume = asyncio.Event()
        self._resume.set()
        self._aborted = False
        self._halted = False
        self._ran = False
        self._t0 = time.monotonic()
        self._wave: WavePlan | None = None
        self._wave_done = 0
        self._total = len(plan.servers)
        self._downstream = downstream_map(plan.verb, [sp.server for sp in plan.servers])
        self._units_stopped: dict[str, tuple[str, ...]] = {}  # server → units it may have stopped

    # -- control ------------------------------------------------------------------------

    def subscribe(self, subscriber: Subscriber) -> None:
        """Call ``subscriber`` with every ``BatchProgress`` from now on."""
        self._subscribers.append(subscriber)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        """Stop calling ``subscriber``."""
        if subscriber in self._subscribers:
            self._subscribers.remove(subscriber)

    @property
    def aborted(self) -> bool:
        """True once ``abort`` was called."""
        return self._aborted

    @property
    def paused(self) -> bool:
        """True while paused."""
        return not self._resume.is_set()

    def abort(self, reason: str = "operator abort") -> None:
        """Issue no new step; calls in flight finish; waits stop at their next poll."""
        if self._aborted:
            return
        self._aborted = True
        self._resume.set()  # a paused batch must see the abort
        self._record("abort", outcome="aborting", detail=reason)

    def pause(self) -> None:
        """Hold every new step until ``resume`` (waits and calls in flight go on)."""
        if self._aborted or self.paused:
            return
        self._resume.clear()
        self._record("pause", outcome="paused")

    def resume(self) -> None:
        """Let steps flow again."""
        if not self.paused:
            return
        self._resume.set()
        self._record("resume", outcome="resumed")

    # -- running ------------------------------------------------------------------------

    async def run(self) -> BatchResult:
        """Run the plan to its end (or abort/halt); return what happened to every server."""
        if self._ran:
            raise RuntimeError("a BatchRunner runs its plan once")
        self._ran = True
        self._t0 = time.monotonic()
        self._record("batch-start", detail=self.plan.summary())
        left_out: dict[str, str] = {}
        for wave in self.plan.waves:
            if self._aborted or self._halted:
                why = "aborted before its wave" if self._aborted else "batch halted before its wave"
                status = ServerStatus.ABORTED if self._aborted else ServerStatus.NOT_RUN
                for sp in wave.servers:
                    self._finish(sp, wave, status, why, record=True)
                continue
            await self._run_wave(wave, left_out)
        self.result.aborted = self._aborted
        self.result.halted = self._halted
        await self._check_stranded()
        self.result.elapsed_s = time.monotonic() - self._t0
        counts = ", ".join(f"{k} {v}" for k, v in sorted(self.result.counts().items()))
        detail = "; ".join(
            [counts, *self.result.stranded_lines(), f"{self.result.elapsed_s:.1f} s"]
        )
        self._record("batch-end", outcome="ok" if self.result.ok else "incomplete", detail=detail)
        return self.result

    async def _check_stranded(self) -> None:
        """Read PowerState of the servers that missed their target after a unit stop."""
        for name, units in self._units_stopped.items():
            result = self.result.servers.get(name)
            if result is None or result.status in _FINE:
                continue
            server = next(sp.server for sp in self.plan.servers if sp.server.name == name)
            try:
                reading = await self.readings.read(server, POWER_PROBE)
            except Exception:  # a broken probe must not hide the stop: report unknown
                log.exception("reading PowerState of %s after the batch failed", name)
                reading = None
            state = reading.state if reading is not None else str(PowerState.UNKNOWN)
            if state == PowerState.OFF:
                continue  # down with its server: the units come back with the boot
            if state == PowerState.ON:
                self.result.units_stopped_on[name] = units
            else:
                self.result.units_stopped_unknown[name] = units
            self._record(
                "units-stopped", server=name, outcome=f"PowerState {state}",
                detail=f"units stopped and not started again: {' '.join(units)}",
            )  # fmt: skip

    async def _run_wave(self, wave: WavePlan, left_out: dict[str, str]) -> None:
        self._wave = wave
        self._wave_done = 0
        started = time.monotonic()
        self._record("wave-start", detail=f"{len(wave.servers)} server(s)")
        slots = asyncio.Semaphore(self.concurrency)
        await asyncio.gather(*(self._run_server(wave, sp, slots, left_out) for sp in wave.servers))
        ended = time.monotonic()
        results = [self.result.servers[sp.server.name] for sp in wave.servers]
        slowest = max((r.duration_s for r in results), default=0.0)
        self.result.waves.append(WaveTiming(wave.index, started, ended, slowest))
        failed = [r.server for r in results if r.status is ServerStatus.FAILED]
        missed = [r.server for r in results if r.status not in _FINE]
        verdict = f"{len(failed)} failed" if failed else f"{len(missed)} not at target"
        self._record(
            "wave-end",
            outcome=verdict if missed else "ok",
            detail=f"{ended - started:.1f} s; slowest server {slowest:.1f} s",
        )
        if failed and not self._aborted:
            if self.on_failure is FailurePolicy.HALT:
                self._halted = True
                self._record("halt", outcome="halted", detail=f"failed: {', '.join(failed)}")
            else:
                for name in failed:
                    for other in self._downstream.get(name, ()):
                        left_out.setdefault(other, f"left out: {name} failed")
        self._wave = None

    async def _run_server(
        self,
        wave: WavePlan,
        sp: ServerPlan,
        slots: asyncio.Semaphore,
        left_out: Mapping[str, str],
    ) -> None:
        name = sp.server.name
        if name in left_out:
            self._finish(sp, wave, ServerStatus.LEFT_OUT, left_out[name], record=True)
            return
        async with slots:
            if self._aborted:
                self._finish(
                    sp, wave, ServerStatus.ABORTED, "aborted before it started", record=True
                )
                return
            if self._halted:
                self._finish(sp, wave, ServerStatus.NOT_RUN, "batch halted", record=True)
                return
            if sp.left_out:
                self._finish(sp, wave, ServerStatus.LEFT_OUT, sp.skip_reason, record=True)
                return
            if sp.skipped:
                self._finish(sp, wave, ServerStatus.SKIPPED, sp.skip_reason, record=True)
                return
            started = time.monotonic()
            try:
                status, detail = await self._run_steps(wave, sp)
            except Exception as exc:  # a bug here must not strand the other servers
                log.exception("batch step crashed on %s", name)
                status, detail = ServerStatus.FAILED, f"internal error: {type(exc).__name__}: {exc}"
            self._finish(sp, wave, status, detail, started=started, record=True)

    async def _run_steps(self, wave: WavePlan, sp: ServerPlan) -> tuple[ServerStatus, str]:
        server = sp.server
        steps = sp.steps
        target = TARGET_STATE.get(self.plan.verb)
        if target is not None and sp.sends:
            # The plan may be minutes old: never re-send what is already done.
            now = await self.readings.read(server, POWER_PROBE)
            if now is not None and now.state == target:
                steps = tuple(s for s in steps if s.kind is StepKind.GATE)
                why = f"already {target} when its turn came"
                self._record("step", server=server.name, call="read PowerState",
                             outcome="skipped", detail=why + ("; gate only" if steps else ""))  # fmt: skip
                if not steps:
                    return ServerStatus.SKIPPED, why
        escalating = False
        detail = ""
        unknown = ""
        task_done = False
        for step in steps:
            if step.escalation and not escalating:
                continue
            await self._resume.wait()
            if self._aborted:
                return ServerStatus.ABORTED, f"aborted before: {step.call}"
            if step.kind is StepKind.CALL:
                if step.only_if_off:
                    now = await self.readings.read(server, POWER_PROBE)
                    state = now.state if now is not None else str(PowerState.UNKNOWN)
                    if state != PowerState.OFF:
                        self._record("step", server=server.name, call=step.call,
                                     outcome="not needed", detail=f"PowerState is {state}")  # fmt: skip
                        continue
                outcome = await self._call(server, step)
                self._note_unit_stop(server, step, outcome)
                if outcome.unknown:
                    # It may have been carried out: verify by reading, never re-send.
                    unknown, task_done = outcome.detail, False
                    self._record("step", server=server.name, call=step.call,
                                 outcome="unknown", detail=f"{unknown}; reading PowerState back")  # fmt: skip
                    detail = outcome.detail
                    continue
                task_done = bool(outcome.ok and outcome.facts.get("task_completed"))
                label = "ok" if outcome.ok else ("failed (ignored)" if step.optional else "failed")
                self._record("step", server=server.name, call=step.call, outcome=label,
                             detail=outcome.detail)  # fmt: skip
                if not outcome.ok and not step.optional:
                    there = await self._already_there(server, step)
                    if there is None:
                        return ServerStatus.FAILED, f"{step.call}: {outcome.detail}"
                    detail = f"already {there} (the BMC answered: {outcome.detail})"
                    self._record("step", server=server.name, call="read PowerState",
                                 outcome="ok", detail=detail)  # fmt: skip
                    continue
                detail = outcome.detail
            elif step.kind is StepKind.WAIT:
                if step.wait_for is WaitFor.DOWN and task_done:
                    # A restart can pass through Off faster than we poll; the BMC's own
                    # task says it was carried out.
                    detail = "the BMC's task for the reset completed"
                    self._record("step", server=server.name, call=step.call, outcome="ok",
                                 detail=detail)  # fmt: skip
                    continue
                label, detail = await self._wait(server, step)
                if label == "timeout" and unknown:
                    detail += f"; the last call's outcome was unknown ({unknown})"
                self._record(
                    "step", server=server.name, call=step.call, outcome=label, detail=detail
                )
                if label == "aborted":
                    return ServerStatus.ABORTED, detail
                if label == "timeout":
                    if step.escalate_on_timeout:
                        escalating = True
                        continue
                    return ServerStatus.FAILED, detail
            else:
                verdict, waited = await wait_gate(
                    self.readings, server, step.checks, timeout_s=step.timeout_s,
                    poll_s=self.poll_s, stop=lambda: self._aborted,
                )  # fmt: skip
                if verdict.passed:
                    detail = f"gate held after {waited:.1f} s ({'+'.join(step.checks)})"
                    self._record(
                        "step", server=server.name, call=step.call, outcome="ok", detail=detail
                    )
                    continue
                label = "aborted" if self._aborted else "timeout"
                detail = f"gate not held after {waited:.1f} s: {'; '.join(verdict.missing)}"
                self._record(
                    "step", server=server.name, call=step.call, outcome=label, detail=detail
                )
                return (ServerStatus.ABORTED if self._aborted else ServerStatus.FAILED), detail
        return ServerStatus.REACHED, detail

    async def _call(self, server: Server, step: PlannedStep) -> ActionOutcome:
        assert step.action_step is not None
        action = self.actions.get(step.action_step.action)
        if action is None:
            return ActionOutcome(False, f"action plugin {step.action_step.action!r} is not loaded")
        attempt = 0
        while True:
            try:
                outcome = await action.run(step.action_step)
            except Exception as exc:  # foreign plugin code: report, never crash the batch
                log.exception("action %s failed on %s", action.name, server.name)
                outcome = ActionOutcome(False, f"action error: {type(exc).__name__}: {exc}")
            if outcome.ok or not outcome.transient or attempt >= self.retry.attempts:
                return outcome
            if self._aborted:
                return outcome
            delay = self.retry.delay(attempt, outcome.retry_after_s)
            self._record("retry", server=server.name, call=step.call, outcome="retry",
                         detail=f"try {attempt + 1} failed: {outcome.detail}; again in {delay:.1f} s")  # fmt: skip
            await asyncio.sleep(delay)
            attempt += 1

    def _note_unit_stop(self, server: Server, step: PlannedStep, outcome: ActionOutcome) -> None:
        """Remember units a stop call may have stopped (done, or sent with no answer)."""
        if step.action_step is None or step.action_step.verb != STOP_UNITS_VERB:
            return
        if outcome.ok or outcome.unknown:
            units = stopped_units(step.call)
            if units:
                self._units_stopped[server.name] = units

    async def _already_there(self, server: Server, step: PlannedStep) -> str | None:
        """After a refused call: the PowerState it aimed at, if the server is there now."""
        assert step.action_step is not None
        params = step.action_step.params
        target = _CALL_TARGET.get(params.get("reset_type", step.action_step.verb))
        if target is None:
            return None
        reading = await self.readings.read(server, POWER_PROBE)
        if reading is not None and reading.state == target:
            return str(target)
        return None

    async def _wait(self, server: Server, step: PlannedStep) -> tuple[str, str]:
        """Re-read PowerState until the step's condition, a timeout or an abort."""
        wanted = step.wait_for
        started = time.monotonic()
        deadline = started + step.timeout_s
        # A reboot may pass through Off in a second: look more often.
        interval = min(self.poll_s, 0.25) if wanted is WaitFor.DOWN else self.poll_s
        watch_ssh = (
            wanted is WaitFor.DOWN and server.ssh is not None and self.readings.has(SSH_PROBE)
        )
        state = str(PowerState.UNKNOWN)
        answered_at: float | None = None  # when the BMC last gave a usable answer
        lost = ""
        while True:
            reading = await self.readings.read(server, POWER_PROBE)
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
                    ssh = await self.readings.read(server, SSH_PROBE)
                    if ssh is not None and ssh.state in _SSH_GONE:
                        return "ok", f"went down (SSH {ssh.state}) after {elapsed:.1f} s"
            elif state == str(wanted):
                return "ok", f"PowerState={state} after {elapsed:.1f} s"
            if self._aborted:
                return "aborted", f"aborted while waiting; PowerState={state}"
            now = time.monotonic()
            if now >= deadline:
                what = "did not go down" if wanted is WaitFor.DOWN else f"not {wanted}"
                if lost:
                    since = (
                        f"after {answered_at:.0f} s" if answered_at is not None else "throughout"
                    )
                    return "timeout", (
                        f"{what} after {step.timeout_s:g} s: BMC lost — it stopped answering "
                        f"{since} ({lost})"
                    )
                return "timeout", f"{what} after {step.timeout_s:g} s (PowerState={state})"
            await asyncio.sleep(min(interval, deadline - now))

    # -- bookkeeping --------------------------------------------------------------------

    def _finish(
        self,
        sp: ServerPlan,
        wave: WavePlan,
        status: ServerStatus,
        detail: str,
        *,
        started: float | None = None,
        record: bool,
    ) -> None:
        ended = time.monotonic()
        result = ServerResult(sp.server.name, wave.index, status, detail, started, ended)
        self.result.servers[sp.server.name] = result
        if self._wave is wave:
            self._wave_done += 1
        if record:
            self._record(
                "server",
                server=sp.server.name,
                wave=wave.index,
                outcome=str(status),
                detail=detail,
            )

    def _record(
        self,
        kind: str,
        *,
        server: str = "",
        wave: int | None = None,
        call: str = "",
        outcome: str = "",
        detail: str = "",
    ) -> None:
        """Commit to the audit log first, then tell subscribers."""
        if wave is None and self._wave is not None:
            wave = self._wave.index
        self.audit.record(
            self.batch_id, kind, verb=self.plan.verb, server=server, wave=wave,
            call=call, outcome=outcome, detail=detail,
        )  # fmt: skip
        if not self._subscribers:
            return
        elapsed = time.monotonic() - self._t0
        done = len(self.result.servers)
        event = BatchProgress(
            kind=kind,
            batch=self.batch_id,
            verb=self.plan.verb,
            wave=wave,
            waves=len(self.plan.waves),
            wave_done=self._wave_done if self._wave is not None else 0,
            wave_total=len(self._wave.servers) if self._wave is not None else 0,
            done=done,
            total=self._total,
            elapsed_s=elapsed,
            eta_s=estimate_eta(elapsed, done, self._total),
            server=server,
            call=call,
            outcome=outcome,
            detail=detail,
        )
        for subscriber in list(self._subscribers):
            try:
                subscriber(event)
            except Exception:  # a broken display must not stop the batch
                log.exception("batch progress subscriber failed")
