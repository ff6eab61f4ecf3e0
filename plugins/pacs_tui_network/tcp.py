"""TCP connect checks: does a port accept a connection, and how fast.

A bare non-blocking socket and ``loop.sock_connect`` keep the cost near the
kernel's (~0.3 ms CPU): no transport, no protocol, no stream objects. The
connection is closed as soon as it is made; nothing is sent.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import time
from dataclasses import dataclass
from typing import Literal

PortState = Literal["open", "refused", "timeout", "unreachable"]


@dataclass(frozen=True)
class PortOutcome:
    """What one connect attempt found."""

    state: PortState
    connect_ms: float | None = None  # set when the port is open
    reason: str = ""  # for failures: the kernel's words


async def tcp_connect(address: str, port: int, timeout_s: float) -> PortOutcome:
    """Connect to ``address:port`` (an IP literal), then close at once."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    loop = asyncio.get_running_loop()
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout_s):
                await loop.sock_connect(sock, (address, port))
        except TimeoutError:
            return PortOutcome("timeout", reason=f"no answer in {timeout_s:g} s")
        except ConnectionRefusedError:
            return PortOutcome("refused", reason="connection refused")
        except OSError as exc:
            # EHOSTUNREACH, ENETUNREACH, ...: no route, or the neighbour is gone.
            state: PortState = "timeout" if exc.errno == errno.ETIMEDOUT else "unreachable"
            return PortOutcome(state, reason=exc.strerror or str(exc))
        return PortOutcome("open", (time.perf_counter() - started) * 1000)
    finally:
        sock.close()


async def resolve_address(host: str, timeout_s: float) -> str:
    """``host`` as an IP literal: itself if it is one, else its first address.

    Raises ``OSError`` (``socket.gaierror``) when the name does not resolve.
    """
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
        return host
    except OSError:
        pass
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(timeout_s):
        infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    if not infos:
        raise socket.gaierror(f"{host} has no address")
    return str(infos[0][4][0])
