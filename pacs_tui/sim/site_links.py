"""The hospitals' and clinics' WAN links: a gateway AE per site behind a link with latency and loss.

Each hospital and clinic gets an address of its own (``127.OCTET.251.N``)
where its link ends:

- the DICOM port is a relay (the link) in front of the site's gateway AE,
  a ``DicomResponder`` answering C-ECHO and Study Root C-FIND (it holds no
  studies: every query gets Success with no match, which is what the
  preflight's probe query expects anyway);
- the TCP port stands for the site router's management port: it accepts
  and closes.

The relay injects the link's faults into everything that crosses it: each
chunk waits half the link's latency in each direction (so one request and
its answer take one round trip more), and each new connection is reset at
once with probability ``loss_percent`` (a lost sample fails at once instead
of after the client's timeout, which keeps tests short). A link that is
down closes both ports: connections are refused. On loopback the kernel
completes TCP handshakes itself, so the injected latency shows in the DICOM
exchanges (C-ECHO ≈ 2 × latency: A-ASSOCIATE and C-ECHO) and never in a TCP
connect time, which stays below a millisecond.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
from dataclasses import dataclass, fields
from typing import Any

from pydicom.dataset import Dataset

from pacs_tui.dicom.responder import DicomResponder
from pacs_tui.sim.listen import open_listener

LINK_THIRD_OCTET = 251  # servers use 127.OCTET.0-249.x (fleet.server_address)
HOSPITAL_LATENCY_MS = 2.0
CLINIC_LATENCY_MS = 4.0
LINK_NAME = "wan-1"
_CHUNK = 65536


@dataclass
class LinkFaults:
    """Fault switches of one site's link; all off by default."""

    link_down: bool = False  # both ports closed: connections refused
    link_latency_ms: float = 0.0  # >0: the link's round-trip latency becomes this
    link_loss_percent: float = 0.0  # share of new connections reset at once

    @classmethod
    def names(cls) -> list[str]:
        """The switches' names (the control API's keys)."""
        return [f.name for f in fields(cls)]

    def update(self, changes: dict[str, Any]) -> None:
        """Apply ``changes``; ``ValueError`` naming an unknown switch or a bad value."""
        for key, value in changes.items():
            if key not in self.names():
                raise ValueError(f"unknown link fault {key!r} (known: {', '.join(self.names())})")
            if key == "link_down":
                if not isinstance(value, bool):
                    raise ValueError(f"link fault 'link_down' takes true/false, got {value!r}")
            elif isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"link fault {key!r} takes a number >= 0, got {value!r}")
            elif key == "link_loss_percent" and value > 100:
                raise ValueError(f"link fault 'link_loss_percent' takes 0..100, got {value!r}")
            setattr(self, key, value if key == "link_down" else float(value))

    def active(self) -> dict[str, Any]:
        """The switches that differ from the default."""
        default = LinkFaults()
        return {
            n: getattr(self, n) for n in self.names() if getattr(self, n) != getattr(default, n)
        }


def gateway_ae_title(site: str) -> str:
    """The gateway AE title of ``site``: ``GW`` and the site's short name, upper case."""
    short = site.split("-", 1)[-1]
    return ("GW" + short.upper().replace("-", ""))[:16]


class SiteLink:
    """One site's simulated WAN link and the gateway AE behind it."""

    def __init__(
        self,
        site: str,
        kind: str,
        *,
        address: str,
        dicom_port: int,
        tcp_port: int,
        latency_ms: float,
        seed: int = 0,
    ) -> None:
        """A link not yet listening; ``latency_ms`` is its healthy round trip."""
        self.site = site
        self.kind = kind
        self.address = address
        self.dicom_port = dicom_port
        self.tcp_port = tcp_port
        self.base_latency_ms = latency_ms
        self.ae_title = gateway_ae_title(site)
        self.faults = LinkFaults()
        self.connections = 0  # relayed connections, for tests and stats
        self.resets = 0  # connections reset as lost
        self._random = random.Random(seed)
        self.gateway = DicomResponder(self.ae_title, find=_no_studies)
        self._relay: asyncio.Server | None = None
        self._tcp: asyncio.Server | None = None
        self._relays: set[asyncio.Task[None]] = set()

    @property
    def latency_ms(self) -> float:
        """The round trip the link adds now (the fault's when set)."""
        return self.faults.link_latency_ms or self.base_latency_ms

    @property
    def up(self) -> bool:
        """True while both ports listen."""
        return self._relay is not None

    def snapshot(self) -> dict[str, Any]:
        """The link as the control API shows it."""
        return {
            "site": self.site,
            "kind": self.kind,
            "address": self.address,
            "dicom_port": self.dicom_port,
            "tcp_port": self.tcp_port,
            "ae_title": self.ae_title,
            "latency_ms": self.latency_ms,
            "up": self.up,
            "connections": self.connections,
            "resets": self.resets,
            "faults": self.faults.active(),
        }

    async def start(self) -> None:
        """Start the gateway (on an ephemeral port of the site's address) and open the link."""
        await open_listener("site gateway", self.address, 0, self.gateway.start(self.address, 0))
        if not self.faults.link_down:
            await self._open()

    async def stop(self) -> None:
        """Close the link and the gateway (idempotent)."""
        await self._close()
        await self.gateway.stop()

    async def set_faults(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Apply fault switches; a change of ``link_down`` closes or reopens the ports."""
        self.faults.update(changes)
        if self.faults.link_down and self.up:
            await self._close()
        elif not self.faults.link_down and not self.up and self.gateway.serving:
            await self._open()
        return self.faults.active()

    async def clear_faults(self) -> None:
        """Every switch off (the link reopens when it was down)."""
        self.faults = LinkFaults()
        if not self.up and self.gateway.serving:
            await self._open()

    async def _open(self) -> None:
        self._relay = await open_listener(
            "site link (DICOM)",
            self.address,
            self.dicom_port,
            asyncio.start_server(
                self._relay_one, self.address, self.dicom_port, reuse_address=True
            ),
        )
        try:
            self._tcp = await open_listener(
                "site link (TCP)",
                self.address,
                self.tcp_port,
                asyncio.start_server(
                    _accept_and_close, self.address, self.tcp_port, reuse_address=True
                ),
            )
        except BaseException:
            await self._close()
            raise

    async def _close(self) -> None:
        servers = [s for s in (self._relay, self._tcp) if s is not None]
        self._relay = self._tcp = None
        for server in servers:
            server.close()
        tasks = list(self._relays)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for server in servers:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await server.wait_closed()

    async def _relay_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._relays.add(task)
        self.connections += 1
        upstream: asyncio.StreamWriter | None = None
        try:
            if self._random.random() * 100.0 < self.faults.link_loss_percent:
                self.resets += 1
                _reset(writer)
                return
            port = self.gateway.bound_port
            if port is None:
                return
            up_reader, upstream = await asyncio.open_connection(self.address, port)
            await asyncio.gather(self._pump(reader, upstream), self._pump(up_reader, writer))
        except (OSError, asyncio.CancelledError):
            pass  # a side went away, or the link went down: the connection just drops
        finally:
            for side in (writer, upstream):
                if side is not None:
                    with contextlib.suppress(OSError, RuntimeError):
                        side.close()
            if task is not None:
                self._relays.discard(task)

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        """Copy one direction, each chunk delivered half the link's latency after it arrived."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, chunk = await queue.get()
                await asyncio.sleep(max(0.0, due - loop.time()))
                if not chunk:
                    if sink.can_write_eof():
                        sink.write_eof()
                    return
                sink.write(chunk)
                await sink.drain()

        delivering = asyncio.ensure_future(deliver())
        try:
            while True:
                chunk = await source.read(_CHUNK)
                # Read per chunk: a latency fault planted mid-association counts from now.
                queue.put_nowait((loop.time() + self.latency_ms / 2000.0, chunk))
                if not chunk:
                    break
            await delivering
        except OSError:
            # One side reset or vanished: this direction ends; the caller closes both.
            sink.close()
        finally:
            delivering.cancel()


def _no_studies(identifier: Dataset) -> list[Dataset]:
    """A gateway holds no studies: every C-FIND ends in Success with no match."""
    return []


async def _accept_and_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0): the peer sees the connection reset, as a lost link."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.close()


def link_address(octet: int, index: int) -> str:
    """The ``index``-th site's link address: ``127.OCTET.251.index+1``."""
    return f"127.{octet}.{LINK_THIRD_OCTET}.{index + 1}"


def build_site_links(
    sites: tuple[tuple[str, str], ...], *, octet: int, dicom_port: int, tcp_port: int, seed: int
) -> dict[str, SiteLink]:
    """One link per hospital and clinic: hospitals 2–4 ms, clinics 4–8 ms round trip."""
    links: dict[str, SiteLink] = {}
    edge = [(name, kind) for name, kind in sites if kind in ("hospital", "clinic")]
    for index, (name, kind) in enumerate(edge):
        latency = (
            HOSPITAL_LATENCY_MS + index % 3 if kind == "hospital" else CLINIC_LATENCY_MS + index % 5
        )
        links[name] = SiteLink(
            name,
            kind,
            address=link_address(octet, index),
            dicom_port=dicom_port,
            tcp_port=tcp_port,
            latency_ms=float(latency),
            seed=seed * 100 + index,
        )
    return links


def inventory_links(link: SiteLink) -> list[dict[str, Any]]:
    """The site's ``links:`` entry of the generated inventory."""
    return [
        {
            "name": LINK_NAME,
            "kind": "mpls" if link.kind == "hospital" else "vpn",
            "expected_latency_ms": link.base_latency_ms,
            "dicom": {"host": link.address, "port": link.dicom_port, "ae_title": link.ae_title},
            "tcp": f"{link.address}:{link.tcp_port}",
        }
    ]
