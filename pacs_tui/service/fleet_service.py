"""FleetService: the one process that talks to the fleet, and what it tells its viewers.

It owns the ``FleetMonitor`` (the only poller), the ``Session`` (action
plugins, audit log), the custody board and at most one running batch. Every
``tick_s`` it publishes the readings recorded since the last tick (each new
result, not only changes: a viewer's copy must age exactly as the
original) as one ``readings`` event on its ``EventHub``; batch progress,
custody changes and notices are events too. ``snapshot()`` is the whole
state at one sequence number, for a viewer that attaches or fell behind.

Writes come from callers (``tokens.Caller``) and are audited under
``token:<name>``; a read-only service (``--read-only`` or an inventory
marked so) opens no action plugin at all, as ``Session`` enforces.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pacs_tui import __version__
from pacs_tui.batch.audit import AuditLog
from pacs_tui.batch.confirm import (
    DEFAULT_THRESHOLD,
    Confirmation,
    ConfirmationRequired,
    ConfirmationRule,
)
from pacs_tui.batch.interrupted import NotInterrupted, acknowledge, interrupted_batches
from pacs_tui.batch.plan import BatchPlan, PlanError
from pacs_tui.batch.progress import BatchProgress
from pacs_tui.batch.readings import MonitorReadings
from pacs_tui.batch.result import BatchResult
from pacs_tui.batch.runner import BatchRunner, PlanRefused
from pacs_tui.custody import CustodyBoard, CustodyChange, CustodyError
from pacs_tui.inventory import Inventory
from pacs_tui.links import LinkState, LinkWatch, links_to_wire
from pacs_tui.links.state import DEFAULT_WATCH_INTERVAL_S
from pacs_tui.monitor import FleetMonitor
from pacs_tui.plugin_api import Action, Probe
from pacs_tui.rollup import applicable_probes
from pacs_tui.service.batch_request import BatchRequest
from pacs_tui.service.hub import EventHub
from pacs_tui.service.tokens import Caller
from pacs_tui.service.wire import reading_to_wire, snapshot_entry
from pacs_tui.session import ReadOnlySession, Session

log = logging.getLogger(__name__)

DEFAULT_TICK_S = 0.5
# A stopped service lets a running batch's in-flight calls finish (BMC timeouts are ~10 s).
BATCH_END_WAIT_S = 20.0
PLANS_KEPT = 256  # plan ids a run may still refer to (the oldest are forgotten)


class ServiceRefusal(Exception):
    """A request the service will not carry out; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class FleetService:
    """One inventory's poller, batches, custody and audit, published to viewers."""

    def __init__(
        self,
        inventory: Inventory,
        inventory_text: str,
        *,
        read_only: bool = False,
        settings: Mapping[str, Any] | None = None,
        probes: Sequence[Probe] | None = None,
        actions: Sequence[Action] | None = None,
        audit: AuditLog | None = None,
        custody: CustodyBoard | None = None,
        tick_s: float = DEFAULT_TICK_S,
        site_name: str = "",
        link_interval_s: float = DEFAULT_WATCH_INTERVAL_S,
    ) -> None:
        self.inventory = inventory
        self.inventory_text = inventory_text
        self.settings = dict(settings or {})
        self.site_name = site_name or inventory.path.stem
        self.monitor = FleetMonitor(inventory, probes=probes, settings=settings)
        self._owns_audit = audit is None
        self.audit = audit or AuditLog()
        self.session = Session(inventory, read_only=read_only, settings=settings, audit=self.audit)
        self._actions = actions
        self.custody = custody
        self.hub = EventHub()
        # Event ids carry it: an id from an earlier run of the service never resumes here.
        self.instance = secrets.token_hex(4)
        self.tick_s = tick_s
        self.readings: MonitorReadings | None = None  # made once the monitor is open
        self.started_at = time.time()
        self.runner: BatchRunner | None = None
        self.batch_owner: Caller | None = None
        self.batch_task: asyncio.Task[BatchResult | None] | None = None
        self.last_result: dict[str, Any] | None = None
        self.last_progress: dict[str, Any] | None = None
        self.progress_subscribers: list[Callable[[BatchProgress], None]] = []
        self._tick_task: asyncio.Task[None] | None = None
        self._feed = self.monitor.state.subscribe(every_result=True)
        self._applicable: dict[str, list[str]] = {}
        self._batch_idle = asyncio.Event()
        self.batch_started_at = 0.0  # time.time() when the current (or last) batch started
        # Plans shown and not yet run or declined: id → (caller, verb, servers touched).
        self._plans: OrderedDict[str, tuple[str, str, int]] = OrderedDict()
        self._batch_idle.set()
        # Held from the "a batch runs" check until the new batch's task exists: planning
        # awaits the BMCs, and without it two requests arriving together both passed the
        # check and both started, sending every reset twice (tests/test_service_api.py).
        self._starting = asyncio.Lock()
        if custody is not None:
            custody.subscribe(self._custody_changed)
        # The sites' WAN links, measured here (a round every ``link_interval_s``) and
        # published per site as ``links`` events, when the inventory declares any.
        self.links: LinkState | None = None
        self._link_watch: LinkWatch | None = None
        self._link_task: asyncio.Task[None] | None = None
        if any(site.links for site in inventory.sites.values()):
            self.links = LinkState(inventory, max_age_s=max(3 * link_interval_s, 60.0))
            self._link_watch = LinkWatch(
                self.links, interval_s=link_interval_s, on_update=self._links_measured
            )

    # -- life -------------------------------------------------------------------------

    @property
    def read_only(self) -> bool:
        """True when nothing can be changed through this service."""
        return self.session.read_only

    async def start(self) -> None:
        """Open the probes (and, unless read-only, the actions); start polling and ticking."""
        await self.monitor.open()
        self.readings = MonitorReadings(self.monitor)
        applicable = applicable_probes(self.monitor.probes)
        self._applicable = {s.name: list(applicable(s)) for s in self.inventory.servers}
        if not self.read_only:
            await self.session.open(self._actions)
        self.monitor.start()
        self._tick_task = asyncio.create_task(self._tick_loop(), name="service-tick")
        if self._link_watch is not None:
            self._link_task = asyncio.create_task(
                self._link_watch.run_beside(self._links_failed), name="link watch"
            )
        self.notice(f"service started on {len(self.inventory.servers)} servers")

    async def stop(self, reason: str = "the service was stopped") -> None:
        """Abort a running batch (audited) and wait for its end; log out of every device."""
        if self.runner is not None and self.batch_task is not None and not self.batch_task.done():
            self.runner.abort(reason)
            try:
                await asyncio.wait_for(self._batch_idle.wait(), BATCH_END_WAIT_S)
            except TimeoutError:
                log.warning("batch %s did not end within %.0f s", self.runner.batch_id,
                            BATCH_END_WAIT_S)  # fmt: skip
        for task in (self._tick_task, self._link_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self.monitor.state.unsubscribe(self._feed)
        await self.session.close()
        await self.monitor.close()
        if self.custody is not None:
            self.custody.unsubscribe(self._custody_changed)
        if self._owns_audit:
            self.audit.close()

    def _links_failed(self, exc: Exception) -> None:
        log.error("site links no longer measured", exc_info=exc)
        self.notice("site links no longer measured: see the service log", "unknown")

    def _links_measured(self, state: LinkState) -> None:
        self.hub.publish("links", links_to_wire(state, state.max_age_s))

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            self.publish_readings()

    def publish_readings(self) -> None:
        """Publish what was recorded since the last call as one ``readings`` event."""
        keys = self._feed.drain()
        if not keys:
            return
        state = self.monitor.state
        updates = [u for k in sorted(keys) if (u := reading_to_wire(state, *k)) is not None]
        if updates:
            self.hub.publish("readings", {"readings": updates})

    def notice(self, text: str, health: str = "ok") -> None:
        """A line for every viewer's event log."""
        self.hub.publish("notice", {"at": time.time(), "text": text, "health": health})

    # -- what viewers read ------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """Who this service is: site, inventory, version, read-only, probes."""
        return {
            "site": self.site_name,
            "inventory": self.inventory.path.name,
            "version": __version__,
            "read_only": self.read_only,
            "read_only_reason": self.session.read_only_reason,
            "started_at": self.started_at,
            "servers": len(self.inventory.servers),
            "probes": {p.name: p.interval_s for p in self.monitor.probes},
            "failed_plugins": {**self.monitor.failed_plugins, **self.session.failed_actions},
            "custody": self.custody is not None,
            # Which probes apply to which server: a viewer has no probe plugins to ask.
            "applicable": self._applicable,
        }

    def snapshot(self) -> dict[str, Any]:
        """The whole state at sequence number ``seq`` (readings with history, batch, custody).

        Taken between two events: nothing recorded after ``seq`` is in it
        unless it is also in a later ``readings`` event.
        """
        self.publish_readings()  # anything recorded so far goes out under a number first
        state = self.monitor.state
        entries = [
            entry
            for server in state.servers
            for probe in state.probes
            if (entry := snapshot_entry(state, server, probe)) is not None
        ]
        return {
            "seq": self.hub.seq,
            "instance": self.instance,
            "now": time.time(),
            "service": self.describe(),
            "readings": entries,
            "batch": self.batch_state(),
            "custody": self.custody_state(),
            "links": None
            if self.links is None
            else links_to_wire(self.links, self.links.max_age_s),
        }

    def batch_state(self) -> dict[str, Any] | None:
        """The running (or last) batch: plan, owner, paused, last progress, result."""
        runner = self.runner
        if runner is None:
            return None
        running = self.batch_task is not None and not self.batch_task.done()
        return {
            "batch": runner.batch_id,
            "verb": runner.plan.verb,
            "owner": self.batch_owner.name if self.batch_owner else "",
            "running": running,
            "started_at": self.batch_started_at,
            "paused": runner.paused,
            "plan": runner.plan.to_json(),
            "progress": self.last_progress,
            "result": self.last_result,
        }

    def custody_state(self) -> dict[str, Any] | None:
        """Every server's custody state and since when (None without a board)."""
        board = self.custody
        if board is None:
            return None
        return {
            "states": {n: str(s) for n, s in board.states().items()},
            "since": {n: board.since(n) for n in board.states() if board.since(n)},
        }

    # -- batches ----------------------------------------------------------------------

    def _audit_for(self, caller: Caller) -> AuditLog:
        return self.audit.for_operator(f"token:{caller.name}")

    def _require_writable(self, what: str) -> MonitorReadings:
        if self.read_only:
            raise ServiceRefusal(403, f"cannot {what}: {self.session.read_only_reason}")
        if self.readings is None:
            raise ServiceRefusal(503, f"cannot {what}: the service is still starting")
        return self.readings

    async def plan(self, caller: Caller, request: BatchRequest) -> tuple[BatchPlan, str]:
        """Plan (a dry run: nothing is sent), audited under the caller's name."""
        readings = self._require_writable("plan a power batch")
        try:
            plan, batch = await self.session.plan(
                request.servers, request.verb, readings, request.options,
                selection=request.selection, dry_run=True, audit=self._audit_for(caller),
            )  # fmt: skip
        except (PlanError, ReadOnlySession) as exc:
            raise ServiceRefusal(422, str(exc)) from None
        self._plans[batch] = (caller.name, plan.verb, len(plan.touched))
        while len(self._plans) > PLANS_KEPT:
            self._plans.popitem(last=False)
        return plan, batch

    async def start_batch(self, caller: Caller, request: BatchRequest) -> BatchPlan:
        """Plan from fresh PowerStates, check the caller's confirmation, start the batch.

        ``ServiceRefusal``: 409 while another batch runs or when the fresh plan
        would touch other servers than ``request.expect_touched``; 422 when the
        plan is refused or the confirmation does not match. Requests are taken one
        at a time: a second one waits for the first to start (then answers 409).
        """
        async with self._starting:
            return await self._start_batch(caller, request)

    async def _start_batch(self, caller: Caller, request: BatchRequest) -> BatchPlan:
        readings = self._require_writable("run a power batch")
        if self.batch_task is not None and not self.batch_task.done():
            owner = self.batch_owner.name if self.batch_owner else "?"
            raise ServiceRefusal(409, f"batch {self.runner.batch_id if self.runner else '?'} "
                                 f"(started by {owner}) is running: wait for it or abort it")  # fmt: skip
        audit = self._audit_for(caller)
        if request.plan_id is not None:
            # The run keeps the id of the plan the operator was shown, so the audit
            # joins plan, confirmation and run; only the caller's own, unused plan.
            shown = self._plans.get(request.plan_id)
            if shown is None or shown[:2] != (caller.name, request.verb):
                raise ServiceRefusal(409, f"batch {request.plan_id} is not a {request.verb} plan "
                                     f"of {caller.name} in this run of the service (or it ran "
                                     "already): plan again")  # fmt: skip
            del self._plans[request.plan_id]
        try:
            plan, batch = await self.session.plan(
                request.servers, request.verb, readings, request.options,
                selection=request.selection, audit=audit, batch_id=request.plan_id,
            )  # fmt: skip
        except (PlanError, ReadOnlySession) as exc:
            raise ServiceRefusal(422, str(exc)) from None
        touched = {sp.server.name for sp in plan.touched}
        if request.expect_touched is not None and touched != set(request.expect_touched):
            gone = sorted(set(request.expect_touched) - touched)
            new = sorted(touched - set(request.expect_touched))
            why = "; ".join(
                part for part in (
                    f"no longer touched: {', '.join(gone[:10])}" if gone else "",
                    f"now also touched: {', '.join(new[:10])}" if new else "",
                ) if part
            )  # fmt: skip
            audit.record(batch, "refused", verb=plan.verb, outcome="refused",
                         detail=f"the plan changed since it was shown ({why})")  # fmt: skip
            raise ServiceRefusal(409, f"the plan changed since it was shown: {why}; plan again")
        confirmation = None
        if request.confirm is not None:
            confirmation = Confirmation(request.confirm, f"typed by {caller.name} (API)")
        rule = ConfirmationRule(int(self.settings.get("confirm_threshold", DEFAULT_THRESHOLD)))
        try:
            runner = self.session.runner(
                plan, readings, batch_id=batch, confirmation=confirmation,
                confirm_rule=rule, concurrency=int(self.settings.get("batch_concurrency", 32)),
                poll_s=float(self.settings.get("batch_poll_s", 1.0)), audit=audit,
            )  # fmt: skip
        except (PlanRefused, ConfirmationRequired, ValueError) as exc:
            raise ServiceRefusal(422, f"not run: {exc}") from None
        self.session.record_confirmation(plan, batch, confirmation, True, audit=audit)
        self.runner, self.batch_owner = runner, caller
        self.batch_started_at = time.time()
        self.last_progress, self.last_result = None, None
        runner.subscribe(self._progress)
        self._batch_idle.clear()
        self.batch_task = asyncio.create_task(self._run(runner), name=f"batch {batch}")
        # Before any progress event: every screen learns the plan it then follows.
        self.hub.publish("batch-started", self.batch_state())
        self.notice(f"batch {batch} started by {caller.name}: {plan.summary()}")
        return plan

    async def _run(self, runner: BatchRunner) -> BatchResult | None:
        try:
            result = await runner.run()
        except Exception:  # an engine bug must not take the service down
            log.exception("batch %s crashed", runner.batch_id)
            self.notice(f"batch {runner.batch_id} crashed: see the service log", "down")
            return None
        finally:
            self._batch_idle.set()
        self.last_result = result.to_json()
        self.hub.publish("batch-result", {"batch": runner.batch_id, "result": self.last_result})
        return result

    def _progress(self, event: BatchProgress) -> None:
        self.last_progress = event.to_json()
        paused = self.runner.paused if self.runner is not None else False
        self.hub.publish("batch", {**self.last_progress, "paused": paused})
        for subscriber in self.progress_subscribers:
            subscriber(event)

    def decline_plan(self, caller: Caller, batch: str) -> dict[str, Any]:
        """The operator was shown plan ``batch`` and declined it: audit that; it cannot run.

        ``ServiceRefusal`` 409 when it is not an unused plan of the caller in this
        run of the service (the audit then has nothing to join it to).
        """
        self._require_writable("decline a plan")
        shown = self._plans.get(batch)
        if shown is None or shown[0] != caller.name:
            raise ServiceRefusal(409, f"batch {batch} is not a plan of {caller.name} waiting "
                                 "in this run of the service")  # fmt: skip
        del self._plans[batch]
        _, verb, touched = shown
        self._audit_for(caller).record(batch, "confirm", verb=verb, outcome="declined",
                                       detail=f"declined by {caller.name}; {touched} server(s)")  # fmt: skip
        return {"batch": batch, "declined": True}

    def control_batch(self, caller: Caller, what: str) -> dict[str, Any]:
        """``pause``, ``resume`` or ``abort`` the running batch, audited under the caller."""
        self._require_writable(f"{what} a batch")
        runner = self.runner
        if runner is None or self.batch_task is None or self.batch_task.done():
            raise ServiceRefusal(409, "no batch is running")
        if what == "abort":
            runner.abort(f"aborted by {caller.name} (API)")
        elif what == "pause":
            runner.pause()
        elif what == "resume":
            runner.resume()
        else:
            raise ServiceRefusal(404, f"unknown batch control {what!r}")
        self._audit_for(caller).record(runner.batch_id, f"api-{what}", verb=runner.plan.verb,
                                       outcome=what, detail=f"by {caller.name}")  # fmt: skip
        self.notice(f"batch {runner.batch_id}: {what} by {caller.name}")
        state = self.batch_state()
        assert state is not None
        return state

    def acknowledge(self, caller: Caller, batch: str) -> dict[str, Any]:
        """Record that the caller has seen interrupted ``batch`` (an ``ack`` row).

        It is then no longer named (``audit --ack``); ``ServiceRefusal`` 409 says
        why not (no such batch, it ended, already acknowledged, still running).
        """
        self._require_writable("acknowledge an interrupted batch")
        try:
            item = acknowledge(self._audit_for(caller), batch)
        except NotInterrupted as exc:
            raise ServiceRefusal(409, str(exc)) from None
        self.notice(f"interrupted batch {batch} acknowledged by {caller.name}")
        return item.to_json()

    def interrupted(self) -> list[dict[str, Any]]:
        """Batches of earlier runs left half done (``audit --interrupted``).

        Safe to call from a worker thread: it opens its own connection.
        """
        return [item.to_json() for item in interrupted_batches(self.audit.path)]

    def audit_events(self, since: str | None, batch: str | None) -> list[dict[str, Any]]:
        """Audit events from ``since`` / of one batch, as JSON (own connection: any thread)."""
        with AuditLog(self.audit.path) as reader:
            return [event.to_json() for event in reader.events(since, batch)]

    # -- custody ----------------------------------------------------------------------

    def change_custody(
        self, caller: Caller, how: str, names: list[str], to: str | None, reason: str
    ) -> list[CustodyChange]:
        """``advance`` or ``correct`` custody (all or nothing), audited under the caller."""
        self._require_writable("change custody")
        board = self.custody
        if board is None:
            raise ServiceRefusal(409, "this service has no custody board (serve --custody)")
        operator, board.operator = board.operator, f"token:{caller.name}"
        try:
            if how == "correct":
                if to is None:
                    raise ServiceRefusal(422, "a correction needs 'to' and a 'reason'")
                return board.correct(names, to, reason=reason)
            return board.advance(names, to, reason=reason)
        except (CustodyError, KeyError) as exc:
            raise ServiceRefusal(422, str(exc).strip("'\"")) from None
        finally:
            board.operator = operator

    def _custody_changed(self, changes: Sequence[CustodyChange]) -> None:
        self.hub.publish(
            "custody",
            {"changes": [c.to_json() for c in changes], "custody": self.custody_state()},
        )


def read_inventory_text(path: Path) -> str:
    """The inventory file's text as the service serves it to viewers (bounded read)."""
    from pacs_tui.input_file import INVENTORY, read_text

    return read_text(path, INVENTORY)
