"""``BatchRunner``: runs a ``BatchPlan`` wave by wave, verifying every result.

- A wave runs its servers concurrently, at most ``concurrency`` at a time.
  It ends when every server reached its target or failed; the next wave
  starts only then, and power-on servers reach their target only when their
  health gate holds.
- Every reset is verified by re-reading PowerState through the fleet's
  power probe; a BMC that answers 204 and does nothing is caught. Waits
  and gates read every ``poll_s``, finer around the shortest such wait of
  the batch so far (``pacing``).
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

Around it: ``result`` (``BatchResult``, ``ServerStatus``), ``policies``
(``WriteGuard``, ``FailurePolicy``, ``RetryPolicy``), ``verify`` (reading
PowerState back) and ``stranded`` (the end-of-batch read of servers whose
units were stopped). Their names stay importable from here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping

from pacs_tui.batch.audit import AuditLog
from pacs_tui.batch.confirm import Confirmation, ConfirmationRequired, ConfirmationRule
from pacs_tui.batch.gates import wait_gate
from pacs_tui.batch.pacing import Pacer
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
from pacs_tui.batch.policies import FailurePolicy, PlanRefused, RetryPolicy, WriteGuard
from pacs_tui.batch.progress import BatchProgress, Subscriber, estimate_eta
from pacs_tui.batch.readings import POWER_PROBE, Readings
from pacs_tui.batch.result import (
    FINE,
    BatchResult,
    ServerResult,
    ServerStatus,
    WaveTiming,
    highest_read,
)
from pacs_tui.batch.settle import BudgetWatch
from pacs_tui.batch.stranded import UnitStops
from pacs_tui.batch.verify import already_there, wait_power
from pacs_tui.inventory import Server
from pacs_tui.plugin_api import Action, ActionOutcome
from pacs_tui.power import PowerState

# The result model and the policies live in their own modules; importable from here
# as they always were.
__all__ = [
    "BatchResult",
    "BatchRunner",
    "FailurePolicy",
    "PlanRefused",
    "RetryPolicy",
    "ServerResult",
    "ServerStatus",
    "WaveTiming",
    "WriteGuard",
]

log = logging.getLogger(__name__)


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
        # Reads finer near the shortest wait seen in this batch: a change is seen sooner.
        self.pacer = Pacer(poll_s)
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
        self._unit_stops = UnitStops()  # server → the PACS units it may have stopped
        # Racks' power budgets: groups wait for the groups before them to settle.
        self._budget = (
            BudgetWatch(plan, plan.options.settle_poll_s) if plan.budget is not None else None
        )
        self._sent: set[str] = set()  # servers a call was made to
        self._groups_started: set[tuple[int, int]] = set()  # (wave, group) announced

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
        if self._budget is not None:
            self.result.budget_peaks = self._budget.peaks()
            for key, peak in self.result.budget_peaks.items():
                read = peak["measured_peak_w"] is not None
                self._record(
                    "budget",
                    outcome=f"{key}: highest load read {highest_read(peak)};",
                    detail=f"expected peak {peak['expected_peak_w']:.0f} W, budget "
                    f"{peak['budget_w']:.0f} W ("
                    + ("sampled when planning and at the settle steps: a lower bound of the "
                       "true peak)" if read else "no draw of its servers could be read)"),
                )  # fmt: skip
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
        servers: dict[str, Server] = {}
        for sp in self.plan.servers:
            servers.setdefault(sp.server.name, sp.server)

        def report(name: str, state: str, units: tuple[str, ...]) -> None:
            self._record(
                "units-stopped", server=name, outcome=f"PowerState {state}",
                detail=f"units stopped and not started again: {' '.join(units)}",
            )  # fmt: skip

        await self._unit_stops.read_back(self.result, servers, self.readings, report)

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
        missed = [r.server for r in results if r.status not in FINE]
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
        if self._budget is not None and not any(s.kind is StepKind.SETTLE for s in sp.steps):
            # No peak to wait out (it boots nothing on a budget, or is counted at its
            # nameplate for good): the next group need not wait for its gate.
            self._budget.mark(name, True, "nothing to settle")
        try:
            await self._run_server_turn(wave, sp, slots, left_out)
        except BaseException:
            # Cancelled (the process stopping): no read now; the groups after it stay held.
            if self._budget is not None:
                self._budget.mark(name, False, "the batch stopped")
            raise
        if self._budget is not None and not self._budget.is_marked(name):
            if name in self._sent and self._budget.keys(name):
                await self._budget.final_read(self.readings, sp.server)
            self._budget.mark(name, True, "nothing sent")

    async def _run_server_turn(
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
        if self._budget is not None and sp.sends and self._budget.keys(name):
            held = await self._budget.wait_turn(wave, name, lambda: self._aborted or self._halted)
            if held:
                self._finish(sp, wave, ServerStatus.LEFT_OUT, held, record=True)
                return
            if sp.group > 1 and (wave.index, sp.group) not in self._groups_started:
                self._groups_started.add((wave.index, sp.group))
                self._record("group-start", outcome=f"group {sp.group}/{len(wave.groups)}",
                             detail="the power-ons before it settled")  # fmt: skip
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
                # Its draw is read still: powered on by hand, it may be at its boot peak.
                steps = tuple(s for s in steps if s.kind in (StepKind.SETTLE, StepKind.GATE))
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
                self._unit_stops.note(server, step, outcome)
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
                    there = await already_there(self.readings, server, step)
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
                label, detail = await wait_power(
                    self.readings, server, step, poll_s=self.poll_s,
                    stop=lambda: self._aborted, pacer=self.pacer,
                )  # fmt: skip
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
            elif step.kind is StepKind.SETTLE:
                if self._budget is None:
                    continue
                label, detail = await self._budget.settle(
                    self.readings, server, step, lambda: self._aborted
                )
                self._record(
                    "step", server=server.name, call=step.call, outcome=label, detail=detail
                )
                if label == "aborted":
                    return ServerStatus.ABORTED, detail
                # A draw that did not settle is no fault of the server: its later
                # neighbours are held instead (BudgetWatch.wait_turn).
            else:
                verdict, waited = await wait_gate(
                    self.readings, server, step.checks, timeout_s=step.timeout_s,
                    poll_s=self.poll_s, stop=lambda: self._aborted, pacer=self.pacer,
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
        self._sent.add(server.name)
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
