"""ServiceMirror: a ``FleetState`` that follows a ``pacs-tui serve``, for thin screens.

It offers what the control room and the wall use of a ``FleetMonitor``
(``inventory``, ``servers``, ``state``, ``probe_names``, ``applicable``,
``failed_plugins``, ``open``/``start``/``close``), so a screen draws from a
service exactly as from its own poller, and it opens no device session.

It takes a snapshot, then follows the event stream from the snapshot's
sequence number. When the stream breaks it keeps what it has (readings age,
and turn STALE by the state's own rule) and reconnects with backoff
(``BACKOFF_S`` doubling up to ``BACKOFF_MAX_S``), resuming from the last
event it applied; the service sends a fresh snapshot when that is too old.
``data_age_s()`` is None while connected and otherwise the seconds since the
service was last heard: what the screen shows as "data is N s old".

Times in the service's events are its ``time.time()``; the mirror shifts
them by the clock difference seen on the snapshot when it exceeds
``CLOCK_SKEW_S``, so ages match what the service sees.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pacs_tui.inventory import Inventory, Server
from pacs_tui.links import SiteLinksCopy
from pacs_tui.remote.client import ServiceClient, ServiceError, ServiceUnavailable
from pacs_tui.remote.sse import SseEvent
from pacs_tui.service.wire import WireError, apply_reading
from pacs_tui.state import FleetState

log = logging.getLogger(__name__)

BACKOFF_S = 0.5
BACKOFF_MAX_S = 10.0
CLOCK_SKEW_S = 1.0

Listener = Callable[[str, dict[str, Any]], None]


class ServiceMirror:
    """A screen's copy of one service's fleet state."""

    def __init__(
        self,
        client: ServiceClient,
        inventory: Inventory,
        service: dict[str, Any],
        *,
        clock: Callable[[], float] = time.time,
        state: FleetState | None = None,
    ) -> None:
        """``service`` is the service's ``GET /api/v1/service`` answer.

        ``state`` shares one ``FleetState`` between the mirrors of several
        services (``FleetFederation``); it must track this service's servers.
        """
        self.client = client
        self.inventory = inventory
        self.servers: list[Server] = list(inventory.servers)
        self.service = service
        probes = {str(k): float(v) for k, v in (service.get("probes") or {}).items()}
        if state is None:
            state = FleetState([s.name for s in self.servers], probes, clock=clock)
        else:
            for probe, interval in probes.items():  # the slower service sets the fallback
                state.intervals[probe] = max(interval, state.intervals.get(probe, 0.0))
        self.state = state
        self.failed_plugins: dict[str, str] = dict(service.get("failed_plugins") or {})
        self.listeners: list[Listener] = []
        self.connected = False
        self.last_heard: float | None = None
        self.last_error = ""
        self.reconnects = 0
        self.batch: dict[str, Any] | None = None
        self.custody: dict[str, Any] | None = None
        self.links: SiteLinksCopy | None = None  # the sites' WAN links, when it measures any
        self._known = {s.name for s in self.servers}
        self._applicable: dict[str, tuple[str, ...]] = _applicable(service)
        self._seq: str | None = None
        self._offset = 0.0
        self._task: asyncio.Task[None] | None = None
        self._tried = False  # before the first attempt the data is not "old", only not here

    # -- what a screen reads ----------------------------------------------------------

    @property
    def label(self) -> str:
        """The service's name and URL, for titles and the event log."""
        return f"{self.service.get('site') or 'service'} ({self.client.url})"

    @property
    def probe_names(self) -> list[str]:
        """The probes the service polls with."""
        return list(self.state.probes)

    def applicable(self, server: Server) -> tuple[str, ...]:
        """The probes that apply to ``server``, as the service said."""
        return self._applicable.get(server.name, ())

    def local_time(self, service_time: float) -> float:
        """A time of the service's clock (s since the epoch) on this machine's clock."""
        return service_time + self._offset

    def data_age_s(self, now: float | None = None) -> float | None:
        """None while following the service; else seconds since it was last heard."""
        if self.connected or not self._tried:
            return None
        if self.last_heard is None:
            return float("inf")
        return max(0.0, (now if now is not None else self.state.clock()) - self.last_heard)

    # -- life -------------------------------------------------------------------------

    async def open(self) -> None:
        """Take a first snapshot (``ServiceUnavailable``/``ServiceError`` if none)."""
        await self.client.open()
        try:
            snapshot = await self.client.get("/api/v1/snapshot")
        finally:
            self._tried = True
        self._apply_snapshot(snapshot)
        self.connected = True  # until the stream says otherwise

    def start(self) -> asyncio.Task[None]:
        """Follow the event stream in the background, reconnecting as needed."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._follow(), name=f"mirror {self.client.url}")
        return self._task

    async def stop(self) -> None:
        """Stop following."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.connected = False

    async def close(self) -> None:
        """Stop following and close the HTTP session."""
        await self.stop()
        await self.client.close()

    async def _follow(self) -> None:
        self._tried = True
        delay = BACKOFF_S
        while True:
            try:
                async for event in self.client.events(self._seq):
                    self.last_heard = self.state.clock()
                    if not self.connected:
                        self.connected = True
                        delay = BACKOFF_S
                        self._tell("connection", {"connected": True})
                    if event is not None:
                        self._handle(event)
            except (ServiceUnavailable, ServiceError) as exc:
                self.last_error = str(exc)
            except (WireError, ValueError) as exc:  # a broken event: start afresh
                self.last_error = f"bad data from the service: {exc}"
                self._seq = None
            if self.connected:
                self.connected = False
                self._tell("connection", {"connected": False, "error": self.last_error})
            self.reconnects += 1
            await asyncio.sleep(delay * (0.8 + 0.4 * random.random()))
            delay = min(delay * 2, BACKOFF_MAX_S)

    # -- applying events ----------------------------------------------------------------

    def _handle(self, event: SseEvent) -> None:
        if event.kind != "snapshot" and not self._is_new(event.id):
            return  # already applied (a resent event must not record a reading twice)
        data = json.loads(event.data)
        if not isinstance(data, dict):
            raise WireError(f"event {event.kind} is not an object")
        if event.kind == "snapshot":
            self._apply_snapshot(data)
        elif event.kind == "readings":
            for entry in data.get("readings") or []:
                if entry.get("server") in self._known:
                    apply_reading(self.state, entry, offset_s=self._offset)
        else:
            if event.kind == "batch-started":
                self.batch = data
            elif event.kind in ("batch", "batch-result") and self.batch is not None:
                self.batch = {**self.batch, **_batch_update(event.kind, data)}
            elif event.kind in ("batch", "batch-result"):
                self.batch = _batch_update(event.kind, data)
            elif event.kind == "custody":
                self.custody = data.get("custody")
            elif event.kind == "links":
                self._apply_links(data)
            self._tell(event.kind, data)
        if event.id is not None:
            self._seq = event.id

    def _is_new(self, event_id: str | None) -> bool:
        """False for an id of this service's run at or below the last one applied."""
        if event_id is None or self._seq is None:
            return True
        instance, _, seq = event_id.partition(":")
        last_instance, _, last_seq = self._seq.partition(":")
        if instance != last_instance or not seq.isdigit() or not last_seq.isdigit():
            return True
        return int(seq) > int(last_seq)

    def _apply_snapshot(self, snapshot: Any) -> None:
        if not isinstance(snapshot, dict):
            raise WireError("the snapshot is not an object")
        now = time.time()
        skew = now - float(snapshot.get("now", now))
        self._offset = skew if abs(skew) > CLOCK_SKEW_S else 0.0
        service = snapshot.get("service")
        if isinstance(service, dict):
            # The snapshot's description does not say who we are: keep the caller.
            self.service = {**service, "caller": self.service.get("caller")}
            self._applicable = _applicable(service)
            self.failed_plugins = dict(service.get("failed_plugins") or {})
        previous_batch = self.batch
        instance = str(snapshot.get("instance", ""))
        restarted = self._seq is not None and self._seq.partition(":")[0] != instance
        fresh: set[tuple[str, str]] = set()
        for entry in snapshot.get("readings") or []:
            if entry.get("server") in self._known:
                apply_reading(self.state, entry, offset_s=self._offset)
                fresh.add((str(entry["server"]), str(entry["probe"])))
        if restarted:
            self._forget_history(fresh)
        if snapshot.get("links") is not None:
            self._apply_links(snapshot["links"])
        self.batch = snapshot.get("batch")
        if restarted and not self.batch:
            self.batch = _cut_off(previous_batch)
        self.custody = snapshot.get("custody")
        self._seq = f"{instance}:{snapshot.get('seq', 0)}"
        self.last_heard = self.state.clock()
        self._tell("snapshot", {"seq": self._seq, "restarted": restarted})

    def _apply_links(self, data: Any) -> None:
        if self.links is None:
            self.links = SiteLinksCopy()
        try:
            self.links.apply(data)
        except ValueError as exc:
            raise WireError(str(exc)) from None

    def _forget_history(self, fresh: set[tuple[str, str]]) -> None:
        """After a restart of the service, keep only what its new run knows.

        Its snapshot carries the history and health changes of the readings it
        has; for the others the last result stays (it turns STALE by the usual
        rule until a new one comes) but their latencies and health changes of
        the old run go: flap detection must not count a transition of the old
        run plus one of the new as a flap, and the service forgot them too.
        """
        held = self.state.keys()  # a FleetState, not a dict: every key with a result
        for server, probe in held:
            if server not in self._known or (server, probe) in fresh:
                continue
            result = self.state.latest(server, probe)
            if result is not None:
                due = self.state.due(server, probe)
                self.state.restore(server, probe, result, due_s=due, history=(), changes=())

    def _tell(self, kind: str, data: dict[str, Any]) -> None:
        for listener in list(self.listeners):
            try:
                listener(kind, data)
            except Exception:  # a screen's bug must not stop the mirror
                log.exception("mirror listener failed on %s", kind)


def _applicable(service: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    table = service.get("applicable") or {}
    if not isinstance(table, dict):
        raise WireError("applicable is not an object")
    return {str(name): tuple(str(p) for p in probes) for name, probes in table.items()}


def _cut_off(batch: dict[str, Any] | None) -> dict[str, Any] | None:
    """A batch the old run was running when it died, as the screens keep showing it.

    The new run does not know it: it ends here as interrupted (never as done),
    so the wall and the rooms say so instead of dropping it silently.
    """
    if not batch or not batch.get("running"):
        return batch
    return {**batch, "running": False, "paused": False, "interrupted": True,
            "result": {"batch": batch.get("batch"), "verb": batch.get("verb"), "ok": False,
                       "interrupted": True, "counts": {}}}  # fmt: skip


def _batch_update(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    if kind == "batch-result":
        return {"batch": data.get("batch"), "result": data.get("result"), "running": False}
    return {"batch": data.get("batch"), "verb": data.get("verb"), "progress": data,
            "paused": data.get("paused", False), "running": data.get("kind") != "batch-end"}  # fmt: skip


async def attach(client: ServiceClient) -> tuple[Inventory, dict[str, Any]]:
    """The service's inventory (parsed here, as the service did) and its description.

    Raises ``ServiceUnavailable``/``ServiceError``, or ``InventoryError`` when the
    text does not load here (another pacs-tui version).
    """
    from pacs_tui.inventory.loader import load_inventory_text

    await client.open()
    try:
        service = await client.get("/api/v1/service")
        inventory = await client.get("/api/v1/inventory")
    finally:
        await client.close()
    name = Path(str(inventory.get("name") or "inventory.yaml")).name
    # Named as the service names it; its CA and key files are the service's business.
    text = str(inventory["text"])
    return load_inventory_text(text, Path(name), check_files=False), service
