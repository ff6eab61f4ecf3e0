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
from pacs_tui.bmc_identity import odata_link, system_macs
from pacs_tui.credentials import Credential, CredentialError, resolve
from pacs_tui.dicom.client import c_echo, c_find_studies
from pacs_tui.dicom.tls import TlsSetupError, setup_context
from pacs_tui.inventory import Inventory, Server
from pacs_tui.plugin_api import ProbeContext
from pacs_tui_redfish_power.chassis_reading import chassis_of, read_chassis
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
_GIVE_UP_AFTER = 3


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


class _Subject:
    """One server being measured: its samples so far and its open BMC client."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.attempts = {"echo": 0, "find": 0, "redfish": 0}
        self.values: dict[str, list[float]] = {"echo": [], "find": [], "redfish": []}
        self.failures: dict[str, list[str]] = {"echo": [], "find": [], "redfish": []}
        self.errors: list[str] = []
        self.find_offered = True
        self.given_up: set[str] = set()
        self.bmc: BmcClient | None = None
        self.system_path: str | None = None
        self.system: dict[str, Any] = {}
        self.hardware: dict[str, Any] = {}
        self.study_count: int | None = None
        self.services: dict[str, str] = {}
        self.power_watts: float | None = None

    def record(self, metric: str, ok: bool, latency_ms: float, detail: str, warm_up: bool) -> None:
        self.attempts[metric] += 1
        if not ok:
            self.failures[metric].append(detail)
            # An endpoint that is down would cost a timeout per round: stop
            # after a failed warm-up or three failures.
            if warm_up or len(self.failures[metric]) >= _GIVE_UP_AFTER:
                self.given_up.add(metric)
        elif not warm_up:
            self.values[metric].append(latency_ms)

    def result(self) -> ServerBaseline:
        errors = list(self.errors)
        for metric, title in (("echo", "C-ECHO"), ("find", "C-FIND"), ("redfish", "Redfish")):
            failed = self.failures[metric]
            if failed:
                errors.append(
                    f"{title}: {len(failed)} of {self.attempts[metric]} failed (first: {failed[0]})"
                )
        server = self.server
        return ServerBaseline(
            name=server.name,
            site=server.site,
            role=server.role,
            echo=_samples(self.values["echo"]),
            find=_samples(self.values["find"]),
            study_count=self.study_count,
            redfish=_samples(self.values["redfish"]),
            hardware=self.hardware,
            services=self.services,
            errors=tuple(errors),
            power_watts=self.power_watts,
        )


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

    async def one_round(self, subject: _Subject, *, warm_up: bool) -> None:
        """One sample of each latency of ``subject`` (a warm-up is not recorded)."""
        server = subject.server
        async with self.turn(server):
            wanted = self.measure - subject.given_up
            if server.dicom is not None and "echo" in wanted:
                await self.echo(subject, warm_up)
            if server.dicom is not None and "find" in wanted and subject.find_offered:
                await self.find(subject, warm_up)
            if subject.bmc is not None and "redfish" in wanted:
                await self.redfish_get(subject, warm_up)

    async def echo(self, subject: _Subject, warm_up: bool) -> None:
        dicom = subject.server.dicom
        assert dicom is not None
        try:
            tls = setup_context(dicom)
        except TlsSetupError as exc:
            subject.record("echo", False, 0.0, str(exc), warm_up)
            return
        outcome = await c_echo(
            dicom.host,
            dicom.port,
            called_ae=dicom.ae_title,
            calling_ae=dicom.calling_ae_title,
            timeout=self.dicom_timeout_s,
            tls=tls,
        )
        subject.record("echo", outcome.state == "ok", outcome.latency_ms, outcome.detail, warm_up)

    async def find(self, subject: _Subject, warm_up: bool) -> None:
        dicom = subject.server.dicom
        assert dicom is not None
        try:
            tls = setup_context(dicom)
        except TlsSetupError as exc:
            subject.record("find", False, 0.0, str(exc), warm_up)
            return
        outcome = await c_find_studies(
            dicom.host,
            dicom.port,
            called_ae=dicom.ae_title,
            calling_ae=dicom.calling_ae_title,
            query=self.find_query,
            timeout=self.dicom_timeout_s,
            limit=0,
            tls=tls,
        )
        if outcome.state == "error" and outcome.detail.startswith(_FIND_NOT_OFFERED):
            subject.find_offered = False  # a router or gateway that offers Verification only
            return
        subject.record("find", outcome.state == "ok", outcome.latency_ms, outcome.detail, warm_up)

    def open_bmc(self, subject: _Subject) -> None:
        bmc = subject.server.bmc
        if bmc is None or self.http is None:
            return
        reference = bmc.credentials
        if reference is None:
            subject.errors.append("redfish: no BMC credentials in the inventory")
            return

        def credentials() -> Credential:
            return resolve(self.inventory, reference)

        subject.bmc = BmcClient(
            self.http, bmc, credentials, timeout_s=self.redfish_timeout_s, trust=self.trust
        )

    async def redfish_get(self, subject: _Subject, warm_up: bool) -> None:
        client = subject.bmc
        assert client is not None
        started = time.perf_counter()
        try:
            if subject.system_path is None:
                subject.system_path = await client.system_path()  # discovery, TLS, login
            _, subject.system = await client.get(subject.system_path)
        except (BmcError, CredentialError) as exc:
            subject.record("redfish", False, 0.0, str(exc), warm_up)
            return
        elapsed = (time.perf_counter() - started) * 1000.0
        subject.record("redfish", True, elapsed, "", warm_up)

    async def contents(self, subject: _Subject) -> None:
        """Phase two: facts, study count and unit states (heavier, not timed)."""
        server = subject.server
        async with self.turn(server):
            if subject.bmc is not None:
                if subject.system:
                    try:
                        subject.hardware = await _hardware(subject.bmc, subject.system)
                    except (BmcError, CredentialError) as exc:
                        subject.errors.append(f"redfish inventory: {exc}")
                    subject.power_watts = await _draw(subject)
                await subject.bmc.close()
            if (
                server.dicom is not None
                and "count" in self.measure
                and server.role in self.count_roles
            ):
                subject.study_count = await self.study_count(server, subject.errors)
            if server.ssh is not None and self.ssh is not None:
                subject.services = await self.services(server, subject.errors)

    async def study_count(self, server: Server, errors: list[str]) -> int | None:
        dicom = server.dicom
        assert dicom is not None and self.window is not None
        low, high = self.window
        try:
            tls = setup_context(dicom)
        except TlsSetupError as exc:
            errors.append(f"study count: {exc}")
            return None
        outcome = await c_find_studies(
            dicom.host,
            dicom.port,
            called_ae=dicom.ae_title,
            calling_ae=dicom.calling_ae_title,
            query={"StudyDate": f"{low:%Y%m%d}-{high:%Y%m%d}"},
            timeout=self.count_timeout_s,
            limit=0,
            tls=tls,
        )
        if outcome.state != "ok":
            errors.append(f"study count: {outcome.detail}")
            return None
        return outcome.count

    async def services(self, server: Server, errors: list[str]) -> dict[str, str]:
        assert self.ssh is not None
        result = await self.ssh.probe(server)
        units = result.facts.get("units")
        if not isinstance(units, dict):
            errors.append(f"ssh: {result.detail or result.state}")
            return {}
        return {str(k): str(v) for k, v in units.items()}


async def _draw(subject: _Subject) -> float | None:
    """The server's draw now (W) from its chassis, or None (recorded in its errors)."""
    assert subject.bmc is not None and subject.system_path is not None
    try:
        chassis = chassis_of(subject.system, subject.system_path)
        reading = await read_chassis(subject.bmc.get, chassis, "auto")
    except (BmcError, CredentialError) as exc:
        subject.errors.append(f"redfish power: {exc}")
        return None
    if "power" in reading.not_offered:
        return None  # a BMC without power telemetry: nothing failed, nothing to record
    if reading.power is None or reading.power.watts is None:
        why = "; ".join([*reading.why, *(reading.power.why if reading.power else [])])
        subject.errors.append(f"redfish power: draw not read ({why or 'no reading'})")
        return None
    if reading.power.watts <= 0:
        # Off, or a BMC that reports 0 W: no running draw to expect a boot peak from.
        subject.errors.append("redfish power: 0 W (powered off?): no running draw recorded")
        return None
    return float(reading.power.watts)


async def _hardware(client: BmcClient, system: Mapping[str, Any]) -> dict[str, Any]:
    """Serial, model, vendor, BIOS, BMC firmware and MACs, as the BMC reports them."""
    macs = await system_macs(client, system)
    firmware = None
    links = system.get("Links")
    managers = links.get("ManagedBy") if isinstance(links, dict) else None
    if isinstance(managers, list) and managers and (target := odata_link(managers[0])):
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


def _samples(values: list[float]) -> Samples | None:
    # Microseconds are plenty, and a saved file then loads back equal.
    return Samples(tuple(round(v, 3) for v in values)) if values else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


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
    subjects = [_Subject(s) for s in chosen]
    await capture.open(chosen)
    try:
        for subject in subjects:
            capture.open_bmc(subject)
        # Round by round: each server's samples spread over the whole capture,
        # so a short burst of load elsewhere cannot own a median.
        for round_ in range(samples + 1):
            await asyncio.gather(*(capture.one_round(s, warm_up=round_ == 0) for s in subjects))
        # Only then the heavy part, so no study count (thousands of answers to
        # decode) runs beside a timed request and inflates it.
        await asyncio.gather(*(capture.contents(s) for s in subjects))
    finally:
        for subject in subjects:
            if subject.bmc is not None:
                await subject.bmc.close()
        await capture.close()
    results = [subject.result() for subject in subjects]
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
