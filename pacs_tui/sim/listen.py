"""Opening the simulator's listeners: a port that is taken is one clear error.

``asyncio`` reports a failed bind as a bare ``OSError`` whose text depends on
the call site; the simulator turns it into :class:`ListenError`, naming the
service, the address and port, and the reason, so ``pacs-tui sim`` can print
one line (or move to other addresses) instead of a traceback.
"""

from __future__ import annotations

import errno
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


class ListenError(OSError):
    """A simulated service could not listen on ``address:port``.

    ``in_use`` is True when another process (often a second simulator) holds
    the address, the one case where other addresses may work.
    """

    def __init__(self, service: str, address: str, port: int, cause: OSError) -> None:
        self.service = service
        self.address = address
        self.port = port
        self.in_use = cause.errno == errno.EADDRINUSE
        reason = "address already in use" if self.in_use else (cause.strerror or str(cause)).lower()
        self.reason = reason
        super().__init__(cause.errno, f"cannot listen on {address}:{port} ({service}): {reason}")

    def __str__(self) -> str:
        return str(self.args[1])


async def open_listener(service: str, address: str, port: int, start: Awaitable[T]) -> T:
    """Await ``start`` (a bind on ``address:port``); a failed bind raises :class:`ListenError`."""
    try:
        return await start
    except ListenError:
        raise
    except OSError as exc:
        raise ListenError(service, address, port, exc) from None
