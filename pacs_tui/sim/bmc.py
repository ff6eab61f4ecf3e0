"""Simulated Redfish BMCs: one per ``SimulatedHost``, all in one aiohttp app.

Each BMC listens on its host's own loopback address (same port everywhere,
HTTPS with a per-address certificate from ``FleetPki``, or plain HTTP); the
service finds which BMC a request is for from the socket's local address.
One application and one runner keep 300 BMCs to 300 listening sockets and a
session table each. The resources themselves live in ``redfish_routes``.

Faults are read from ``host.faults`` on every request: delay, 503, 401,
truncated JSON, full session table; ``bmc_unreachable`` closes the BMC's
listener through ``set_reachable`` and drops anything that still arrives.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence

from aiohttp import web

from pacs_tui.sim.host import SimulatedHost
from pacs_tui.sim.pki import FleetPki
from pacs_tui.sim.redfish_flavour import BmcFlavour, profile
from pacs_tui.sim.redfish_messages import (
    BASE,
    error_response,
    method_not_allowed,
    not_found,
    truncated,
    unauthorized,
)
from pacs_tui.sim.redfish_routes import REALM, ROUTES, Credentials, SimulatedBmc
from pacs_tui.sim.redfish_sessions import SessionTable
from pacs_tui.sim.redfish_tasks import TaskList

__all__ = ["BmcFlavour", "BmcService"]

log = logging.getLogger(__name__)

RETRY_AFTER_S = 2  # what the bmc_503 fault asks clients to wait


class BmcService:
    """The Redfish BMCs of many simulated hosts, served from one application."""

    def __init__(
        self,
        hosts: Sequence[SimulatedHost],
        *,
        port: int,
        username: str,
        password: str,
        pki: FleetPki | None = None,
        flavours: Mapping[str, BmcFlavour] | None = None,
        session_limit: int = 8,
        session_timeout_s: float = 600.0,
    ) -> None:
        self.port = port
        self._pki = pki
        self._bmcs: dict[str, SimulatedBmc] = {}
        self._by_address: dict[str, SimulatedBmc] = {}
        credentials = Credentials(username, password)
        flavours = flavours or {}
        unknown = set(flavours) - {h.name for h in hosts}
        if unknown:
            raise ValueError(f"flavours for unknown hosts: {', '.join(sorted(unknown))}")
        for host in hosts:
            if host.address in self._by_address or host.name in self._bmcs:
                raise ValueError(f"two BMCs for {host.name} / {host.address}")
            flavour = BmcFlavour(flavours.get(host.name, BmcFlavour.GENERIC))
            prof = profile(flavour)
            bmc = SimulatedBmc(
                host=host,
                flavour=flavour,
                profile=prof,
                credentials=credentials,
                sessions=SessionTable(session_limit, session_timeout_s),
                tasks=TaskList(prof.task_id_prefix),
            )
            self._bmcs[host.name] = bmc
            self._by_address[host.address] = bmc
        self._runner: web.AppRunner | None = None

    # -- lifecycle ----------------------------------------------------------------

    async def start(self) -> None:
        """Listen on every host's address, except BMCs that are unreachable."""
        if self._runner is not None:
            return
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._dispatch)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        self._runner = runner
        try:
            for bmc in self._bmcs.values():
                if bmc.reachable and not bmc.host.faults.bmc_unreachable:
                    await self._open(bmc)
        except BaseException:
            await self.stop()
            raise
        scheme = "https" if self._pki else "http"
        log.info("serving %d simulated BMCs on port %d (%s)", len(self._bmcs), self.port, scheme)

    async def stop(self) -> None:
        """Close every listener and connection; sessions and tasks are kept."""
        for bmc in self._bmcs.values():
            await bmc.tasks.stop()
            bmc.site = None
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def set_reachable(self, host_name: str, reachable: bool) -> None:
        """Open or close one BMC's listener (``bmc_unreachable``, a server in transit).

        Closing also drops the BMC's open connections; sessions survive, as
        they do on a BMC that merely lost its network.
        """
        bmc = self._bmc(host_name)
        bmc.reachable = reachable
        if self._runner is None:
            return
        if reachable and bmc.site is None:
            await self._open(bmc)
        elif not reachable and bmc.site is not None:
            site, bmc.site = bmc.site, None
            await site.stop()
            for transport in list(bmc.connections):
                transport.abort()

    async def _open(self, bmc: SimulatedBmc) -> None:
        assert self._runner is not None
        context = self._pki.server_ssl_context(bmc.host.address) if self._pki else None
        site = web.TCPSite(self._runner, bmc.host.address, self.port, ssl_context=context)
        await site.start()
        bmc.site = site

    # -- accessors ----------------------------------------------------------------

    def active_sessions(self, host_name: str) -> int:
        """How many Redfish sessions are open on that host's BMC."""
        return len(self._bmc(host_name).sessions)

    def flavour(self, host_name: str) -> BmcFlavour:
        """The flavour of that host's BMC."""
        return self._bmc(host_name).flavour

    def base_url(self, host_name: str) -> str:
        """``https://ADDRESS:PORT`` (``http`` without a PKI) of that host's BMC."""
        scheme = "https" if self._pki else "http"
        return f"{scheme}://{self._bmc(host_name).host.address}:{self.port}"

    def _bmc(self, host_name: str) -> SimulatedBmc:
        try:
            return self._bmcs[host_name]
        except KeyError:
            raise KeyError(f"no simulated BMC for host {host_name!r}") from None

    # -- request pipeline ---------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        transport = request.transport
        sockname = transport.get_extra_info("sockname") if transport else None
        bmc = self._by_address.get(sockname[0]) if sockname else None
        if transport is None or bmc is None or not bmc.reachable or bmc.host.faults.bmc_unreachable:
            # Fail closed: a BMC off the network answers nothing at all. The
            # response below is never sent; aiohttp drops it quietly.
            if transport is not None:
                transport.abort()
            return web.Response(status=503)
        bmc.connections.add(transport)
        faults = bmc.host.faults
        if faults.bmc_delay_s > 0:
            await asyncio.sleep(faults.bmc_delay_s)
        response = await self._answer(bmc, request)
        if faults.bmc_malformed_json and isinstance(response, web.Response):
            response = truncated(response)
        return response

    async def _answer(self, bmc: SimulatedBmc, request: web.Request) -> web.StreamResponse:
        if bmc.host.faults.bmc_503:
            return error_response(
                503,
                f"{BASE}.ServiceTemporarilyUnavailable",
                f"The service is temporarily unavailable. Retry in {RETRY_AFTER_S} seconds.",
                args=[str(RETRY_AFTER_S)],
                resolution="Wait for the indicated retry duration and retry the operation.",
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
        path = request.path.rstrip("/") or "/"
        for route in ROUTES:
            match = route.pattern.fullmatch(path)
            if match is None:
                continue
            handler = route.methods.get(request.method)
            if handler is None:
                return method_not_allowed(path, sorted(route.methods))
            if request.method not in route.public and not bmc.authorised(request):
                return unauthorized(REALM)
            return await handler(bmc, request, match)
        return not_found(request.path)
