"""A Redfish client for one BMC, over a shared keep-alive aiohttp session.

The power probe holds one ``BmcClient`` per BMC and the power actions reuse
the class for resets. What a client learns once is cached: the service root
(where ``Systems`` and the session collection live), the ComputerSystem path
(read from the ``Systems`` collection, never assumed to be ``Systems/1``) and
the ResetTypes the BMC allows. A warm poll is then one GET.

Authentication is a Redfish session by default: one login per client, its
``X-Auth-Token`` reused for every request, one re-login when the BMC says
401, and a DELETE of the session in ``close()``. Logins are serialised, so
one client never holds more than one session. BMCs without a
SessionService, and logins refused because the session table is full, fall
back to HTTP Basic, and the reading says so. Secrets never appear in
exception text, logs or readings.
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import base64
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
    BmcAuthError,
    BmcBadAnswer,
    BmcBusy,
    BmcError,
    BmcHttpError,
    BmcTimeout,
    BmcTlsError,
    BmcUnreachable,
)
from pacs_tui_redfish_power.trust import TlsTrust

__all__ = [
    "AuthMode",
    "BmcClient",
    "CredentialSource",
    "PowerReading",
    "ResetAccepted",
    "ResetInfo",
    "open_http_session",
]

log = logging.getLogger(__name__)

AuthMode = Literal["session", "basic"]
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
DEFAULT_TIMEOUT_S = 5.0
_DEFAULT_HEADERS = {"Accept": "application/json", "OData-Version": "4.0"}
_MAX_MESSAGE = 200  # a BMC's own error text is shown, but never a page of it
_MAX_ORPHANS = 4


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
        headers=_DEFAULT_HEADERS,
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

    power_state: str  # the Redfish word as the BMC sent it; "" when absent
    health: str | None  # Status.Health (OK, Warning, Critical), when present
    system_path: str
    reset: ResetInfo
    latency_ms: float  # the PowerState GET alone
    auth: AuthMode  # what this read actually used
    auth_note: str = ""  # why it is not the configured mode, if it is not


@dataclass(frozen=True)
class ResetAccepted:
    """A reset the BMC took: 200/204 done or started, 202 with a task monitor."""

    status: int
    task_monitor: str | None  # path to poll (202 answers), else None


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


class _AuthUse:
    """Which authentication one call (a poll, a reset) ended up using."""

    __slots__ = ("basic", "note")

    def __init__(self) -> None:
        self.basic = False
        self.note = ""


class BmcClient:
    """Talks Redfish to one BMC; every request is bounded by ``timeout_s``.

    ``http`` is shared with other clients and owned by the caller. Methods
    raise ``BmcError`` subclasses (and ``CredentialError`` from
    ``credentials``), never aiohttp's exceptions.
    """

    def __init__(
        self,
        http: aiohttp.ClientSession,
        bmc: BmcEndpoint,
        credentials: CredentialSource,
        *,
        auth: AuthMode = "session",
        timeout_s: float = DEFAULT_TIMEOUT_S,
        trust: TlsTrust | None = None,
    ) -> None:
        self.bmc = bmc
        self.auth = auth
        self.timeout_s = timeout_s
        self._http = http
        self._credentials = credentials
        self._trust = trust or TlsTrust()
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._base = bmc.url
        self._where = bmc.url.split("://", 1)[1]
        self._ssl: ssl.SSLContext | bool | None = None  # True for plain HTTP; set on first use
        self._root: _ServiceRoot | None = None
        self._system_path: str | None = None
        self._reset: ResetInfo | None = None
        self._token: Secret | None = None
        self._session_path: str | None = None
        self._basic: Secret | None = None  # the encoded Authorization header
        # Sessions the BMC refused once (a 401) but may still count against its
        # limit; deleted after the next login so they cannot pile up.
        self._orphans: list[str] = []
        self._login_lock = asyncio.Lock()
        self._discovery_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"BmcClient({self._base}, auth={self.auth})"

    @property
    def tls(self) -> str:
        """``verified``, ``UNVERIFIED`` or ``PLAINTEXT``, for display."""
        return TlsTrust.mode(self.bmc)

    @property
    def has_session(self) -> bool:
        """True while the client holds a Redfish session (logged in)."""
        return self._token is not None

    # -- what callers use -----------------------------------------------------------

    async def power(self) -> PowerReading:
        """Read PowerState and Status.Health of the ComputerSystem (one GET when warm)."""
        use = _AuthUse()
        path = await self._system(use)
        try:
            answer = await self._call("GET", path, use)
        except BmcHttpError as exc:
            if exc.status != 404:
                raise
            # The BMC was replaced or re-flashed: learn its resources again, once.
            self._forget_discovery()
            path = await self._system(use)
            answer = await self._call("GET", path, use)
        body = _json_object(answer, "GET", path)
        status = body.get("Status")
        health = status.get("Health") if isinstance(status, dict) else None
        state = body.get("PowerState")
        reset = await self._learn_reset(body, use)
        return PowerReading(
            power_state=state if isinstance(state, str) else "",
            health=health if isinstance(health, str) else None,
            system_path=path,
            reset=reset,
            latency_ms=answer.elapsed_ms,
            auth="basic" if use.basic or self.auth == "basic" else "session",
            auth_note=use.note,
        )

    async def system_path(self) -> str:
        """The ComputerSystem's URI path, from the ``Systems`` collection (cached)."""
        return await self._system(_AuthUse())

    async def reset_info(self) -> ResetInfo:
        """The Reset target and allowed ResetTypes (read once, then cached)."""
        if self._reset is None:
            return (await self.power()).reset
        return self._reset

    async def reset(self, reset_type: str) -> ResetAccepted:
        """POST ``ComputerSystem.Reset``; refuse a ResetType the BMC does not list."""
        info = await self.reset_info()
        if info.target is None:
            raise BmcBadAnswer(f"BMC {self._where} offers no ComputerSystem.Reset action")
        if info.allowed and reset_type not in info.allowed:
            raise BmcError(
                f"ResetType {reset_type} is not allowed by this BMC "
                f"(allowed: {', '.join(info.allowed)})"
            )
        answer = await self._call("POST", info.target, _AuthUse(), body={"ResetType": reset_type})
        monitor = answer.headers.get("Location") if answer.status == 202 else None
        return ResetAccepted(answer.status, _path_of(monitor) if monitor else None)

    async def get(self, path: str) -> tuple[int, dict[str, Any]]:
        """Authenticated GET of any resource (e.g. a task monitor): (status, JSON object)."""
        answer = await self._call("GET", _path_of(path), _AuthUse())
        return answer.status, _json_object(answer, "GET", path) if answer.body else {}

    async def close(self) -> None:
        """Log out: DELETE the Redfish session, if one is open. Never raises."""
        token, path = self._token, self._session_path
        self._token = self._session_path = None
        if token is None or path is None:
            return
        await self._delete_orphans(token)
        try:
            answer = await self._send("DELETE", path, {"X-Auth-Token": token.reveal()})
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
            answer = await self._send("GET", SERVICE_ROOT, {})
            if answer.status == 401:
                # DSP0266 makes the root public, but some firmware wants credentials.
                answer = await self._send("GET", SERVICE_ROOT, self._basic_header())
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

    async def _system(self, use: _AuthUse) -> str:
        if self._system_path is not None:
            return self._system_path
        async with self._discovery_lock:
            if self._system_path is None:
                root = await self._service_root()
                answer = await self._call("GET", root.systems, use)
                members = _json_object(answer, "GET", root.systems).get("Members")
                first = members[0] if isinstance(members, list) and members else None
                path = _link(first)
                if path is None:
                    raise BmcBadAnswer(f"the Systems collection of {self._where} is empty")
                self._system_path = path
            return self._system_path

    async def _learn_reset(self, system: dict[str, Any], use: _AuthUse) -> ResetInfo:
        if self._reset is not None:
            return self._reset
        actions = system.get("Actions")
        action = actions.get("#ComputerSystem.Reset") if isinstance(actions, dict) else None
        if not isinstance(action, dict):
            self._reset = ResetInfo(None, ())
            return self._reset
        target = action.get("target")
        target = _path_of(target) if isinstance(target, str) else None
        allowed: tuple[str, ...] | None = None
        learned = True
        info_path = action.get("@Redfish.ActionInfo")
        if isinstance(info_path, str):
            try:
                answer = await self._call("GET", _path_of(info_path), use)
                allowed = _allowable_from_info(_json_object(answer, "GET", info_path))
            except (BmcHttpError, BmcBadAnswer) as exc:
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
            self._reset = info  # a transient ActionInfo failure is retried next poll
        return info

    def _forget_discovery(self) -> None:
        self._root = None
        self._system_path = None
        self._reset = None

    # -- authentication ---------------------------------------------------------------

    async def _authorization(self, use: _AuthUse) -> dict[str, str]:
        if self.auth == "basic" or use.basic:
            return self._basic_header()
        root = await self._service_root()
        if root.sessions is None:
            use.basic = True
            use.note = "BMC has no SessionService: basic auth"
            return self._basic_header()
        token = self._token
        if token is None:
            async with self._login_lock:
                if self._token is None:
                    try:
                        await self._login(root.sessions)
                    except BmcAuthError:
                        raise
                    except BmcHttpError as exc:
                        if not exc.session_limit:
                            raise
                        log.info("%s: session limit reached; basic auth this poll", self._where)
                        use.basic = True
                        use.note = "session limit reached: basic auth for this poll"
                        return self._basic_header()
                token = self._token
            assert token is not None
        return {"X-Auth-Token": token.reveal()}

    async def _login(self, sessions: str) -> None:
        credential = self._credentials()
        if credential.password is None:
            raise BmcError("the BMC credential has no password")
        body = {"UserName": credential.username or "", "Password": credential.password.reveal()}
        answer = await self._send("POST", sessions, {}, body=body)
        if answer.status == 401:
            raise _http_error(answer, "POST", sessions, summary="login refused (401)")
        _raise_for_status(answer, "POST", sessions)
        token = answer.headers.get("X-Auth-Token")
        if not token:
            raise BmcBadAnswer(f"login to {self._where} answered without an X-Auth-Token")
        location = answer.headers.get("Location")
        if location is None:
            try:
                location = _link(json.loads(answer.body))
            except ValueError:
                location = None
        self._token = Secret(token)
        REDACTOR.add(self._token)  # a token is a password for as long as it lives
        self._session_path = _path_of(location) if location else None
        log.debug("logged in to %s", self._where)
        await self._delete_orphans(self._token)

    async def _delete_orphans(self, token: Secret) -> None:
        """Best effort: end sessions that an earlier 401 made us abandon."""
        orphans, self._orphans = self._orphans, []
        for path in orphans:
            if path == self._session_path:
                continue
            try:
                await self._send("DELETE", path, {"X-Auth-Token": token.reveal()})
            except BmcError as exc:
                log.debug("could not end an old session on %s: %s", self._where, exc)

    def _basic_header(self) -> dict[str, str]:
        if self._basic is None:
            credential = self._credentials()
            if credential.password is None:
                raise BmcError("the BMC credential has no password")
            pair = f"{credential.username or ''}:{credential.password.reveal()}"
            self._basic = Secret("Basic " + base64.b64encode(pair.encode()).decode("ascii"))
        return {"Authorization": self._basic.reveal()}

    async def _renew(self, headers: Mapping[str, str]) -> None:
        """After a 401: drop the token (or cached basic credential) that was refused."""
        used_token = headers.get("X-Auth-Token")
        if used_token is None:
            self._basic = None  # re-read the credential: it may have been rotated
            return
        async with self._login_lock:
            # Another call may already have logged in again; only drop our stale token.
            if self._token is not None and self._token.reveal() == used_token:
                if self._session_path and len(self._orphans) < _MAX_ORPHANS:
                    self._orphans.append(self._session_path)
                self._token = None
                self._session_path = None

    # -- requests ---------------------------------------------------------------------

    async def _call(
        self, method: str, path: str, use: _AuthUse, *, body: dict[str, Any] | None = None
    ) -> _Answer:
        """An authenticated request; one re-login (or credential re-read) on 401."""
        headers = await self._authorization(use)
        answer = await self._send(method, path, headers, body=body)
        if answer.status == 401:
            await self._renew(headers)
            try:
                headers = await self._authorization(use)
            except BmcAuthError as exc:
                raise _http_error(
                    answer, method, path, summary=f"401 after re-login ({exc.summary})"
                ) from None
            answer = await self._send(method, path, headers, body=body)
            if answer.status == 401:
                summary = (
                    "401 with basic auth: user name or password refused"
                    if "Authorization" in headers
                    else "401 after re-login"
                )
                raise _http_error(answer, method, path, summary=summary)
        _raise_for_status(answer, method, path)
        return answer

    async def _send(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        *,
        body: dict[str, Any] | None = None,
    ) -> _Answer:
        """One HTTP exchange, every failure turned into a ``BmcError``."""
        ssl_context = self._ssl_context()
        started = time.perf_counter()
        try:
            async with self._http.request(
                method,
                self._base + path,
                headers=headers,
                json=body,
                ssl=ssl_context,
                timeout=self._timeout,
                allow_redirects=False,  # never follow a BMC to another host
            ) as response:
                raw = await response.read()
                elapsed = (time.perf_counter() - started) * 1000
                return _Answer(response.status, response.headers, raw, elapsed)
        # ``from None`` everywhere: aiohttp's exceptions carry request headers.
        except aiohttp.ClientConnectorCertificateError as exc:
            reason = getattr(exc.certificate_error, "verify_message", "") or "not trusted"
            raise BmcTlsError(
                f"TLS certificate of BMC {self._where} rejected: {reason} "
                f"(CA file {self.bmc.ca_file or 'system store'})"
            ) from None
        except aiohttp.ClientSSLError as exc:
            reason = getattr(exc.os_error, "reason", None) or type(exc.os_error).__name__
            raise BmcTlsError(f"TLS handshake with BMC {self._where} failed: {reason}") from None
        except aiohttp.ClientConnectorDNSError:
            raise BmcUnreachable(f"cannot resolve BMC address {self.bmc.address}") from None
        except aiohttp.ClientConnectorError as exc:
            raise BmcUnreachable(_connect_failure(exc.os_error, self._where)) from None
        except TimeoutError:
            raise BmcTimeout(
                f"no answer from BMC {self._where} within {self.timeout_s:g} s ({method} {path})"
            ) from None
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


def _raise_for_status(answer: _Answer, method: str, path: str) -> None:
    if answer.status < 300:
        return
    raise _http_error(answer, method, path)


def _http_error(answer: _Answer, method: str, path: str, *, summary: str = "") -> BmcHttpError:
    message_id, message = _redfish_message(answer.body)
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


def _json_object(answer: _Answer, method: str, path: str) -> dict[str, Any]:
    try:
        body = json.loads(answer.body)
    except (ValueError, UnicodeDecodeError):
        raise BmcBadAnswer(f"malformed JSON from BMC ({method} {path})") from None
    if not isinstance(body, dict):
        raise BmcBadAnswer(f"BMC answered {method} {path} with JSON that is not an object")
    return body


def _redfish_message(raw: bytes) -> tuple[str, str]:
    """(MessageId, Message) of a Redfish error body; blanks when it has none."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return "", ""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return "", ""
    info = error.get("@Message.ExtendedInfo")
    first = info[0] if isinstance(info, list) and info and isinstance(info[0], dict) else {}
    message_id = first.get("MessageId") or error.get("code") or ""
    message = first.get("Message") or error.get("message") or ""
    if not isinstance(message_id, str) or not isinstance(message, str):
        return "", ""
    message = " ".join(message.split())
    if len(message) > _MAX_MESSAGE:
        message = message[: _MAX_MESSAGE - 1] + "…"
    return message_id, message


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
