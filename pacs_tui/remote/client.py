"""ServiceClient: the HTTP side of a screen attached to ``pacs-tui serve``.

Every request carries ``Authorization: Bearer <token>``; the token is a
``Secret`` and never appears in an error, a log line or a repr. Errors are
``ServiceUnavailable`` (no answer: refused, reset, timed out, TLS) or
``ServiceError`` (the service answered with an error status and its reason).
"""

from __future__ import annotations

import os
import ssl
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from pacs_tui.credentials import Secret
from pacs_tui.input_file import SECRETS, InputFileError, decode_text, read_checked
from pacs_tui.remote.sse import SseError, SseEvent, SseParser

API = "/api/v1"
TOKEN_ENV = "PACS_TUI_TOKEN"
REQUEST_TIMEOUT_S = 30.0
# A stream silent for this long is a service that hung. The service pings every 5 s
# (api.PING_INTERVAL_S); 20 s lets three pings be late on a loaded machine before the
# screen says "service unreachable" (a 15 s limit against 15 s pings flapped).
STREAM_SILENCE_S = 20.0


class ServiceUnavailable(ConnectionError):
    """The service did not answer (refused, reset, timed out, TLS failure)."""


class ServiceError(Exception):
    """The service answered with an error: ``status`` and its ``reason``."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status}: {reason}")
        self.status = status
        self.reason = reason


def check_url(url: str) -> str:
    """``url`` without a trailing slash; ValueError when it is not http(s)://host[:port]."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http:// or https:// URL of a pacs-tui service")
    if parts.path not in ("", "/") or parts.query:
        raise ValueError(f"{url!r}: give the service's base URL only (no path)")
    return url.rstrip("/")


def load_token(token_file: Path | None) -> Secret:
    """The bearer token from ``token_file`` (first line) or ``$PACS_TUI_TOKEN``.

    ValueError says which is missing or empty; the token itself is never shown.
    """
    if token_file is not None:
        try:
            data, info = read_checked(token_file, SECRETS)
            text = decode_text(data, token_file).strip()
        except InputFileError as exc:
            raise ValueError(str(exc)) from None
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:  # as for the service's tokens file: a token others can read is spent
            raise ValueError(
                f"{token_file}: mode {mode:04o} lets others read the token; chmod 600 {token_file}"
            )
        if not text:
            raise ValueError(f"{token_file}: the token file is empty")
        return Secret(text.splitlines()[0].strip())
    value = os.environ.get(TOKEN_ENV, "").strip()
    if not value:
        raise ValueError(f"no token: give --token-file FILE or set ${TOKEN_ENV}")
    return Secret(value)


class ServiceClient:
    """One service's API, over one aiohttp session (opened by ``open``)."""

    def __init__(self, url: str, token: Secret, *, ca_file: Path | None = None) -> None:
        self.url = check_url(url)
        self._token = token
        self._ca_file = ca_file
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"ServiceClient({self.url!r})"

    async def open(self) -> None:
        """Open the HTTP session (on the running loop)."""
        if self._session is None:
            ssl_context: ssl.SSLContext | bool = True
            if self._ca_file is not None:
                ssl_context = ssl.create_default_context(cafile=str(self._ca_file))
            self._session = aiohttp.ClientSession(
                headers={"Authorization": f"Bearer {self._token.reveal()}"},
                connector=aiohttp.TCPConnector(ssl=ssl_context, limit=8),
            )

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("open() the client first")
        return self._session

    async def get(self, path: str, **params: str) -> Any:
        """GET ``path`` (under the base URL); the JSON answer."""
        return await self._request("GET", path, params=params or None)

    async def post(self, path: str, body: Any) -> Any:
        """POST ``body`` as JSON to ``path``; the JSON answer."""
        return await self._request("POST", path, json=body)

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
        try:
            async with self._http().request(
                method, self.url + path, timeout=timeout, **kwargs
            ) as response:
                if response.status >= 400:
                    raise ServiceError(response.status, await _reason(response))
                return await response.json()
        except ServiceError:
            raise
        except (aiohttp.ClientError, TimeoutError, ssl.SSLError, ValueError) as exc:
            raise ServiceUnavailable(f"{self.url}: {_why(exc)}") from None

    async def events(self, last_id: str | None) -> AsyncIterator[SseEvent | None]:
        """The event stream from after ``last_id`` (None: starting with a snapshot).

        Yields each event, and None for every chunk that carried only a ping,
        so the caller knows the service is alive. Ends (raising
        ``ServiceUnavailable``) when the stream breaks or stays silent for
        ``STREAM_SILENCE_S``.
        """
        headers = {"Accept": "text/event-stream"}
        if last_id is not None:
            headers["Last-Event-ID"] = last_id
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=STREAM_SILENCE_S)
        parser = SseParser()
        try:
            async with self._http().get(
                f"{self.url}{API}/events", headers=headers, timeout=timeout
            ) as response:
                if response.status >= 400:
                    raise ServiceError(response.status, await _reason(response))
                async for chunk in response.content.iter_any():
                    got = False
                    for event in parser.feed(chunk):
                        got = True
                        yield event
                    if not got:
                        yield None
        except ServiceError:
            raise
        except (aiohttp.ClientError, TimeoutError, ssl.SSLError, SseError) as exc:
            raise ServiceUnavailable(f"{self.url}: {_why(exc)}") from None
        raise ServiceUnavailable(f"{self.url}: the service closed the event stream")


async def _reason(response: aiohttp.ClientResponse) -> str:
    try:
        body = await response.json()
        return str(body.get("error", response.reason))
    except (aiohttp.ContentTypeError, ValueError, AttributeError):
        return str(response.reason)


def _why(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect ({exc.os_error.strerror or exc.os_error})"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
