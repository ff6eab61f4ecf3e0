"""Baseline capture and comparison against the simulated data center, in-process."""

from __future__ import annotations

import argparse
import itertools
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pytest

from pacs_tui.baseline import (
    Baseline,
    capture_baseline,
    compare_baselines,
    load_baseline,
    save_baseline,
)
from pacs_tui.cli import baseline as baseline_cli
from pacs_tui.cli import replication as replication_cli
from pacs_tui.inventory import Inventory, load_inventory
from pacs_tui.replication import check_replication
from pacs_tui.sim.datacenter import SimOptions, SimulatedDataCenter
from sim_process import random_octet, running_sim

# Client and simulated servers share one event loop here: with requests to
# several servers in flight, a sample would time the loop's queue, not the
# server. One server at a time measures the simulator's own latency noise.
LATENCIES = {"measure": ["echo", "find", "redfish"], "max_concurrency": 1}
# A C-FIND that matches nothing: it still walks the day's NM studies and waits
# for the storage tier, but its time is not CPU spent encoding answers, which
# on a shared two-core machine swings with whatever else runs.
QUIET_FIND = {
    "StudyDate": (date.today() - timedelta(days=1)).strftime("%Y%m%d"),
    "ModalitiesInStudy": "NM",
    "PatientID": "NO-SUCH-PATIENT",
}


@dataclass
class Site:
    center: SimulatedDataCenter
    inventory: Inventory
    files: Path


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    center = SimulatedDataCenter(
        SimOptions(servers=20, address_octet=random_octet(), time_scale=0.02)
    )
    paths = center.write_client_files(tmp_path / "site")
    await center.start()
    try:
        yield Site(center, load_inventory(paths["inventory"]), tmp_path)
    finally:
        await center.stop()


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    baseline_cli.register(sub)
    replication_cli.register(sub)
    args = parser.parse_args(argv)
    code: int = args.handler(args)
    return code


def archives(site: Site) -> tuple[str, str]:
    """(a primary archive, the backup archive replicating it)."""
    backup = next(s for s in site.center.fleet.servers if s.name.startswith("bkp-arch"))
    return "arch-001", backup.name


async def test_capture_records_every_metric_and_round_trips(site: Site) -> None:
    baseline = await capture_baseline(
        site.inventory, samples=3, label="before", settings={"study_window_days": 1}
    )
    assert list(baseline.servers) == site.inventory.names()
    hosts = site.center.hosts
    for name, server in baseline.servers.items():
        assert server.errors == (), (name, server.errors)
        host = hosts[name]
        assert server.redfish is not None and server.redfish.count == 3
        assert server.hardware["serial_number"] == host.hardware.serial_number
        assert server.hardware["mac_addresses"] == sorted(host.hardware.mac_addresses)
        assert server.hardware["bmc_firmware"] == host.hardware.bmc_firmware
        assert server.hardware["model"] == host.hardware.model
        assert dict(server.services) == {u: "active" for u in host.units}
        assert (server.echo is not None) == host.speaks_dicom
    primary, _ = archives(site)
    yesterday = date.today() - timedelta(days=1)
    assert baseline.study_window == (yesterday, yesterday)
    assert baseline.servers[primary].study_count == site.center.studies[primary].count(
        yesterday, yesterday
    )
    assert baseline.servers[primary].find is not None
    assert baseline.servers["rtr-001"].find is None  # a router offers Verification only
    assert baseline.servers["img-001"].study_count is None  # only archives are counted

    path = site.files / "before.json"
    save_baseline(baseline, path)
    assert load_baseline(path) == baseline
    roles = baseline.roles()
    archive = roles["archive"]
    assert archive.echo is not None and archive.echo.count == 3 * len(archive.servers)


@pytest.mark.slow
def test_cli_captures_of_a_simulator_process_compare_same(tmp_path: Path) -> None:
    before, after = tmp_path / "before.json", tmp_path / "after.json"
    with running_sim(tmp_path / "sim", "--servers", "20") as sim:
        inventory = str(sim.out / "inventory.yaml")
        args = ["baseline", "capture", "--inventory", inventory, "--samples", "5"]
        args += ["--select", "role=archive,role=image-manager"]
        assert run_cli(*args, "--out", str(before), "--study-days", "1", "--label", "A") == 0
        assert run_cli(*args, "--out", str(after), "--like", str(before)) == 0
    b, a = load_baseline(before), load_baseline(after)
    assert len(b.servers) == 5 and b.label == "A"
    assert a.study_window == b.study_window and a.find_query == b.find_query
    # Latency verdicts of two captures depend on the machine's load meanwhile
    # (the stability test covers them); identity, units and counts must hold.
    comparison = compare_baselines(b, a)
    assert [f for f in comparison.problems() if f.metric not in ("echo", "find", "redfish")] == []
    assert all(s.study_count for s in a.servers.values() if s.role == "archive")
    report = tmp_path / "report"
    assert run_cli("baseline", "compare", str(before), str(before), "--report", str(report)) == 0
    assert "SAME OR BETTER" in (report / "report.md").read_text()


def test_a_bmc_without_power_telemetry_is_no_capture_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Half the BMCs offer no power resource: their draw is not recorded, and that is
    said in the summary, not reported as an error of each server."""
    out = tmp_path / "before.json"
    mix = "generic=0.5,no-power-telemetry=0.5"
    with running_sim(tmp_path / "sim", "--servers", "12", "--bmc-mix", mix) as sim:
        inventory = str(sim.out / "inventory.yaml")
        args = ["baseline", "capture", "--inventory", inventory, "--samples", "2"]
        assert run_cli(*args, "--out", str(out)) == 0
        flavours = {s["name"]: sim.bmc(s["name"])["flavour"] for s in sim.servers() if "bmc" in s}
    printed, errors = capsys.readouterr()
    baseline = load_baseline(out)
    drawn = {n for n, s in baseline.servers.items() if s.power_watts is not None}
    assert errors == "" and all(not s.errors for s in baseline.servers.values())
    offered = {n for n, flavour in flavours.items() if flavour != "no-power-telemetry"}
    assert drawn == offered and 0 < len(drawn) < len(flavours), flavours
    assert f"power draw recorded for {len(drawn)} of {len(flavours)} with a BMC" in printed
    # A baseline with no draw at all is said when given to serve/run, not silently ignored.
    from pacs_tui.cli.power_baseline import power_baseline_settings
    from pacs_tui.session import POWER_BASELINE_SETTING

    document = json.loads(out.read_text())
    for entry in document["servers"].values():
        entry["power_watts"] = None
    out.write_text(json.dumps(document))
    assert power_baseline_settings(out, "serve") == {POWER_BASELINE_SETTING: {}}
    note = capsys.readouterr().err
    assert f"--power-baseline {out}: no server has a power draw in it" in note


@pytest.mark.slow
async def test_twenty_clean_comparisons_have_no_false_worse(site: Site) -> None:
    started = time.monotonic()
    captures: list[Baseline] = []
    for _ in range(21):
        captures.append(
            await capture_baseline(
                site.inventory, samples=5, settings=LATENCIES, find_query=QUIET_FIND
            )
        )
    worse = []
    # Twenty BEFORE/AFTER pairs of consecutive captures: the machine's load
    # drifts (other test processes share its two cores), the simulator's noise does not.
    for before, after in itertools.pairwise(captures):
        comparison = compare_baselines(before, after)
        worse += [f"{f.name} {f.metric}: {f.detail}" for f in comparison.problems()]
    assert worse == []
    print(f"\n21 captures and 20 comparisons in {time.monotonic() - started:.1f} s")


async def test_slower_storage_makes_that_role_worse(site: Site) -> None:
    servers = [s for s in site.inventory if s.role in ("archive", "image-manager")]
    before = await capture_baseline(
        site.inventory, servers=servers, samples=5, settings=LATENCIES, find_query=QUIET_FIND
    )
    for name, node in site.center.dicom_nodes.items():
        if site.center.hosts[name].role == "archive":
            node.find_latency_s = 0.08
    after = await capture_baseline(
        site.inventory, servers=servers, samples=5, settings=LATENCIES, find_query=QUIET_FIND
    )
    comparison = compare_baselines(before, after)
    worse = {(f.scope, f.name, f.metric) for f in comparison.findings if f.verdict == "worse"}
    archives_ = {s.name for s in servers if s.role == "archive"}
    assert worse >= {("role", "archive", "find")} | {("server", n, "find") for n in archives_}
    assert not comparison.ok
    slower = next(f for f in comparison.problems() if f.name == "archive" and f.metric == "find")
    assert slower.after.median - slower.before.median >= 70


async def test_swapped_servers_are_changed_on_both(site: Site) -> None:
    servers = [site.inventory.server(n) for n in ("db-001", "db-002", "web-001")]
    settings = {"measure": ["redfish"]}
    before = await capture_baseline(site.inventory, servers=servers, samples=2, settings=settings)
    one, two = site.center.hosts["db-001"], site.center.hosts["db-002"]
    one.hardware, two.hardware = two.hardware, one.hardware
    after = await capture_baseline(site.inventory, servers=servers, samples=2, settings=settings)
    comparison = compare_baselines(before, after)
    changed = {(f.name, f.metric): f for f in comparison.findings if f.verdict == "changed"}
    assert {m for n, m in changed if n == "db-001"} >= {"serial_number", "mac_addresses"}
    assert {n for n, _ in changed} == {"db-001", "db-002"}
    serial = changed[("db-001", "serial_number")]
    assert serial.before == two.hardware.serial_number  # db-001's own box, now in db-002
    assert serial.after == one.hardware.serial_number
    assert "swapped with db-002" in serial.detail
    macs = changed[("db-002", "mac_addresses")]
    assert macs.after == sorted(two.hardware.mac_addresses)


async def test_replica_missing_a_day_is_found_by_count_and_replication(site: Site) -> None:
    primary, backup = archives(site)
    missing = date.today() - timedelta(days=1)
    servers = [site.inventory.server(n) for n in (primary, backup)]
    settings = {"measure": ["count"], "study_window_days": 1}
    before = await capture_baseline(site.inventory, servers=servers, samples=1, settings=settings)
    report = await check_replication(
        servers[0],
        servers[1],
        date_from=missing - timedelta(days=1),
        date_to=missing + timedelta(days=1),
    )
    assert report.safe_to_shutdown and report.primary_total == report.replica_total > 0

    replica = site.center.studies[primary].replica(missing_days=[missing])
    site.center.studies[backup] = replica
    site.center.dicom_nodes[backup].studies = replica
    after = await capture_baseline(site.inventory, servers=servers, samples=1, settings=settings)
    comparison = compare_baselines(before, after)
    lost = site.center.studies[primary].count(missing, missing)
    assert [(f.name, f.metric, f.before - f.after) for f in comparison.problems()] == [
        ("archive", "study_count", lost),
        (backup, "study_count", lost),
    ]

    report = await check_replication(
        servers[0],
        servers[1],
        date_from=missing - timedelta(days=1),
        date_to=missing,
    )
    assert not report.safe_to_shutdown and report.errors == ()
    assert report.ranges() == [(missing, missing)]
    assert [(d.day, d.modality) for d in report.differences] == [(missing, None)]
    assert report.differences[0].primary == lost and report.differences[0].replica == 0
    expected = site.center.studies[primary]
    assert {f.study_uid for f in report.of_kind("missing")} == {
        s.study_uid for s in expected.studies(missing, missing)
    }
    assert report.primary_total - report.replica_total == lost


def test_replication_cli_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    center = SimulatedDataCenter(SimOptions(servers=12, address_octet=random_octet()))
    inventory = center.write_client_files(tmp_path)["inventory"]
    base = ["replication", "check", "--inventory", str(inventory)]
    assert run_cli(*base, "--primary", "nope", "--replica", "arch-001") == 2
    assert "--primary: no server named 'nope'" in capsys.readouterr().err
    assert run_cli(*base, "--primary", "arch-001", "--replica", "web-001") == 2
    assert "web-001 has no dicom endpoint" in capsys.readouterr().err
    assert (
        run_cli(
            *base,
            "--primary",
            "arch-001",
            "--replica",
            "bkp-arch-01",
            "--from",
            "2026-05-02",
            "--to",
            "2026-05-01",
        )
        == 2
    )
    with pytest.raises(SystemExit) as exited:
        run_cli(*base, "--primary", "arch-001", "--replica", "bkp-arch-01", "--from", "may")
    assert exited.value.code == 2
