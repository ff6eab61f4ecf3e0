"""Bounded HTTP with a BMC: the shared session, and every answer read within limits.

A BMC is foreign firmware: its answers are read at most ``MAX_BODY`` bytes
(a declared or a trickled body over the cap is refused), a body cut off by
the peer is kept with ``Answer.cut`` (its status still counts), JSON nested
deeper than the parser's recursion limit is a ``BmcBadAnswer``, and every
URI it names is reduced to a path on the inventory's address. Errors become
``BmcError`` subclasses with the Redfish message, never aiohttp's.
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import email.utils
import errno
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from pacs_tui_redfish_power.errors import BmcAuthError, BmcBadAnswer, BmcBusy, BmcHttpError
from pacs_tui_redfish_power.messages import redfish_message

MAX_BODY = 2 * 1024 * 1024  # Redfish resources are kilobytes; a runaway body is cut here


# asyncio gives every TLS connection a 256 KiB read buffer for its whole life
# (``SSLProtocol.max_size``); with thousands of kept-alive BMC connections that
# was ~85 % of the process's memory (3 000 BMCs: 860 MB), and 16 KiB still
# came to ~94 MiB. It is only how much ciphertext one read takes from the
# socket and how much plaintext one ``SSLObject.read`` returns: a longer answer
# (or a 16 KiB TLS record) is simply read in several reads, and
# Redfish bodies are a few KiB. Process-wide: it applies to every TLS
# connection of the process (also a simulator's in the same process).
TLS_READ_BUFFER = 4 * 1024


def _shrink_tls_read_buffer() -> None:
    protocol = asyncio.sslproto.SSLProtocol
    if getattr(protocol, "max_size", 0) > TLS_READ_BUFFER:
        protocol.max_size = TLS_READ_BUFFER


class OneIdleConnector(aiohttp.TCPConnector):
    """A connector that keeps at most one idle connection per BMC.

    Two requests to one BMC may still run at once (``limit_per_host``): the
    power probe's GET and the rack-power probe's, which borrows its client,
    meet at the first sweep and now and then after. aiohttp would keep both
    connections, and reuses its idle ones in turn, so neither ever expires:
    two kept-alive TLS connections per BMC for good, each ~40 KiB of the
    process (OpenSSL's state, the protocols, the read buffer). Here a
    connection released while another to the same BMC is idle is closed:
    the warm path (one GET on one open connection) is unchanged, and a
    request that meets another pays a TLS handshake, as the second
    connection's first request always did.
    """

    # aiohttp's own hook (private): typed loosely and read defensively, so that a
    # change of its signature in a later aiohttp costs the saving, not the release.
    def _release(self, key: Any, protocol: Any, *args: Any, **kwargs: Any) -> None:
        idle = getattr(self, "_conns", None)
        if isinstance(idle, dict) and idle.get(key):  # one to this BMC is idle already
            kwargs["should_close"] = True
        super()._release(key, protocol, *args, **kwargs)


def open_http_session(
    *, limit: int = 256, limit_per_host: int = 2, keepalive_s: float = 60.0
) -> aiohttp.ClientSession:
    """The shared HTTP session for many ``BmcClient``\\ s (call inside the event loop).

    ``limit_per_host`` stays at 2 because BMCs serialise requests and drop
    bursts; of those, one connection is kept alive (``OneIdleConnector``)
    for ``keepalive_s``, since a TLS handshake costs several times a GET.
    Cookies are ignored (a token is what authenticates) and proxy variables
    are not read (BMC networks are never behind the user's web proxy).
    """
    _shrink_tls_read_buffer()
    connector = OneIdleConnector(
        limit=limit, limit_per_host=limit_per_host, keepalive_timeout=keepalive_s
    )
    return aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        headers={"Accept": "application/json", "OData-Version": "4.0"},
        trust_env=False,
    )


@dataclass(frozen=True)
class Answer:
    """One HTTP answer of a BMC, its body already read within ``MAX_BODY``."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    elapsed_ms: float
    cut: bool = False  # the connection ended before the body did


def client_timeout(seconds: float) -> aiohttp.ClientTimeout:
    """A whole-request bound of ``seconds``, connecting within 80 % of it."""
    # The connect bound fires first, so a BMC we never reached is told apart
    # from one that got the request and did not answer.
    return aiohttp.ClientTimeout(total=seconds, sock_connect=seconds * 0.8)


async def read_bounded(
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


def unreadable_http(exc: aiohttp.ClientResponseError, where: str) -> str:
    """The message for an answer aiohttp could not parse (oversized header, not HTTP)."""
    text = str(exc.message or "").lower()
    if "too long" in text or "more than" in text or "too large" in text:
        return f"BMC {where} sent a header too large to read (over 8 KiB)"
    return f"BMC {where} sent an answer that is not valid HTTP"


def raise_for_status(answer: Answer, method: str, path: str) -> None:
    """Raise ``http_error`` for any status of 300 or more."""
    if answer.status < 300:
        return
    raise http_error(answer, method, path)


def http_error(answer: Answer, method: str, path: str, *, summary: str = "") -> BmcHttpError:
    """The error for a failed answer: ``BmcBusy`` (503), ``BmcAuthError`` (401), else
    ``BmcHttpError``, with the Redfish MessageId and message of its body."""
    message_id, message = error_message(answer.body)
    if answer.status == 503:
        return BmcBusy(
            method,
            path,
            retry_after(answer.headers.get("Retry-After")),
            message_id=message_id,
            message=message,
        )
    kind = BmcAuthError if answer.status == 401 else BmcHttpError
    if not summary:
        summary = f"HTTP {answer.status} from {method} {path}"
    return kind(
        answer.status, method, path, message_id=message_id, message=message, summary=summary
    )


def error_message(raw: bytes) -> tuple[str, str]:
    """``(MessageId, message)`` of a Redfish error body; ``("", "")`` when unreadable."""
    try:
        return redfish_message(json.loads(raw))
    except (ValueError, UnicodeDecodeError, RecursionError):
        return "", ""


def json_object(answer: Answer, method: str, path: str) -> dict[str, Any]:
    """The body as a JSON object; ``BmcBadAnswer`` when cut, malformed, too deep or not one."""
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


def retry_after(value: str | None) -> float | None:
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


def link(value: Any) -> str | None:
    """The path of an ``{"@odata.id": ...}`` reference, or None."""
    if isinstance(value, dict):
        target = value.get("@odata.id")
        if isinstance(target, str) and target:
            return path_of(target)
    return None


def path_of(uri: str) -> str:
    """Only the path (and query) of a URI the BMC gave us.

    A BMC's ``Location`` or ``@odata.id`` may be absolute; requests always go
    to the inventory's address, never to a host named by the BMC.
    """
    parts = urlsplit(uri)
    path = parts.path or "/"
    if not path.startswith("/"):
        path = "/" + path
    return f"{path}?{parts.query}" if parts.query else path


def connect_failure(error: OSError, where: str) -> str:
    """The message for a connection that could not be opened (refused, no route, ...)."""
    if error.errno == errno.ECONNREFUSED:
        return f"BMC refused connection ({where})"
    if error.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return f"no route to BMC {where}"
    reason = error.strerror or type(error).__name__
    return f"cannot connect to BMC {where}: {reason}"
