"""One HTTP exchange with a BMC, every failure turned into a ``BmcError``.

The bottom layer of ``BmcClient``: TLS as the inventory asks (``TlsTrust``),
the request and login timeouts, no redirect ever followed (a BMC must not
send us, or our credentials, to another host), and the body read through
``bounded_http``. ``Use`` records what one call did, so a POST that left
this process and got no answer is known to have an unknown outcome.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Mapping
from typing import Any

import aiohttp

from pacs_tui.inventory import BmcEndpoint
from pacs_tui_redfish_power.bounded_http import (
    Answer,
    connect_failure,
    read_bounded,
    unreadable_http,
)
from pacs_tui_redfish_power.errors import (
    BmcBadAnswer,
    BmcConnectFailed,
    BmcTimeout,
    BmcTlsError,
    BmcUnreachable,
)
from pacs_tui_redfish_power.trust import TlsTrust, handshake_failure


class Use:
    """What one call (a poll, a reset) ended up doing."""

    __slots__ = ("basic", "mutation", "note", "sent")

    def __init__(self, mutation: str | None = None) -> None:
        self.basic = False
        self.note = ""
        self.mutation = mutation  # the path of a state-changing POST, if any
        self.sent = False  # that POST left this process (its outcome may be unknown)


class BmcTransport:
    """Sends requests to one BMC (a base of ``BmcClient``, whose ``__init__`` sets this state)."""

    bmc: BmcEndpoint
    timeout_s: float
    login_timeout_s: float
    _http: aiohttp.ClientSession
    _trust: TlsTrust
    _timeout: aiohttp.ClientTimeout
    _login_timeout: aiohttp.ClientTimeout
    _base: str  # scheme://host:port of the inventory's address
    _where: str  # host:port, for messages
    _ssl: ssl.SSLContext | bool | None  # True for plain HTTP; set on first use

    async def _send(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        use: Use,
        *,
        body: dict[str, Any] | None = None,
        login: bool = False,
    ) -> Answer:
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
                raw, cut = await read_bounded(response, method, path)
                elapsed = (time.perf_counter() - started) * 1000
                return Answer(response.status, response.headers, raw, elapsed, cut)
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
            raise BmcConnectFailed(connect_failure(exc.os_error, self._where)) from None
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
            raise BmcBadAnswer(unreadable_http(exc, self._where)) from None
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
