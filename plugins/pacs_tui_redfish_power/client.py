"""A Redfish client for one BMC, over a shared keep-alive aiohttp session.

The power probe holds one ``BmcClient`` per BMC (servers of one blade
enclosure share it) and the power actions reuse the class for resets. What
a client learns once is cached and never eats a poll's deadline: the service
root (``Systems``, the session collection), the members of the ``Systems``
collection (never assumed to be ``Systems/1``), and each system's Reset
target and allowed ResetTypes. A warm poll is then one GET.

Which system: a BMC may front several ComputerSystems (a blade enclosure).
Every method takes ``system`` (a member Id or path; default: the endpoint's
``bmc.system``); with several members and none named, the client raises
``BmcAmbiguousSystem`` and never guesses.

Authentication (``auth``, DSP0266 §13.3): ``session`` logs in once (the
service root's ``Links.Sessions`` first, following same-host redirects) and
reuses the ``X-Auth-Token``; ``basic`` sends HTTP Basic; ``auto`` (default)
is a session that falls back to Basic when session creation is refused
(404/405/501) or the session table is full, and the reading says so. Any
401 — whatever its body, even one cut off before the first byte — means one
new login and the request again. Refused logins are counted per BMC
(``login_guard``): after 3 in 15 minutes no login is tried until the oldest
leaves the window. A login runs on its own with ``login_timeout_s``: a
caller that gives up does not abandon it, so a slow BMC never collects
sessions we do not know of. Credentials only ever go to the inventory's
address. Secrets never appear in exception text, logs or readings.

Answers are bounded: at most ``MAX_BODY`` bytes, JSON nested at most as
deep as the parser's recursion limit, each request within ``timeout_s``.

Layers, one module each, ``BmcClient`` on top: ``bounded_http`` (the shared
session, bounded answers), ``transport`` (one exchange), ``session_auth``
(sessions, Basic, the fallback) and ``discovery`` (Systems, member, Reset).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp

from pacs_tui.credentials import Credential, CredentialError, resolve
from pacs_tui.inventory import BmcEndpoint, Inventory
from pacs_tui_redfish_power.bounded_http import (
    MAX_BODY,
    TLS_READ_BUFFER,
    client_timeout,
    json_object,
    open_http_session,
    path_of,
    retry_after,
)
from pacs_tui_redfish_power.discovery import ResetInfo, SystemDiscovery, member_id
from pacs_tui_redfish_power.errors import (
    BmcBadAnswer,
    BmcConnectFailed,
    BmcError,
    BmcHttpError,
    BmcOutcomeUnknown,
    BmcTimeout,
    BmcUnreachable,
)
from pacs_tui_redfish_power.login_guard import LOGIN_GUARD, LoginGuard
from pacs_tui_redfish_power.session_auth import SERVICE_ROOT, AuthMode, CredentialSource
from pacs_tui_redfish_power.transport import Use
from pacs_tui_redfish_power.trust import TlsTrust

# The lower layers' names that callers (the reset plugin, the baseline) import from here.
__all__ = [
    "MAX_BODY",
    "SERVICE_ROOT",
    "TLS_READ_BUFFER",
    "AuthMode",
    "BmcClient",
    "CredentialSource",
    "PowerReading",
    "ResetAccepted",
    "ResetInfo",
    "TaskPoll",
    "bmc_credentials",
    "member_id",
    "open_http_session",
]

log = logging.getLogger(__name__)


def bmc_credentials(inventory: Inventory, reference: str | None) -> CredentialSource:
    """Resolve a BMC's credential reference at each login (never cached, never logged)."""

    def credential() -> Credential:
        if reference is None:
            raise CredentialError("(none)", "", "the BMC has no credential reference")
        found = resolve(inventory, reference)
        if found.password is None:
            raise CredentialError(reference, "", "has no password (a BMC needs one)")
        if not found.username:
            raise CredentialError(reference, "", "has no username (a BMC needs one)")
        return found

    return credential


_LOGIN_CLOSE_WAIT_S = 5.0


@dataclass(frozen=True)
class PowerReading:
    """One read of a ComputerSystem's power state."""

    power_state: str  # the Redfish word as the BMC sent it; "" when absent or null
    power_state_raw: str  # for the detail: the word, "null" or "absent"
    health: str | None  # Status.Health (OK, Warning, Critical), when present
    system_path: str
    members: tuple[str, ...]  # member Ids of the BMC's Systems collection
    reset: ResetInfo
    latency_ms: float  # the PowerState GET alone
    auth: Literal["session", "basic"]  # what this read actually used
    auth_note: str = ""  # why it is not the configured mode, if it is not


@dataclass(frozen=True)
class ResetAccepted:
    """A reset the BMC took: 200/204 done or started, 202 with a task monitor."""

    status: int
    task_monitor: str | None  # path to poll (202 answers), else None
    retry_after_s: float | None = None  # the 202's Retry-After, when given


@dataclass(frozen=True)
class TaskPoll:
    """One GET of a task monitor (DSP0266 §12.2)."""

    status: int  # 202: still running; any other 2xx: done
    body: dict[str, Any]  # the Task (or the operation's answer); {} when empty
    retry_after_s: float | None


class BmcClient(SystemDiscovery):
    """Talks Redfish to one BMC; every request is bounded by ``timeout_s``.

    ``http`` is shared with other clients and owned by the caller. Methods
    raise ``BmcError`` subclasses (and ``CredentialError`` from
    ``credentials``), never aiohttp's exceptions. ``auth``, ``timeout_s`` and
    ``login_timeout_s`` default to the endpoint's inventory settings.
    """

    def __init__(
        self,
        http: aiohttp.ClientSession,
        bmc: BmcEndpoint,
        credentials: CredentialSource,
        *,
        auth: AuthMode | None = None,
        timeout_s: float | None = None,
        login_timeout_s: float | None = None,
        trust: TlsTrust | None = None,
        guard: LoginGuard = LOGIN_GUARD,
    ) -> None:
        self.bmc = bmc
        self.auth = auth or bmc.auth
        self.timeout_s = timeout_s if timeout_s is not None else bmc.timeout_s
        self.login_timeout_s = (
            login_timeout_s if login_timeout_s is not None else bmc.login_timeout_s
        )
        self._http = http
        self._credentials = credentials
        self._trust = trust or TlsTrust()
        self._guard = guard
        self._timeout = client_timeout(self.timeout_s)
        self._login_timeout = client_timeout(self.login_timeout_s)
        self._base = bmc.url
        self._where = bmc.url.split("://", 1)[1]
        self._ssl = None  # True for plain HTTP; set on first use
        self._root = None
        self._members = None
        self._resets = {}
        self._token = None
        self._session_path = None
        self._login_task = None
        self._basic = None  # the encoded Authorization header
        self._user = ""
        self._basic_reason = ""  # why this BMC is spoken to with Basic in auto mode
        self._basic_since = None  # monotonic; None: for good
        # Sessions the BMC refused once (a 401) but may still count against its
        # limit; deleted after the next login so they cannot pile up.
        self._orphans = []
        self._discovery_lock = asyncio.Lock()
        # After a full session table, Basic is used this long before a session is tried again.
        self.session_retry_s = 60.0

    def __repr__(self) -> str:
        return f"BmcClient({self._base}, auth={self.auth})"

    @property
    def tls(self) -> str:
        """``verified``, ``UNVERIFIED``, ``LEGACY`` or ``PLAINTEXT``, for display."""
        return TlsTrust.mode(self.bmc)

    @property
    def has_session(self) -> bool:
        """True while the client holds a Redfish session (logged in)."""
        return self._token is not None

    # -- what callers use -----------------------------------------------------------

    async def power(self, system: str | None = None) -> PowerReading:
        """Read PowerState and Status.Health of the ComputerSystem (one GET when warm)."""
        use = Use()
        path = await self._system(system, use)
        try:
            answer = await self._call("GET", path, use)
        except BmcHttpError as exc:
            if exc.status != 404:
                raise
            # The BMC was replaced or re-flashed: learn its resources again, once.
            self._forget_discovery()
            path = await self._system(system, use)
            answer = await self._call("GET", path, use)
        body = json_object(answer, "GET", path)
        status = body.get("Status")
        health = status.get("Health") if isinstance(status, dict) else None
        raw = body.get("PowerState", ...)
        if raw is ...:
            state, shown = "", "absent"
        elif raw is None:
            state, shown = "", "null"
        else:
            state = raw if isinstance(raw, str) else ""
            shown = raw if isinstance(raw, str) else json.dumps(raw)[:40]
        reset = await self._learn_reset(path, body, use)
        return PowerReading(
            power_state=state,
            power_state_raw=shown,
            health=health if isinstance(health, str) else None,
            system_path=path,
            members=tuple(member_id(m) for m in self._members or ()),
            reset=reset,
            latency_ms=answer.elapsed_ms,
            auth="basic" if use.basic or self.auth == "basic" else "session",
            auth_note=use.note,
        )

    async def system_path(self, system: str | None = None) -> str:
        """The ComputerSystem's URI path, from the ``Systems`` collection (cached)."""
        return await self._system(system, Use())

    async def reset_info(self, system: str | None = None) -> ResetInfo:
        """The Reset target and allowed ResetTypes (read once, then cached)."""
        path = await self._system(system, Use())
        cached = self._resets.get(path)
        if cached is None:
            return (await self.power(system)).reset
        return cached

    async def reset(self, reset_type: str, system: str | None = None) -> ResetAccepted:
        """POST ``ComputerSystem.Reset`` once; refuse a ResetType the BMC does not list.

        Raises ``BmcOutcomeUnknown`` when the POST was sent but no answer came
        (timeout, dropped connection): the caller must read PowerState back
        and must not send it again blindly. ``BmcConnectFailed`` means nothing
        was sent.
        """
        info = await self.reset_info(system)
        if info.target is None:
            raise BmcBadAnswer(f"BMC {self._where} offers no ComputerSystem.Reset action")
        if info.allowed and reset_type not in info.allowed:
            raise BmcError(
                f"ResetType {reset_type} is not allowed by this BMC "
                f"(allowed: {', '.join(info.allowed)})"
            )
        use = Use(mutation=info.target)
        try:
            answer = await self._call("POST", info.target, use, body={"ResetType": reset_type})
        except (BmcTimeout, BmcUnreachable) as exc:
            if use.sent and not isinstance(exc, BmcConnectFailed):
                raise BmcOutcomeUnknown(
                    f"{exc}; the {reset_type} request was sent, so the BMC may have carried it out"
                ) from None
            raise
        monitor = answer.headers.get("Location") if answer.status == 202 else None
        return ResetAccepted(
            answer.status,
            path_of(monitor) if monitor else None,
            retry_after(answer.headers.get("Retry-After")),
        )

    async def task_monitor(self, path: str) -> TaskPoll:
        """GET a task monitor: 202 while the task runs, another 2xx once it is done."""
        answer = await self._call("GET", path_of(path), Use())
        body: dict[str, Any] = {}
        if answer.body.strip() and answer.status != 204:
            body = json_object(answer, "GET", path)
        return TaskPoll(answer.status, body, retry_after(answer.headers.get("Retry-After")))

    async def get(self, path: str) -> tuple[int, dict[str, Any]]:
        """Authenticated GET of any resource: (status, JSON object; {} when empty)."""
        answer = await self._call("GET", path_of(path), Use())
        return answer.status, json_object(answer, "GET", path) if answer.body else {}

    async def close(self) -> None:
        """Log out: DELETE the Redfish session, if one is open (or still opening). Never raises."""
        task, self._login_task = self._login_task, None
        if task is not None and not task.done():
            # A login in flight may still open a session: let it, then end it.
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(asyncio.shield(task), _LOGIN_CLOSE_WAIT_S)
            if not task.done():
                task.cancel()
        token, path = self._token, self._session_path
        self._token = self._session_path = None
        if token is None or path is None:
            return
        await self._delete_orphans(token)
        try:
            answer = await self._send("DELETE", path, {"X-Auth-Token": token.reveal()}, Use())
        except BmcError as exc:
            log.debug("logout from %s failed: %s", self._where, exc)
            return
        if answer.status >= 400 and answer.status != 404:
            log.debug("logout from %s answered HTTP %d", self._where, answer.status)
        else:
            log.debug("logged out of %s", self._where)
