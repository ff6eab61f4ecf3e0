"""ICMP echo over one shared socket, when the process is allowed to send it.

Linux offers two ways: an unprivileged "ping socket" (``SOCK_DGRAM`` with
``IPPROTO_ICMP``), allowed when the process's group is inside
``net.ipv4.ping_group_range``, and a raw socket, which needs root or
``CAP_NET_RAW``. ``Pinger.create`` tries them in that order and, when neither
is allowed, raises ``IcmpUnavailable`` with a reason an operator can act on.

One socket serves every echo of the fleet: replies are matched to requests
by identifier, sequence number and a per-socket nonce, so a sweep of 300
servers costs 300 small datagrams and no extra file descriptors.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

ECHO_REQUEST = 8
ECHO_REPLY = 0
# ICMP errors that carry the start of our request: the address cannot be reached.
_DEST_UNREACHABLE = 3
_TIME_EXCEEDED = 11
_HEADER = struct.Struct("!BBHHH")  # type, code, checksum, identifier, sequence
_NONCE_BYTES = 8
_PING_GROUP_RANGE = Path("/proc/sys/net/ipv4/ping_group_range")
# A sweep sends hundreds of echoes at once and the replies arrive together (on
# loopback a raw socket also sees its own requests); the default ~200 KiB
# receive buffer drops most of 300. The kernel caps this at net.core.rmem_max.
_RECEIVE_BUFFER_BYTES = 4 * 1024 * 1024

SocketFactory = Callable[[int, int, int], socket.socket]
SocketKind = Literal["ping", "raw"]


class IcmpUnavailable(Exception):
    """This process may not send ICMP; the message says why."""


@dataclass(frozen=True)
class EchoOutcome:
    """The answer to one echo request: a reply with its round trip, or why none came."""

    replied: bool
    rtt_ms: float | None
    detail: str  # "echo reply", "no echo reply in 1.0 s", "host unreachable", ...


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of ``data``."""
    if len(data) % 2:
        data += b"\0"
    total = sum(int(word) for word in struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def echo_request(identifier: int, sequence: int, payload: bytes) -> bytes:
    """An ICMP echo request packet (header and payload, checksummed)."""
    header = _HEADER.pack(ECHO_REQUEST, 0, 0, identifier, sequence)
    packet_sum = checksum(header + payload)
    return _HEADER.pack(ECHO_REQUEST, 0, packet_sum, identifier, sequence) + payload


def _ping_group_reason() -> str:
    try:
        low, high = _PING_GROUP_RANGE.read_text().split()
    except (OSError, ValueError):
        return "ping sockets are not permitted"
    return f"ping_group_range {low} {high} excludes group {os.getegid()}"


def open_icmp_socket(factory: SocketFactory = socket.socket) -> tuple[socket.socket, SocketKind]:
    """A non-blocking ICMP socket: a ping socket if allowed, else a raw one.

    Raises ``IcmpUnavailable`` naming what forbids both.
    """
    try:
        sock = factory(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
        kind: SocketKind = "ping"
    except OSError as ping_error:
        ping_reason = (
            _ping_group_reason()
            if isinstance(ping_error, PermissionError)
            else f"ping socket: {ping_error.strerror or ping_error}"
        )
        try:
            sock = factory(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
            kind = "raw"
        except PermissionError:
            raise IcmpUnavailable(
                f"{ping_reason}; a raw socket needs root or CAP_NET_RAW"
            ) from None
        except OSError as raw_error:
            raise IcmpUnavailable(
                f"{ping_reason}; raw socket: {raw_error.strerror or raw_error}"
            ) from None
    sock.setblocking(False)
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RECEIVE_BUFFER_BYTES)
    return sock, kind


class Pinger:
    """Sends ICMP echo requests over one socket and matches their replies."""

    def __init__(self, sock: socket.socket, kind: SocketKind) -> None:
        """Wrap an open non-blocking ICMP socket; most callers want :meth:`create`."""
        self._sock = sock
        self.kind: SocketKind = kind
        # A ping socket's identifier is rewritten by the kernel (it demultiplexes
        # replies itself); a raw socket sees every ICMP packet of the host, so
        # ours carry a random identifier to tell them apart from other pingers'.
        self._identifier = random.getrandbits(16)
        self._nonce = os.urandom(_NONCE_BYTES)
        self._sequence = random.getrandbits(16)
        self._pending: dict[int, tuple[str, asyncio.Future[float]]] = {}
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(sock.fileno(), self._on_readable)

    @classmethod
    async def create(cls, factory: SocketFactory = socket.socket) -> Pinger:
        """Open the ICMP socket (``IcmpUnavailable`` when not permitted)."""
        sock, kind = open_icmp_socket(factory)
        return cls(sock, kind)

    @property
    def method(self) -> str:
        """How echoes are sent, for details: ``ping socket`` or ``raw socket``."""
        return f"{self.kind} socket"

    async def echo(self, address: str, timeout_s: float) -> EchoOutcome:
        """Send one echo request to IPv4 ``address``; wait up to ``timeout_s`` for the reply."""
        sequence = self._next_sequence()
        future: asyncio.Future[float] = self._loop.create_future()
        self._pending[sequence] = (address, future)
        packet = echo_request(self._identifier, sequence, self._nonce)
        try:
            started = time.perf_counter()
            try:
                self._sock.sendto(packet, (address, 0))
            except BlockingIOError:
                return EchoOutcome(False, None, "ICMP send buffer full")
            except OSError as exc:
                return EchoOutcome(False, None, f"ICMP send failed: {exc.strerror or exc}")
            try:
                async with asyncio.timeout(timeout_s):
                    replied_at = await future
            except TimeoutError:
                return EchoOutcome(False, None, f"no echo reply in {timeout_s:g} s")
            except _Unreachable as exc:
                return EchoOutcome(False, None, str(exc))
            return EchoOutcome(True, (replied_at - started) * 1000, "echo reply")
        finally:
            self._pending.pop(sequence, None)

    def close(self) -> None:
        """Stop reading and close the socket; pending echoes fail as timeouts."""
        with contextlib.suppress(ValueError, OSError):
            self._loop.remove_reader(self._sock.fileno())
        self._sock.close()

    def _next_sequence(self) -> int:
        for _ in range(0x10000):
            self._sequence = (self._sequence + 1) & 0xFFFF
            if self._sequence not in self._pending:
                return self._sequence
        raise RuntimeError("65 536 echo requests in flight")

    def _on_readable(self) -> None:
        while True:
            try:
                data, (source, _) = self._sock.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # e.g. a queued ICMP error on a ping socket; the echo times out
            self._dispatch(data, source)

    def _dispatch(self, data: bytes, source: str) -> None:
        icmp = data[_ip_header_length(data) :] if self.kind == "raw" else data
        if len(icmp) < _HEADER.size:
            return
        kind, code, _, identifier, sequence = _HEADER.unpack_from(icmp)
        if kind == ECHO_REPLY:
            if self.kind == "raw" and identifier != self._identifier:
                return  # another pinger's reply
            if icmp[_HEADER.size : _HEADER.size + _NONCE_BYTES] != self._nonce:
                return
            self._settle(sequence, source, time.perf_counter())
        elif kind in (_DEST_UNREACHABLE, _TIME_EXCEEDED) and self.kind == "raw":
            # The error quotes our request: its IP header, then the ICMP header.
            quoted = icmp[_HEADER.size :]
            inner = quoted[_ip_header_length(quoted) :]
            if len(inner) < _HEADER.size:
                return
            _, _, _, identifier, sequence = _HEADER.unpack_from(inner)
            if identifier == self._identifier and sequence in self._pending:
                _, future = self._pending[sequence]
                if not future.done():
                    reason = "unreachable" if kind == _DEST_UNREACHABLE else "TTL exceeded"
                    future.set_exception(_Unreachable(f"ICMP {reason} (code {code}) from {source}"))

    def _settle(self, sequence: int, source: str, replied_at: float) -> None:
        pending = self._pending.get(sequence)
        if pending is None:
            return
        address, future = pending
        if source == address and not future.done():
            future.set_result(replied_at)


class _Unreachable(Exception):
    """An ICMP error answered our echo request."""


def _ip_header_length(packet: bytes) -> int:
    """Length of the IPv4 header at the start of ``packet`` (0 if there is none)."""
    if not packet or packet[0] >> 4 != 4:
        return 0
    return (packet[0] & 0x0F) * 4
