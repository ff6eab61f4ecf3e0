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
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import base64
import contextlib
import email.utils
import errno
import json
import logging
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import aiohttp

from pacs_tui.credentials import REDACTOR, Credential, CredentialError, Secret, resolve
from pacs_tui.inventory import BmcEndpoint, Inventory
from pacs_tui_redfish_power.errors import (
    BmcAmbiguousSystem,
    BmcAuthError,
    BmcBadAnswer,
    BmcBusy,
    BmcConnectFailed,
    BmcError,
    BmcHttpError,
    BmcLoginHeld,
    BmcOutcomeUnknown,
    BmcSystemNotFound,
    BmcTimeout,
    BmcTlsError,
    BmcUnreachable,
)
from pacs_tui_redfish_power.login_guard import LOGIN_GUARD, LoginGuard
from pacs_tui_redfish_power.messages import redfish_message
from pacs_tui_redfish_power.trust import TlsTrust, handshake_failure

__all__ = [
    "MAX_BODY",
    "AuthMode",
    "BmcClient",
    "CredentialSource",
    "PowerReading",
    "ResetAccepted",
    "ResetInfo",
    "TaskPoll",
    "open_http_session",
]

log = logging.getLogger(__name__)

AuthMode = Literal["auto", "session", "basic"]
# Called at each login (not per poll): a secrets file is re-read, so a rotated
# password is picked up. May raise ``pacs_tui.credentials.CredentialError``.
CredentialSource = Callable[[], Credential]


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


SERVICE_ROOT = "/redfish/v1/"
MAX_BODY = 2 * 1024 * 1024  # Redfish resources are kilobytes; a runaway body is cut here
_REDIRECTS = (301, 302, 307, 308)
_MAX_REDIRECTS = 3
_NO_SESSIONS = (404, 405, 501)  # the BMC does not create sessions: Basic is the way
_MAX_ORPHANS = 4
_LOGIN_CLOSE_WAIT_S = 5.0


# asyncio gives every TLS connection a 256 KiB read buffer; with thousands of
# kept-alive BMC connections that was ~85 % of the process's memory (3 000
# BMCs: 860 MB). Redfish bodies are small, so 16 KiB reads cost nothing.
TLS_READ_BUFFER = 16 * 1024


def _shrink_tls_read_buffer() -> None:
    protocol = asyncio.sslproto.SSLProtocol
    if getattr(protocol, "max_size", 0) > TLS_READ_BUFFER:
        protocol.max_size = TLS_READ_BUFFER


def open_http_session(
    *, limit: int = 256, limit_per_host: int = 2, keepalive_s: float = 60.0
) -> aiohttp.ClientSession:
    """The shared HTTP session for many ``BmcClient``\\ s (call inside the event loop).

    ``limit_per_host`` stays at 2 because BMCs serialise requests and drop
    bursts; connections are kept alive for ``keepalive_s`` since a TLS
    handshake costs several times a GET. Cookies are ignored (a token is
    what authenticates) and proxy variables are not read (BMC networks are
    never behind the user's web proxy).
    """
    _shrink_tls_read_buffer()
    connector = aiohttp.TCPConnector(
        limit=limit, limit_per_host=limit_per_host, keepalive_timeout=keepalive_s
    )
    return aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        headers={"Accept": "application/json", "OData-Version": "4.0"},
        trust_env=False,
    )


@dataclass(frozen=True)
class ResetInfo:
    """Where ``ComputerSystem.Reset`` is POSTed and which ResetTypes the BMC allows."""

    target: str | None
    allowed: tuple[str, ...]  # empty when the BMC did not say


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


@dataclass(frozen=True)
class _ServiceRoot:
    systems: str
    sessions: str | None  # None: the BMC has no SessionService


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes
    elapsed_ms: float
    cut: bool = False  # the connection ended before the body did


class _Use:
    """What one call (a poll, a reset) ended up doing."""

    __slots__ = ("basic", "mutation", "note", "sent")

    def __init__(self, mutation: str | None = None) -> None:
        self.basic = False
        self.note = ""
        self.mutation = mutation  # the path of a state-changing POST, if any
        self.sent = False  # that POST left this process (its outcome may be unknown)


def member_id(path: str) -> str:
    """``Blade2`` for ``/redfish/v1/Systems/Blade2`` (the last path segment)."""
    return path.rstrip("/").rsplit("/", 1)[-1]


class BmcClient:
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
        self.auth: AuthMode = auth or bmc.auth
        self.timeout_s = timeout_s if timeout_s is not None else bmc.timeout_s
        self.login_timeout_s = (
            login_timeout_s if login_timeout_s is not None else bmc.login_timeout_s
        )
        self._http = http
        self._credentials = credentials
        self._trust = trust or TlsTrust()
        self._guard = guard
        self._timeout = _client_timeout(self.timeout_s)
        self._login_timeout = _client_timeout(self.login_timeout_s)
        self._base = bmc.url
        self._where = bmc.url.split("://", 1)[1]
        self._ssl: ssl.SSLContext | bool | None = None  # True for plain HTTP; set on first use
        self._root: _ServiceRoot | None = None
        self._members: tuple[str, ...] | None = None
        self._resets: dict[str, ResetInfo] = {}
        self._token: Secret | None = None
        self._session_path: str | None = None
        self._login_task: asyncio.Task[None] | None = None
        self._basic: Secret | None = None  # the encoded Authorization header
        self._user = ""
        self._basic_reason = ""  # why this BMC is spoken to with Basic in auto mode
        self._basic_since: float | None = None  # monotonic; None: for good
        # Sessions the BMC refused once (a 401) but may still count against its
        # limit; deleted after the next login so they cannot pile up.
        self._orphans: list[str] = []
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
        use = _Use()
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
        body = _json_object(answer, "GET", path)
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
        return await self._system(system, _Use())

    async def reset_info(self, system: str | None = None) -> ResetInfo:
        """The Reset target and allowed ResetTypes (read once, then cached)."""
        path = await self._system(system, _Use())
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
        use = _Use(mutation=info.target)
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
            _path_of(monitor) if monitor else None,
            _retry_after(answer.headers.get("Retry-After")),
        )

    async def task_monitor(self, path: str) -> TaskPoll:
        """GET a task monitor: 202 while the task runs, another 2xx once it is done."""
        answer = await self._call("GET", _path_of(path), _Use())
        body: dict[str, Any] = {}
        if answer.body.strip() and answer.status != 204:
            body = _json_object(answer, "GET", path)
        return TaskPoll(answer.status, body, _retry_after(answer.headers.get("Retry-After")))

    async def get(self, path: str) -> tuple[int, dict[str, Any]]:
        """Authenticated GET of any resource: (status, JSON object; {} when empty)."""
        answer = await self._call("GET", _path_of(path), _Use())
        return answer.status, _json_object(answer, "GET", path) if answer.body else {}

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
            answer = await self._send("DELETE", path, {"X-Auth-Token": token.reveal()}, _Use())
        except BmcError as exc:
            log.debug("logout from %s failed: %s", self._where, exc)
            return
        if answer.status >= 400 and answer.status != 404:
            log.debug("logout from %s answered HTTP %d", self._where, answer.status)
        else:
            log.debug("logged out of %s", self._where)

    # -- discovery ------------------------------------------------------------------

    async def _service_root(self) -> _ServiceRoot:
        if self._root is None:
            answer = await self._send("GET", SERVICE_ROOT, {}, _Use())
            if answer.status == 401:
                # DSP0266 makes the root public, but some firmware wants credentials.
                answer = await self._send("GET", SERVICE_ROOT, self._basic_header(), _Use())
                self._note_basic_answer(answer)
            _raise_for_status(answer, "GET", SERVICE_ROOT)
            body = _json_object(answer, "GET", SERVICE_ROOT)
            systems = _link(body.get("Systems"))
            if systems is None:
                raise BmcBadAnswer(f"the service root of {self._where} lists no Systems")
            links = body.get("Links")
            sessions = _link(links.get("Sessions")) if isinstance(links, dict) else None
            if sessions is None:
                service = _link(body.get("SessionService"))
                # DSP0266 fixes the collection's place under the SessionService.
                sessions = f"{service.rstrip('/')}/Sessions" if service else None
            self._root = _ServiceRoot(systems, sessions)
        return self._root

    async def _system(self, system: str | None, use: _Use) -> str:
        wanted = system if system is not None else self.bmc.system
        if self._members is None:
            async with self._discovery_lock:
                if self._members is None:
                    root = await self._service_root()
                    answer = await self._call("GET", root.systems, use)
                    members = _json_object(answer, "GET", root.systems).get("Members")
                    paths = [_link(m) for m in members] if isinstance(members, list) else []
                    found = tuple(p for p in paths if p is not None)
                    if not found:
                        raise BmcBadAnswer(f"the Systems collection of {self._where} is empty")
                    self._members = found
        return _choose_system(self._members, wanted, self._where)

    async def _learn_reset(self, path: str, system: dict[str, Any], use: _Use) -> ResetInfo:
        cached = self._resets.get(path)
        if cached is not None:
            return cached
        actions = system.get("Actions")
        action = actions.get("#ComputerSystem.Reset") if isinstance(actions, dict) else None
        if not isinstance(action, dict):
            self._resets[path] = ResetInfo(None, ())
            return self._resets[path]
        target = action.get("target")
        target = _path_of(target) if isinstance(target, str) else None
        allowed: tuple[str, ...] | None = None
        learned = True
        info_path = action.get("@Redfish.ActionInfo")
        if isinstance(info_path, str):
            try:
                answer = await self._call("GET", _path_of(info_path), use)
                allowed = _allowable_from_info(_json_object(answer, "GET", info_path))
            except (BmcHttpError, BmcBadAnswer, BmcTimeout) as exc:
                # An ActionInfo that fails is not the poll's failure; the inline list may do.
                log.debug("ActionInfo of %s unreadable: %s", self._where, exc)
                learned = False
        if allowed is None:
            inline = action.get("ResetType@Redfish.AllowableValues")
            if isinstance(inline, list):
                allowed = tuple(v for v in inline if isinstance(v, str))
                learned = True
        info = ResetInfo(target, allowed or ())
        if learned:
            self._resets[path] = info  # a transient ActionInfo failure is retried next poll
        return info

    def _forget_discovery(self) -> None:
        self._root = None
        self._members = None
        self._resets.clear()

    # -- authentication ---------------------------------------------------------------

    def _use_basic(self, use: _Use, note: str) -> dict[str, str]:
        use.basic = True
        use.note = note
        return self._basic_header()

    async def _authorization(self, use: _Use) -> dict[str, str]:
        if self.auth == "basic" or use.basic:
            return self._basic_header()
        if self._basic_reason:
            since = self._basic_since
            if since is None or time.monotonic() - since < self.session_retry_s:
                return self._use_basic(use, self._basic_reason)
            self._basic_reason = ""  # the hold is over: try a session again
        root = await self._service_root()
        if root.sessions is None:
            if self.auth == "session":
                raise BmcBadAnswer(f"BMC {self._where} has no SessionService (set bmc.auth: basic)")
            return self._use_basic(use, "BMC has no SessionService: basic auth")
        if self._token is None:
            try:
                await self._logged_in(root.sessions)
            except BmcHttpError as exc:
                if self.auth == "session" or isinstance(exc, BmcAuthError):
                    raise
                if exc.status in _NO_SESSIONS:
                    self._basic_reason = (
                        f"session login refused (HTTP {exc.status}): basic auth for this BMC"
                    )
                    self._basic_since = None
                elif exc.session_limit:
                    self._basic_reason = (
                        f"session limit reached: basic auth for {self.session_retry_s:g} s"
                    )
                    self._basic_since = time.monotonic()
                else:
                    raise
                log.info("%s: %s", self._where, self._basic_reason)
                return self._use_basic(use, self._basic_reason)
        token = self._token
        if token is None:
            raise BmcBadAnswer(f"login to {self._where} ended without a session")
        return {"X-Auth-Token": token.reveal()}

    async def _logged_in(self, sessions: str) -> None:
        """Wait for the one login in flight (starting it if needed).

        The login is shielded: a poll that gives up leaves it running, so the
        session the BMC creates is ours and is used (and logged out) later.
        """
        task = self._login_task
        if task is None or task.done():
            task = asyncio.ensure_future(self._login(sessions))
            task.add_done_callback(_consume_exception)
            self._login_task = task
        await asyncio.shield(task)

    async def _login(self, sessions: str) -> None:
        credential = self._credentials()
        if credential.password is None:
            raise BmcError("the BMC credential has no password")
        self._user = credential.username or ""
        self._check_guard()
        body = {"UserName": self._user, "Password": credential.password.reveal()}
        path = sessions
        for _ in range(_MAX_REDIRECTS + 1):
            answer = await self._send("POST", path, {}, _Use(), body=body, login=True)
            if answer.status not in _REDIRECTS:
                break
            target = self._same_host(answer.headers.get("Location"))
            if target is None:
                raise BmcBadAnswer(
                    f"login to {self._where} was redirected to another host; "
                    "credentials are only sent to the inventory's address"
                )
            log.debug("login to %s redirected to %s", self._where, target)
            path = target
        else:
            raise BmcBadAnswer(
                f"login to {self._where} redirected more than {_MAX_REDIRECTS} times"
            )
        if answer.status == 401:
            self._guard.failed(self._base, self._user)
            raise _http_error(answer, "POST", path, summary="login refused (401)")
        _raise_for_status(answer, "POST", path)
        token = answer.headers.get("X-Auth-Token")
        if not token:
            raise BmcBadAnswer(f"login to {self._where} answered without an X-Auth-Token")
        self._guard.succeeded(self._base, self._user)
        location = answer.headers.get("Location")
        if location is None:
            try:
                location = _link(json.loads(answer.body))
            except (ValueError, RecursionError):
                location = None
        self._token = Secret(token)
        REDACTOR.add(self._token)  # a token is a password for as long as it lives
        self._session_path = _path_of(location) if location else None
        log.debug("logged in to %s", self._where)
        await self._delete_orphans(self._token)

    def _check_guard(self) -> None:
        until = self._guard.held_until(self._base, self._user)
        if until is not None:
            shown = time.strftime("%H:%M", time.localtime(until))
            failures = self._guard.failures(self._base, self._user)
            raise BmcLoginHeld(self._where, failures, shown, self._guard.record())

    def _same_host(self, location: str | None) -> str | None:
        """The path of a redirect that stays on the inventory's scheme, host and port."""
        if not location:
            return None
        parts = urlsplit(location)
        if parts.scheme or parts.netloc:
            base = urlsplit(self._base)
            port = parts.port or (443 if parts.scheme == "https" else 80)
            if (parts.scheme, parts.hostname, port) != (base.scheme, base.hostname, base.port):
                return None
        return _path_of(location)

    async def _delete_orphans(self, token: Secret) -> None:
        """Best effort: end sessions that an earlier 401 made us abandon."""
        orphans, self._orphans = self._orphans, []
        for path in orphans:
            if path == self._session_path:
                continue
            try:
                await self._send("DELETE", path, {"X-Auth-Token": token.reveal()}, _Use())
            except BmcError as exc:
                log.debug("could not end an old session on %s: %s", self._where, exc)

    def _basic_header(self) -> dict[str, str]:
        if self._basic is None:
            credential = self._credentials()
            if credential.password is None:
                raise BmcError("the BMC credential has no password")
            self._user = credential.username or ""
            pair = f"{self._user}:{credential.password.reveal()}"
            encoded = Secret(base64.b64encode(pair.encode()).decode("ascii"))
            # The encoded pair alone is the secret: it shows up without "Basic " too.
            REDACTOR.add(encoded)
            self._basic = Secret("Basic " + encoded.reveal())
            REDACTOR.add(self._basic)
        self._check_guard()
        return {"Authorization": self._basic.reveal()}

    def _note_basic_answer(self, answer: _Answer) -> None:
        if answer.status == 401:
            self._guard.failed(self._base, self._user)
            self._basic = None  # re-read the credential next time: it may have been rotated

    def _drop_token(self, used: str) -> None:
        """After a 401: forget the token that was refused (unless already replaced)."""
        if self._token is not None and self._token.reveal() == used:
            if self._session_path and len(self._orphans) < _MAX_ORPHANS:
                self._orphans.append(self._session_path)
            self._token = None
            self._session_path = None

    # -- requests ---------------------------------------------------------------------

    async def _call(
        self, method: str, path: str, use: _Use, *, body: dict[str, Any] | None = None
    ) -> _Answer:
        """An authenticated request; any 401 means one new login and one more try."""
        headers = await self._authorization(use)
        answer = await self._send(method, path, headers, use, body=body)
        if answer.status == 401:
            use.sent = False  # refused unread: the BMC did not act on it
            used = headers.get("X-Auth-Token")
            if used is None:
                self._note_basic_answer(answer)
                raise _http_error(
                    answer,
                    method,
                    path,
                    summary="401 with basic auth: user name or password refused",
                )
            self._drop_token(used)
            try:
                headers = await self._authorization(use)
            except BmcAuthError as exc:
                raise _http_error(
                    answer, method, path, summary=f"401 after re-login ({exc.summary})"
                ) from None
            answer = await self._send(method, path, headers, use, body=body)
            if answer.status == 401:
                use.sent = False
                if "Authorization" in headers:
                    self._note_basic_answer(answer)
                raise _http_error(answer, method, path, summary="401 after re-login")
        _raise_for_status(answer, method, path)
        return answer

    async def _send(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        use: _Use,
        *,
        body: dict[str, Any] | None = None,
        login: bool = False,
    ) -> _Answer:
        """One HTTP exchange, every failure turned into a ``BmcError``."""
        ssl_context = self._ssl_context()
        timeout = self._login_timeout if login else self._timeout
        seconds = self.login_timeout_s if login else self.timeout_s
        started = time.perf_counter()
        if method == "POST" and path == use.mutation:
            use.sent = True  # from here on an unanswered POST has an unknown outcome
        try:
            async with self._http.request(
                method,
                self._base + path,
                headers=headers,
                json=body,
                ssl=ssl_context,
                timeout=timeout,
                allow_redirects=False,  # never follow a BMC to another host
            ) as response:
                raw, cut = await _read_bounded(response, method, path)
                elapsed = (time.perf_counter() - started) * 1000
                return _Answer(response.status, response.headers, raw, elapsed, cut)
        # ``from None`` everywhere: aiohttp's exceptions carry request headers.
        except aiohttp.ClientConnectorCertificateError as exc:
            cause = handshake_failure(exc.certificate_error, self.bmc)
            raise BmcTlsError(f"TLS with BMC {self._where}: {cause}") from None
        except aiohttp.ClientSSLError as exc:
            cause = handshake_failure(exc.os_error, self.bmc)
            raise BmcTlsError(f"TLS handshake with BMC {self._where} failed: {cause}") from None
        except aiohttp.ClientConnectorDNSError:
            raise BmcConnectFailed(f"cannot resolve BMC address {self.bmc.address}") from None
        except aiohttp.ClientConnectorError as exc:
            if self.bmc.scheme == "https" and isinstance(exc.os_error, ConnectionResetError):
                cause = handshake_failure(exc.os_error, self.bmc)
                raise BmcTlsError(f"TLS handshake with BMC {self._where} failed: {cause}") from None
            raise BmcConnectFailed(_connect_failure(exc.os_error, self._where)) from None
        except aiohttp.ConnectionTimeoutError:
            raise BmcConnectFailed(
                f"no connection to BMC {self._where} within {seconds:g} s"
            ) from None
        except TimeoutError:
            what = "login" if login else f"{method} {path}"
            raise BmcTimeout(
                f"no answer from BMC {self._where} within {seconds:g} s ({what})"
            ) from None
        except aiohttp.ClientResponseError as exc:
            raise BmcBadAnswer(_unreadable_http(exc, self._where)) from None
        except aiohttp.ClientOSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise BmcUnreachable(f"connection to BMC {self._where} failed: {reason}") from None
        except aiohttp.ServerDisconnectedError:
            raise BmcUnreachable(f"BMC {self._where} dropped the connection") from None
        except aiohttp.ClientError as exc:
            raise BmcUnreachable(
                f"HTTP exchange with BMC {self._where} failed ({type(exc).__name__})"
            ) from None

    def _ssl_context(self) -> ssl.SSLContext | bool:
        if self._ssl is None:
            try:
                self._ssl = self._trust.context(self.bmc) or True
            except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
                reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or exc
                raise BmcTlsError(f"cannot load CA file {self.bmc.ca_file}: {reason}") from None
        return self._ssl


# -- answers ------------------------------------------------------------------------


def _client_timeout(seconds: float) -> aiohttp.ClientTimeout:
    # The connect bound fires first, so a BMC we never reached is told apart
    # from one that got the request and did not answer.
    return aiohttp.ClientTimeout(total=seconds, sock_connect=seconds * 0.8)


def _consume_exception(task: asyncio.Task[None]) -> None:
    """A login nobody waits for any more must not log "exception never retrieved"."""
    if not task.cancelled():
        task.exception()


def _choose_system(members: tuple[str, ...], wanted: str | None, where: str) -> str:
    ids = tuple(member_id(m) for m in members)
    if wanted is None:
        if len(members) == 1:
            return members[0]
        raise BmcAmbiguousSystem(where, ids)
    wanted_path = wanted.rstrip("/")
    for path, member in zip(members, ids, strict=True):
        if path.rstrip("/") == wanted_path or member == wanted:
            return path
    raise BmcSystemNotFound(where, wanted, ids)


async def _read_bounded(
    response: aiohttp.ClientResponse, method: str, path: str
) -> tuple[bytes, bool]:
    """The body, at most ``MAX_BODY`` bytes; (body so far, True) when the peer cut it."""
    too_large = f"answer too large (over {MAX_BODY // 1024 // 1024} MiB) from {method} {path}"
    if response.content_length is not None and response.content_length > MAX_BODY:
        raise BmcBadAnswer(too_large)
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in response.content.iter_chunked(64 * 1024):
            size += len(chunk)
            if size > MAX_BODY:
                raise BmcBadAnswer(too_large)
            chunks.append(chunk)
    except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError, ConnectionError):
        # The status line came; the body did not (e.g. a 401 whose connection
        # closed before the first chunk). The status still counts.
        return b"".join(chunks), True
    return b"".join(chunks), False


def _unreadable_http(exc: aiohttp.ClientResponseError, where: str) -> str:
    text = str(exc.message or "").lower()
    if "too long" in text or "more than" in text or "too large" in text:
        return f"BMC {where} sent a header too large to read (over 8 KiB)"
    return f"BMC {where} sent an answer that is not valid HTTP"


def _raise_for_status(answer: _Answer, method: str, path: str) -> None:
    if answer.status < 300:
        return
    raise _http_error(answer, method, path)


def _http_error(answer: _Answer, method: str, path: str, *, summary: str = "") -> BmcHttpError:
    message_id, message = _error_message(answer.body)
    if answer.status == 503:
        return BmcBusy(
            method,
            path,
            _retry_after(answer.headers.get("Retry-After")),
            message_id=message_id,
            message=message,
        )
    kind = BmcAuthError if answer.status == 401 else BmcHttpError
    if not summary:
        summary = f"HTTP {answer.status} from {method} {path}"
    return kind(
        answer.status, method, path, message_id=message_id, message=message, summary=summary
    )


def _error_message(raw: bytes) -> tuple[str, str]:
    try:
        return redfish_message(json.loads(raw))
    except (ValueError, UnicodeDecodeError, RecursionError):
        return "", ""


def _json_object(answer: _Answer, method: str, path: str) -> dict[str, Any]:
    if answer.cut:
        raise BmcBadAnswer(f"BMC cut its answer off ({method} {path})")
    try:
        body = json.loads(answer.body)
    except RecursionError:
        raise BmcBadAnswer(f"malformed JSON from BMC: nested too deep ({method} {path})") from None
    except (ValueError, UnicodeDecodeError):
        raise BmcBadAnswer(f"malformed JSON from BMC ({method} {path})") from None
    if not isinstance(body, dict):
        raise BmcBadAnswer(f"BMC answered {method} {path} with JSON that is not an object")
    return body


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, round(when.timestamp() - time.time(), 1))


def _allowable_from_info(info: dict[str, Any]) -> tuple[str, ...] | None:
    parameters = info.get("Parameters")
    if not isinstance(parameters, list):
        return None
    for parameter in parameters:
        if isinstance(parameter, dict) and parameter.get("Name") == "ResetType":
            values = parameter.get("AllowableValues")
            if isinstance(values, list):
                return tuple(v for v in values if isinstance(v, str))
    return None


def _link(value: Any) -> str | None:
    """The path of an ``{"@odata.id": ...}`` reference, or None."""
    if isinstance(value, dict):
        target = value.get("@odata.id")
        if isinstance(target, str) and target:
            return _path_of(target)
    return None


def _path_of(uri: str) -> str:
    """Only the path (and query) of a URI the BMC gave us.

    A BMC's ``Location`` or ``@odata.id`` may be absolute; requests always go
    to the inventory's address, never to a host named by the BMC.
    """
    parts = urlsplit(uri)
    path = parts.path or "/"
    if not path.startswith("/"):
        path = "/" + path
    return f"{path}?{parts.query}" if parts.query else path


def _connect_failure(error: OSError, where: str) -> str:
    if error.errno == errno.ECONNREFUSED:
        return f"BMC refused connection ({where})"
    if error.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return f"no route to BMC {where}"
    reason = error.strerror or type(error).__name__
    return f"cannot connect to BMC {where}: {reason}"
