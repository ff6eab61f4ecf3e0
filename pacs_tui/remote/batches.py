"""Power batches of a thin control room, carried out by the service it is attached to.

The room plans through ``POST /api/v1/batches/plan`` (the service reads the
PowerStates and audits the plan under the caller's token) and shows the plan
it gets back as a ``BatchPlan``; running it sends ``POST /api/v1/batches``
with the servers the plan touched, so the service refuses (409) when its
fresh plan would touch others. The batch runs in the service: closing the
room leaves it running there, and every attached screen follows it.

``RemoteRunner`` offers what the room's batch pane and keys use of a
``BatchRunner`` (``batch_id``, ``plan``, ``paused``, ``subscribe``,
``pause``/``resume``/``abort``, ``run``), fed by the mirror's ``batch`` and
``batch-result`` events.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote

from pacs_tui.batch.confirm import Confirmation
from pacs_tui.batch.interrupted import InterruptedBatch
from pacs_tui.batch.plan import (
    BatchPlan,
    PlannedStep,
    PlanOptions,
    ServerPlan,
    StepKind,
    WaitFor,
    WavePlan,
)
from pacs_tui.batch.power_budget import BudgetGroup, PowerBudget
from pacs_tui.batch.progress import BatchProgress, Subscriber
from pacs_tui.batch.result import BatchResult, ServerResult, ServerStatus
from pacs_tui.inventory import Inventory, Server
from pacs_tui.plugin_api import ActionStep
from pacs_tui.remote.client import ServiceClient, ServiceError, ServiceUnavailable
from pacs_tui.remote.mirror import ServiceMirror
from pacs_tui.service.wire import WireError

log = logging.getLogger(__name__)

_PROGRESS_FIELDS = {f.name for f in dataclasses.fields(BatchProgress)}


class RemoteRefusal(Exception):
    """The service refused (or could not be asked): the message says why, for a toast."""


def options_to_wire(options: PlanOptions) -> dict[str, Any]:
    """``PlanOptions`` as the request's ``options`` object (see ``batch_request``)."""
    data: dict[str, Any] = {
        "override_dependents": options.override_dependents,
        "stop_units": options.stop_units,
        "power_timeout_s": options.power_timeout_s,
        "gate_timeout_s": options.gate.timeout_s,
        "include_unknown": sorted("all" if n == "*" else n for n in options.include_unknown),
        "settle_timeout_s": options.settle_timeout_s,
        "settle_poll_s": options.settle_poll_s,
    }
    if options.escalate_after_s is not None:
        data["escalate_after_s"] = options.escalate_after_s
    return data


def plan_from_wire(inventory: Inventory, data: Any, options: PlanOptions) -> BatchPlan:
    """The ``BatchPlan`` of ``BatchPlan.to_json`` (``WireError`` when malformed)."""
    try:
        waves = tuple(
            WavePlan(
                int(wave["wave"]),
                tuple(_server_plan(inventory, entry) for entry in wave["servers"]),
                tuple(
                    BudgetGroup(
                        int(g["group"]),
                        tuple(str(n) for n in g["servers"]),
                        {str(k): float(v) for k, v in g["expected_peak_w"].items()},
                    )
                    for g in wave.get("groups", ())
                ),
            )
            for wave in data["waves"]
        )
        budgets = data.get("budgets_w")
        # Only the budgets and present load travel: enough to show the plan; the
        # service runs it.
        budget = (
            None
            if budgets is None
            else PowerBudget(
                budgets={str(k): float(v) for k, v in budgets.items()},
                keys={},
                members={},
                expected={},
                present_w=_watts(data.get("present_load_w")),
                draw_now={},
                assumed_w=_watts(data.get("assumed_w")),
                off_unread=tuple(str(n) for n in data.get("off_unread") or ()),
                at_peak_w=_watts(data.get("at_peak_w")),
            )
        )
        return BatchPlan(
            verb=str(data["verb"]),
            waves=waves,
            options=options,
            selection=str(data.get("selection", "")),
            refusals=tuple(str(r) for r in data.get("refusals", ())),
            overridden=tuple(str(r) for r in data.get("overridden", ())),
            hints=tuple(str(r) for r in data.get("hints", ())),
            included_unknown=tuple(str(r) for r in data.get("included_unknown", ())),
            budget=budget,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise WireError(f"bad plan from the service: {exc}") from None


def _server_plan(inventory: Inventory, entry: dict[str, Any]) -> ServerPlan:
    server: Server = inventory.server(str(entry["server"]))
    left_out = entry.get("left_out")
    skipped = entry.get("skipped")
    return ServerPlan(
        server=server,
        power_state=str(entry.get("power_state", "")),
        steps=tuple(_step(server.name, s) for s in entry.get("steps", ())),
        skip_reason=str(left_out or skipped or ""),
        note=str(entry.get("note", "")),
        left_out=left_out is not None,
        group=int(entry.get("group", 0)),
    )


def _step(server: str, data: dict[str, Any]) -> PlannedStep:
    action = data.get("action")
    call, target = str(data["call"]), str(data["target"])
    return PlannedStep(
        kind=StepKind(data["kind"]),
        call=call,
        target=target,
        action_step=(
            ActionStep(server, str(data.get("verb", "")), call, target, str(action))
            if action
            else None
        ),
        wait_for=WaitFor(data["wait_for"]) if data.get("wait_for") else None,
        timeout_s=float(data.get("timeout_s", 0.0)),
        checks=tuple(str(c) for c in data.get("checks", ())),
        optional=bool(data.get("optional", False)),
        escalation=bool(data.get("escalation", False)),
        escalate_on_timeout=bool(data.get("escalate_on_timeout", False)),
        only_if_off=bool(data.get("only_if_off", False)),
        settle_w=float(data.get("settle_w", 0.0)),
    )


def result_from_wire(data: dict[str, Any]) -> BatchResult:
    """A ``BatchResult`` from ``BatchResult.to_json`` (timings as durations only)."""
    result = BatchResult(
        str(data.get("batch", "")),
        str(data.get("verb", "")),
        aborted=bool(data.get("aborted", False)),
        halted=bool(data.get("halted", False)),
        elapsed_s=float(data.get("elapsed_s", 0.0)),
        units_stopped_on={k: tuple(v) for k, v in (data.get("units_stopped_on") or {}).items()},
        units_stopped_unknown={
            k: tuple(v) for k, v in (data.get("units_stopped_unknown") or {}).items()
        },
        budget_peaks={
            str(k): {str(f): None if w is None else float(w) for f, w in v.items()}
            for k, v in (data.get("budget_peaks") or {}).items()
        },
    )
    for entry in data.get("servers") or []:
        result.servers[str(entry["server"])] = ServerResult(
            str(entry["server"]), int(entry.get("wave", 0)), ServerStatus(entry["status"]),
            str(entry.get("detail", "")), 0.0, float(entry.get("duration_s", 0.0)),
        )  # fmt: skip
    return result


class RemoteRunner:
    """A batch running in the service, followed through the mirror's events."""

    def __init__(self, batches: RemoteBatches, batch_id: str, plan: BatchPlan) -> None:
        self._batches = batches
        self.batch_id = batch_id
        self.plan = plan
        self.paused = False
        self._subscribers: list[Subscriber] = []
        self._result: asyncio.Future[BatchResult] = asyncio.get_running_loop().create_future()
        self._tasks: set[asyncio.Task[None]] = set()
        self._outcomes: dict[str, tuple[str, str]] = {}  # server → (outcome, detail) said
        self._last: BatchProgress | None = None
        self._heard = time.time()  # when the service last said something of it (epoch s)
        self.started_at: float | None = None  # its start, on this clock (epoch s), when said

    def subscribe(self, subscriber: Subscriber) -> None:
        """Call ``subscriber`` with each progress event of this batch."""
        self._subscribers.append(subscriber)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        """Stop calling ``subscriber``."""
        if subscriber in self._subscribers:
            self._subscribers.remove(subscriber)

    def pause(self) -> None:
        """Ask the service to pause the batch (no new step starts)."""
        self._control("pause")

    def resume(self) -> None:
        """Ask the service to resume the batch."""
        self._control("resume")

    def abort(self, reason: str = "operator abort") -> None:
        """Ask the service to abort the batch (its in-flight calls finish)."""
        self._control("abort")

    @property
    def done(self) -> bool:
        """True once the service said how the batch ended."""
        return self._result.done()

    async def run(self) -> BatchResult:
        """Wait for the batch's end in the service; its result."""
        return await asyncio.shield(self._result)

    def _control(self, what: str) -> None:
        task = asyncio.create_task(self._batches.control(what), name=f"batch {what}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def progress(self, data: dict[str, Any]) -> None:
        """A ``batch`` event of the service (ignored when of another batch)."""
        if data.get("batch") != self.batch_id:
            return
        self.paused = bool(data.get("paused", False))
        try:
            event = BatchProgress(**{k: v for k, v in data.items() if k in _PROGRESS_FIELDS})
        except TypeError as exc:
            log.warning("bad batch progress from the service: %s", exc)
            return
        self._last, self._heard = event, time.time()
        if event.kind == "server" and event.server:
            self._outcomes[event.server] = (event.outcome, event.detail)
        for subscriber in list(self._subscribers):
            subscriber(event)

    def interrupted(self, reason: str, *, lost_at: float | None = None) -> None:
        """The service stopped mid-batch (its new run does not know this batch).

        Servers it said were done keep that outcome; every other server of the
        plan is ``unknown``: the service may have sent its power call or not,
        so its state must be read back before anyone acts on it again. The
        subscribers get a ``batch-end`` with outcome ``interrupted``. ``lost_at``
        (seconds since the epoch) is when the stream from the service broke.
        """
        if self._result.done():
            return
        result = BatchResult(self.batch_id, self.plan.verb, interrupted=True)
        waves = {sp.server.name: wave.index for wave in self.plan.waves for sp in wave.servers}
        elapsed = self._elapsed_until(lost_at)
        unknown: list[BatchProgress] = []
        for name, wave in waves.items():
            outcome, detail = self._outcomes.get(name, ("", ""))
            try:
                status = ServerStatus(outcome)
            except ValueError:
                status, detail = ServerStatus.UNKNOWN, "not confirmed: the service stopped"
                unknown.append(BatchProgress(
                    kind="server", batch=self.batch_id, verb=self.plan.verb, wave=wave,
                    waves=len(self.plan.waves), wave_done=0, wave_total=0,
                    done=len(self._outcomes) + len(unknown) + 1, total=len(waves),
                    elapsed_s=elapsed, eta_s=None, server=name, outcome=str(status),
                    detail=detail,
                ))  # fmt: skip
            result.servers[name] = ServerResult(name, wave, status, detail)
        end = BatchProgress(
            kind="batch-end", batch=self.batch_id, verb=self.plan.verb, wave=None,
            waves=len(self.plan.waves), wave_done=0, wave_total=0,
            done=len(self._outcomes), total=len(waves),
            elapsed_s=elapsed, eta_s=None,
            outcome="interrupted", detail=reason,
        )  # fmt: skip
        self.paused = False
        for event in (*unknown, end):  # each server not confirmed is named on screen
            for subscriber in list(self._subscribers):
                subscriber(event)
        self._result.set_result(result)

    def _elapsed_until(self, lost_at: float | None) -> float:
        """Seconds the batch ran until the stream from the service broke (``lost_at``).

        From its start time as the service said it (shifted to this clock), else
        from the last progress event; it may have gone on a little longer.
        """
        last = self._last.elapsed_s if self._last is not None else 0.0
        if lost_at is None:
            return last
        if self.started_at is not None:
            return max(last, lost_at - self.started_at)
        return last + max(0.0, lost_at - self._heard)

    def ended(self, data: dict[str, Any] | None) -> None:
        """The batch's result (``BatchResult.to_json``) arrived."""
        if data is None or self._result.done():
            return
        try:
            self._result.set_result(result_from_wire(data))
        except (KeyError, TypeError, ValueError) as exc:
            self._result.set_exception(WireError(f"bad batch result: {exc}"))


class RemoteBatches:
    """Plans, runs and controls batches through one service, for one room."""

    def __init__(self, client: ServiceClient, mirror: ServiceMirror) -> None:
        self.client = client
        self.mirror = mirror
        self.inventory = mirror.inventory
        caller = mirror.service.get("caller") or {}
        self.caller = str(caller.get("name", "?"))
        self.role = str(caller.get("role", "viewer"))
        self.current: RemoteRunner | None = None
        self._lost_at: float | None = None  # when the stream last broke (epoch s)
        mirror.listeners.append(self._event)

    @property
    def read_only_reason(self) -> str:
        """Why this room cannot change anything ("" when it can)."""
        if self.mirror.service.get("read_only"):
            why = self.mirror.service.get("read_only_reason") or "it is read-only"
            return f"the service {self.client.url} cannot change anything ({why})"
        if self.role != "operator":
            return f"the token {self.caller!r} is a viewer's: it can change nothing"
        return ""

    async def plan(
        self, servers: Iterable[Server], verb: str, options: PlanOptions, *, selection: str
    ) -> tuple[BatchPlan, str, dict[str, Any]]:
        """The service's plan (a dry run: nothing sent), its batch id, and its answer."""
        names = [s.name for s in servers]
        body = {"verb": verb, "servers": names, "options": options_to_wire(options)}
        answer = await self._post("/api/v1/batches/plan", body)
        plan = plan_from_wire(self.inventory, answer["plan"], options)
        return (
            dataclasses.replace(plan, selection=selection or plan.selection),
            str(answer["batch"]),
            answer,
        )

    async def start(
        self, plan: BatchPlan, confirmation: Confirmation | None, *, batch: str | None = None
    ) -> RemoteRunner:
        """Run ``plan`` in the service if its fresh plan touches the same servers.

        ``batch`` is the id the service gave the plan: the run keeps it.
        """
        body: dict[str, Any] = {
            "verb": plan.verb,
            "servers": [sp.server.name for sp in plan.servers],
            "options": options_to_wire(plan.options),
            "expect": {"touched": [sp.server.name for sp in plan.touched]},
        }
        if confirmation is not None:
            body["confirm"] = confirmation.answer
        if batch is not None:
            body["batch"] = batch
        state = await self._post("/api/v1/batches", body)
        batch = str(state["batch"])
        if self.current is not None and self.current.batch_id == batch:
            return self.current  # its start event came through the stream first
        runner = RemoteRunner(self, batch, plan_from_wire(self.inventory, state["plan"],
                                                          plan.options))  # fmt: skip
        runner.started_at = self._local_time(state.get("started_at"))
        self.current = runner
        return runner

    def _local_time(self, service_time: Any) -> float | None:
        """A time of the service's clock on this one (None when it did not say)."""
        if not isinstance(service_time, int | float):
            return None
        return self.mirror.local_time(float(service_time))

    async def decline(self, plan: BatchPlan, batch: str) -> None:
        """Tell the service the operator declined ``plan`` (id ``batch``); it audits that.

        ``RemoteRefusal`` when the service refused or could not be asked.
        """
        await self._post(f"/api/v1/batches/plan/{quote(batch, safe='')}/decline", {})

    async def control(self, what: str) -> None:
        """``pause``/``resume``/``abort`` the service's running batch (a refusal is logged)."""
        try:
            await self._post(f"/api/v1/batches/current/{what}", {})
        except RemoteRefusal as exc:
            log.warning("batch %s refused: %s", what, exc)
            for listener in list(self.mirror.listeners):
                with contextlib.suppress(Exception):
                    listener("notice", {"text": f"batch {what} refused: {exc}", "health": "down"})

    def follow_existing(self) -> RemoteRunner | None:
        """A runner for a batch the service is running (started by another screen)."""
        state = self.mirror.batch
        if not state or not state.get("running") or not state.get("plan"):
            return None
        batch = str(state.get("batch"))
        if self.current is not None and self.current.batch_id == batch:
            return self.current
        try:
            plan = plan_from_wire(self.inventory, state["plan"], PlanOptions())
        except (WireError, KeyError) as exc:
            log.warning("batch %s not followed: %s", batch, exc)
            return None
        self.current = RemoteRunner(self, batch, plan)
        self.current.paused = bool(state.get("paused", False))
        self.current.started_at = self._local_time(state.get("started_at"))
        return self.current

    def listen(self, listener: Callable[[str, dict[str, Any]], None]) -> None:
        """Hear every event of the service (batches, custody, notices)."""
        self.mirror.listeners.append(listener)

    def last_progress(self, runner: RemoteRunner) -> dict[str, Any] | None:
        """The service's last progress event of ``runner``'s batch (None: none yet)."""
        state = self.mirror.batch or {}
        progress = state.get("progress")
        if state.get("batch") != runner.batch_id or not isinstance(progress, dict):
            return None
        return progress

    async def _post(self, path: str, body: Any) -> Any:
        try:
            return await self.client.post(path, body)
        except ServiceError as exc:
            raise RemoteRefusal(exc.reason) from None
        except ServiceUnavailable as exc:
            raise RemoteRefusal(f"the service did not answer: {exc}") from None

    def _event(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "connection" and not data.get("connected"):
            # When the stream broke: a killed service breaks it at once (a quiet one may
            # send nothing for seconds, so the last event heard would undercount).
            self._lost_at = time.time()
        runner = self.current
        if runner is None:
            return
        if kind == "batch":
            runner.progress(data)
        elif kind == "batch-result" and data.get("batch") == runner.batch_id:
            runner.ended(data.get("result"))
        elif kind == "snapshot":  # after a gap: the result may have come meanwhile
            state = self.mirror.batch or {}
            ours = state.get("batch") == runner.batch_id
            if ours and state.get("result") and not state.get("interrupted"):
                runner.ended(state["result"])
            elif data.get("restarted") and (not ours or state.get("interrupted")):
                runner.interrupted(
                    f"the service {self.client.url} restarted mid-batch; "
                    "read the servers' power state before acting on them again",
                    lost_at=self._lost_at,
                )

    async def acknowledge(self, batch: str) -> InterruptedBatch:
        """Acknowledge the service's interrupted ``batch`` (audited there under the token).

        ``RemoteRefusal`` says why not (no such batch, it ended, already done).
        """
        answer = await self._post(f"/api/v1/audit/interrupted/{quote(batch, safe='')}/ack", {})
        try:
            return InterruptedBatch.from_json(answer["acknowledged"])
        except (KeyError, TypeError, ValueError) as exc:
            raise RemoteRefusal(f"bad answer from the service: {exc}") from None

    async def interrupted(self) -> list[InterruptedBatch]:
        """The service's batches left half done (``GET /api/v1/audit/interrupted``).

        Raises ``RemoteRefusal`` when the service cannot be asked or answers
        something else than the documented list.
        """
        try:
            answer = await self.client.get("/api/v1/audit/interrupted")
            return [InterruptedBatch.from_json(item) for item in answer["interrupted"]]
        except ServiceError as exc:
            raise RemoteRefusal(exc.reason) from None
        except ServiceUnavailable as exc:
            raise RemoteRefusal(f"the service did not answer: {exc}") from None
        except (KeyError, TypeError, ValueError) as exc:
            raise RemoteRefusal(f"bad answer from the service: {exc}") from None


def _watts(data: Any) -> dict[str, float]:
    """A JSON object of names to watts (absent or null: empty)."""
    return {str(k): float(v) for k, v in (data or {}).items()}
