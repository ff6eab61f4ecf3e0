"""The DICOM probe against real PACS software: Orthanc and dcmtk's storescp."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dicom_peers import (
    orthanc,
    storescp,
)
from pacs_tui.inventory import DicomEndpoint, Inventory, Server
from pacs_tui.plugin_api import Health, ProbeContext
from pacs_tui_dicom_echo.probe import DicomProbe

EMPTY_INVENTORY = Inventory(Path("/nonexistent/inventory.yaml"), {}, (), {})


async def opened(**settings: Any) -> DicomProbe:
    probe = DicomProbe()
    await probe.open(ProbeContext(EMPTY_INVENTORY, settings))
    return probe


def archive(host: str, port: int, ae_title: str, calling: str = "PACSTUI") -> Server:
    return Server("arch-01", "dc", "archive", dicom=DicomEndpoint(host, port, ae_title, calling))


@pytest.mark.peer("orthanc")
async def test_open_orthanc_echoes_and_counts_an_empty_archive(tmp_path: Path) -> None:
    with orthanc(tmp_path, open_to_all=True) as peer:
        assert peer.rest("/statistics")["CountStudies"] == 0  # type: ignore[index]
        result = await (await opened()).probe(archive(peer.address, peer.dicom_port, peer.aet))
    assert (result.state, result.health) == ("ok", Health.OK), result.detail
    assert result.latency_ms is not None and 0 < result.latency_ms < 1000
    assert result.facts["find_state"] == "ok"
    assert result.facts["find_count"] == 0
    assert result.facts["find_latency_ms"] > 0
    assert "C-FIND 0 studies in " in result.detail


@pytest.mark.peer("orthanc")
async def test_strict_orthanc_rejects_an_unknown_calling_ae(tmp_path: Path) -> None:
    with orthanc(tmp_path) as peer:
        probe = await opened()
        unknown = await probe.probe(archive(peer.address, peer.dicom_port, peer.aet, "STRANGER"))
        known = await probe.probe(archive(peer.address, peer.dicom_port, peer.aet, peer.known_aet))
        wrong_called = await probe.probe(
            archive(peer.address, peer.dicom_port, "NOTORTHANC", peer.known_aet)
        )
    assert (unknown.state, unknown.health) == ("rejected", Health.DOWN)
    assert "calling AE title not recognized" in unknown.detail
    assert (known.state, known.health) == ("ok", Health.OK), known.detail
    assert known.facts["find_count"] == 0
    assert (wrong_called.state, wrong_called.health) == ("rejected", Health.DOWN)
    assert "called AE title not recognized" in wrong_called.detail


@pytest.mark.peer("dcmtk")
async def test_storescp_echoes(tmp_path: Path) -> None:
    with storescp(tmp_path, aet="STORESCP") as peer:
        result = await (await opened(dicom_find=False)).probe(
            archive(peer.address, peer.port, peer.aet)
        )
    assert (result.state, result.health) == ("ok", Health.OK), result.detail
    assert result.latency_ms is not None and result.latency_ms > 0


@pytest.mark.peer("dcmtk")
async def test_storescp_refuse_is_rejected_with_its_reason(tmp_path: Path) -> None:
    with storescp(tmp_path, aet="STORESCP", refuse=True) as peer:
        result = await (await opened()).probe(archive(peer.address, peer.port, peer.aet))
    assert (result.state, result.health) == ("rejected", Health.DOWN)
    assert result.detail == "rejected: no reason given (permanent, service-user)"
    assert "find_count" not in result.facts
