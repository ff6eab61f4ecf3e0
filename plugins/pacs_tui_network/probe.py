"""The network probe: can pacs-tui reach a server's operating system at all?

It connects to the server's management ports (SSH, and DICOM when it has
one) and, when the process may send ICMP, pings the server's address over
one shared socket. TCP decides the health: a host that answers ICMP but
refuses every port is still of no use. Other probes and the scheduler rely on
this reading to tell a DOWN server from one that is UNREACHABLE behind a
failed parent; this probe only reports what it sees.

Settings (``ProbeContext.settings``):

- ``network_icmp``: ``auto`` (default; ICMP when permitted) or ``off``;
- ``network_timeout_s``: connect timeout per port (default 3 s);
- ``network_icmp_timeout_s``: how long to wait for an echo reply (default 1 s);
- ``network_ports``: ``management`` (default: the SSH port, or the DICOM port
  of a server without SSH — whether the DICOM service answers is the DICOM
  probe's fact) or ``all`` (SSH and DICOM; one refusing port is degraded).

A connect that timed out while our own event loop was late for half the timeout
or more is not the host's fault: the reading is UNKNOWN "measurement
unreliable", never DOWN (``pacs_tui.loop_lag``).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass
from typing import Any

from pacs_tui.inventory import Server
from pacs_tui.plugin_api import (
    Health,
    Probe,
    ProbeContext,
    ProbeResult,
    lag_explains_timeout,
    measure_loop_lag,
    unreliable_detail,
)
from pacs_tui_network.icmp import EchoOutcome, IcmpUnavailable, Pinger, SocketFactory
from pacs_tui_network.tcp import PortOutcome, resolve_address, tcp_connect

log = logging.getLogger(__name__)

_OFF_WORDS = frozenset({"off", "no", "false", "never", "0"})
_AUTO_WORDS = frozenset({"auto", "on", "yes", "true", "1"})


@dataclass(frozen=True)
class _Target:
    """One management port of a server."""

    label: str  # "ssh" or "dicom"
    host: str
    port: int


def icmp_enabled(value: Any) -> bool:
    """Whether the ``network_icmp`` setting allows ICMP (YAML's ``off`` arrives as False)."""
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in _OFF_WORDS:
        return False
    if word not in _AUTO_WORDS:
        log.warning("network_icmp: unknown value %r, using 'auto'", value)
    return True


def management_targets(server: Server, *, all_ports: bool = True) -> list[_Target]:
    """The ports the probe connects to: SSH first (it decides), then DICOM."""
    targets = []
    if server.ssh is not None:
        targets.append(_Target("ssh", server.ssh.host, server.ssh.port))
    if server.dicom is not None and (all_ports or not targets):
        targets.append(_Target("dicom", server.dicom.host, server.dicom.port))
    return targets


class NetworkProbe(Probe):
    """TCP connect to the management ports, plus ICMP echo when permitted."""

    name = "network"
    interval_s = 5.0
    timeout_s = 3.0  # per TCP connect

    def __init__(self, *, icmp_socket_factory: SocketFactory = socket.socket) -> None:
        """A probe for the whole fleet; ``icmp_socket_factory`` is a seam for tests."""
        self._socket_factory = icmp_socket_factory
        self._opened = False
        self._pinger: Pinger | None = None
        self._no_icmp_reason = ""
        self._icmp_timeout_s = 1.0
        self._all_ports = False

    async def open(self, context: ProbeContext) -> None:
        """Read the settings and open the ICMP socket if allowed and permitted."""
        await self._open(context.settings)

    async def _open(self, settings: Any) -> None:
        self._opened = True
        ports = str(settings.get("network_ports", "management")).strip().lower()
        if ports not in ("management", "all"):
            raise ValueError(f"network_ports: expected 'management' or 'all', got {ports!r}")
        self._all_ports = ports == "all"
        self.timeout_s = float(settings.get("network_timeout_s", type(self).timeout_s))
        self._icmp_timeout_s = min(
            float(settings.get("network_icmp_timeout_s", 1.0)), self.timeout_s
        )
        if not icmp_enabled(settings.get("network_icmp", "auto")):
            self._no_icmp_reason = "ICMP off (setting network_icmp)"
            return
        try:
            self._pinger = await Pinger.create(self._socket_factory)
        except IcmpUnavailable as exc:
            self._no_icmp_reason = f"ICMP not permitted: {exc}"
            log.info("network probe uses TCP only: %s", self._no_icmp_reason)

    async def close(self) -> None:
        """Close the ICMP socket."""
        if self._pinger is not None:
            self._pinger.close()
            self._pinger = None

    @property
    def method(self) -> str:
        """``icmp+tcp`` when echoes are sent, else ``tcp``."""
        return "icmp+tcp" if self._pinger is not None else "tcp"

    def applies_to(self, server: Server) -> bool:
        """Servers with an operating system address: an SSH or DICOM endpoint."""
        return server.ssh is not None or server.dicom is not None

    def endpoint(self, server: Server) -> str:
        """``host:ADDRESS``: servers sharing an address share the cap."""
        return f"host:{management_targets(server)[0].host}"

    async def probe(self, server: Server) -> ProbeResult:
        """Connect to each management port (and ping) at once; judge by TCP."""
        if not self._opened:
            await self._open({})
        targets = management_targets(server, all_ports=self._all_ports)
        try:
            addresses = [await resolve_address(t.host, self.timeout_s) for t in targets]
        except (OSError, TimeoutError) as exc:
            return ProbeResult.make(
                "unreachable",
                Health.DOWN,
                detail=f"cannot resolve {targets[0].host}: {exc}",
                method="tcp",
                address=targets[0].host,
            )
        connects = [
            tcp_connect(a, t.port, self.timeout_s) for a, t in zip(addresses, targets, strict=True)
        ]
        with measure_loop_lag() as lag:
            echo, outcomes = await asyncio.gather(
                self._echo(addresses[0]), asyncio.gather(*connects)
            )
        result = self._judge(addresses[0], targets, outcomes, echo)
        if any(o.state == "timeout" for o in outcomes) and lag_explains_timeout(
            lag.late_ms, self.timeout_s
        ):
            return ProbeResult.unreliable(
                result.state,
                unreliable_detail(lag.late_ms, f"the connects ({result.detail})"),
                lag.late_ms,
                **result.facts,
            )
        return result

    async def _echo(self, address: str) -> EchoOutcome | str:
        """The echo outcome, or why no echo was sent."""
        if self._pinger is None:
            return self._no_icmp_reason
        if ":" in address:
            return "ICMP skipped: IPv6 address"
        return await self._pinger.echo(address, self._icmp_timeout_s)

    def _judge(
        self,
        address: str,
        targets: list[_Target],
        outcomes: list[PortOutcome],
        echo: EchoOutcome | str,
    ) -> ProbeResult:
        ports = {f"{t.label} {t.port}": o.state for t, o in zip(targets, outcomes, strict=True)}
        parts = [_describe(t, o) for t, o in zip(targets, outcomes, strict=True)]
        method = "tcp"
        icmp_ms: float | None = None
        if isinstance(echo, EchoOutcome):
            method = "icmp+tcp"
            assert self._pinger is not None
            icmp_ms = echo.rtt_ms
            icmp_part = (
                f"echo {echo.rtt_ms:.2f} ms ({self._pinger.method})"
                if echo.rtt_ms is not None
                else f"{echo.detail} ({self._pinger.method})"
            )
            detail = f"{method}: {icmp_part}; {', '.join(parts)}"
            icmp_word = echo.detail
        else:
            detail = f"{method}: {', '.join(parts)}; {echo}"
            icmp_word = echo
        open_ms = [o.connect_ms for o in outcomes if o.state == "open"]
        latency = icmp_ms if icmp_ms is not None else (open_ms[0] if open_ms else None)
        if len(open_ms) == len(outcomes):
            state, health = "ok", Health.OK
        elif open_ms:
            state, health = "degraded", Health.DEGRADED
        else:
            # An echo reply alone does not make the host usable; its RTT stays in facts.
            state, health, latency = outcomes[0].state, Health.DOWN, None
        return ProbeResult.make(
            state,
            health,
            latency_ms=latency,
            detail=detail,
            method=method,
            address=address,
            ports=ports,
            icmp=icmp_word,
            icmp_ms=icmp_ms,
        )


def _describe(target: _Target, outcome: PortOutcome) -> str:
    where = f"{target.label} {target.port}"
    if outcome.state == "open" and outcome.connect_ms is not None:
        return f"{where} open {outcome.connect_ms:.2f} ms"
    if outcome.state == "refused":
        return f"{where} refused"
    return f"{where} {outcome.state} ({outcome.reason})"
