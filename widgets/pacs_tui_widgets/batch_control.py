"""What the batch desk's keys and ``:power`` do: plan, ask, run and follow a power batch.

The keys live on ``BatchDesk`` (never mounted in a read-only room); this is
the work behind them, through the same engine as ``pacs-tui power``: the
session plans (waves, dry-run calls, refusals), ``PlanScreen`` asks (override,
escalation, typed confirmation), the session builds the runner, and the
``BatchPane`` follows it while the grid keeps the focus. PowerStates are read
through ``MonitorReadings`` on the room's own poller.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from typing import TYPE_CHECKING

from pacs_tui.batch.audit import default_audit_path
from pacs_tui.batch.confirm import Confirmation, ConfirmationRequired
from pacs_tui.batch.gates import GatePolicy
from pacs_tui.batch.interrupted import (
    InterruptedBatch,
    NotInterrupted,
    acknowledge,
    interrupted_batches,
)
from pacs_tui.batch.plan import VERBS, BatchPlan, PlanError, PlanOptions
from pacs_tui.batch.progress import BatchProgress
from pacs_tui.batch.runner import BatchResult, BatchRunner, PlanRefused
from pacs_tui.inventory import Server
from pacs_tui.plugin_api import Health
from pacs_tui.remote.batches import RemoteRefusal, RemoteRunner
from pacs_tui.selector import SelectorError, compile_selector
from pacs_tui.service.wire import WireError
from pacs_tui.session import ReadOnlySession
from pacs_tui_widgets.abort_prompt import AbortPrompt
from pacs_tui_widgets.command_line import CommandError
from pacs_tui_widgets.plan_screen import PlanDecision, PlanScreen

if TYPE_CHECKING:
    from pacs_tui_widgets.app import ControlRoomApp

log = logging.getLogger(__name__)


class BatchControl:
    """The control room's power batches; ``app.runner``/``app.batch_active`` say which runs."""

    def __init__(self, app: ControlRoomApp) -> None:
        self.app = app
        self.idle = asyncio.Event()  # set while no batch of this room is running
        self.idle.set()
        self.task: asyncio.Task[None] | None = None

    async def interrupted(self) -> list[InterruptedBatch]:
        """The audit log's interrupted batches (read off the UI thread; none on error).

        An attached room asks its service: the log is the service's, not this machine's.
        """
        if self.app.remote is not None:
            try:
                return await self.app.remote.interrupted()
            except RemoteRefusal as exc:
                log.warning("interrupted batches not read from the service: %s", exc)
                return []
        path = self.app.session.audit.path if self.app.session_open else default_audit_path()
        try:
            return await asyncio.to_thread(interrupted_batches, path)
        except (OSError, sqlite3.Error) as exc:  # the room keeps running; the CLI names it too
            log.warning("audit log %s not read for interrupted batches: %s", path, exc)
            return []

    async def name_interrupted(self) -> None:
        """Say once, in the event log and a toast, which batches were left half done."""
        now = self.app.state.clock()
        for item in await self.interrupted():
            line = f"{item.line()}; here: :ack {item.batch}"
            self.app.events.note(now, line, Health.DOWN)
            self.app.notify(line, title="interrupted batch", severity="error", timeout=30)

    def ack_command(self, text: str, arg: str, offset: int) -> None:
        """``:ack BATCH``: acknowledge an interrupted batch in the room's audit log."""
        batch = arg.strip()
        if not batch or " " in batch:
            raise CommandError("try :ack BATCH (the id the interrupted-batch line names)", text,
                               offset)  # fmt: skip
        if self.app.read_only:
            raise CommandError(f"refused: {self.app.read_only_reason}", text)
        self.app.run_worker(self.acknowledge(batch), group="ack")

    async def acknowledge(self, batch: str) -> None:
        """Record the acknowledgement (the service's log when attached); say how it went."""
        now = self.app.state.clock()
        try:
            if self.app.remote is not None:
                item = await self.app.remote.acknowledge(batch)
            else:
                item = acknowledge(self.app.session.audit, batch)
        except (RemoteRefusal, NotInterrupted, OSError, sqlite3.Error) as exc:
            self.app.notify(f"not acknowledged: {exc}", severity="error", timeout=10)
            return
        line = f"interrupted batch {item.batch} acknowledged: it is no longer named"
        self.app.events.note(now, line)
        self.app.notify(line)

    def start_power(self, verb: str, selector: str | None = None) -> bool:
        """Plan ``verb`` on the selector's servers, else the marked ones, else the cursor's.

        Returns False (with a toast saying why) when nothing was planned.
        """
        if verb not in VERBS:
            raise ValueError(f"unknown verb {verb!r}")
        if self.app.read_only:
            self.app.notify(f"refused: {self.app.read_only_reason}", severity="error")
            return False
        if self.app.batch_active:
            self.app.notify("a batch is running: wait for it or abort it (A)", severity="warning")
            return False
        local_ready = self.app.readings is not None and self.app.session_open
        if self.app.remote is None and not local_ready:
            self.app.notify("power actions are not ready yet", severity="warning")
            return False
        names, selection = self.app.chosen_servers(selector)
        if not names:
            self.app.notify("nothing to act on: mark servers (space) or put the cursor on one")
            return False
        servers = [self.app.servers[name] for name in names]
        self.app.run_worker(
            self.plan_and_ask(verb, servers, selection), group="plan", exclusive=True
        )
        return True

    def plan_options(self) -> PlanOptions:
        """The options a new plan starts from (escalation off; the screen changes it)."""
        gate_poll = float(self.app.session.settings.get("batch_poll_s", 1.0))
        return PlanOptions(gate=GatePolicy(poll_s=gate_poll))

    async def plan_and_ask(self, verb: str, servers: list[Server], selection: str) -> None:
        if self.app.remote is not None:
            await self.plan_remotely(verb, servers, selection)
            return
        readings = self.app.readings
        assert readings is not None
        self.app.notify(f"planning {verb} on {len(servers)} server(s): reading power states…")
        try:
            plan, batch = await self.app.session.plan(
                servers, verb, readings, self.plan_options(), selection=selection
            )
        except (PlanError, ReadOnlySession) as exc:
            self.app.notify(f"cannot plan {verb}: {exc}", severity="error", timeout=10)
            return
        self.warn_interrupted(await self.interrupted(), plan)

        async def replan(options: PlanOptions) -> tuple[BatchPlan, str]:
            return await self.app.session.plan(
                servers, verb, readings, options, selection=selection, batch_id=batch
            )

        screen = PlanScreen(
            plan, batch, rule=self.app.confirm_rule, replan=replan,
            record=self.app.session.record_confirmation,
        )  # fmt: skip
        self.app.push_screen(screen, self.plan_decided)

    async def plan_remotely(self, verb: str, servers: list[Server], selection: str) -> None:
        """Plan in the service (it reads the PowerStates and audits); show it here."""
        remote = self.app.remote
        assert remote is not None
        self.app.notify(f"planning {verb} on {len(servers)} server(s) in the service…")
        try:
            plan, batch, _ = await remote.plan(servers, verb, self.plan_options(),
                                               selection=selection)  # fmt: skip
        except (RemoteRefusal, WireError) as exc:
            self.app.notify(f"cannot plan {verb}: {exc}", severity="error", timeout=10)
            return

        async def replan(options: PlanOptions) -> tuple[BatchPlan, str]:
            again, batch_id, _ = await remote.plan(servers, verb, options, selection=selection)
            return again, batch_id

        def record(
            plan: BatchPlan, batch: str, confirmation: Confirmation | None, accepted: bool
        ) -> None:
            # The service audits the plan, and a run with its confirmation; a plan
            # the operator walked away from (escape) is said to it, to be audited
            # as declined. A wrong count stays on the screen, so it declines nothing.
            if accepted or confirmation is None or confirmation.how != "escape":
                return
            self.app.run_worker(self.decline_remotely(plan, batch), group="decline")

        screen = PlanScreen(plan, batch, rule=self.app.confirm_rule, replan=replan, record=record)
        self.app.push_screen(screen, self.plan_decided)

    async def decline_remotely(self, plan: BatchPlan, batch: str) -> None:
        """Have the service audit a declined plan; a refusal is said, never raised."""
        remote = self.app.remote
        assert remote is not None
        try:
            await remote.decline(plan, batch)
        except RemoteRefusal as exc:
            line = f"the service did not record plan {batch} as declined: {exc}"
            self.app.events.note(self.app.state.clock(), line, Health.UNKNOWN)

    def warn_interrupted(self, interrupted: list[InterruptedBatch], plan: BatchPlan) -> None:
        """Before a plan: batches left half done on these servers, with PowerState just read."""
        read = {sp.server.name: sp.power_state for sp in plan.servers}
        now = self.app.state.clock()
        for item in interrupted:
            known = [name for name in item.not_reached if name in read]
            if not known:
                continue
            states = ", ".join(f"{name} {read[name]}" for name in known)
            line = f"batch {item.batch} ({item.verb}) was interrupted; its servers now: {states}"
            self.app.events.note(now, line, Health.DOWN)
            self.app.notify(line, title="interrupted batch", severity="warning", timeout=20)

    def plan_decided(self, decision: PlanDecision | None) -> None:
        now = self.app.state.clock()
        if decision is None:
            self.app.events.note(now, "batch plan cancelled: nothing was sent")
            return
        plan, batch = decision.plan, decision.batch
        if decision.dry_run and self.app.remote is not None:
            self.app.batch_pane.show_dry_run(plan, batch)  # the service audited it as a dry run
            self.app.events.note(now, f"dry run of batch {batch} ({plan.summary()}): nothing sent")
            return
        if self.app.remote is not None:
            self.task = asyncio.create_task(self.start_remotely(decision), name=f"batch {batch}")
            return
        if decision.dry_run:
            self.app.session.audit.record(
                batch, "dry-run", verb=plan.verb, outcome="dry-run",
                detail=f"{plan.summary()}; shown in the control room, nothing sent",
            )  # fmt: skip
            self.app.batch_pane.show_dry_run(plan, batch)
            self.app.events.note(now, f"dry run of batch {batch} ({plan.summary()}): nothing sent")
            return
        readings = self.app.readings
        assert readings is not None
        settings = self.app.session.settings
        try:
            runner = self.app.session.runner(
                plan, readings, batch_id=batch, confirmation=decision.confirmation,
                confirm_rule=self.app.confirm_rule,
                concurrency=int(settings.get("batch_concurrency", 32)),
                poll_s=float(settings.get("batch_poll_s", 1.0)),
            )  # fmt: skip
        except (PlanRefused, ConfirmationRequired, ReadOnlySession, ValueError) as exc:
            self.app.notify(f"not run: {exc}", severity="error", timeout=10)
            return
        self.follow(runner)
        self.app.events.note(now, f"batch {batch} started: {plan.summary()}")
        # A plain task, not a Textual worker: workers are cancelled when the room closes,
        # and a batch cut off mid-step leaves no end row. ``on_unmount`` aborts it and
        # waits (bounded) for ``idle``, so the batch ends itself and says so in the audit.
        self.task = asyncio.create_task(self.run_batch(runner), name=f"batch {batch}")

    async def start_remotely(self, decision: PlanDecision) -> None:
        """Ask the service to run the plan shown; follow it there until it ends."""
        remote = self.app.remote
        assert remote is not None
        try:
            runner = await remote.start(decision.plan, decision.confirmation, batch=decision.batch)
        except (RemoteRefusal, WireError) as exc:
            self.app.notify(f"not run: {exc}", severity="error", timeout=15)
            self.app.events.note(self.app.state.clock(), f"batch not run: {exc}", Health.DOWN)
            return
        if self.app.runner is runner:
            return  # already followed: the service's start event came before its answer
        self.follow(runner)
        self.app.events.note(
            self.app.state.clock(), f"batch {runner.batch_id} started in the service: "
            f"{runner.plan.summary()}",
        )  # fmt: skip
        await self.run_batch(runner)

    def follow_service(self) -> None:
        """Follow a batch the service runs that this room did not start (another screen's)."""
        remote = self.app.remote
        if remote is None or self.app.batch_active:
            return
        runner = remote.follow_existing()
        if runner is None or runner.done or self.app.runner is runner:
            return  # none, over, or this room's own (its last event arrives after its end)
        self.follow(runner)
        last = remote.last_progress(runner)
        if last is not None:
            runner.progress(last)  # joined mid-batch: the pane starts where the batch is
        self.app.events.note(self.app.state.clock(), f"following batch {runner.batch_id} "
                             f"({runner.plan.summary()}) run by the service")  # fmt: skip
        self.task = asyncio.create_task(self.run_batch(runner), name=f"follow {runner.batch_id}")

    def follow(self, runner: BatchRunner | RemoteRunner) -> None:
        """Make ``runner`` the batch the keys and the pane act on until it ends."""
        self.app.runner = runner
        self.app.batch_active = True
        self.app.batch_pane.follow(runner)

        def ended(event: BatchProgress) -> None:
            if event.kind == "batch-end":
                self.app.batch_active = False
                self.app.quit_asked_at = None

        runner.subscribe(ended)

    async def run_batch(self, runner: BatchRunner | RemoteRunner) -> None:
        self.idle.clear()
        try:
            result = await runner.run()
        except Exception as exc:  # an engine bug must not take the control room down
            log.exception("batch %s crashed", runner.batch_id)
            if self.app.is_running:
                self.app.notify(
                    f"batch {runner.batch_id} crashed: {exc}", severity="error", timeout=15
                )
            return
        finally:
            self.app.batch_active = False  # also when no batch-end event came
            self.app.quit_asked_at = None
            self.idle.set()
        if not self.app.is_running:  # it ended because the room closed; the audit has it
            return
        self.app.batch_pane.drain()
        text = batch_result_text(result)
        self.app.events.note(self.app.state.clock(), text, Health.OK if result.ok else Health.DOWN)
        title = "batch done" if result.ok else "batch INCOMPLETE"
        if result.interrupted:
            title = "batch INTERRUPTED"
        self.app.notify(
            text, title=title,
            severity="information" if result.ok else "error", timeout=15,
        )  # fmt: skip

    def toggle_view(self) -> None:
        """Show or hide the live batch pane."""
        pane = self.app.batch_pane
        if pane.plan is None:
            self.app.notify("no batch yet: mark servers, then O, N, R or F")
            return
        pane.display = not pane.display

    def abort(self) -> None:
        """Ask, then abort the running batch (in-flight calls finish)."""
        runner = self.app.runner
        if runner is None or not self.app.batch_active:
            self.app.notify("no batch is running")
            return

        def answered(abort: bool | None) -> None:
            if abort and self.app.batch_active:
                runner.abort("operator abort (control room)")

        what = f"batch {runner.batch_id} ({runner.plan.verb}, {len(runner.plan.servers)} servers)"
        self.app.push_screen(AbortPrompt(what), answered)

    def pause(self) -> None:
        """Pause the running batch (no new step starts), or resume it."""
        runner = self.app.runner
        if runner is None or not self.app.batch_active:
            self.app.notify("no batch is running")
            return
        if runner.paused:
            runner.resume()
        else:
            runner.pause()

    def power_command(self, text: str, arg: str, offset: int) -> None:
        verb, _, rest = arg.partition(" ")
        if verb not in VERBS:
            raise CommandError("try :power off|on|restart|force-off [SELECTOR]", text, offset)
        if self.app.read_only:
            raise CommandError(
                f"refused: {self.app.read_only_reason}; power commands are disabled", text
            )
        selector = rest.strip()
        if selector:
            kinds = {name: site.kind for name, site in self.app.inventory.sites.items()}
            try:
                compile_selector(selector, kinds)
            except SelectorError as exc:
                where = offset + len(verb) + 1 + (len(rest) - len(rest.lstrip())) + exc.position
                raise CommandError(exc.reason, text, where) from exc
        self.start_power(verb, selector or None)


def batch_result_text(result: BatchResult) -> str:
    """One line for the toast and the event log: verb, OK or not, counts, time."""
    counts = ", ".join(f"{count} {status}" for status, count in sorted(result.counts().items()))
    if result.interrupted:
        state = "INTERRUPTED"
    else:
        state = "OK" if result.ok else ("ABORTED" if result.aborted else "INCOMPLETE")
    took = "" if result.interrupted else f" in {result.elapsed_s:.1f} s"  # not known
    line = f"batch {result.batch} {result.verb}: {state} — {counts or 'no servers'}{took}"
    # A failed off that left servers On with their units stopped must not read as a count.
    return "; ".join([line, *result.stranded_lines()])
