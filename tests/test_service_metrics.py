"""Prometheus exposition of the fleet state and the batch engine (pacs_tui.service.metrics).

Checked by real peers: ``promtool check metrics`` lints the output,
``promtool check rules`` the example alert rules, and a real Prometheus
server scrapes an aiohttp ``/metrics`` with a bearer token and is queried
back. A real batch on the simulator feeds the batch counters.
"""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
import yaml
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from pacs_tui.batch.audit import AuditLog
from pacs_tui.batch.confirm import Confirmation
from pacs_tui.batch.progress import BatchProgress
from pacs_tui.batch.readings import MonitorReadings
from pacs_tui.inventory import Inventory, load_inventory, load_inventory_text
from pacs_tui.monitor import FleetMonitor
from pacs_tui.plugin_api import Health, ProbeResult
from pacs_tui.plugin_catalog import load_probes
from pacs_tui.rollup import ApplicableProbes, applicable_probes
from pacs_tui.service.metrics import (
    HEALTH_STATES,
    POWER_STATES,
    BatchCounters,
    FleetCollector,
    fleet_registry,
    render,
    render_async,
)
from pacs_tui.session import Session
from pacs_tui.state import FleetState
from peers import require_binary
from prometheus_peer import LOOPBACK, scraping
from sim_process import running_sim

NOW = 1_750_000_000.0
ROOT = Path(__file__).resolve().parent.parent
ALERTS = ROOT / "docs" / "prometheus-alerts.yml"
INTERVALS = {"power": 5.0, "network": 2.0, "dicom": 10.0, "ssh": 10.0}

# stor-001 ← arch-001 ← rtr-001 ← gw-north (hospital), view-east (clinic);
# view-west (clinic) stands alone; bk-arch sits at the remote backup (not served).
INVENTORY = """\
version: 1
sites:
  - {name: dc-main, kind: datacenter}
  - {name: hosp-north, kind: hospital}
  - {name: clinic-east, kind: clinic}
  - {name: clinic-west, kind: clinic}
  - {name: backup-remote, kind: remote-backup}
servers:
  - {name: stor-001, site: dc-main, role: storage, bmc: {address: 127.0.0.2}}
  - name: arch-001
    site: dc-main
    role: archive
    depends_on: [stor-001]
    bmc: {address: 127.0.0.3}
    dicom: {host: 127.0.0.3, ae_title: ARCH001}
  - name: rtr-001
    site: dc-main
    role: dicom-router
    depends_on: [arch-001]
    bmc: {address: 127.0.0.4}
    ssh: {host: 127.0.0.4, user: ops}
  - name: gw-north
    site: hosp-north
    role: edge-gateway
    depends_on: [rtr-001]
    dicom: {host: 127.0.0.5, ae_title: GWNORTH}
  - name: view-east
    site: clinic-east
    role: web-viewer
    depends_on: [rtr-001]
    dicom: {host: 127.0.0.6, ae_title: VIEWEAST}
  - {name: view-west, site: clinic-west, role: web-viewer, dicom: {host: 127.0.0.7, ae_title: VIEWWEST}}
  - {name: bk-arch, site: backup-remote, role: archive, dicom: {host: 127.0.0.8, ae_title: BKARCH}}
"""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


def small_inventory(tmp_path: Path) -> Inventory:
    return load_inventory_text(INVENTORY, tmp_path / "inventory.yaml")


def real_applicable() -> ApplicableProbes:
    """Which probes apply, asked of the installed probe plugins themselves."""
    loaded = load_probes()
    assert set(loaded.plugins) >= {"power", "network", "dicom", "ssh"}, loaded.failed
    return applicable_probes(list(loaded.plugins.values()))


def record(
    state: FleetState,
    server: str,
    probe: str,
    word: str,
    health: Health,
    *,
    age_s: float = 1.0,
    latency_ms: float | None = 4.0,
) -> None:
    state.record(server, probe, ProbeResult(word, health, latency_ms, "", NOW - age_s))


def archive_dicom_down(inventory: Inventory) -> FleetState:
    """Everything fine but the archive's DICOM (refused) and a stale router BMC reading."""
    state = FleetState(inventory.names(), INTERVALS, clock=lambda: NOW)
    record(state, "stor-001", "power", "On", Health.OK, latency_ms=12.0)
    record(state, "arch-001", "power", "On", Health.OK)
    record(state, "arch-001", "network", "ok", Health.OK, age_s=0.5)
    record(state, "arch-001", "dicom", "refused", Health.DOWN, latency_ms=None)
    record(state, "rtr-001", "power", "On", Health.OK, age_s=100.0)  # > 3 × 5 s: STALE
    record(state, "rtr-001", "network", "ok", Health.OK)
    record(state, "rtr-001", "ssh", "ok", Health.OK)
    for name in ("gw-north", "view-east", "view-west", "bk-arch"):
        record(state, name, "network", "ok", Health.OK)
        record(state, name, "dicom", "ok", Health.OK, latency_ms=25.0)
    return state


def parse(body: bytes) -> Series:
    """Every sample of an exposition, by name and label set."""
    found: Series = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            assert key not in found, f"duplicate series {key}"
            found[key] = sample.value
    return found


def series(found: Series, name: str, **labels: str) -> dict[frozenset[tuple[str, str]], float]:
    """The samples of ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return {lbl: v for (n, lbl), v in found.items() if n == name and want <= lbl}


def one(found: Series, name: str, **labels: str) -> float:
    matching = series(found, name, **labels)
    assert len(matching) == 1, f"{name}{labels}: {matching}"
    return next(iter(matching.values()))


def states_at_one(found: Series, name: str, key: str, **labels: str) -> list[str]:
    """Which states of a state set are 1 (the label ``key`` of each series at 1)."""
    return sorted(dict(lbl)[key] for lbl, v in series(found, name, **labels).items() if v == 1.0)


def promtool() -> str:
    return require_binary("promtool", "/usr/bin/promtool")


# -- the exposition, linted by promtool -------------------------------------------------


def test_exposition_passes_promtool_and_says_what_the_fleet_state_says(tmp_path: Path) -> None:
    inventory = small_inventory(tmp_path)
    counters = BatchCounters()
    collector = FleetCollector(
        inventory, archive_dicom_down(inventory), real_applicable(), counters
    )
    body, content_type = render(fleet_registry(collector))
    assert content_type.startswith("text/plain; version=")
    assert "charset=utf-8" in content_type

    lint = subprocess.run(
        [promtool(), "check", "metrics"], input=body, capture_output=True, timeout=30, check=False
    )
    problems = (lint.stdout + lint.stderr).decode()
    assert lint.returncode == 0 and problems == "", problems

    found = parse(body)
    arch = {"server": "arch-001", "site": "dc-main", "role": "archive"}
    # The DOWN probe: up 0 and exactly one health state set, "down".
    assert one(found, "pacs_tui_probe_up", **arch, probe="dicom") == 0.0
    assert states_at_one(found, "pacs_tui_probe_health", "health", **arch, probe="dicom") == [
        "down"
    ]
    assert len(series(found, "pacs_tui_probe_health", **arch, probe="dicom")) == len(HEALTH_STATES)
    assert one(found, "pacs_tui_probe_up", **arch, probe="network") == 1.0
    assert states_at_one(found, "pacs_tui_server_health", "health", **arch) == ["down"]
    # No latency for a refused association; the age is there.
    assert series(found, "pacs_tui_probe_latency_seconds", **arch, probe="dicom") == {}
    assert one(found, "pacs_tui_probe_reading_age_seconds", **arch, probe="dicom") == 1.0
    # Base units: 12 ms is 0.012 s.
    assert one(found, "pacs_tui_probe_latency_seconds", server="stor-001") == pytest.approx(0.012)
    # Probes that do not apply have no series: the storage box has a BMC only (power state,
    # and rack power: draw, PSUs, inlet).
    assert {
        dict(lbl)["probe"] for lbl in series(found, "pacs_tui_probe_up", server="stor-001")
    } == {"power", "rack-power"}

    # The router's stale BMC reading: probe stale, PowerState Unknown, no latency, old age.
    rtr = {"server": "rtr-001", "probe": "power"}
    assert states_at_one(found, "pacs_tui_probe_health", "health", **rtr) == ["stale"]
    assert one(found, "pacs_tui_probe_up", **rtr) == 0.0
    assert series(found, "pacs_tui_probe_latency_seconds", **rtr) == {}
    assert one(found, "pacs_tui_probe_reading_age_seconds", **rtr) == 100.0
    assert states_at_one(found, "pacs_tui_power_state", "state", server="rtr-001") == ["Unknown"]
    assert states_at_one(found, "pacs_tui_power_state", "state", server="stor-001") == ["On"]
    assert len(series(found, "pacs_tui_power_state", server="stor-001")) == len(POWER_STATES)
    assert series(found, "pacs_tui_power_state", server="gw-north") == {}  # no BMC

    # Sites behind the archive lose service; the standalone clinic does not.
    assert one(found, "pacs_tui_site_affected", site="hosp-north", kind="hospital") == 1.0
    assert one(found, "pacs_tui_site_affected", site="clinic-east", kind="clinic") == 1.0
    assert one(found, "pacs_tui_site_affected", site="clinic-west", kind="clinic") == 0.0
    assert series(found, "pacs_tui_site_affected", site="dc-main") == {}
    assert series(found, "pacs_tui_site_affected", site="backup-remote") == {}
    assert states_at_one(found, "pacs_tui_site_service", "service", site="hosp-north") == ["none"]
    assert states_at_one(found, "pacs_tui_site_service", "service", site="clinic-west") == ["full"]
    assert one(found, "pacs_tui_sites_affected") == 2.0

    assert one(found, "pacs_tui_servers") == 7.0
    assert one(found, "pacs_tui_readings_stale") == 1.0
    assert one(found, "pacs_tui_newest_reading_age_seconds") == 0.5
    assert one(found, "pacs_tui_batches_total", verb="off", outcome="ok") == 0.0
    assert one(found, "pacs_tui_batches_running", verb="off") == 0.0
    assert series(found, "pacs_tui_batch_steps_total") == {}
    assert dict(next(iter(series(found, "pacs_tui_build_info"))))["version"]
    # The runtime collectors are there, and passed promtool above.
    assert series(found, "process_open_fds") and series(found, "python_gc_collections_total")


def test_a_silent_bmc_of_a_serving_server_is_degraded_and_cuts_off_nobody(
    tmp_path: Path,
) -> None:
    inventory = small_inventory(tmp_path)
    state = archive_dicom_down(inventory)
    record(state, "arch-001", "dicom", "ok", Health.OK)
    record(state, "rtr-001", "power", "Unknown", Health.DOWN, latency_ms=None)  # BMC silent
    collector = FleetCollector(inventory, state, real_applicable(), BatchCounters())
    found = parse(render(fleet_registry(collector, runtime=False))[0])
    assert one(found, "pacs_tui_probe_up", server="rtr-001", probe="power") == 0.0
    assert states_at_one(found, "pacs_tui_server_health", "health", server="rtr-001") == [
        "degraded"
    ]
    assert states_at_one(found, "pacs_tui_power_state", "state", server="rtr-001") == ["Unknown"]
    assert one(found, "pacs_tui_sites_affected") == 0.0
    assert not series(found, "process_open_fds")  # runtime=False: the fleet collector only


def test_every_series_has_all_its_states_and_exactly_one_set(tmp_path: Path) -> None:
    inventory = small_inventory(tmp_path)
    collector = FleetCollector(
        inventory, archive_dicom_down(inventory), real_applicable(), BatchCounters()
    )
    found = parse(render(fleet_registry(collector, runtime=False))[0])
    for name, key in (
        ("pacs_tui_probe_health", "health"),
        ("pacs_tui_server_health", "health"),
        ("pacs_tui_power_state", "state"),
        ("pacs_tui_site_service", "service"),
    ):
        groups: dict[frozenset[tuple[str, str]], list[float]] = {}
        for lbl, value in series(found, name).items():
            rest = frozenset((k, v) for k, v in lbl if k != key)
            groups.setdefault(rest, []).append(value)
        assert groups, name
        for rest, values in groups.items():
            assert sorted(values)[-1] == 1.0 and sum(values) == 1.0, (name, rest, values)


def test_draw_and_inlet_are_exposed_only_where_read(tmp_path: Path) -> None:
    """A fresh rack-power reading gives the server's watts and inlet °C; a figure not read,
    or a stale reading, gives no series (never a 0 a graph would take for a dead rack)."""
    inventory = load_inventory_text(
        INVENTORY.replace("bmc: {address: 127.0.0.2}}", "rack: R01, bmc: {address: 127.0.0.2}}"),
        tmp_path / "inventory.yaml",
    )
    state = FleetState(inventory.names(), {**INTERVALS, "rack-power": 60.0}, clock=lambda: NOW)
    read = {"watts": 212.5, "inlet_c": 23.0, "not_offered": []}
    state.record("stor-001", "rack-power", ProbeResult("ok", Health.OK, 9.0, "", NOW - 1, read))
    no_draw = {"watts": None, "inlet_c": 24.0, "not_offered": ["power"]}
    state.record("arch-001", "rack-power", ProbeResult("ok", Health.OK, 9.0, "", NOW - 1, no_draw))
    old = {"watts": 300.0, "inlet_c": 30.0}  # 400 s old: over 3 × 60 s, so stale
    state.record("rtr-001", "rack-power", ProbeResult("ok", Health.OK, 9.0, "", NOW - 400, old))
    collector = FleetCollector(inventory, state, real_applicable(), BatchCounters())
    body = render(fleet_registry(collector, runtime=False))[0]
    lint = subprocess.run(
        [promtool(), "check", "metrics"], input=body, capture_output=True, timeout=30, check=False
    )
    assert lint.returncode == 0 and lint.stdout + lint.stderr == b"", lint
    found = parse(body)
    stor = {"server": "stor-001", "site": "dc-main", "role": "storage", "rack": "R01"}
    assert one(found, "pacs_tui_server_power_watts", **stor) == 212.5
    assert one(found, "pacs_tui_server_inlet_temperature_celsius", **stor) == 23.0
    assert series(found, "pacs_tui_server_power_watts", server="arch-001") == {}
    assert one(found, "pacs_tui_server_inlet_temperature_celsius", server="arch-001") == 24.0
    assert series(found, "pacs_tui_server_power_watts", server="rtr-001") == {}
    assert series(found, "pacs_tui_server_inlet_temperature_celsius", server="rtr-001") == {}


async def test_render_async_gives_the_same_exposition(tmp_path: Path) -> None:
    inventory = small_inventory(tmp_path)
    collector = FleetCollector(
        inventory, archive_dicom_down(inventory), real_applicable(), BatchCounters()
    )
    registry = fleet_registry(collector, runtime=False)
    assert await render_async(registry) == render(registry)


# -- the example alert rules -------------------------------------------------------------


def test_example_alert_rules_pass_promtool() -> None:
    check = subprocess.run(
        [promtool(), "check", "rules", str(ALERTS)], capture_output=True, timeout=30, check=False
    )
    output = (check.stdout + check.stderr).decode()
    assert check.returncode == 0, output
    assert "SUCCESS" in output and "FAILED" not in output, output
    rules = [r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]]
    exprs = " ".join(r["expr"] for r in rules)
    for metric in (
        "pacs_tui_server_health",
        "pacs_tui_probe_health",
        "pacs_tui_probe_reading_age_seconds",
        "pacs_tui_site_affected",
        "pacs_tui_newest_reading_age_seconds",
    ):
        assert metric in exprs, f"no example alert reads {metric}"
    # Every alert waits a while: one late scrape or a blip must not page anyone.
    assert all(r.get("for") for r in rules), [r["alert"] for r in rules if not r.get("for")]


# -- a real Prometheus scrapes it with a bearer token ------------------------------------


@asynccontextmanager
async def metrics_site(handler: Handler) -> AsyncIterator[str]:
    """An aiohttp server on 127.0.0.1 (port chosen by the kernel) serving ``/metrics``."""
    app = web.Application()
    app.router.add_get("/metrics", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, LOOPBACK, 0)
    await site.start()
    try:
        sockets = runner.addresses
        port = sockets[0][1]
        yield f"http://{LOOPBACK}:{port}/metrics"
    finally:
        await runner.cleanup()


async def test_prometheus_scrapes_it_with_a_bearer_token(tmp_path: Path) -> None:
    inventory = small_inventory(tmp_path)
    collector = FleetCollector(
        inventory, archive_dicom_down(inventory), real_applicable(), BatchCounters()
    )
    registry = fleet_registry(collector)
    token = "scrape-" + "t0ken-for-tests"
    token_file = tmp_path / "scrape.token"
    token_file.write_text(token + "\n")  # Prometheus trims the trailing newline
    token_file.chmod(0o600)
    refused: list[str] = []

    async def metrics(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {token}":
            refused.append(request.headers.get("Authorization", ""))
            raise web.HTTPUnauthorized(headers={"WWW-Authenticate": "Bearer"})
        body, content_type = await render_async(registry)
        return web.Response(body=body, headers={"Content-Type": content_type})

    async with metrics_site(metrics) as url:
        # The handler refuses a scrape without the token (what the service must do too).
        async with aiohttp.ClientSession() as http:
            async with http.get(url) as answer:
                assert answer.status == 401
            wrong = {"Authorization": "Bearer not-the-token"}
            async with http.get(url, headers=wrong) as answer:
                assert answer.status == 401
        refused.clear()
        async with scraping(url, token_file, tmp_path / "prometheus") as prom:
            await prom.wait_for("pacs_tui_servers", lambda v: v == 7.0)
            assert await prom.value('up{job="pacs-tui"}') == 1.0
            target = await prom.target()
            assert target["health"] == "up" and target["lastError"] == "", target
            probe = (
                'pacs_tui_probe_health{server="arch-001",site="dc-main",role="archive",'
                'probe="dicom",health="down"}'
            )
            assert await prom.value(probe) == 1.0
            assert await prom.value('pacs_tui_probe_up{server="arch-001",probe="dicom"}') == 0.0
            assert await prom.value('pacs_tui_site_affected{site="hosp-north"}') == 1.0
            age = 'pacs_tui_probe_reading_age_seconds{server="rtr-001",probe="power"}'
            assert await prom.value(age) == 100.0
            assert await prom.value("sum(pacs_tui_server_health)") == 7.0
    assert refused == [], f"Prometheus scraped without the token: {refused}"


# -- a real batch feeds the counters ------------------------------------------------------


async def test_a_real_batch_on_the_simulator_is_counted_and_its_power_off_shows(
    tmp_path: Path,
) -> None:
    leaf = "gw-northgate-1"  # an edge gateway at a hospital, nothing depends on it
    with running_sim(tmp_path / "dc", "--servers", "12", "--time-scale", "0.05") as sim:
        inventory = load_inventory(sim.out / "inventory.yaml")
        probes = load_probes({"power"})
        audit = AuditLog(tmp_path / "audit.sqlite3")
        monitor = FleetMonitor(inventory, probes=list(probes.plugins.values()))
        counters = BatchCounters()
        applicable = applicable_probes(monitor.probes)
        collector = FleetCollector(inventory, monitor.state, applicable, counters)
        registry = fleet_registry(collector, runtime=False)
        running_seen: list[float] = []

        def during(event: BatchProgress) -> None:
            if event.kind == "step":
                found = parse(render(registry)[0])
                running_seen.append(one(found, "pacs_tui_batches_running", verb="force-off"))

        async with monitor, Session(inventory, audit=audit) as session:
            readings = MonitorReadings(monitor)
            await monitor.sweep()
            before = parse(render(registry)[0])
            assert states_at_one(before, "pacs_tui_power_state", "state", server=leaf) == ["On"]
            site = inventory.server(leaf).site
            assert one(before, "pacs_tui_site_affected", site=site) == 0.0

            plan, batch = await session.plan([inventory.server(leaf)], "force-off", readings)
            assert not plan.refused, plan.refusals
            runner = session.runner(
                plan, readings, batch_id=batch, confirmation=Confirmation.assumed(plan), poll_s=0.1
            )
            runner.subscribe(counters.observe)
            runner.subscribe(during)
            result = await runner.run()
            assert result.ok, result.to_json()
            await monitor.sweep([leaf])
            after = parse(render(registry)[0])
        audit.close()

    assert running_seen and set(running_seen) == {1.0}, running_seen
    assert one(after, "pacs_tui_batches_running", verb="force-off") == 0.0
    assert one(after, "pacs_tui_batches_total", verb="force-off", outcome="ok") == 1.0
    assert one(after, "pacs_tui_batches_total", verb="off", outcome="ok") == 0.0
    steps = series(after, "pacs_tui_batch_steps_total", verb="force-off")
    assert steps and steps[frozenset({("verb", "force-off"), ("outcome", "ok")})] >= 1.0
    assert sum(steps.values()) == len(
        [e for e in audit_events(tmp_path / "audit.sqlite3", batch) if e == "step"]
    )
    assert states_at_one(after, "pacs_tui_power_state", "state", server=leaf) == ["Off"]
    assert states_at_one(after, "pacs_tui_server_health", "health", server=leaf) == ["down"]
    assert one(after, "pacs_tui_site_affected", site=site) == 1.0


def audit_events(path: Path, batch: str) -> list[str]:
    """The kinds of the audit log's events of one batch."""
    log = AuditLog(path)
    try:
        return [e.kind for e in log.events(batch=batch)]
    finally:
        log.close()


def test_counters_ignore_other_events_and_forget_a_dead_batch() -> None:
    counters = BatchCounters()

    def event(kind: str, batch: str = "b1", outcome: str = "") -> BatchProgress:
        return BatchProgress(kind, batch, "off", None, 1, 0, 0, 0, 1, 0.0, None, outcome=outcome)

    counters.observe(event("batch-start"))
    counters.observe(event("batch-start", "b2"))
    for kind in ("wave-start", "retry", "server", "wave-end", "pause", "resume"):
        counters.observe(event(kind, outcome="ok"))
    counters.observe(event("step", outcome="failed"))
    counters.observe(event("batch-end", outcome="incomplete"))
    assert counters.steps == {("off", "failed"): 1}
    assert counters.batches == {("off", "incomplete"): 1}
    assert counters.running_by_verb()["off"] == 1
    counters.forget("b2")
    assert counters.running_by_verb()["off"] == 0
