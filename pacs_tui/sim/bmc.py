"""Simulated Redfish BMCs: one per ``SimulatedHost``, all in one aiohttp app.

Each BMC listens on its host's own loopback address (same port everywhere,
HTTPS with a per-address certificate from ``FleetPki``, or plain HTTP); the
service finds which BMC a request is for from the socket's local address.
One application and one runner keep 300 BMCs to 300 listening sockets and a
session table each. The resources themselves live in ``redfish_routes``.
A blade enclosure is one BMC on its first blade's address in front of every
blade's host (``enclosures``).

Faults are read from ``host.faults`` on every request: delay before acting,
delay of the answer only, 503, 401, truncated JSON, full session table;
``bmc_unreachable`` closes the BMC's listener through ``set_reachable`` and
drops anything that still arrives. A request is carried out once it has
arrived, even when its client has gone away meanwhile, as on a real BMC; what
arrived is counted (``requests``, ``resets``).
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import logging
from collections import Counter
from collections.abc import Mapping, Sequence

from aiohttp import web

from pacs_tui.sim import redfish_protocol as protocol
from pacs_tui.sim.host import SimulatedHost
from pacs_tui.sim.listen import open_listener
from pacs_tui.sim.pki import FleetPki
from pacs_tui.sim.redfish_error_styles import restyle
from pacs_tui.sim.redfish_flavour import BmcFlavour, FlavourTimings, profile
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


# asyncio gives every TLS connection a 256 KiB read buffer (SSLProtocol.max_size),
# kept while the connection lives: with every poller holding a kept-alive
# connection (or two) to each BMC, that was most of the simulator's memory and
# grew with each poller that came (3 000 BMCs: 199 MB → ≈1.08 GB, issue 14).
# Redfish requests are small, so 16 KiB reads cost nothing (the poller's own
# client does the same, pacs_tui_redfish_power.bounded_http).
TLS_READ_BUFFER = 16 * 1024


def _shrink_tls_read_buffer() -> None:
    protocol = asyncio.sslproto.SSLProtocol
    if getattr(protocol, "max_size", 0) > TLS_READ_BUFFER:
        protocol.max_size = TLS_READ_BUFFER


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
        enclosures: Sequence[Sequence[str]] = (),
        timings: FlavourTimings | None = None,
    ) -> None:
        """Build one BMC per host, or per enclosure: each list in ``enclosures``
        names the hosts behind one blade-enclosure BMC (on the first one's address).

        A blade-enclosure host in no list gets an enclosure of its own.
        """
        self.port = port
        self._pki = pki
        self._bmcs: dict[str, SimulatedBmc] = {}
        self._by_address: dict[str, SimulatedBmc] = {}
        credentials = Credentials(username, password)
        flavours = flavours or {}
        by_name = {h.name: h for h in hosts}
        unknown = set(flavours) - set(by_name)
        unknown |= {name for group in enclosures for name in group} - set(by_name)
        if unknown:
            raise ValueError(f"flavours for unknown hosts: {', '.join(sorted(unknown))}")
        groups = [[by_name[n] for n in group] for group in enclosures if group]
        grouped = {h.name for group in groups for h in group}
        for host in hosts:
            if host.name not in grouped:
                groups.append([host])
        for group in sorted(groups, key=lambda g: hosts.index(g[0])):
            names = [h.name for h in group]
            flavour = BmcFlavour(flavours.get(names[0], BmcFlavour.GENERIC))
            if len(group) > 1:
                others = {BmcFlavour(flavours.get(n, BmcFlavour.BLADE_ENCLOSURE)) for n in names}
                if others != {BmcFlavour.BLADE_ENCLOSURE}:
                    raise ValueError(
                        f"enclosure {', '.join(names)}: every blade is blade-enclosure"
                    )
                flavour = BmcFlavour.BLADE_ENCLOSURE
            address = group[0].address
            if address in self._by_address or any(n in self._bmcs for n in names):
                raise ValueError(f"two BMCs for {names[0]} / {address}")
            prof = profile(flavour)
            bmc = SimulatedBmc(
                hosts=list(group),
                base_flavour=flavour,
                credentials=credentials,
                sessions=SessionTable(session_limit, session_timeout_s),
                tasks=TaskList(prof.task_id_prefix),
                timings=timings or FlavourTimings(),
                session_timeout_s=session_timeout_s,
            )
            bmc.sync_session_timeout()
            for name in names:
                self._bmcs[name] = bmc
            self._by_address[address] = bmc
        self._runner: web.AppRunner | None = None

    # -- lifecycle ----------------------------------------------------------------

    async def start(self) -> None:
        """Listen on every host's address, except BMCs that are unreachable."""
        if self._runner is not None:
            return
        _shrink_tls_read_buffer()
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._dispatch)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        self._runner = runner
        try:
            for bmc in self._by_address.values():
                if bmc.reachable and not bmc.faults.bmc_unreachable:
                    await self._open(bmc)
        except BaseException:
            await self.stop()
            raise
        scheme = "https" if self._pki else "http"
        count = len(self._by_address)
        log.info("serving %d simulated BMCs on port %d (%s)", count, self.port, scheme)

    async def stop(self) -> None:
        """Close every listener and connection; sessions and tasks are kept."""
        for bmc in self._by_address.values():
            await bmc.tasks.stop()
            bmc.site = None
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def set_reachable(self, host_name: str, reachable: bool) -> None:
        """Open or close one BMC's listener (``bmc_unreachable``, a server in transit).

        Closing also drops the BMC's open connections; sessions survive, as
        they do on a BMC that merely lost its network. For a blade, this is the
        whole enclosure's BMC.
        """
        bmc = self._bmc(host_name)
        bmc.reachable = reachable
        if self._runner is None:
            return
        if reachable and bmc.site is None:
            await self._open(bmc)
        elif not reachable and bmc.site is not None:
            await self._close(bmc)

    async def reopen(self, host_name: str) -> None:
        """Restart an open listener, e.g. after a ``bmc_flavour`` fault changed its TLS."""
        bmc = self._bmc(host_name)
        if self._runner is not None and bmc.site is not None:
            await self._close(bmc)
            await self._open(bmc)

    async def _open(self, bmc: SimulatedBmc) -> None:
        assert self._runner is not None
        address = bmc.listen_address
        context = None
        if self._pki is not None and bmc.profile.legacy_tls:
            context = self._pki.legacy_server_ssl_context(address)
        elif self._pki is not None:
            context = self._pki.server_ssl_context(address)
        site = web.TCPSite(self._runner, address, self.port, ssl_context=context)
        await open_listener("Redfish BMC", address, self.port, site.start())
        bmc.site = site

    async def _close(self, bmc: SimulatedBmc) -> None:
        site, bmc.site = bmc.site, None
        if site is not None:
            await site.stop()
        for transport in list(bmc.connections):
            transport.abort()

    async def take_over(self, host_name: str, spare_name: str) -> None:
        """The spare's BMC now manages ``host_name``'s host, from the spare's address.

        A spare racked in a failed server's place: the server's own BMC is
        gone (closed, never answers again), the spare's answers for the
        server's host (its power, its OS). ``ValueError`` for a blade or a
        spare whose BMC manages a server already.
        """
        old, new = self._bmc(host_name), self._bmc(spare_name)
        if len(old.hosts) > 1 or old is new:
            raise ValueError(f"{host_name}'s BMC cannot be taken over by {spare_name}'s")
        if new.host.name != spare_name:
            raise ValueError(f"spare {spare_name}'s BMC already manages {new.host.name}")
        new.address = new.listen_address  # keep answering on the spare's own address
        new.hosts = [old.host]
        self._bmcs[host_name] = new
        await self.set_reachable(spare_name, True)
        old.reachable = False
        await self._close(old)

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
        return f"{scheme}://{self._bmc(host_name).listen_address}:{self.port}"

    def system_id(self, host_name: str) -> str:
        """The Id of that host's ComputerSystem on its BMC (``BladeN`` in an enclosure)."""
        bmc = self._bmc(host_name)
        return bmc.system_ids()[[h.name for h in bmc.hosts].index(host_name)]

    def enclosure(self, host_name: str) -> list[str]:
        """The hosts behind that host's BMC, in slot order (just itself unless a blade)."""
        return [h.name for h in self._bmc(host_name).hosts]

    def requests(self, host_name: str) -> Counter[tuple[str, str]]:
        """(method, path) -> how many arrived at that host's BMC (a whole enclosure's),
        counted on arrival, including ones whose client had gone before the answer."""
        return Counter(self._bmc(host_name).received)

    def resets(self, host_name: str) -> list[str]:
        """Every ResetType POSTed to that host's own system, in order, whatever the answer."""
        return list(self._bmc(host_name).resets.get(host_name, []))

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
        if transport is None or bmc is None or not bmc.reachable or bmc.faults.bmc_unreachable:
            # Fail closed: a BMC off the network answers nothing at all. The
            # response below is never sent; aiohttp drops it quietly.
            if transport is not None:
                transport.abort()
            return web.Response(status=503)
        bmc.connections.add(transport)
        bmc.received[(request.method, request.path)] += 1
        # Read the whole request now: a client that gives up during a delay must
        # not stop the BMC from carrying out what it already sent.
        await request.read()
        faults = bmc.faults
        if faults.bmc_delay_s > 0:
            await asyncio.sleep(faults.bmc_delay_s)
        bmc.sync_session_timeout()
        response = await self._answer(bmc, request)
        p = bmc.profile
        response = restyle(response, p.error_style)
        if faults.bmc_malformed_json and isinstance(response, web.Response):
            response = truncated(response)
        late = faults.bmc_answer_delay_s + (bmc.timings.answer_delay_s if p.slow_answers else 0)
        if request.method == "POST":
            late += faults.bmc_post_answer_delay_s
        if late > 0 and not response.prepared:
            await asyncio.sleep(late)
        return response

    async def _answer(self, bmc: SimulatedBmc, request: web.Request) -> web.StreamResponse:
        if bmc.faults.bmc_503:
            return error_response(
                503,
                f"{BASE}.ServiceTemporarilyUnavailable",
                f"The service is temporarily unavailable. Retry in {RETRY_AFTER_S} seconds.",
                args=[str(RETRY_AFTER_S)],
                resolution="Wait for the indicated retry duration and retry the operation.",
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
        refused = protocol.unsupported_version(request)
        if refused is not None:
            return refused
        method, path = protocol.target(request, request.path.rstrip("/") or "/")
        for route in ROUTES:
            match = route.pattern.fullmatch(path)
            if match is None:
                continue
            handler = route.methods.get(method)
            if handler is None:
                return method_not_allowed(path, protocol.allowed(route.methods))
            if method not in route.public and not bmc.authorised(request):
                if bmc.profile.html_401 and "X-Auth-Token" in request.headers:
                    return await cut_off_html_401(request)
                return unauthorized(REALM)
            response = await handler(bmc, request, match)
            return protocol.with_allow(response, request, route.methods)
        return not_found(request.path)


async def cut_off_html_401(request: web.Request) -> web.StreamResponse:
    """401 as some BMC web servers answer a stale token: ``text/html``, chunked, and
    the connection closed before the first chunk (a client must not expect JSON)."""
    response = web.StreamResponse(status=401, headers={"Content-Type": "text/html"})
    response.enable_chunked_encoding()
    await response.prepare(request)  # sends the status line and headers at once
    if request.transport is not None:
        request.transport.close()  # flushes the headers, then ends the connection
    return response
