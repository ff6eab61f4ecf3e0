"""The state of one simulated BMC: its systems, sessions, tasks and what it received.

A BMC usually fronts one host; a blade enclosure's BMC fronts several, one
ComputerSystem each (``Blade1``..``BladeN``). BMC-wide faults of an enclosure
are those planted on any of its blades, since they share one real BMC.
"""

from __future__ import annotations

import asyncio
import hmac
import weakref
from collections import Counter
from dataclasses import dataclass, field

from aiohttp import BasicAuth, web

from pacs_tui.sim.faults import HostFaults
from pacs_tui.sim.host import SimulatedHost
from pacs_tui.sim.redfish_flavour import (
    BmcFlavour,
    FlavourProfile,
    FlavourTimings,
    profile,
    system_id,
    system_view,
)
from pacs_tui.sim.redfish_sessions import SessionTable
from pacs_tui.sim.redfish_tasks import TaskList


@dataclass(frozen=True)
class Credentials:
    """The one account every simulated BMC accepts."""

    username: str
    password: str = field(repr=False)

    def matches(self, username: str, password: str) -> bool:
        """True for the right user name and password (constant-time compare)."""
        user_ok = hmac.compare_digest(username.encode(), self.username.encode())
        password_ok = hmac.compare_digest(password.encode(), self.password.encode())
        return user_ok and password_ok


@dataclass
class SimulatedBmc:
    """One BMC: the hosts behind it, sessions, tasks, listener and request counters."""

    hosts: list[SimulatedHost]  # one, or an enclosure's blades in slot order
    base_flavour: BmcFlavour
    credentials: Credentials
    sessions: SessionTable
    tasks: TaskList
    timings: FlavourTimings = field(default_factory=FlavourTimings)
    session_timeout_s: float = 600.0  # the idle timeout when the flavour sets none
    reachable: bool = True
    site: web.TCPSite | None = None
    # Open connections, so an unreachable BMC can drop its keep-alive clients.
    connections: weakref.WeakSet[asyncio.Transport] = field(default_factory=weakref.WeakSet)
    # What arrived, counted when it arrives (tests assert "exactly one reset").
    received: Counter[tuple[str, str]] = field(default_factory=Counter)
    resets: dict[str, list[str]] = field(default_factory=dict)  # host name -> ResetTypes
    # Where it listens when that is not its host's address: a spare's BMC racked in a
    # server's place manages that server's host from the spare's own address.
    address: str = ""

    @property
    def host(self) -> SimulatedHost:
        """The host behind the BMC (an enclosure's first blade)."""
        return self.hosts[0]

    @property
    def listen_address(self) -> str:
        """The address the BMC answers on: its own, else its first host's."""
        return self.address or self.hosts[0].address

    @property
    def faults(self) -> HostFaults:
        """The BMC-wide faults: the host's own, or any blade's in an enclosure."""
        if len(self.hosts) == 1:
            return self.hosts[0].faults
        return HostFaults.merged(h.faults for h in self.hosts)

    @property
    def flavour(self) -> BmcFlavour:
        """The flavour now: a ``bmc_flavour`` fault overrides the built-in one,
        except on an enclosure, whose addressing cannot change at run time."""
        planted = self.faults.bmc_flavour
        if planted and not profile(self.base_flavour).enclosure:
            return BmcFlavour(planted)
        return self.base_flavour

    @property
    def profile(self) -> FlavourProfile:
        """The behaviour profile of the current flavour."""
        return profile(self.flavour)

    def sync_session_timeout(self) -> None:
        """Apply the flavour's idle timeout (html-401 BMCs drop sessions fast)."""
        fast = self.timings.html_401_session_timeout_s
        self.sessions.idle_timeout_s = fast if self.profile.html_401 else self.session_timeout_s

    def system_ids(self) -> list[str]:
        """The ComputerSystem ids, in slot order."""
        p = self.profile
        return [system_id(p, i) for i in range(len(self.hosts))]

    def system(self, sid: str) -> tuple[SimulatedHost, FlavourProfile] | None:
        """The host behind system ``sid`` and the profile as that system sees it."""
        p = self.profile
        for index, host in enumerate(self.hosts):
            if system_id(p, index) == sid:
                return host, system_view(p, index)
        return None

    def record_reset(self, host: SimulatedHost, reset_type: str) -> None:
        """Count a ResetType POSTed to ``host``'s system (whatever the answer)."""
        self.resets.setdefault(host.name, []).append(reset_type)

    def authorised(self, request: web.Request) -> bool:
        """True when the request carries a live session token or valid basic auth."""
        if self.faults.bmc_401:
            return False
        token = request.headers.get("X-Auth-Token")
        if token is not None:
            return self.sessions.authenticate(token) is not None
        header = request.headers.get("Authorization")
        if header is None:
            return False
        try:
            basic = BasicAuth.decode(header)
        except ValueError:
            return False
        return self.credentials.matches(basic.login, basic.password)
