"""The fleet as the rest of pacs-tui sees it: validated, immutable, queryable.

Everything here is already checked (see ``schema``): names are unique,
dependencies exist and have no cycle, every DICOM server has an AE title.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from pacs_tui.credentials import CredentialSet
from pacs_tui.inventory.problems import Problem, SourceLocation

HttpScheme = Literal["https", "http"]


def host_for_url(address: str) -> str:
    """``address`` as it goes into a URL authority (IPv6 literals get brackets)."""
    try:
        if isinstance(ipaddress.ip_address(address), ipaddress.IPv6Address):
            return f"[{address}]"
    except ValueError:
        pass
    return address


@dataclass(frozen=True)
class BmcAccess:
    """How to reach a server's baseboard management controller over Redfish."""

    address: str
    port: int = 443
    scheme: HttpScheme = "https"
    credentials: str | None = None  # name of a credential set of the fleet
    verify_tls: bool = True
    ca_file: Path | None = None  # CA bundle that signed the BMC's certificate
    fingerprint: str | None = None  # pinned SHA-256 of the certificate, lowercase hex
    system_path: str | None = None  # e.g. /redfish/v1/Systems/1; None: discover it

    @property
    def url(self) -> str:
        """The BMC's base URL, e.g. ``https://10.21.0.11:443``."""
        return f"{self.scheme}://{host_for_url(self.address)}:{self.port}"


@dataclass(frozen=True)
class DicomAccess:
    """The DICOM application entity a server offers (on the server's address)."""

    ae_title: str
    port: int = 104
    calling_ae: str = "PACS_TUI"  # the AE title pacs-tui presents when it calls


@dataclass(frozen=True)
class SshAccess:
    """How to log in to a server's operating system (on the server's address)."""

    port: int = 22
    credentials: str | None = None  # name of a credential set of the fleet
    known_hosts: Path | None = None  # None: the user's ~/.ssh/known_hosts


@dataclass(frozen=True)
class Site:
    """A place servers live or serve: the data center, a hospital, a clinic."""

    name: str
    kind: str = "site"  # datacenter, hospital, clinic, ... (free text)
    description: str = ""


@dataclass(frozen=True)
class Server:
    """One server of the inventory."""

    name: str
    role: str
    site: str
    address: str  # host name or IP of the operating system (SSH, DICOM, TCP checks)
    services: tuple[str, ...] = ()  # systemd units that must be active
    depends_on: tuple[str, ...] = ()  # servers that must be up before this one
    bmc: BmcAccess | None = None
    dicom: DicomAccess | None = None
    ssh: SshAccess | None = None
    tags: frozenset[str] = frozenset()
    rack: str = ""  # rack position after the move, e.g. R12-U20
    # Where the server was declared; not part of its identity.
    location: SourceLocation = field(default=SourceLocation("<memory>"), compare=False)

    @property
    def speaks_dicom(self) -> bool:
        """True when the server offers a DICOM AE that probes can C-ECHO."""
        return self.dicom is not None


Wave = tuple[Server, ...]


class Fleet:
    """Every server, site and credential set of one inventory, in file order."""

    def __init__(
        self,
        servers: Iterable[Server],
        *,
        sites: Iterable[Site] = (),
        credentials: Iterable[CredentialSet] = (),
        warnings: Iterable[Problem] = (),
        sources: Iterable[Path] = (),
    ) -> None:
        self._servers = tuple(servers)
        self._by_name = {s.name: s for s in self._servers}
        if len(self._by_name) != len(self._servers):
            raise ValueError("server names must be unique")
        known_sites = {site.name: site for site in sites}
        for server in self._servers:  # a site only named by servers still exists
            known_sites.setdefault(server.site, Site(server.site))
        self._sites = MappingProxyType(known_sites)
        self._credentials = MappingProxyType({c.name: c for c in credentials})
        self.warnings: tuple[Problem, ...] = tuple(warnings)
        self.sources: tuple[Path, ...] = tuple(sources)
        self._dependents: dict[str, list[str]] = {s.name: [] for s in self._servers}
        for server in self._servers:
            for dep in server.depends_on:
                if dep not in self._by_name:
                    raise ValueError(f"{server.name} depends on unknown server {dep!r}")
                self._dependents[dep].append(server.name)

    # -- lookup -----------------------------------------------------------------

    @property
    def servers(self) -> tuple[Server, ...]:
        """All servers in inventory order."""
        return self._servers

    @property
    def sites(self) -> Mapping[str, Site]:
        """Sites by name (declared ones first, then any only named by a server)."""
        return self._sites

    @property
    def credentials(self) -> Mapping[str, CredentialSet]:
        """Credential sets by name (references only; resolve them with a resolver)."""
        return self._credentials

    def __len__(self) -> int:
        return len(self._servers)

    def __iter__(self) -> Iterator[Server]:
        return iter(self._servers)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __getitem__(self, name: str) -> Server:
        return self._by_name[name]

    def get(self, name: str) -> Server | None:
        """The server called ``name``, or None."""
        return self._by_name.get(name)

    def roles(self) -> list[str]:
        """Roles present, in order of first appearance."""
        return list(dict.fromkeys(s.role for s in self._servers))

    def select(
        self,
        *,
        role: str | None = None,
        site: str | None = None,
        tag: str | None = None,
        names: Iterable[str] | None = None,
    ) -> tuple[Server, ...]:
        """Servers matching every given criterion, in inventory order."""
        wanted = None if names is None else set(names)
        return tuple(
            s
            for s in self._servers
            if (role is None or s.role == role)
            and (site is None or s.site == site)
            and (tag is None or tag in s.tags)
            and (wanted is None or s.name in wanted)
        )

    def bmc_credentials(self, server: Server) -> CredentialSet | None:
        """The credential set the server's BMC uses, if any."""
        return self._credential_set(server.bmc.credentials if server.bmc else None)

    def ssh_credentials(self, server: Server) -> CredentialSet | None:
        """The credential set SSH logins to the server use, if any."""
        return self._credential_set(server.ssh.credentials if server.ssh else None)

    def _credential_set(self, name: str | None) -> CredentialSet | None:
        return None if name is None else self._credentials.get(name)

    # -- dependencies -----------------------------------------------------------

    def dependencies(self, name: str) -> tuple[Server, ...]:
        """Servers ``name`` directly depends on."""
        return tuple(self._by_name[d] for d in self._by_name[name].depends_on)

    def dependents(self, name: str) -> tuple[Server, ...]:
        """Servers that directly depend on ``name``."""
        return tuple(self._by_name[d] for d in self._dependents[name])

    def startup_waves(self, servers: Iterable[Server | str] | None = None) -> list[Wave]:
        """Power-on order: each wave depends only on earlier waves.

        With a selection, dependencies outside it are taken as already handled.
        Within a wave, servers keep inventory order.
        """
        return self._waves(servers, upstream=lambda s: s.depends_on)

    def shutdown_waves(self, servers: Iterable[Server | str] | None = None) -> list[Wave]:
        """Power-off order: a server goes down only after everything that depends on it.

        Each server is placed as early as possible, so a leaf with no
        dependents is in the first wave even when its dependencies are deep.
        """
        return self._waves(servers, upstream=lambda s: tuple(self._dependents[s.name]))

    def _waves(
        self,
        servers: Iterable[Server | str] | None,
        *,
        upstream: Callable[[Server], Iterable[str]],
    ) -> list[Wave]:
        if servers is None:
            chosen = set(self._by_name)
        else:
            chosen = {s if isinstance(s, str) else s.name for s in servers}
            unknown = chosen - self._by_name.keys()
            if unknown:
                raise KeyError(f"unknown server(s): {', '.join(sorted(unknown))}")
        level: dict[str, int] = {}

        def depth(name: str) -> int:
            # Iterative longest path; the schema rejects cycles, the guard keeps it honest.
            stack, on_path = [name], {name}
            while stack:
                top = stack[-1]
                pending = [
                    u for u in upstream(self._by_name[top]) if u in chosen and u not in level
                ]
                if not pending:
                    ups = [level[u] for u in upstream(self._by_name[top]) if u in chosen]
                    level[top] = 1 + max(ups) if ups else 0
                    on_path.discard(stack.pop())
                    continue
                for u in pending:
                    if u in on_path:
                        raise ValueError(f"dependency cycle through {u}")
                stack.append(pending[0])
                on_path.add(pending[0])
            return level[name]

        waves: dict[int, list[Server]] = {}
        for server in self._servers:
            if server.name in chosen:
                waves.setdefault(depth(server.name), []).append(server)
        return [tuple(waves[i]) for i in sorted(waves)]
