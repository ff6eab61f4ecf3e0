"""The built-in ``power`` probe: each server's PowerState, read from its BMC.

One ``BmcClient`` per BMC (servers of a blade enclosure share theirs) over
one shared keep-alive HTTP session, so a warm poll is a single GET on an
open connection (no TLS handshake, no login). Each BMC's ``auth``,
``timeout_s``, ``login_timeout_s``, ``system`` and ``tls_legacy`` come from
the inventory. Settings read from ``ProbeContext.settings``:

- ``redfish_auth``: ``auto``, ``session`` or ``basic`` for every BMC,
  overriding the inventory (absent: each BMC's own ``bmc.auth``);
- ``redfish_max_connections``: the pool's total connection cap (default 256).

A BMC that timed out while our own event loop was late for half its timeout or
more is not reported DOWN: the reading is UNKNOWN "measurement unreliable"
(``pacs_tui.loop_lag``).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import Any

import aiohttp

from pacs_tui.credentials import CredentialError
from pacs_tui.inventory import BmcEndpoint, Inventory, Server
from pacs_tui.plugin_api import (
    Health,
    Probe,
    ProbeContext,
    ProbeResult,
    lag_explains_timeout,
    measure_loop_lag,
    unreliable_detail,
)
from pacs_tui.power import PowerState
from pacs_tui_redfish_power.client import (
    AuthMode,
    BmcClient,
    CredentialSource,
    PowerReading,
    bmc_credentials,
    open_http_session,
)
from pacs_tui_redfish_power.errors import (
    BmcAmbiguousSystem,
    BmcBusy,
    BmcError,
    BmcSystemNotFound,
    BmcTimeout,
    BmcUnreachable,
)
from pacs_tui_redfish_power.trust import TlsTrust

log = logging.getLogger(__name__)

_UNKNOWN = str(PowerState.UNKNOWN)
_IN_TRANSITION = {
    str(PowerState.POWERING_ON): "powering on",
    str(PowerState.POWERING_OFF): "powering off",
    str(PowerState.PAUSED): "paused",
}
_BAD_HEALTH = ("Warning", "Critical")

# Power probes open now: the registry of BMC connections. The rack-power probe and the
# redfish-reset action speak through their clients and sessions instead of opening one
# more session on every BMC (``open_power_probe``).
OPEN_POWER_PROBES: weakref.WeakSet[RedfishPowerProbe] = weakref.WeakSet()


def open_power_probe(
    inventory: Inventory, auth: AuthMode | None = None
) -> RedfishPowerProbe | None:
    """The ``power`` probe open in this event loop on ``inventory``, to borrow clients from.

    Its ``client(server)`` is then the one ``BmcClient`` of that server's BMC:
    one TLS connection pool and one Redfish session (DSP0266 §13.3) per BMC
    for every Redfish user in the process, where each used to log in on its
    own. ``auth`` is the borrower's ``redfish_auth`` setting (None: each BMC's
    inventory ``auth``); a probe opened with another one is not lent, so a
    setting is never silently overridden. None when no such probe is open
    (or when called outside an event loop): the caller makes its own clients.
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    for probe in list(OPEN_POWER_PROBES):
        if (
            probe.name == "power"
            and probe.loop is loop
            and probe._http is not None
            and probe._context is not None
            and probe._context.inventory is inventory
            and probe._auth == auth
        ):
            return probe
    return None


class RedfishPowerProbe(Probe):
    """Reads ``ComputerSystem.PowerState`` (and ``Status.Health``) over Redfish.

    ``state`` is the Redfish word (On, Off, PoweringOn, PoweringOff, Paused)
    or ``Unknown``. Off is DOWN: the server does not serve, though its BMC
    answers; the detail says "powered off". ``facts`` carry ``reset_types``,
    ``reset_target``, ``system_path``, ``system_members``, ``health``,
    ``auth`` and ``tls``; an ambiguous system adds ``system_ambiguous``.
    A PowerState that is null or not a Redfish word is ``Unknown`` with the
    BMC's word in the detail (and ``facts["power_state_raw"]``).
    """

    name = "power"
    interval_s = 5.0
    # The whole poll's budget (a cold one logs in and discovers); each request
    # is bounded by the BMC's own ``timeout_s`` from the inventory.
    timeout_s = 45.0

    def __init__(self) -> None:
        self._context: ProbeContext | None = None
        self._http: aiohttp.ClientSession | None = None
        self._clients: dict[BmcEndpoint, BmcClient] = {}
        self._trust = TlsTrust()
        self._auth: AuthMode | None = None
        self.loop: asyncio.AbstractEventLoop | None = None  # the loop it was opened in

    async def open(self, context: ProbeContext) -> None:
        """Check the settings and open the shared HTTP session."""
        self._auth = auth_setting(context.settings)
        limit = int(context.settings.get("redfish_max_connections", 256))
        self._context = context
        if self._http is None:
            self._http = open_http_session(limit=limit)
        self.loop = asyncio.get_running_loop()
        OPEN_POWER_PROBES.add(self)

    async def close(self) -> None:
        """Log out of every BMC (in parallel, each bounded), then close the connections."""
        OPEN_POWER_PROBES.discard(self)
        clients, self._clients = self._clients, {}
        await asyncio.gather(*(c.close() for c in clients.values()))
        if self._http is not None:
            http, self._http = self._http, None
            await http.close()

    def applies_to(self, server: Server) -> bool:
        """Servers with a BMC in the inventory."""
        return server.bmc is not None

    def endpoint(self, server: Server) -> str:
        """``bmc:ADDRESS:PORT``, so the scheduler caps requests per BMC."""
        if server.bmc is None:
            return super().endpoint(server)
        return f"bmc:{server.bmc.address}:{server.bmc.port}"

    def client(self, server: Server) -> BmcClient:
        """The client of ``server``'s BMC (created on first use; needs ``open``)."""
        if server.bmc is None:
            raise ValueError(f"{server.name} has no BMC")
        bmc = server.bmc.controller
        client = self._clients.get(bmc)
        if client is None:
            if self._http is None or self._context is None:
                raise RuntimeError("the power probe was not opened")
            client = BmcClient(
                self._http,
                bmc,
                self._credential_source(bmc.credentials),
                auth=self._auth,
                trust=self._trust,
            )
            self._clients[bmc] = client
        return client

    async def probe(self, server: Server) -> ProbeResult:
        """Read the power state now; every failure becomes a result."""
        bmc = server.bmc
        if bmc is None:
            return ProbeResult.make(_UNKNOWN, Health.UNKNOWN, detail="server has no BMC")
        tls = TlsTrust.mode(bmc)
        if bmc.credentials is None:
            return ProbeResult.make(
                _UNKNOWN, Health.UNKNOWN, detail="no BMC credentials in the inventory", tls=tls
            )
        if self._http is None:
            return ProbeResult.make(_UNKNOWN, Health.UNKNOWN, detail="power probe is not open")
        client = self.client(server)
        lag = measure_loop_lag()
        try:
            # Each request is bounded by the BMC's timeout_s; this bounds the lot.
            with lag:
                async with asyncio.timeout(self.timeout_s * 2):
                    reading = await client.power(bmc.system)
        except CredentialError as exc:
            return ProbeResult.make(_UNKNOWN, Health.UNKNOWN, detail=str(exc), tls=tls)
        except BmcError as exc:
            if isinstance(exc, BmcTimeout) and lag_explains_timeout(lag.late_ms, client.timeout_s):
                detail = unreliable_detail(lag.late_ms, f"a BMC request ({exc})")
                return ProbeResult.unreliable(
                    _UNKNOWN, detail, lag.late_ms, tls=tls, auth=client.auth
                )
            return _failure(exc, tls, client.auth)
        except TimeoutError:
            if lag_explains_timeout(lag.late_ms, self.timeout_s * 2):
                detail = unreliable_detail(lag.late_ms, "the power reading")
                return ProbeResult.unreliable(
                    _UNKNOWN, detail, lag.late_ms, tls=tls, auth=client.auth
                )
            return ProbeResult.make(
                _UNKNOWN,
                Health.DOWN,
                detail=f"no answer from BMC within {self.timeout_s * 2:g} s",
                tls=tls,
                auth=client.auth,
            )
        return _result(reading, tls, client)

    def _credential_source(self, reference: str | None) -> CredentialSource:
        assert self._context is not None
        return bmc_credentials(self._context.inventory, reference)


def auth_setting(settings: Any) -> AuthMode | None:
    """``redfish_auth`` from the settings (None: each BMC's inventory ``auth``)."""
    auth = settings.get("redfish_auth")
    if auth is None:
        return None
    if auth not in ("auto", "session", "basic"):
        raise ValueError(f"redfish_auth must be 'auto', 'session' or 'basic', not {auth!r}")
    return "auto" if auth == "auto" else "session" if auth == "session" else "basic"


def _result(reading: PowerReading, tls: str, client: BmcClient) -> ProbeResult:
    state = reading.power_state
    if state == PowerState.ON:
        if reading.health in _BAD_HEALTH:
            health, detail = Health.DEGRADED, f"powered on; Redfish health {reading.health}"
        else:
            health, detail = Health.OK, "powered on"
    elif state == PowerState.OFF:
        health, detail = Health.DOWN, "powered off"
    elif state in _IN_TRANSITION:
        health, detail = Health.DEGRADED, _IN_TRANSITION[state]
    else:
        raw = reading.power_state_raw
        detail = (
            f"BMC reported PowerState {raw} (not a Redfish power state)"
            if raw not in ("absent",)
            else "BMC reported no PowerState"
        )
        health, state = Health.UNKNOWN, _UNKNOWN
    notes = [detail]
    if reading.auth_note:
        notes.append(reading.auth_note)
    notes.extend(_tls_notes(tls))
    facts = {
        "reset_types": list(reading.reset.allowed),
        "reset_target": reading.reset.target,
        "system_path": reading.system_path,
        "system_members": list(reading.members),
        "power_state_raw": reading.power_state_raw,
        "timeout_s": client.timeout_s,  # shown in the detail pane: slow BMCs need more
        "login_timeout_s": client.login_timeout_s,
        "health": reading.health,  # Redfish Status.Health, not the reading's health
        "auth": reading.auth,
        "tls": tls,
        "endpoint_answered": True,  # Off is a state, not a failing BMC: no backoff
    }
    return ProbeResult(
        state=state,
        health=health,
        latency_ms=reading.latency_ms,
        detail="; ".join(notes),
        facts=facts,
    )


def _tls_notes(tls: str) -> list[str]:
    notes = []
    if "LEGACY" in tls:
        notes.append("TLS LEGACY (old protocols and ciphers allowed)")
    if "UNVERIFIED" in tls:
        notes.append("TLS NOT VERIFIED")
    elif tls == "PLAINTEXT":
        notes.append("plain HTTP, no TLS")
    return notes


def _failure(exc: BmcError, tls: str, auth: AuthMode) -> ProbeResult:
    # Unreachable or silent: the BMC is DOWN. It answered but we cannot read
    # the state (401, 503, bad JSON, TLS refused): the reading is UNKNOWN.
    health = Health.DOWN if isinstance(exc, BmcUnreachable | BmcTimeout) else Health.UNKNOWN
    facts: dict[str, Any] = {"tls": tls, "auth": auth}
    if isinstance(exc, BmcBusy) and exc.retry_after_s is not None:
        facts["retry_after_s"] = exc.retry_after_s
    if isinstance(exc, BmcAmbiguousSystem | BmcSystemNotFound):
        facts["system_members"] = list(exc.members)
        facts["system_ambiguous"] = isinstance(exc, BmcAmbiguousSystem)
        facts["system_unknown"] = True
        facts["endpoint_answered"] = True  # a configuration fault: backing off won't help
    detail = "; ".join([str(exc), *_tls_notes(tls)])
    return ProbeResult.make(_UNKNOWN, health, detail=detail, **facts)
