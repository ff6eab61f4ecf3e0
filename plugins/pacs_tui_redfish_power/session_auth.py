"""Authentication with a BMC (DSP0266 §13.3): Redfish sessions, HTTP Basic, the fallback.

``session`` logs in once (the service root's ``Links.Sessions``, following
same-host redirects only) and reuses the ``X-Auth-Token``; ``basic`` sends
HTTP Basic; ``auto`` falls back to Basic when the BMC refuses sessions
(404/405/501, for good) or its session table is full (for
``session_retry_s``). A 401 means one new login and the request again; the
refused session is remembered and deleted after the next login. Logins are
counted by the ``LoginGuard`` and run shielded, so a caller that gives up
never abandons a session the BMC opens. Tokens and Basic headers go to the
redactor the moment they exist.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from pacs_tui.credentials import REDACTOR, Credential, Secret
from pacs_tui_redfish_power.bounded_http import (
    Answer,
    http_error,
    json_object,
    link,
    path_of,
    raise_for_status,
)
from pacs_tui_redfish_power.errors import (
    BmcAuthError,
    BmcBadAnswer,
    BmcError,
    BmcHttpError,
    BmcLoginHeld,
)
from pacs_tui_redfish_power.login_guard import LoginGuard
from pacs_tui_redfish_power.transport import BmcTransport, Use

# The client's logger, as before the split: log configs and filters name it.
log = logging.getLogger("pacs_tui_redfish_power.client")

AuthMode = Literal["auto", "session", "basic"]
# Called at each login (not per poll): a secrets file is re-read, so a rotated
# password is picked up. May raise ``pacs_tui.credentials.CredentialError``.
CredentialSource = Callable[[], Credential]


SERVICE_ROOT = "/redfish/v1/"
_REDIRECTS = (301, 302, 307, 308)
_MAX_REDIRECTS = 3
_NO_SESSIONS = (404, 405, 501)  # the BMC does not create sessions: Basic is the way
_MAX_ORPHANS = 4


@dataclass(frozen=True)
class ServiceRoot:
    """What the client needs of ``/redfish/v1/``: the Systems and Sessions paths."""

    systems: str | None  # None: a service without servers (a PDU), known only to discovery
    sessions: str | None  # None: the BMC has no SessionService


class SessionAuth(BmcTransport):
    """Authenticated requests (a base of ``BmcClient``, whose ``__init__`` sets this state).

    The service root is read here: it names the session collection, and some
    firmware wants credentials even for it.
    """

    auth: AuthMode
    session_retry_s: float  # after a full session table, Basic this long
    _credentials: CredentialSource
    _guard: LoginGuard
    _root: ServiceRoot | None
    _token: Secret | None
    _session_path: str | None
    _login_task: asyncio.Task[None] | None
    _basic: Secret | None  # the encoded Authorization header
    _user: str
    _basic_reason: str  # why this BMC is spoken to with Basic in auto mode
    _basic_since: float | None  # monotonic; None: for good
    _orphans: list[str]  # sessions refused once (a 401) that may still count on the BMC

    @property
    def auth_in_use(self) -> str:
        """``basic`` when so configured or fallen back to (auto mode), else ``session``."""
        no_sessions = self._root is not None and self._root.sessions is None
        return "basic" if self.auth == "basic" or self._basic_reason or no_sessions else "session"

    async def _service_root(self) -> ServiceRoot:
        if self._root is None:
            answer = await self._send("GET", SERVICE_ROOT, {}, Use())
            if answer.status == 401:
                # DSP0266 makes the root public, but some firmware wants credentials.
                answer = await self._send("GET", SERVICE_ROOT, self._basic_header(), Use())
                self._note_basic_answer(answer)
            raise_for_status(answer, "GET", SERVICE_ROOT)
            body = json_object(answer, "GET", SERVICE_ROOT)
            systems = link(body.get("Systems"))
            links = body.get("Links")
            sessions = link(links.get("Sessions")) if isinstance(links, dict) else None
            if sessions is None:
                service = link(body.get("SessionService"))
                # DSP0266 fixes the collection's place under the SessionService.
                sessions = f"{service.rstrip('/')}/Sessions" if service else None
            self._root = ServiceRoot(systems, sessions)
        return self._root

    def _use_basic(self, use: Use, note: str) -> dict[str, str]:
        use.basic = True
        use.note = note
        return self._basic_header()

    async def _authorization(self, use: Use) -> dict[str, str]:
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
            task.add_done_callback(consume_exception)
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
            answer = await self._send("POST", path, {}, Use(), body=body, login=True)
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
            raise http_error(answer, "POST", path, summary="login refused (401)")
        raise_for_status(answer, "POST", path)
        token = answer.headers.get("X-Auth-Token")
        if not token:
            raise BmcBadAnswer(f"login to {self._where} answered without an X-Auth-Token")
        self._guard.succeeded(self._base, self._user)
        location = answer.headers.get("Location")
        if location is None:
            try:
                location = link(json.loads(answer.body))
            except (ValueError, RecursionError):
                location = None
        self._token = Secret(token)
        REDACTOR.add(self._token)  # a token is a password for as long as it lives
        self._session_path = path_of(location) if location else None
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
        return path_of(location)

    async def _delete_orphans(self, token: Secret) -> None:
        """Best effort: end sessions that an earlier 401 made us abandon."""
        orphans, self._orphans = self._orphans, []
        for path in orphans:
            if path == self._session_path:
                continue
            try:
                await self._send("DELETE", path, {"X-Auth-Token": token.reveal()}, Use())
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

    def _note_basic_answer(self, answer: Answer) -> None:
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
        self, method: str, path: str, use: Use, *, body: dict[str, Any] | None = None
    ) -> Answer:
        """An authenticated request; any 401 means one new login and one more try."""
        headers = await self._authorization(use)
        answer = await self._send(method, path, headers, use, body=body)
        if answer.status == 401:
            use.sent = False  # refused unread: the BMC did not act on it
            used = headers.get("X-Auth-Token")
            if used is None:
                self._note_basic_answer(answer)
                raise http_error(
                    answer,
                    method,
                    path,
                    summary="401 with basic auth: user name or password refused",
                )
            self._drop_token(used)
            try:
                headers = await self._authorization(use)
            except BmcAuthError as exc:
                raise http_error(
                    answer, method, path, summary=f"401 after re-login ({exc.summary})"
                ) from None
            answer = await self._send(method, path, headers, use, body=body)
            if answer.status == 401:
                use.sent = False
                if "Authorization" in headers:
                    self._note_basic_answer(answer)
                raise http_error(answer, method, path, summary="401 after re-login")
        raise_for_status(answer, method, path)
        return answer


def consume_exception(task: asyncio.Task[None]) -> None:
    """A login nobody waits for any more must not log "exception never retrieved"."""
    if not task.cancelled():
        task.exception()
