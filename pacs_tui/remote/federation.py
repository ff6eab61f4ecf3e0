"""Several services, one grid: ``pacs-tui run --connect A --connect B``.

One service runs per site or data center. A screen attached to several sees
one fleet: the services' inventories merged (server names must not repeat
across services; sites of the same name and kind are one site), one
``FleetState`` that every service's mirror writes into, and each server's
applicable probes as its own service says. A service that is gone keeps its
servers on screen, ageing into STALE by the state's own rule (never silently
gone), and the banner names it. Batches go to the service that owns the
servers; a selection that spans services is refused with the split named,
because no service knows the order between another's servers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from pacs_tui.batch.confirm import Confirmation
from pacs_tui.batch.interrupted import InterruptedBatch
from pacs_tui.batch.plan import BatchPlan, PlanOptions
from pacs_tui.inventory import Inventory, Server
from pacs_tui.remote.batches import RemoteBatches, RemoteRefusal, RemoteRunner
from pacs_tui.remote.mirror import ServiceMirror
from pacs_tui.state import FleetState

log = logging.getLogger(__name__)


class FederationError(ValueError):
    """The services' inventories cannot be shown as one (the message names both)."""


def merge_inventories(named: Sequence[tuple[str, Inventory]]) -> Inventory:
    """One inventory of every service's servers, in service order.

    ``named`` pairs a service's label with its inventory. ``FederationError``
    when a server name is in two services or a site has two kinds.
    """
    sites: dict[str, Any] = {}
    owner: dict[str, str] = {}
    servers: list[Server] = []
    for label, inventory in named:
        for name, site in inventory.sites.items():
            known = sites.get(name)
            if known is not None and known.kind != site.kind:
                raise FederationError(
                    f"site {name!r} is a {known.kind} in one service and a {site.kind} in {label}"
                )
            sites.setdefault(name, site)
        for server in inventory.servers:
            if server.name in owner:
                raise FederationError(
                    f"server {server.name!r} is in two services: {owner[server.name]} and {label}"
                    " (each server belongs to the one service that polls it)"
                )
            owner[server.name] = label
            servers.append(server)
    return Inventory(
        path=Path(" + ".join(inv.path.name for _, inv in named)),
        sites=sites,
        servers=tuple(servers),
        credentials={},
        read_only=any(inv.read_only for _, inv in named),
    )


class FleetFederation:
    """A ``FleetSource`` over several services' mirrors, sharing one state."""

    def __init__(self, mirrors: Sequence[ServiceMirror], inventory: Inventory) -> None:
        self.mirrors = list(mirrors)
        self.inventory = inventory
        self.servers: list[Server] = list(inventory.servers)
        self.state: FleetState = mirrors[0].state
        self._owner = {s.name: m for m in self.mirrors for s in m.servers}
        self.failed_plugins: dict[str, str] = {}

    @classmethod
    def build(cls, attached: Sequence[tuple[Any, Inventory, dict[str, Any]]]) -> FleetFederation:
        """Mirrors of ``(client, inventory, service description)``, one shared state."""
        named = [(f"{d.get('site') or 'service'} ({c.url})", inv) for c, inv, d in attached]
        inventory = merge_inventories(named)
        state: FleetState | None = None
        mirrors: list[ServiceMirror] = []
        for client, own, description in attached:
            if state is None:
                state = FleetState([s.name for s in inventory.servers], {})
            mirrors.append(ServiceMirror(client, own, description, state=state))
        return cls(mirrors, inventory)

    def owner(self, server: str) -> ServiceMirror:
        """The mirror of the service that polls ``server``."""
        return self._owner[server]

    @property
    def probe_names(self) -> list[str]:
        """Every probe any service polls with."""
        return list(dict.fromkeys(p for m in self.mirrors for p in m.probe_names))

    @property
    def label(self) -> str:
        """The services that are gone (when any), else all of them."""
        gone = [m for m in self.mirrors if m.data_age_s() is not None]
        return ", ".join(m.label for m in (gone or self.mirrors))

    def applicable(self, server: Server) -> tuple[str, ...]:
        """The probes that apply to ``server``, as its service said."""
        mirror = self._owner.get(server.name)
        return mirror.applicable(server) if mirror is not None else ()

    def data_age_s(self, now: float | None = None) -> float | None:
        """None while every service is followed; else the oldest data of a gone one."""
        ages = [age for m in self.mirrors if (age := m.data_age_s(now)) is not None]
        return max(ages) if ages else None

    async def open(self) -> None:
        """Take every service's first snapshot; one that fails is retried by ``start``."""
        results = await asyncio.gather(*(m.open() for m in self.mirrors), return_exceptions=True)
        failed = [f"{m.label}: {r}" for m, r in zip(self.mirrors, results, strict=True)
                  if isinstance(r, BaseException)]  # fmt: skip
        for mirror in self.mirrors:
            for plugin, reason in mirror.failed_plugins.items():
                self.failed_plugins[f"{plugin} ({mirror.label})"] = reason
        if failed:
            raise ConnectionError("; ".join(failed))

    def start(self) -> list[asyncio.Task[None]]:
        """Follow every service."""
        return [m.start() for m in self.mirrors]

    async def close(self) -> None:
        """Stop following every service."""
        await asyncio.gather(*(m.close() for m in self.mirrors), return_exceptions=True)


class FederatedBatches:
    """``RemoteBatches`` of several services: each batch goes to the servers' own service."""

    def __init__(self, federation: FleetFederation) -> None:
        self.federation = federation
        self.services = [RemoteBatches(m.client, m) for m in federation.mirrors]
        self._by_mirror = {id(b.mirror): b for b in self.services}

    @property
    def current(self) -> RemoteRunner | None:
        """The batch followed last (of whichever service)."""
        running = [b.current for b in self.services if b.current is not None]
        return next((r for r in running if not r.done), running[-1] if running else None)

    @property
    def read_only_reason(self) -> str:
        """ "" when some service accepts changes from this room; else every reason."""
        reasons = [b.read_only_reason for b in self.services]
        return "" if any(not r for r in reasons) else "; ".join(reasons)

    def _owning(self, names: Iterable[str]) -> RemoteBatches:
        groups: dict[int, list[str]] = {}
        for name in names:
            groups.setdefault(id(self.federation.owner(name)), []).append(name)
        if len(groups) != 1:
            split = "; ".join(
                f"{self._by_mirror[key].mirror.label}: {', '.join(found[:5])}"
                + (" …" if len(found) > 5 else "")
                for key, found in groups.items()
            )
            raise RemoteRefusal(
                f"the servers belong to {len(groups)} services ({split}); a batch goes to the "
                "service that owns its servers: plan each service's servers on their own"
            )
        return self._by_mirror[next(iter(groups))]

    async def plan(
        self, servers: Iterable[Server], verb: str, options: PlanOptions, *, selection: str
    ) -> tuple[BatchPlan, str, dict[str, Any]]:
        """Plan in the one service that owns every server (``RemoteRefusal`` otherwise)."""
        chosen = list(servers)
        return await self._owning(s.name for s in chosen).plan(
            chosen, verb, options, selection=selection
        )

    async def start(
        self, plan: BatchPlan, confirmation: Confirmation | None, *, batch: str | None = None
    ) -> RemoteRunner:
        """Run ``plan`` in its servers' service (keeping the plan's id ``batch``)."""
        owner = self._owning(sp.server.name for sp in plan.servers)
        return await owner.start(plan, confirmation, batch=batch)

    async def decline(self, plan: BatchPlan, batch: str) -> None:
        """Tell the plan's service that the operator declined it."""
        await self._owning(sp.server.name for sp in plan.servers).decline(plan, batch)

    def follow_existing(self) -> RemoteRunner | None:
        """A batch some service runs (the first found), to follow."""
        for service in self.services:
            runner = service.follow_existing()
            if runner is not None and not runner.done:
                return runner
        return None

    def listen(self, listener: Callable[[str, dict[str, Any]], None]) -> None:
        """Hear every event of every service."""
        for service in self.services:
            service.listen(listener)

    async def acknowledge(self, batch: str) -> InterruptedBatch:
        """Acknowledge ``batch`` in the service whose audit log has it."""
        refusals = []
        for service in self.services:
            try:
                return await service.acknowledge(batch)
            except RemoteRefusal as exc:
                refusals.append(f"{service.mirror.label}: {exc}")
        raise RemoteRefusal("; ".join(refusals))

    async def interrupted(self) -> list[InterruptedBatch]:
        """Every service's batches left half done (``RemoteRefusal`` naming who failed)."""
        answers = await asyncio.gather(
            *(b.interrupted() for b in self.services), return_exceptions=True
        )
        found: list[InterruptedBatch] = []
        failed: list[str] = []
        for service, answer in zip(self.services, answers, strict=True):
            if isinstance(answer, RemoteRefusal):
                failed.append(f"{service.mirror.label}: {answer}")
            elif isinstance(answer, BaseException):
                raise answer
            else:
                found.extend(answer)
        if failed and not found:
            raise RemoteRefusal("; ".join(failed))
        for reason in failed:  # the others' batches are still worth naming
            log.warning("interrupted batches not read: %s", reason)
        return found

    def last_progress(self, runner: RemoteRunner) -> dict[str, Any] | None:
        """The last progress event of ``runner``'s batch in its service."""
        for service in self.services:
            progress = service.last_progress(runner)
            if progress is not None:
                return progress
        return None
