"""The study-level replication proof and its repair against simulated archives.

Two ``DicomNode``s on their own loopback addresses, a primary and its replica
(the replica's ``StudyIndex`` is ``primary.replica()``), sharing one AE table
so the primary's C-MOVE can reach the replica; plants and faults are set on
the index and the host exactly as the simulator's control API does.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path

import pytest

from dicom_peers import free_port, loopback_address
from pacs_tui.batch.audit import AuditLog
from pacs_tui.dicom.move import c_move_study
from pacs_tui.inventory import DicomEndpoint, Server
from pacs_tui.replication import ReplicationReport, check_replication
from pacs_tui.replication.repair import repair_studies
from pacs_tui.sim.dicom_node import DicomNode
from pacs_tui.sim.host import HardwareFacts, HostTimings, SimulatedHost
from pacs_tui.sim.studies import StudyIndex

DAY = date(2026, 1, 5)  # a Monday
TINY = HostTimings(power_transition_s=0.01, boot_s=0.02, service_start_s=0.01, shutdown_s=0.02)


@dataclass
class Pair:
    primary: DicomNode
    replica: DicomNode
    table: dict[str, tuple[str, int]]

    def server(self, node: DicomNode) -> Server:
        return Server(
            name=node.host.name,
            site="dc",
            role="archive",
            dicom=DicomEndpoint(node.host.address, node.port, node.ae_title, "PACSTUI"),
        )


def _host(name: str) -> SimulatedHost:
    hardware = HardwareFacts("Dell Inc.", "R650", f"SIM-{name}", ("52:54:00:00:00:01",), "1", "1")
    return SimulatedHost(
        name=name,
        role="archive",
        site="dc",
        address=loopback_address(),
        units=("pacs",),
        hardware=hardware,
        timings=TINY,
        speaks_dicom=True,
    )


@pytest.fixture
async def pair() -> AsyncIterator[Pair]:
    index = StudyIndex(11, DAY - timedelta(days=30), DAY + timedelta(days=3), 300)
    table: dict[str, tuple[str, int]] = {}
    nodes = []
    for name, ae, studies in (("arch-001", "ARCH001", index), ("bkp-01", "BKP01", index.replica())):
        host = _host(name)
        node = DicomNode(
            host, port=free_port(host.address), ae_title=ae, studies=studies, known_aes=table
        )
        host.dicom_listener = node
        table[ae] = (host.address, node.port)
        await node.start()
        nodes.append(node)
    try:
        yield Pair(nodes[0], nodes[1], table)
    finally:
        for node in nodes:
            await node.stop()


def held(node: DicomNode) -> StudyIndex:
    assert node.studies is not None
    return node.studies


async def check(pair: Pair, first: date = DAY, last: date = DAY) -> ReplicationReport:
    return await check_replication(
        pair.server(pair.primary),
        pair.server(pair.replica),
        date_from=first,
        date_to=last,
        timeout=20,
    )


async def test_identical_archives_are_safe_with_one_query_per_day_each(pair: Pair) -> None:
    report = await check(pair, DAY - timedelta(days=2), DAY)
    assert report.safe_to_shutdown, report.verdict()
    assert report.findings == [] and report.incomplete == []
    assert (
        report.primary_total
        == report.replica_total
        == held(pair.primary).count(DAY - timedelta(days=2), DAY)
    )
    assert report.queries == {"arch-001": 3, "bkp-01": 3}
    assert report.verdict().startswith("SAFE to shut down arch-001")


async def test_partial_swapped_and_missing_studies_are_named(pair: Pair) -> None:
    studies = [s for s in held(pair.primary).studies(DAY, DAY) if s.instances > 1]
    gone, half, swapped = studies[3], studies[50], studies[120]
    plants = held(pair.replica).plants
    plants.removed.add(gone.study_uid)
    plants.instances[half.study_uid] = half.instances // 2
    plants.removed.add(swapped.study_uid)
    impostor = swapped.study_uid + "9"  # another UID, same day, time, modality and size
    plants.add_extra(replace(swapped, study_uid=impostor))

    report = await check(pair)
    assert not report.safe_to_shutdown
    assert {f.study_uid for f in report.of_kind("missing")} == {gone.study_uid, swapped.study_uid}
    [partial] = report.of_kind("partial")
    assert (partial.study_uid, partial.primary_instances, partial.replica_instances) == (
        half.study_uid,
        half.instances,
        half.instances // 2,
    )
    assert [f.study_uid for f in report.of_kind("extra")] == [impostor]
    assert report.verdict() == (
        "NOT SAFE to shut down arch-001: 2 studies missing on the replica; "
        "1 study partial (fewer instances)"
    )
    body = report.to_json()
    assert body["missing"][0]["study_uid"] in (gone.study_uid, swapped.study_uid)
    assert body["partial"][0] == partial.to_json()
    assert body["ranges"] == [[DAY.isoformat(), DAY.isoformat()]]
    # The swap alone keeps the day's count: the count-based check would have said SAFE.
    plants.removed.discard(gone.study_uid)
    plants.instances.clear()
    swap_only = await check(pair)
    assert swap_only.primary_total == swap_only.replica_total
    assert [f.study_uid for f in swap_only.of_kind("missing")] == [swapped.study_uid]
    assert not swap_only.safe_to_shutdown


async def test_capped_archive_is_split_until_every_part_completes(pair: Pair) -> None:
    pair.replica.host.faults.dicom_find_limit = 40
    report = await check(pair)
    assert report.safe_to_shutdown, report.verdict()
    assert report.windows_split > 0
    assert report.primary_total == held(pair.primary).count(DAY, DAY)
    assert report.queries["bkp-01"] > 24  # the day, its hours, and some hours by modality


async def test_window_that_cannot_complete_is_not_safe_with_its_reason(pair: Pair) -> None:
    pair.primary.host.faults.dicom_find_limit = 1
    report = await check(pair)
    assert not report.safe_to_shutdown
    assert report.incomplete
    first = report.incomplete[0].text()
    assert first.startswith("2026-01-05 ") and "arch-001 stopped after 1 matches" in first
    assert "0xFE00" in first
    assert report.verdict().endswith("windows incomplete")


async def test_a_failing_archive_makes_every_window_incomplete(pair: Pair) -> None:
    pair.replica.host.faults.dicom_abort = True
    report = await check(pair)
    assert not report.safe_to_shutdown and report.findings == []
    assert "aborted" in report.incomplete[0].reason


async def test_a_stalled_archive_is_not_asked_again_in_smaller_parts(pair: Pair) -> None:
    # Splitting helps a result limit, not an archive that does not answer: more queries
    # would only add load to a struggling production archive.
    pair.replica.host.faults.dicom_find_delay_s = 3.0
    report = await check_replication(
        pair.server(pair.primary), pair.server(pair.replica), date_from=DAY, date_to=DAY,
        timeout=1,
    )  # fmt: skip
    assert not report.safe_to_shutdown
    assert len(report.incomplete) == 1 and "no answer" in report.incomplete[0].reason
    assert report.queries == {pair.server(pair.primary).name: 1, pair.server(pair.replica).name: 1}


async def test_repair_moves_missing_and_partial_studies_and_rechecks_them(
    pair: Pair, tmp_path: Path
) -> None:
    studies = [s for s in held(pair.primary).studies(DAY, DAY) if 1 < s.instances < 200]
    plants = held(pair.replica).plants
    plants.removed.add(studies[0].study_uid)
    plants.instances[studies[1].study_uid] = 1
    before = await check(pair)
    targets = before.of_kind("missing") + before.of_kind("partial")
    assert len(targets) == 2
    with AuditLog(tmp_path / "audit.sqlite3") as audit:
        result = await repair_studies(
            pair.server(pair.primary),
            pair.server(pair.replica),
            targets,
            destination_ae="BKP01",
            audit=audit,
            batch="b1",
            pause_s=0.01,
        )
        kinds = [(e.kind, e.outcome) for e in audit.events(batch="b1")]
    assert result.ok, [s.line() for s in result.steps]
    assert all(s.recheck is not None and s.recheck.state == "ok" for s in result.steps)
    assert kinds == [("move-start", ""), ("move", "ok"), ("recheck", "ok")] * 2
    after = await check(pair)
    assert after.safe_to_shutdown, after.verdict()
    # The same (now old) report again: each study is asked first and nothing is re-sent.
    with AuditLog(tmp_path / "audit.sqlite3") as audit:
        again = await repair_studies(
            pair.server(pair.primary),
            pair.server(pair.replica),
            targets,
            destination_ae="BKP01",
            audit=audit,
            batch="b2",
            pause_s=0.01,
        )
        kinds = [(e.kind, e.outcome) for e in audit.events(batch="b2")]
    assert again.ok and again.steps == [] and len(again.skipped) == 2
    assert kinds == [("skip", "already whole")] * 2


async def test_a_window_without_any_study_proves_nothing(pair: Pair) -> None:
    empty = await check(pair, date(2001, 1, 1), date(2001, 1, 3))
    assert empty.primary_total == 0
    assert not empty.safe_to_shutdown
    assert "nothing was proven" in empty.verdict()


async def test_unknown_move_destination_stops_the_repair(pair: Pair, tmp_path: Path) -> None:
    plants = held(pair.replica).plants
    uids = [s.study_uid for s in held(pair.primary).studies(DAY, DAY)][:2]
    plants.removed.update(uids)
    before = await check(pair)
    del pair.table["BKP01"]  # the primary no longer knows the replica's AE
    outcome = await c_move_study(
        pair.primary.host.address,
        pair.primary.port,
        called_ae="ARCH001",
        destination_ae="BKP01",
        study_uid=uids[0],
    )
    assert (outcome.state, outcome.status) == ("destination-unknown", 0xA801)
    assert "Refused: Move Destination unknown" in outcome.detail
    with AuditLog(tmp_path / "audit.sqlite3") as audit:
        result = await repair_studies(
            pair.server(pair.primary),
            pair.server(pair.replica),
            before.of_kind("missing"),
            destination_ae="BKP01",
            audit=audit,
            batch="b2",
            pause_s=0,
        )
        kinds = [e.kind for e in audit.events(batch="b2")]
    assert not result.ok and len(result.steps) == 1
    assert "arch-001 refused the move destination BKP01" in result.stopped
    assert "Add BKP01 (bkp-01) to arch-001's DICOM modalities" in result.stopped
    assert kinds == ["move-start", "move", "refused"]


async def test_control_api_plants_studies_on_a_simulated_replica(tmp_path: Path) -> None:
    import aiohttp

    from pacs_tui.inventory import load_inventory
    from pacs_tui.sim.control import ControlApi
    from pacs_tui.sim.datacenter import SimOptions, SimulatedDataCenter, replica_pairs
    from sim_process import random_octet

    dc = SimulatedDataCenter(SimOptions(servers=12, address_octet=random_octet(), tls=False))
    inventory = load_inventory(dc.write_client_files(tmp_path)["inventory"])
    await dc.start()
    api = ControlApi(dc)
    url = await api.start()
    try:
        primary, replica = replica_pairs(dc.fleet)[0]
        day = date.today() - timedelta(days=1)
        body = {"day": day.isoformat(), "missing": 1, "partial": 1, "swapped": 1}
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{url}/hosts/{replica}/study-plants", json=body) as answer:
                assert answer.status == 200
                planted = await answer.json()
            async with http.post(f"{url}/hosts/{replica}/study-plants", json={"day": "x"}) as bad:
                assert bad.status == 400
        report = await check_replication(
            inventory.server(primary), inventory.server(replica), date_from=day, date_to=day
        )
        assert {f.study_uid for f in report.of_kind("missing")} == set(
            planted["missing"] + planted["swapped"]
        )
        assert [f.study_uid for f in report.of_kind("partial")] == planted["partial"]
        assert len(report.of_kind("extra")) == 1
    finally:
        await api.stop()
        await dc.stop()


def test_a_repair_report_with_a_bad_uid_or_a_missing_list_is_refused(tmp_path: Path) -> None:
    from pacs_tui.replication.report import REPORT_FORMAT, REPORT_VERSION, ReportError, load_report

    base = {"format": REPORT_FORMAT, "version": REPORT_VERSION, "primary": "a",
            "replica": "b", "replica_ae": "BKP01", "partial": []}  # fmt: skip
    cases = {
        "missing[0].study_uid": {**base, "missing": [{"study_uid": "1.2.3;rm -rf"}]},
        "missing: missing": base,
    }
    for expected, document in cases.items():
        path = tmp_path / "check.json"
        path.write_text(json.dumps(document))
        with pytest.raises(ReportError, match=re.escape(expected)):
            load_report(path)
    twice = {**base, "missing": [{"study_uid": "1.2.3"}, {"study_uid": "1.2.3"}]}
    path.write_text(json.dumps(twice))
    assert [s.study_uid for s in load_report(path).studies] == ["1.2.3"]
