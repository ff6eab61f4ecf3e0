"""The shape of a simulated PACS data center: sites, servers, roles, dependencies.

A pure function of (size, seed, address octet, BMC mix), so the same fleet
comes back for the same arguments: a test, the demo and a rehearsal can all
rebuild it. Servers drawn as ``blade-enclosure`` share one enclosure BMC with
up to three rack neighbours of that flavour, on the first blade's address.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from pacs_tui.roles import ROLES
from pacs_tui.sim.host import HardwareFacts
from pacs_tui.sim.redfish_flavour import BASE_FLAVOUR, ENCLOSURE_SIZE, BmcFlavour

HOSPITALS = (
    "hosp-northgate",
    "hosp-riverside",
    "hosp-st-anne",
    "hosp-lakeside",
    "hosp-westfield",
    "hosp-children",
)
CLINICS = (
    "clinic-oakwood",
    "clinic-harbour",
    "clinic-millbrook",
    "clinic-eastgate",
    "clinic-pinehill",
    "clinic-southport",
    "clinic-kingsway",
    "clinic-elmstead",
    "clinic-brookfield",
    "clinic-fairview",
    "clinic-ashford",
    "clinic-redcliff",
    "clinic-summit",
)
DATACENTER = "dc-main"
REMOTE_BACKUP = "dc-backup"
RACK_SIZE = 20

# Share of the data-center servers per role (after edge gateways and backup).
ROLE_WEIGHTS = (
    ("storage", 0.14),
    ("database", 0.10),
    ("archive", 0.10),
    ("image-manager", 0.14),
    ("dicom-router", 0.14),
    ("web-viewer", 0.26),
    ("ris-integration", 0.12),
)
NAME_PREFIX = {
    "storage": "stor",
    "database": "db",
    "archive": "arch",
    "image-manager": "img",
    "dicom-router": "rtr",
    "web-viewer": "web",
    "ris-integration": "ris",
}


# Each plain flavour belongs to one (fictional) vendor, so hardware facts stay
# consistent; a behaviour flavour keeps its base flavour's vendor (BASE_FLAVOUR).
VENDORS = {
    BmcFlavour.GENERIC: ("Meridian Compute", "MC-R640", "2.14.1"),
    BmcFlavour.NO_GRACEFUL_RESTART: ("Halvard Systems", "HS-2U-88", "4.02"),
    BmcFlavour.STRICT_STATE: ("Quillon Servers", "Q-Rack 7", "1.9.7"),
    BmcFlavour.TASK_MONITOR: ("Torvik Data", "TD-740xd", "6.10.30.00"),
    BmcFlavour.BLADE_ENCLOSURE: ("Stellan Blade Systems", "SB-480 Blade", "3.2.1"),
}
# Today's fleet: the four plain flavours only (``--bmc-mix`` adds the others).
DEFAULT_MIX: tuple[tuple[BmcFlavour, float], ...] = (
    (BmcFlavour.GENERIC, 0.4),
    (BmcFlavour.NO_GRACEFUL_RESTART, 0.2),
    (BmcFlavour.STRICT_STATE, 0.2),
    (BmcFlavour.TASK_MONITOR, 0.2),
)
FLAVOUR_WEIGHTS = tuple(w for _, w in DEFAULT_MIX)


@dataclass(frozen=True)
class SimServer:
    """One server of the simulated fleet, as the simulator builds it."""

    name: str
    site: str
    role: str
    rack: str | None
    address: str
    depends_on: tuple[str, ...]
    tags: tuple[str, ...]
    ae_title: str | None
    flavour: BmcFlavour
    hardware: HardwareFacts
    bmc_address: str = ""  # "" : the server's own address; a blade: its enclosure's
    bmc_system: str | None = None  # a blade's ComputerSystem Id (Blade1..) on that BMC

    @property
    def bmc_host(self) -> str:
        """Where this server's BMC answers."""
        return self.bmc_address or self.address

    @property
    def units(self) -> tuple[str, ...]:
        """The systemd units this server runs."""
        return ROLES[self.role].units

    @property
    def speaks_dicom(self) -> bool:
        """Whether this server runs a DICOM service."""
        return ROLES[self.role].speaks_dicom


@dataclass(frozen=True)
class SimFleet:
    """Sites and servers of one simulated data center."""

    sites: tuple[tuple[str, str], ...]  # (name, kind)
    servers: tuple[SimServer, ...]
    address_octet: int

    def server(self, name: str) -> SimServer:
        """The server called ``name`` (KeyError when unknown)."""
        for server in self.servers:
            if server.name == name:
                return server
        raise KeyError(name)

    def enclosures(self) -> list[list[str]]:
        """Names of the servers sharing each blade-enclosure BMC, in slot order."""
        groups: dict[str, list[str]] = {}
        for server in self.servers:
            if server.bmc_system is not None:
                groups.setdefault(server.bmc_host, []).append(server.name)
        return list(groups.values())


def server_address(octet: int, index: int) -> str:
    """Loopback address of the ``index``-th server: 127.OCTET.x.y (up to 62 500 servers)."""
    return f"127.{octet}.{index // 250}.{index % 250 + 1}"


def _split(total: int, weights: Sequence[tuple[str, float]]) -> dict[str, int]:
    """Largest-remainder split of ``total`` over roles, at least one each when possible."""
    counts = {role: (1 if total >= len(weights) else 0) for role, _ in weights}
    rest = total - sum(counts.values())
    shares = [(role, rest * w) for role, w in weights]
    for role, share in shares:
        counts[role] += int(share)
    left = total - sum(counts.values())
    by_remainder = sorted(shares, key=lambda rs: rs[1] - int(rs[1]), reverse=True)
    for role, _ in by_remainder[:left]:
        counts[role] += 1
    return counts


def _hardware(rng: random.Random, flavour: BmcFlavour, index: int) -> HardwareFacts:
    manufacturer, model, firmware = VENDORS[BASE_FLAVOUR.get(flavour, flavour)]
    serial = f"{manufacturer[:2].upper()}{rng.randrange(16**6):06X}{index:05d}"
    base = 0x02_50_AC_00_00_00 + index * 4  # locally administered MACs, unique per server
    macs = tuple(
        ":".join(f"{(base + nic) >> (8 * k) & 0xFF:02x}" for k in range(5, -1, -1))
        for nic in range(2)
    )
    return HardwareFacts(
        manufacturer=manufacturer,
        model=model,
        serial_number=serial,
        mac_addresses=macs,
        bios_version=f"{rng.randint(1, 3)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}",
        bmc_firmware=firmware,
    )


def _ae_title(name: str) -> str:
    return name.upper().replace("-", "")[:16]


def build_fleet(
    size: int = 300,
    *,
    seed: int = 7,
    address_octet: int = 42,
    bmc_mix: Sequence[tuple[BmcFlavour, float]] = DEFAULT_MIX,
) -> SimFleet:
    """A realistic PACS fleet of ``size`` servers (at least 7).

    Each server's BMC flavour is drawn from ``bmc_mix`` (flavour, weight); the
    default mix draws exactly as before the behaviour flavours existed, so a
    seed keeps giving the same fleet.

    The data center holds storage, databases, archives, image managers, DICOM
    routers, web viewers and RIS integration; a remote-backup site holds a
    storage tier and a replica archive; the hospitals and clinics get DICOM
    edge gateways. Dependencies follow storage → database → archive → image
    manager → routers → viewers and gateways.
    """
    if size < 7:
        raise ValueError("a simulated fleet needs at least 7 servers (one per data-center role)")
    if not 1 <= address_octet <= 254:
        raise ValueError("address octet must be 1..254")
    rng = random.Random(seed)
    edge_sites = [s for pair in zip(HOSPITALS, HOSPITALS, strict=True) for s in pair] + list(
        CLINICS
    )
    backup = 5 if size >= 100 else (2 if size >= 12 else 0)
    gateways = min(len(edge_sites), max(0, (size - 7 - backup) // 3))
    dc_counts = _split(size - backup - gateways, ROLE_WEIGHTS)

    plan: list[tuple[str, str, str, str | None]] = []  # name, site, role, rack
    dc_index = 0
    for role, _ in ROLE_WEIGHTS:
        for i in range(dc_counts[role]):
            rack = f"R{dc_index // RACK_SIZE + 1:02d}"
            plan.append((f"{NAME_PREFIX[role]}-{i + 1:03d}", DATACENTER, role, rack))
            dc_index += 1
    backup_roles = ["storage", "archive", "storage", "database", "archive"][:backup]
    seen: dict[str, int] = {}
    for i, role in enumerate(backup_roles):
        seen[role] = seen.get(role, 0) + 1
        name = f"bkp-{NAME_PREFIX[role]}-{seen[role]:02d}"
        plan.append((name, REMOTE_BACKUP, role, f"B{i // RACK_SIZE + 1:02d}"))
    per_site: dict[str, int] = {}
    for site in edge_sites[:gateways]:
        per_site[site] = per_site.get(site, 0) + 1
        short = site.split("-", 1)[1]
        plan.append((f"gw-{short}-{per_site[site]}", site, "edge-gateway", None))

    names_by_role: dict[tuple[str, str], list[str]] = {}
    for name, site, role, _ in plan:
        tier = "backup" if site == REMOTE_BACKUP else "main"
        names_by_role.setdefault((tier, role), []).append(name)

    def pick(tier: str, role: str, i: int, k: int = 1) -> tuple[str, ...]:
        pool = names_by_role.get((tier, role), [])
        if not pool:
            return ()
        return tuple(dict.fromkeys(pool[(i + j) % len(pool)] for j in range(k)))

    upstream = {
        "storage": (),
        "database": (("storage", 1),),
        "archive": (("database", 1), ("storage", 1)),
        "image-manager": (("archive", 1), ("database", 1)),
        "dicom-router": (("image-manager", 1),),
        "web-viewer": (("image-manager", 1),),
        "ris-integration": (("database", 1),),
        "edge-gateway": (("dicom-router", 1),),
    }
    index_in_role: dict[tuple[str, str], int] = {}
    flavours = [f for f, _ in bmc_mix]
    weights = [w for _, w in bmc_mix]
    # (site, rack) -> the open enclosure's BMC address and how many blades it holds
    open_enclosures: dict[tuple[str, str | None], tuple[str, int]] = {}
    servers = []
    for index, (server_name, site, role, server_rack) in enumerate(plan):
        tier = "backup" if site == REMOTE_BACKUP else "main"
        i = index_in_role.get((tier, role), 0)
        index_in_role[(tier, role)] = i + 1
        deps: list[str] = []
        for dep_role, k in upstream[role]:
            deps.extend(pick(tier, dep_role, i, k))
        flavour = rng.choices(flavours, weights)[0]
        address = server_address(address_octet, index)
        bmc_address, bmc_system = "", None
        if flavour is BmcFlavour.BLADE_ENCLOSURE:
            first, blades = open_enclosures.get((site, server_rack), (address, ENCLOSURE_SIZE))
            if blades == ENCLOSURE_SIZE:
                first, blades = address, 0
            open_enclosures[(site, server_rack)] = (first, blades + 1)
            bmc_address, bmc_system = first, f"Blade{blades + 1}"
        tags = ["tier1"] if role in ("database", "archive", "image-manager") else []
        if site == REMOTE_BACKUP:
            tags.append("replica")
        servers.append(
            SimServer(
                name=server_name,
                site=site,
                role=role,
                rack=server_rack,
                address=address,
                depends_on=tuple(deps),
                tags=tuple(tags),
                ae_title=_ae_title(server_name) if ROLES[role].speaks_dicom else None,
                flavour=flavour,
                hardware=_hardware(rng, flavour, index),
                bmc_address=bmc_address,
                bmc_system=bmc_system,
            )
        )
    sites = (
        (DATACENTER, "datacenter"),
        *(((REMOTE_BACKUP, "remote-backup"),) if backup else ()),
        *((h, "hospital") for h in HOSPITALS),
        *((c, "clinic") for c in CLINICS),
    )
    return SimFleet(sites=tuple(sites), servers=tuple(servers), address_octet=address_octet)
