"""Capturing a baseline from the live fleet, gently.

Per server, one step at a time: C-ECHO and study-level C-FIND samples, the
archive's study count over the study window, Redfish GET samples plus the
BMC's inventory facts, and the systemd unit states over SSH. At most one
server per host address is measured at a time and at most
``max_concurrency`` servers overall, so a capture never looks like a burst to
a PACS that is serving physicians. Each latency series starts with one
unrecorded warm-up request (TLS handshake, login, first association), so the
samples measure the steady state that users feel.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import aiohttp

from pacs_tui.baseline.model import BASELINE_VERSION, Baseline, Samples, ServerBaseline
from pacs_tui.credentials import Credential, CredentialError, resolve
from pacs_tui.dicom.client import c_echo, c_find_studies
from pacs_tui.inventory import Inventory, Server
from pacs_tui.plugin_api import ProbeContext
from pacs_tui_redfish_power.client import BmcClient, open_http_session
from pacs_tui_redfish_power.errors import BmcError
from pacs_tui_redfish_power.trust import TlsTrust
from pacs_tui_ssh_services.probe import SshServiceProbe

log = logging.getLogger(__name__)

MEASUREMENTS = ("echo", "find", "count", "redfish", "services")
DEFAULT_COUNT_ROLES = ("archive",)
DEFAULT_STUDY_WINDOW_DAYS = 7
# One day, one low-volume modality: the answer stays small, so the latency is
# the archive's query time rather than the transfer of thousands of identifiers.
DEFAULT_FIND_MODALITY = "NM"
_FIND_NOT_OFFERED = "Study Root FIND was not accepted"


def default_find_query(today: date | None = None) -> dict[str, str]:
    """The C-FIND sampled by default: yesterday's studies of one modality."""
    day = (today or date.today()) - timedelta(days=1)
    return {"StudyDate": day.strftime("%Y%m%d"), "ModalitiesInStudy": DEFAULT_FIND_MODALITY}


def study_window(settings: Mapping[str, Any], today: date | None = None) -> tuple[date, date]:
    """The inclusive date range whose studies are counted.

    ``settings["study_window"] = ["YYYY-MM-DD", "YYYY-MM-DD"]`` fixes it (to
    compare a later capture over the same days); otherwise the
    ``study_window_days`` (default 7) full days ending yesterday.
    """
    fixed = settings.get("study_window")
    if fixed is not None:
        low, high = (d if isinstance(d, date) else date.fromisoformat(str(d)) for d in fixed)
        if high < low:
            raise ValueError("study_window: 'to' is before 'from'")
        return low, high
    days = int(settings.get("study_window_days", DEFAULT_STUDY_WINDOW_DAYS))
    if days < 1:
        raise ValueError("study_window_days must be at least 1")
    end = (today or date.today()) - timedelta(days=1)
    return end - timedelta(days=days - 1), end


class _Capture:
    """One capture run: shared connections, gates and settings."""

    def __init__(
        self,
        inventory: Inventory,
        samples: int,
        settings: Mapping[str, Any],
        find_query: Mapping[str, str],
        window: tuple[date, date] | None,
    ) -> None:
        self.inventory = inventory
        self.samples = samples
        self.find_query = find_query
        self.window = window
        self.measure = set(settings.get("measure", MEASUREMENTS))
        self.count_roles = set(settings.get("count_roles", DEFAULT_COUNT_ROLES))
        self.dicom_timeout_s = float(settings.get("dicom_timeout_s", 5.0))
        self.count_timeout_s = float(settings.get("count_timeout_s", 120.0))
        self.redfish_timeout_s = float(settings.get("redfish_timeout_s", 5.0))
        self.ssh_settings = {
            "ssh_timeout_s": float(settings.get("ssh_timeout_s", 5.0)),
            "ssh_max_new_connections": int(settings.get("ssh_max_new_connections", 10)),
        }
        self.slots = asyncio.Semaphore(int(settings.get("max_concurrency", 32)))
        self.host_gates: dict[str, asyncio.Lock] = {}
        self.trust = TlsTrust()
        self.http: aiohttp.ClientSession | None = None
        self.ssh: SshServiceProbe | None = None

    async def open(self, servers: Sequence[Server]) -> None:
        if "redfish" in self.measure and any(s.bmc for s in servers):
            self.http = open_http_session(limit=64, limit_per_host=1)
        if "services" in self.measure and any(s.ssh for s in servers):
            self.ssh = SshServiceProbe()
            await self.ssh.open(ProbeContext(self.inventory, self.ssh_settings))

    async def close(self) -> None:
        if self.ssh is not None:
            await self.ssh.close()
        if self.http is not None:
            await self.http.close()

    @contextlib.asynccontextmanager
    async def turn(self, server: Server) -> AsyncIterator[None]:
        """A global slot and every host gate of ``server`` (sorted: no deadlock)."""
        hosts = sorted(
            {e.address for e in (server.bmc,) if e}
            | {e.host for e in (server.dicom, server.ssh) if e}
        )
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(self.slots)
            for host in hosts:
                await stack.enter_async_context(self.host_gates.setdefault(host, asyncio.Lock()))
            yield

    async def server(self, server: Server) -> ServerBaseline:
        errors: list[str] = []
        echo = find = redfish = None
        count: int | None = None
        hardware: dict[str, Any] = {}
        services: dict[str, str] = {}
        async with self.turn(server):
            if server.dicom is not None:
                if "echo" in self.measure:
                    echo = await self.echo_samples(server, errors)
                if "find" in self.measure:
                    find = await self.find_samples(server, errors)
                if "count" in self.measure and server.role in self.count_roles:
                    count = await self.study_count(server, errors)
            if server.bmc is not None and "redfish" in self.measure:
                redfish, hardware = await self.redfish(server, errors)
            if server.ssh is not None and self.ssh is not None:
                services = await self.services(server, errors)
        return ServerBaseline(
            name=server.name,
            site=server.site,
            role=server.role,
            echo=echo,
            find=find,
            study_count=count,
            redfish=redfish,
            hardware=hardware,
            services=services,
            errors=tuple(errors),
        )

    async def echo_samples(self, server: Server, errors: list[str]) -> Samples | None:
        dicom = server.dicom
        assert dicom is not None
        values: list[float] = []
        failures: list[str] = []
        for attempt in range(self.samples + 1):
            outcome = await c_echo(
                dicom.host,
                dicom.port,
                called_ae=dicom.ae_title,
                calling_ae=dicom.calling_ae_title,
                timeout=self.dicom_timeout_s,
            )
            if outcome.state != "ok":
                failures.append(outcome.detail)
            elif attempt > 0:  # the first is the warm-up
                values.append(outcome.latency_ms)
        _note_failures("C-ECHO", failures, self.samples + 1, errors)
        return Samples(tuple(values)) if values else None

    async def find_samples(self, server: Server, errors: list[str]) -> Samples | None:
        dicom = server.dicom
        assert dicom is not None
        values: list[float] = []
        failures: list[str] = []
        for attempt in range(self.samples + 1):
            outcome = await c_find_studies(
                dicom.host,
                dicom.port,
                called_ae=dicom.ae_title,
                calling_ae=dicom.calling_ae_title,
                query=self.find_query,
                timeout=self.dicom_timeout_s,
                limit=0,
            )
            if outcome.state == "error" and outcome.detail.startswith(_FIND_NOT_OFFERED):
                return None  # a router or gateway that offers Verification only
            if outcome.state != "ok":
                failures.append(outcome.detail)
            elif attempt > 0:
                values.append(outcome.latency_ms)
        _note_failures("C-FIND", failures, self.samples + 1, errors)
        return Samples(tuple(values)) if values else None

    async def study_count(self, server: Server, errors: list[str]) -> int | None:
        dicom = server.dicom
        assert dicom is not None and self.window is not None
        low, high = self.window
        outcome = await c_find_studies(
            dicom.host,
            dicom.port,
            called_ae=dicom.ae_title,
            calling_ae=dicom.calling_ae_title,
            query={"StudyDate": f"{low:%Y%m%d}-{high:%Y%m%d}"},
            timeout=self.count_timeout_s,
            limit=0,
        )
        if outcome.state != "ok":
            errors.append(f"study count: {outcome.detail}")
            return None
        return outcome.count

    async def redfish(
        self, server: Server, errors: list[str]
    ) -> tuple[Samples | None, dict[str, Any]]:
        bmc = server.bmc
        assert bmc is not None and self.http is not None
        reference = bmc.credentials
        if reference is None:
            errors.append("redfish: no BMC credentials in the inventory")
            return None, {}

        def credentials() -> Credential:
            return resolve(self.inventory, reference)

        client = BmcClient(
            self.http, bmc, credentials, timeout_s=self.redfish_timeout_s, trust=self.trust
        )
        values: list[float] = []
        hardware: dict[str, Any] = {}
        try:
            path = await client.system_path()  # warm-up: discovery, TLS, login
            system: dict[str, Any] = {}
            for _ in range(self.samples):
                started = time.perf_counter()
                _, system = await client.get(path)
                values.append((time.perf_counter() - started) * 1000.0)
            hardware = await _hardware(client, system)
        except (BmcError, CredentialError) as exc:
            errors.append(f"redfish: {exc}")
        finally:
            await client.close()
        return (Samples(tuple(values)) if values else None), hardware

    async def services(self, server: Server, errors: list[str]) -> dict[str, str]:
        assert self.ssh is not None
        result = await self.ssh.probe(server)
        units = result.facts.get("units")
        if not isinstance(units, dict):
            errors.append(f"ssh: {result.detail or result.state}")
            return {}
        return {str(k): str(v) for k, v in units.items()}


async def _hardware(client: BmcClient, system: Mapping[str, Any]) -> dict[str, Any]:
    """Serial, model, vendor, BIOS, BMC firmware and MACs, as the BMC reports them."""
    macs: list[str] = []
    nics = _link(system.get("EthernetInterfaces"))
    if nics is not None:
        _, collection = await client.get(nics)
        for member in collection.get("Members") or []:
            target = _link(member)
            if target is None:
                continue
            _, nic = await client.get(target)
            mac = nic.get("MACAddress") or nic.get("PermanentMACAddress")
            if isinstance(mac, str) and mac:
                macs.append(mac.lower())
    firmware = None
    links = system.get("Links")
    managers = links.get("ManagedBy") if isinstance(links, dict) else None
    if isinstance(managers, list) and managers and (target := _link(managers[0])):
        _, manager = await client.get(target)
        firmware = manager.get("FirmwareVersion")
    return {
        "serial_number": _text(system.get("SerialNumber")),
        "model": _text(system.get("Model")),
        "manufacturer": _text(system.get("Manufacturer")),
        "bios_version": _text(system.get("BiosVersion")),
        "bmc_firmware": _text(firmware),
        "mac_addresses": sorted(macs),
    }


def _link(value: Any) -> str | None:
    if isinstance(value, dict):
        target = value.get("@odata.id")
        if isinstance(target, str) and target:
            return target
    return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _note_failures(what: str, failures: list[str], attempts: int, errors: list[str]) -> None:
    if failures:
        errors.append(f"{what}: {len(failures)} of {attempts} failed (first: {failures[0]})")


async def capture_baseline(
    inventory: Inventory,
    *,
    servers: Sequence[Server] | None = None,
    samples: int = 20,
    label: str = "",
    settings: Mapping[str, Any] | None = None,
    find_query: Mapping[str, str] | None = None,
) -> Baseline:
    """Measure ``servers`` (default: the whole inventory) and return the baseline.

    ``samples`` latency samples per metric and server. ``find_query`` is the
    sampled C-FIND (default :func:`default_find_query`). ``settings``:
    ``measure`` (subset of ``MEASUREMENTS``), ``count_roles`` (default
    ``["archive"]``), ``study_window`` / ``study_window_days`` (see
    :func:`study_window`), ``max_concurrency`` (32), ``dicom_timeout_s``,
    ``count_timeout_s``, ``redfish_timeout_s``, ``ssh_timeout_s``. Failures
    never raise; they land in each server's ``errors``.
    """
    if samples < 1:
        raise ValueError("samples must be at least 1")
    settings = settings or {}
    chosen = list(inventory.servers if servers is None else servers)
    query = dict(find_query) if find_query is not None else default_find_query()
    measure = set(settings.get("measure", MEASUREMENTS))
    unknown = measure.difference(MEASUREMENTS)
    if unknown:
        raise ValueError(f"unknown measurement(s): {', '.join(sorted(unknown))}")
    window = study_window(settings) if "count" in measure else None
    capture = _Capture(inventory, samples, settings, query, window)
    captured_at = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    await capture.open(chosen)
    try:
        results = await asyncio.gather(*(capture.server(s) for s in chosen))
    finally:
        await capture.close()
    log.info("baseline of %d servers captured", len(results))
    return Baseline(
        version=BASELINE_VERSION,
        label=label,
        captured_at=captured_at,
        inventory=str(inventory.path),
        samples=samples,
        servers={r.name: r for r in results},
        find_query=query,
        study_window=window,
    )
