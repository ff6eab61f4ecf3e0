"""The embedded simulated data center: every server's BMC, OS and PACS on loopback.

Builds the hosts of a ``SimFleet``, starts one Redfish service (a site per
BMC address), an SSH server per host and a DICOM service per DICOM host, and
writes what a client needs (inventory, CA, keys, known_hosts, credentials).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import yaml

from pacs_tui.sim.bmc import BmcService
from pacs_tui.sim.dicom_node import DicomNode
from pacs_tui.sim.faults import HostFaults
from pacs_tui.sim.fleet import DEFAULT_MIX, REMOTE_BACKUP, SimFleet, SimServer, build_fleet
from pacs_tui.sim.host import HostTimings, SimulatedHost
from pacs_tui.sim.pki import FleetPki
from pacs_tui.sim.rack_breakers import RackBreakers
from pacs_tui.sim.redfish_flavour import BmcFlavour, profile
from pacs_tui.sim.site_links import SiteLink, build_site_links, inventory_links
from pacs_tui.sim.spares import SimSpare, build_spares, inventory_spares, spare_host
from pacs_tui.sim.ssh_keys import FleetSshKeys
from pacs_tui.sim.ssh_os import SshOs
from pacs_tui.sim.studies import UID_ROOT, StudyIndex

log = logging.getLogger(__name__)

CREDENTIAL_BMC = "bmc-admin"
CREDENTIAL_SSH = "ssh-ops"
CALLING_AE = "PACSTUI"
STUDY_YEARS = 3
GROUP_STUDIES_PER_DAY = 2400.0  # the whole hospital group, spread over the archives


@dataclass
class SimOptions:
    """How to build and run the simulated data center."""

    servers: int = 300
    seed: int = 7
    address_octet: int = 42
    bmc_port: int = 8443
    dicom_port: int = 11112
    ssh_port: int = 2222
    tls: bool = True
    bmc_username: str = "admin"
    # repr=False: options get printed and logged; the password goes to the 0600 file only.
    bmc_password: str = field(default_factory=lambda: secrets.token_urlsafe(12), repr=False)
    ssh_user: str = "pacsops"
    time_scale: float = 1.0  # multiplies every power/boot delay (tests use ~0.02)
    session_limit: int = 8
    today: date = field(default_factory=date.today)
    bmc_mix: tuple[tuple[BmcFlavour, float], ...] = DEFAULT_MIX  # BMC flavours and weights
    spares: int = 2  # boxes in the spares pool (powered off, BMC cabled), 0..250


class SimulatedDataCenter:
    """A running simulated fleet. ``start`` it inside an event loop; ``stop`` it after."""

    def __init__(self, options: SimOptions, fleet: SimFleet | None = None) -> None:
        self.options = options
        self.fleet = fleet or build_fleet(
            options.servers,
            seed=options.seed,
            address_octet=options.address_octet,
            bmc_mix=options.bmc_mix,
        )
        self.hosts: dict[str, SimulatedHost] = {}
        self.studies: dict[str, StudyIndex] = {}
        self.dicom_nodes: dict[str, DicomNode] = {}
        # Every node's AE table for C-MOVE: AE title -> (address, port); tests may add peers.
        self.ae_table: dict[str, tuple[str, int]] = {}
        self.ssh_servers: dict[str, SshOs] = {}
        self.pki = FleetPki.create() if options.tls else None
        self.ssh_keys = FleetSshKeys.create(s.name for s in self.fleet.servers)
        self.bmc: BmcService | None = None
        self.started_in_s = 0.0
        # Each hospital's and clinic's WAN link and the gateway AE behind it (issue 12).
        self.site_links: dict[str, SiteLink] = build_site_links(
            self.fleet.sites,
            octet=options.address_octet,
            dicom_port=options.dicom_port,
            tcp_port=options.ssh_port,
            seed=options.seed,
        )
        self.spare_specs: list[SimSpare] = build_spares(
            options.spares, octet=options.address_octet, seed=options.seed
        )
        timings = HostTimings().scaled(options.time_scale)
        self.spares: dict[str, SimulatedHost] = {
            s.name: spare_host(s, timings) for s in self.spare_specs
        }
        self.racked_spares: dict[str, str] = {}  # spare -> the server whose place it took
        self._build_hosts()
        racks: dict[str, list[SimulatedHost]] = {}
        for spec in self.fleet.servers:
            if spec.rack:
                racks.setdefault(spec.rack, []).append(self.hosts[spec.name])
        self.breakers = RackBreakers(racks)  # the rack-over-budget fault

    # -- construction -----------------------------------------------------------

    def _build_hosts(self) -> None:
        timings = HostTimings().scaled(self.options.time_scale)
        for spec in self.fleet.servers:
            self.hosts[spec.name] = SimulatedHost(
                name=spec.name,
                role=spec.role,
                site=spec.site,
                address=spec.address,
                units=spec.units,
                hardware=spec.hardware,
                timings=timings,
                speaks_dicom=spec.speaks_dicom,
            )
        for spec in self.fleet.servers:
            self.hosts[spec.name].depends_on = [self.hosts[d] for d in spec.depends_on]
        self._build_studies()
        for spec in self.fleet.servers:
            host = self.hosts[spec.name]
            host.ssh_listener = self.ssh_servers[spec.name] = SshOs(
                host,
                port=self.options.ssh_port,
                username=self.options.ssh_user,
                host_key=self.ssh_keys.host_key(spec.name),
                alternate_host_key=self.ssh_keys.alternate_host_key(spec.name),
                authorized_key=self.ssh_keys.client_key,
            )
            if spec.ae_title:
                host.dicom_listener = self.dicom_nodes[spec.name] = DicomNode(
                    host,
                    port=self.options.dicom_port,
                    ae_title=spec.ae_title,
                    studies=self.studies.get(spec.name),
                    known_aes=self.ae_table,
                )
                self.ae_table[spec.ae_title] = (spec.address, self.options.dicom_port)

    def _build_studies(self) -> None:
        """Primary archives split the group's studies; each backup archive replicates one;
        image managers answer from their archive."""
        primaries = [
            s for s in self.fleet.servers if s.role == "archive" and s.site != REMOTE_BACKUP
        ]
        last = self.options.today
        first = last - timedelta(days=365 * STUDY_YEARS)
        per_archive = GROUP_STUDIES_PER_DAY / max(len(primaries), 1)
        for i, spec in enumerate(primaries):
            self.studies[spec.name] = StudyIndex(
                seed=self.options.seed * 1000 + i,
                first_day=first,
                last_day=last,
                studies_per_day=per_archive,
            )
        for primary, replica in replica_pairs(self.fleet):
            self.studies[replica] = self.studies[primary].replica()
        # An image manager (PACS core) answers queries from the archive it fronts.
        for spec in self.fleet.servers:
            if spec.role == "image-manager":
                archive = next((d for d in spec.depends_on if d in self.studies), None)
                if archive is not None:
                    self.studies[spec.name] = self.studies[archive]

    # -- lifecycle --------------------------------------------------------------

    async def start(self) -> None:
        """Open every endpoint; all servers start powered on and healthy.

        Raises :class:`~pacs_tui.sim.listen.ListenError` (address, port,
        reason) when a listener cannot bind; every endpoint opened so far is
        closed again first, so the caller may try other addresses.
        """
        began = time.monotonic()
        try:
            await self._start_listeners()
        except BaseException:
            await self.stop()
            raise
        self.started_in_s = time.monotonic() - began
        log.info(
            "simulated data center up: %d servers in %.2f s", len(self.hosts), self.started_in_s
        )

    async def _start_listeners(self) -> None:
        flavours = {s.name: s.flavour for s in self.fleet.servers}
        self.bmc = BmcService(
            [*self.hosts.values(), *self.spares.values()],
            port=self.options.bmc_port,
            username=self.options.bmc_username,
            password=self.options.bmc_password,
            pki=self.pki,
            flavours=flavours,
            session_limit=self.options.session_limit,
            enclosures=self.fleet.enclosures(),
        )
        await self.bmc.start()
        await _all_started(s.start() for s in self.ssh_servers.values())
        await _all_started(d.start() for d in self.dicom_nodes.values())
        await _all_started(link.start() for link in self.site_links.values())

    async def stop(self) -> None:
        """Close every endpoint and cancel running power transitions."""
        await self.breakers.stop()
        await asyncio.gather(*(h.stop() for h in self.hosts.values()))
        await asyncio.gather(*(s.stop() for s in self.ssh_servers.values()))
        await asyncio.gather(*(d.stop() for d in self.dicom_nodes.values()))
        await asyncio.gather(*(link.stop() for link in self.site_links.values()))
        if self.bmc is not None:
            await self.bmc.stop()

    # -- run-time control -------------------------------------------------------

    def host(self, name: str) -> SimulatedHost:
        """The host called ``name``; KeyError names it when unknown."""
        try:
            return self.hosts[name]
        except KeyError:
            raise KeyError(f"no simulated server named {name!r}") from None

    def check_faults(self, name: str, changes: dict[str, Any]) -> None:
        """``ValueError`` for changes this server cannot take (beyond ``HostFaults``'s own
        checks): a blade's BMC is its enclosure's, so it cannot change flavour alone."""
        self.host(name)
        if changes.get("bmc_flavour") and self.fleet.server(name).bmc_system is not None:
            raise ValueError(
                f"{name} is a blade: its enclosure BMC's flavour cannot change (bmc_flavour)"
            )

    async def set_faults(self, name: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Apply fault switches to one server and restart the listeners they affect."""
        self.check_faults(name, changes)
        host = self.host(name)
        before = HostFaults(**vars(host.faults))
        host.faults.update(changes)
        await self._apply_listener_faults(host, before)
        return host.faults.active()

    async def clear_faults(self, name: str) -> None:
        """Turn every fault of one server off."""
        host = self.host(name)
        before = HostFaults(**vars(host.faults))
        host.faults = HostFaults()
        await self._apply_listener_faults(host, before)

    async def _apply_listener_faults(self, host: SimulatedHost, before: HostFaults) -> None:
        now = host.faults
        node = self.dicom_nodes.get(host.name)
        if node is not None and now.dicom_find_delay_s != before.dicom_find_delay_s:
            node.sync_find_latency()
        if now.bmc_unreachable != before.bmc_unreachable and self.bmc is not None:
            await self.bmc.set_reachable(host.name, not now.bmc_unreachable)
        if now.bmc_flavour != before.bmc_flavour and self.bmc is not None:
            await self.bmc.reopen(host.name)  # a legacy-TLS flavour needs another TLS setup
        ssh = self.ssh_servers[host.name]
        if now.ssh_host_key_changed != before.ssh_host_key_changed and host.os_state != "down":
            await ssh.stop()
            await ssh.start()
        if now.dicom_never_ready != before.dicom_never_ready:
            await host.sync_listeners()

    def site_link(self, site: str) -> SiteLink:
        """The WAN link of hospital or clinic ``site``; KeyError names it when unknown."""
        try:
            return self.site_links[site]
        except KeyError:
            raise KeyError(f"no simulated site link for {site!r}") from None

    def down_links(self) -> list[str]:
        """Sites whose link is down now (planted ``link_down``), in site order."""
        return [name for name, link in self.site_links.items() if link.faults.link_down]

    def swap_hardware(self, a: str, b: str) -> None:
        """Two boxes racked in each other's place: each name now reports the other's
        serial number, MAC addresses, model and firmware through its BMC."""
        first, second = self.host(a), self.host(b)
        if first is second:
            raise ValueError(f"cannot swap {a!r} with itself")
        first.hardware, second.hardware = second.hardware, first.hardware

    def spare(self, name: str) -> SimulatedHost:
        """The spare called ``name``; KeyError names it when unknown."""
        try:
            return self.spares[name]
        except KeyError:
            raise KeyError(f"no simulated spare named {name!r}") from None

    async def rack_spare(self, server: str, spare: str, *, new_host_key: bool = True) -> None:
        """Rack spare ``spare`` in ``server``'s place (the server's box is pulled).

        The server's host keeps its name, role, units, DICOM AE and address;
        it takes the spare's hardware (serial, MACs, model), loses the
        ``dead_on_arrival`` fault (a new box), presents a new SSH host key
        (a fresh OS install), and is managed by the spare's BMC, on the
        spare's address, from now on; the old BMC answers nothing. Its power
        state is left as it is (a pulled box is off). ``new_host_key=False``:
        the OS was restored from the server's image, host keys included, so
        SSH presents the old key. ``ValueError`` for a blade or a spare racked
        already.
        """
        host, box = self.host(server), self.spare(spare)
        if self.fleet.server(server).bmc_system is not None:
            raise ValueError(f"{server} is a blade: it is replaced in its enclosure")
        if spare in self.racked_spares:
            raise ValueError(
                f"spare {spare} is already racked in {self.racked_spares[spare]}'s place"
            )
        if self.bmc is None:
            raise ValueError("the BMCs are not running")
        await self.bmc.take_over(server, spare)
        host.hardware = box.hardware
        await self.set_faults(
            server, {"dead_on_arrival": False, "ssh_host_key_changed": new_host_key}
        )
        self.racked_spares[spare] = server

    def drop_replica_days(self, name: str, days: Iterable[date]) -> int:
        """Make the archive ``name`` lack every study of ``days`` (replication behind).

        Returns how many studies went missing; ``ValueError`` when ``name`` holds no
        studies of its own.
        """
        host = self.host(name)
        index = self.studies.get(name)
        node = self.dicom_nodes.get(name)
        if index is None or node is None or host.role != "archive":
            raise ValueError(f"{name!r} is not an archive with studies")
        wanted = set(days)
        lost = sum(index.count(d, d) for d in wanted)
        self.studies[name] = node.studies = index.replica(wanted)
        return lost

    def plant_studies(
        self, name: str, day: date, *, missing: int = 0, partial: int = 0, swapped: int = 0
    ) -> dict[str, list[str]]:
        """Make the archive ``name`` differ from its primary study by study on ``day``.

        ``missing`` studies are removed, ``partial`` ones keep half their
        instances, ``swapped`` ones are replaced by a study with another UID
        (same day, time, modality and size: the day's count is unchanged).
        Returns the affected study UIDs per kind (for swapped, the UIDs the
        archive lacks); ``ValueError`` when ``name`` holds no studies or the
        day has too few.
        """
        host = self.host(name)
        index = self.studies.get(name)
        if index is None or name not in self.dicom_nodes or host.role != "archive":
            raise ValueError(f"{name!r} is not an archive with studies")
        plants = index.plants
        taken = plants.removed | set(plants.instances)
        # Spread the picks over the day's modalities, studies of 2+ instances only.
        pool = [s for s in index.studies(day, day) if s.study_uid not in taken and s.instances > 1]
        wanted = missing + partial + swapped
        if len(pool) < wanted:
            raise ValueError(f"{name} holds only {len(pool)} plantable studies on {day}")
        step = max(len(pool) // max(wanted, 1), 1)
        picks = iter(pool[::step][:wanted])
        planted: dict[str, list[str]] = {"missing": [], "partial": [], "swapped": []}
        for _ in range(missing):
            study = next(picks)
            plants.removed.add(study.study_uid)
            planted["missing"].append(study.study_uid)
        for _ in range(partial):
            study = next(picks)
            plants.instances[study.study_uid] = study.instances // 2
            planted["partial"].append(study.study_uid)
        for _ in range(swapped):
            study = next(picks)
            plants.removed.add(study.study_uid)
            other = study.study_uid.replace(f"{UID_ROOT}.", f"{UID_ROOT}.9", 1)
            plants.add_extra(replace(study, study_uid=other))
            planted["swapped"].append(study.study_uid)
        return planted

    # -- files for clients ------------------------------------------------------

    def write_client_files(self, out_dir: Path) -> dict[str, Path]:
        """Write inventory, CA, SSH keys, known_hosts and the 0600 credentials file."""
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = {
            "inventory": out_dir / "inventory.yaml",
            "credentials": out_dir / "credentials.yaml",
            "known_hosts": out_dir / "known_hosts",
            "ssh_key": out_dir / "id_ed25519",
        }
        if self.pki is not None:
            paths["ca"] = out_dir / "ca.pem"
            self.pki.write_ca(paths["ca"])
        self.ssh_keys.write(
            out_dir, ((s.name, s.address, self.options.ssh_port) for s in self.fleet.servers)
        )
        secret = {
            CREDENTIAL_BMC: {
                "username": self.options.bmc_username,
                "password": self.options.bmc_password,
            }
        }
        cred_path = paths["credentials"]
        fd = os.open(cred_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            os.fchmod(handle.fileno(), 0o600)
            yaml.safe_dump(secret, handle, sort_keys=False)
        paths["inventory"].write_text(render_inventory(self))
        return paths


async def _all_started(starts: Iterable[Awaitable[None]]) -> None:
    """Await every start; then raise the first failure. Stopping while some starts are
    still binding would leave those listeners open."""
    results = await asyncio.gather(*starts, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


def replica_pairs(fleet: SimFleet) -> list[tuple[str, str]]:
    """(primary archive, its remote-backup replica) pairs: backup archives replicate the
    data center's archives in turn."""
    primaries = [s.name for s in fleet.servers if s.role == "archive" and s.site != REMOTE_BACKUP]
    replicas = [s.name for s in fleet.servers if s.role == "archive" and s.site == REMOTE_BACKUP]
    if not primaries:
        return []
    return [(primaries[i % len(primaries)], name) for i, name in enumerate(replicas)]


def _server_entry(spec: SimServer, flavour: BmcFlavour) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": spec.name, "site": spec.site, "role": spec.role}
    if spec.rack:
        entry["rack"] = spec.rack
    if spec.tags:
        entry["tags"] = list(spec.tags)
    if spec.depends_on:
        entry["depends_on"] = list(spec.depends_on)
    bmc: dict[str, Any] = {"address": spec.bmc_host}
    if spec.bmc_system is not None:
        bmc["system"] = spec.bmc_system  # several servers behind one enclosure BMC
    if profile(flavour).legacy_tls:
        bmc["tls_legacy"] = True  # what an operator sets for such old firmware
    entry["bmc"] = bmc
    if spec.ae_title:
        entry["dicom"] = {"host": spec.address, "ae_title": spec.ae_title}
    entry["ssh"] = {"host": spec.address}
    return entry


def _site_entry(center: SimulatedDataCenter, name: str, kind: str) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name, "kind": kind}
    link = center.site_links.get(name)
    if link is not None:
        entry["links"] = inventory_links(link)
    return entry


def _flavour_now(center: SimulatedDataCenter, spec: SimServer) -> BmcFlavour:
    """The server's BMC flavour, as a planted ``bmc_flavour`` fault may have changed it."""
    planted = center.hosts[spec.name].faults.bmc_flavour
    return BmcFlavour(planted) if planted and spec.bmc_system is None else spec.flavour


def render_inventory(center: SimulatedDataCenter) -> str:
    """The fleet as an inventory file (the format ``pacs-tui inventory check`` validates)."""
    opts = center.options
    bmc_defaults: dict[str, Any] = {
        "port": opts.bmc_port,
        "scheme": "https" if opts.tls else "http",
        "credentials": CREDENTIAL_BMC,
    }
    if opts.tls:
        bmc_defaults.update(verify_tls=True, ca_file="ca.pem")
    document = {
        "version": 1,
        "sites": [_site_entry(center, n, k) for n, k in center.fleet.sites],
        "credentials": {
            CREDENTIAL_BMC: {"file": "credentials.yaml"},
            CREDENTIAL_SSH: {"key_file": "id_ed25519"},
        },
        "defaults": {
            "bmc": bmc_defaults,
            "dicom": {"port": opts.dicom_port, "calling_ae_title": CALLING_AE},
            "ssh": {
                "port": opts.ssh_port,
                "user": opts.ssh_user,
                "credentials": CREDENTIAL_SSH,
                "known_hosts": "known_hosts",
            },
        },
        "servers": [_server_entry(s, _flavour_now(center, s)) for s in center.fleet.servers],
    }
    if center.spare_specs:
        document["spares"] = inventory_spares(center.spare_specs)
    header = (
        "# pacs-tui inventory of a simulated data center "
        f"({len(center.fleet.servers)} servers, seed {opts.seed}).\n"
    )
    return header + yaml.safe_dump(document, sort_keys=False, default_flow_style=None, width=120)
