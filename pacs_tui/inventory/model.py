"""The inventory as the rest of pacs-tui sees it: validated, immutable, queryable.

Everything here was checked by ``validate``: names are unique, every
``depends_on`` target exists and there is no cycle, every site and credential
reference is declared. Credential references name where a secret lives; the
secret itself is only read by ``pacs_tui.credentials.resolve``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

SITE_KINDS = ("datacenter", "hospital", "clinic", "remote-backup")
DEFAULT_CALLING_AE_TITLE = "PACSTUI"

HttpScheme = Literal["https", "http"]
BmcAuth = Literal["auto", "session", "basic"]
DEFAULT_BMC_TIMEOUT_S = 10.0  # one request; a BMC answering in 3 s is normal
DEFAULT_BMC_LOGIN_TIMEOUT_S = 60.0  # a login we abandon may still open a session
DICOM_PORT = 104


def host_for_url(address: str) -> str:
    """``address`` as it goes into a URL (IPv6 literals get brackets)."""
    try:
        if isinstance(ipaddress.ip_address(address), ipaddress.IPv6Address):
            return f"[{address}]"
    except ValueError:
        pass
    return address


@dataclass(frozen=True)
class LinkDicom:
    """The AE at the far end of a site's link (its DICOM gateway or router AE).

    Preflight associates with it over plain TCP: C-ECHO samples (PS3.7 §9.3.5)
    and, when ``find`` is true, one Study Root C-FIND (PS3.4 C.4.1).
    """

    host: str
    ae_title: str
    port: int = DICOM_PORT
    calling_ae_title: str = DEFAULT_CALLING_AE_TITLE  # the AE title pacs-tui calls from
    find: bool = True  # false: the AE offers no Query/Retrieve, so no C-FIND is sent


@dataclass(frozen=True)
class LinkTcp:
    """A TCP port across a site's link (e.g. the site router's SSH): connect time ≈ one RTT."""

    host: str
    port: int


@dataclass(frozen=True)
class SiteLink:
    """One WAN link of a site and the endpoints that prove it (at least one of them).

    ``expected_latency_ms`` is the link's expected round-trip time in ms, as a
    TCP connect or a ping shows it. ``line`` is where it was declared.
    """

    name: str
    kind: str  # free text: wan, vpn, mpls, ...
    expected_latency_ms: float
    dicom: LinkDicom | None = None
    tcp: LinkTcp | None = None
    line: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Site:
    """A place: the data center, a hospital, a clinic, or the remote backup."""

    name: str
    kind: str  # one of SITE_KINDS
    links: tuple[SiteLink, ...] = ()  # its WAN links (hospitals and clinics, usually)


@dataclass(frozen=True)
class BmcEndpoint:
    """A server's baseboard management controller, spoken to over Redfish."""

    address: str
    port: int = 443
    scheme: HttpScheme = "https"
    verify_tls: bool = True
    ca_file: Path | None = None  # CA that signed the BMC's certificate (absolute)
    credentials: str | None = None  # name of a credential reference
    # Which ComputerSystem of the BMC this server is: a member Id ("Blade2") or
    # path; required when the BMC's Systems collection has several members.
    system: str | None = None
    auth: BmcAuth = "auto"  # auto: a Redfish session, HTTP Basic when sessions fail
    timeout_s: float = DEFAULT_BMC_TIMEOUT_S  # each request
    login_timeout_s: float = DEFAULT_BMC_LOGIN_TIMEOUT_S  # a session login
    tls_legacy: bool = False  # allow TLS 1.0/1.1 and legacy ciphers (old BMC firmware)

    @property
    def url(self) -> str:
        """Base URL, e.g. ``https://127.42.0.5:443``."""
        return f"{self.scheme}://{host_for_url(self.address)}:{self.port}"

    @property
    def controller(self) -> BmcEndpoint:
        """The endpoint without ``system``: servers of one enclosure share its client."""
        return replace(self, system=None) if self.system is not None else self


DICOM_TLS_PORT = 2762  # the well-known port of DICOM over TLS (PS3.15 Annex B.1)


@dataclass(frozen=True)
class DicomTls:
    """How pacs-tui secures a DICOM association (PS3.15 Annex B.1, Basic TLS Profile).

    Paths are absolute. ``ca_file`` None: the system trust store.
    ``cert_file`` and ``key_file`` (mode 0600) are set together or not at
    all; they are the client certificate for peers that require one.
    """

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    verify: bool = True  # False: any certificate is accepted (shown as UNVERIFIED)


@dataclass(frozen=True)
class DicomEndpoint:
    """The DICOM application entity a server offers; ``tls`` None means plain TCP."""

    host: str
    port: int = DICOM_PORT
    ae_title: str = ""
    calling_ae_title: str = DEFAULT_CALLING_AE_TITLE  # the AE title pacs-tui calls from
    tls: DicomTls | None = None


@dataclass(frozen=True)
class SshEndpoint:
    """How to log in to a server's operating system."""

    host: str
    port: int = 22
    user: str = ""
    credentials: str | None = None  # name of a credential reference; None: SSH agent
    known_hosts: Path | None = None  # absolute; None: the user's own known_hosts


@dataclass(frozen=True)
class Server:
    """One server of the inventory, defaults applied."""

    name: str
    site: str
    role: str
    rack: str | None = None
    circuit: str | None = None  # a circuit of its rack (``racks[].circuits``) it draws from
    nameplate_w: float | None = None  # the most it can draw, W (its PSUs' rating, one PSU)
    boot_peak_factor: float | None = None  # boot peak / steady draw; None: the default
    tags: tuple[str, ...] = ()
    depends_on: tuple[str, ...] = ()  # servers that must be up before this one
    services: tuple[str, ...] = ()  # systemd units that must be active
    bmc: BmcEndpoint | None = None
    dicom: DicomEndpoint | None = None
    ssh: SshEndpoint | None = None
    line: int = field(default=0, compare=False)  # where it was declared; not identity
    # Each of its own keys' line, for problems found after reading (an unknown rack).
    key_lines: Mapping[str, int] = field(default_factory=dict, compare=False, repr=False)

    def line_of(self, key: str) -> int:
        """The line of its own ``key`` (``bmc`` for the whole block); else where it starts."""
        return self.key_lines.get(key, self.line)

    def to_json(self) -> dict[str, Any]:
        """The normalized server as JSON-able data; credentials by reference name only."""
        bmc, dicom, ssh = self.bmc, self.dicom, self.ssh
        return {
            "name": self.name,
            "site": self.site,
            "role": self.role,
            "rack": self.rack,
            "circuit": self.circuit,
            "nameplate_w": self.nameplate_w,
            "boot_peak_factor": self.boot_peak_factor,
            "tags": list(self.tags),
            "depends_on": list(self.depends_on),
            "services": list(self.services),
            "bmc": None
            if bmc is None
            else {
                "address": bmc.address,
                "port": bmc.port,
                "scheme": bmc.scheme,
                "verify_tls": bmc.verify_tls,
                "ca_file": None if bmc.ca_file is None else str(bmc.ca_file),
                "credentials": bmc.credentials,
                "system": bmc.system,
                "auth": bmc.auth,
                "timeout_s": bmc.timeout_s,
                "login_timeout_s": bmc.login_timeout_s,
                "tls_legacy": bmc.tls_legacy,
            },
            "dicom": None
            if dicom is None
            else {
                "host": dicom.host,
                "port": dicom.port,
                "ae_title": dicom.ae_title,
                "calling_ae_title": dicom.calling_ae_title,
                "tls": None if dicom.tls is None else _tls_json(dicom.tls),
            },
            "ssh": None
            if ssh is None
            else {
                "host": ssh.host,
                "port": ssh.port,
                "user": ssh.user,
                "credentials": ssh.credentials,
                "known_hosts": None if ssh.known_hosts is None else str(ssh.known_hosts),
            },
        }


def _tls_json(tls: DicomTls) -> dict[str, Any]:
    def text(path: Path | None) -> str | None:
        return None if path is None else str(path)

    return {
        "ca_file": text(tls.ca_file),
        "cert_file": text(tls.cert_file),
        "key_file": text(tls.key_file),
        "verify": tls.verify,
    }


@dataclass(frozen=True)
class CredentialRef:
    """Where the secret of a named credential lives (exactly one source is set)."""

    name: str
    username: str | None = None
    password_env: str | None = None  # environment variable holding the password
    file: Path | None = None  # YAML secrets file (mode 0600): name -> {username?, password}
    key_file: Path | None = None  # SSH private key file (mode 0600)


@dataclass(frozen=True)
class Spare:
    """A spare server on the shelf (``spares:``): its own identity, no service yet.

    ``pacs-tui replace SERVER --with SPARE`` makes it take a server's place:
    the server keeps its name, role, dependencies and service endpoints; its
    serial, MACs and BMC become the spare's. ``macs`` are lower-case
    ``aa:bb:cc:dd:ee:ff``; ``line`` is where it was declared.
    """

    name: str
    serial: str
    bmc: BmcEndpoint
    model: str | None = None
    macs: tuple[str, ...] = ()
    location: str | None = None  # free text: "dc-main store room, shelf 3"
    line: int = field(default=0, compare=False)

    def to_json(self) -> dict[str, Any]:
        """The spare as JSON-able data; BMC credentials by reference name only."""
        return {
            "name": self.name,
            "serial": self.serial,
            "model": self.model,
            "macs": list(self.macs),
            "location": self.location,
            "bmc": {
                "address": self.bmc.address,
                "port": self.bmc.port,
                "scheme": self.bmc.scheme,
                "credentials": self.bmc.credentials,
            },
        }


@dataclass(frozen=True)
class Circuit:
    """A PDU circuit (branch) of a rack with its own budget, W."""

    name: str
    budget_w: float
    line: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Rack:
    """A rack of the new site (``racks:``) and the power it may draw.

    ``budget_w`` bounds the whole rack (None: only its circuits are bounded);
    each circuit bounds the servers that name it (``Server.circuit``).
    """

    name: str
    budget_w: float | None = None
    circuits: Mapping[str, Circuit] = field(default_factory=dict)
    line: int = field(default=0, compare=False)

    def to_json(self) -> dict[str, Any]:
        """The rack as JSON-able data."""
        return {
            "name": self.name,
            "budget_w": self.budget_w,
            "circuits": [{"name": c.name, "budget_w": c.budget_w} for c in self.circuits.values()],
        }


Wave = tuple[Server, ...]


@dataclass(frozen=True, eq=False)
class Inventory:
    """Every site, server and credential reference of one inventory file."""

    path: Path
    sites: Mapping[str, Site]
    servers: tuple[Server, ...]
    credentials: Mapping[str, CredentialRef]
    read_only: bool = False
    spares: Mapping[str, Spare] = field(default_factory=dict)  # by name, in file order
    racks: Mapping[str, Rack] = field(default_factory=dict)  # by name, in file order
    _by_name: dict[str, Server] = field(init=False, repr=False)
    _dependents: dict[str, list[str]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        by_name = {s.name: s for s in self.servers}
        if len(by_name) != len(self.servers):
            raise ValueError("server names must be unique")
        dependents: dict[str, list[str]] = {s.name: [] for s in self.servers}
        for server in self.servers:
            for dep in server.depends_on:
                if dep not in by_name:
                    raise ValueError(f"{server.name} depends on unknown server {dep!r}")
                dependents[dep].append(server.name)
        object.__setattr__(self, "_by_name", by_name)
        object.__setattr__(self, "_dependents", dependents)

    def __len__(self) -> int:
        return len(self.servers)

    def __iter__(self) -> Iterator[Server]:
        return iter(self.servers)

    def server(self, name: str) -> Server:
        """The server called ``name``; ``KeyError`` when there is none."""
        return self._by_name[name]

    def names(self) -> list[str]:
        """Server names in file order."""
        return [s.name for s in self.servers]

    def dependents(self, name: str) -> tuple[Server, ...]:
        """Servers that directly depend on ``name``."""
        return tuple(self._by_name[d] for d in self._dependents[name])

    def to_json(self) -> list[dict[str, Any]]:
        """Every server, normalized (what ``inventory show --json`` prints)."""
        return [s.to_json() for s in self.servers]

    def startup_waves(self, servers: Iterable[Server | str] | None = None) -> list[Wave]:
        """Power-on order: each wave depends only on earlier waves.

        With a selection, dependencies outside it count as already handled.
        Each server sits in the earliest wave possible; file order within a wave.
        """
        return self._waves(servers, upstream=lambda s: s.depends_on)

    def shutdown_waves(self, servers: Iterable[Server | str] | None = None) -> list[Wave]:
        """Power-off order: a server goes down only after everything that depends on it."""
        return self._waves(servers, upstream=lambda s: [d.name for d in self.dependents(s.name)])

    def _waves(
        self,
        servers: Iterable[Server | str] | None,
        *,
        upstream: Callable[[Server], Iterable[str]],
    ) -> list[Wave]:
        names = self.names()
        chosen = (
            set(names)
            if servers is None
            else {s if isinstance(s, str) else s.name for s in servers}
        )
        unknown = chosen.difference(names)
        if unknown:
            raise KeyError(f"unknown server(s): {', '.join(sorted(unknown))}")
        level: dict[str, int] = {}
        for start in names:
            if start not in chosen or start in level:
                continue
            # Iterative longest path: 3 000-deep chains must not hit the recursion limit.
            stack, on_path = [start], {start}
            while stack:
                top = stack[-1]
                ups = [u for u in upstream(self.server(top)) if u in chosen]
                pending = [u for u in ups if u not in level]
                if not pending:
                    level[top] = 1 + max(level[u] for u in ups) if ups else 0
                    on_path.discard(stack.pop())
                    continue
                if pending[0] in on_path:
                    raise ValueError(f"dependency cycle through {pending[0]}")
                stack.append(pending[0])
                on_path.add(pending[0])
        waves: dict[int, list[Server]] = {}
        for server in self.servers:
            if server.name in chosen:
                waves.setdefault(level[server.name], []).append(server)
        return [tuple(waves[i]) for i in sorted(waves)]
