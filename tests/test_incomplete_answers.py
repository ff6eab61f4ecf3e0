"""An archive that stops answering early (a result limit, 0xFE00) is never a count.

The simulator's ``dicom_find_limit`` fault and a real Orthanc with
``LimitFindResults`` stop after N matches; the baseline capture records no
study count but the error, and the DICOM probe is DEGRADED, naming the stop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, timedelta
from pathlib import Path

import pytest

from dicom_peers import free_port
from orthanc_pair import new_study, orthanc_archive, upload
from pacs_tui.baseline import capture_baseline
from pacs_tui.dicom.client import c_find_studies
from pacs_tui.inventory import DicomEndpoint, Server, load_inventory
from pacs_tui.plugin_api import Health
from pacs_tui.sim.datacenter import SimOptions, SimulatedDataCenter
from sim_process import random_octet
from test_probe_dicom import NodeFactory, make_node, opened, server_for  # noqa: F401


@pytest.fixture
async def center(tmp_path: Path) -> AsyncIterator[tuple[SimulatedDataCenter, Path]]:
    dc = SimulatedDataCenter(SimOptions(servers=12, address_octet=random_octet(), time_scale=0.02))
    inventory = dc.write_client_files(tmp_path / "site")["inventory"]
    await dc.start()
    try:
        yield dc, inventory
    finally:
        await dc.stop()


async def test_capture_of_a_capped_archive_has_no_count_but_the_error(
    center: tuple[SimulatedDataCenter, Path],
) -> None:
    dc, path = center
    inventory = load_inventory(path)
    servers = [inventory.server("arch-001")]
    settings = {"measure": ["count"], "study_window_days": 1}
    whole = await capture_baseline(inventory, servers=servers, samples=1, settings=settings)
    assert whole.servers["arch-001"].study_count == dc.studies["arch-001"].count(
        date.today() - timedelta(days=1), date.today() - timedelta(days=1)
    )
    await dc.set_faults("arch-001", {"dicom_find_limit": 100})
    capped = await capture_baseline(inventory, servers=servers, samples=1, settings=settings)
    record = capped.servers["arch-001"]
    assert record.study_count is None
    assert list(record.errors) == [
        "study count: C-FIND incomplete: peer stopped after 100 studies (status 0xFE00)"
    ]


async def test_sim_node_with_a_result_limit_ends_with_cancel(
    center: tuple[SimulatedDataCenter, Path],
) -> None:
    dc, _ = center
    spec = dc.fleet.server("arch-001")
    assert spec.ae_title is not None
    day = (date.today() - timedelta(days=2)).strftime("%Y%m%d")
    await dc.set_faults("arch-001", {"dicom_find_limit": 25})
    outcome = await c_find_studies(
        spec.address, dc.options.dicom_port, called_ae=spec.ae_title, query={"StudyDate": day}
    )
    assert (outcome.state, outcome.count, outcome.complete) == ("incomplete", 25, False)
    # Exactly as many matches as the limit is a complete answer.
    just = dc.studies["arch-001"].count(date.today() - timedelta(days=2), None, "NM")
    await dc.set_faults("arch-001", {"dicom_find_limit": just})
    query = {"StudyDate": day, "ModalitiesInStudy": "NM"}
    outcome = await c_find_studies(
        spec.address, dc.options.dicom_port, called_ae=spec.ae_title, query=query
    )
    assert (outcome.state, outcome.complete) == ("ok", True)


async def test_probe_of_a_capped_sim_node_is_degraded(make_node: NodeFactory) -> None:  # noqa: F811
    node = await make_node()
    node.host.faults.dicom_find_limit = 3
    result = await (await opened()).probe(server_for(node))
    assert (result.state, result.health) == ("ok", Health.DEGRADED)
    assert "C-FIND incomplete: peer stopped after 3 studies (status 0xFE00)" in result.detail
    assert result.facts["find_state"] == "incomplete"


async def test_probe_of_a_capped_orthanc_is_degraded(tmp_path: Path) -> None:
    today = date.today()
    with orthanc_archive(
        tmp_path, "CAPPED", dicom_port=free_port(), peers={}, limit_find_results=2
    ) as peer:
        for hour in ("08", "09", "10"):
            upload(peer, new_study(today, f"{hour}0000"))
        server = Server(
            name="orthanc-capped",
            site="dc",
            role="archive",
            dicom=DicomEndpoint("127.0.0.1", peer.dicom_port, peer.aet, peer.known_aet),
        )
        result = await (await opened()).probe(server)
    assert (result.state, result.health) == ("ok", Health.DEGRADED)
    assert "C-FIND incomplete: peer stopped after 2 studies (status 0xFE00)" in result.detail
