"""The poller's garbage-collector tuning (pacs_tui.gc_tuning) and the monitor's hook.

Each test leaves the collector as it found it (thresholds, nothing frozen),
so tests after it in the same process see Python's defaults.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from pacs_tui import gc_tuning
from pacs_tui.inventory import Server, load_inventory_text
from pacs_tui.monitor import FleetMonitor
from pacs_tui.plugin_api import Health, Probe, ProbeResult


@pytest.fixture(autouse=True)
def restored_gc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(gc_tuning.ENV, raising=False)
    threshold = gc.get_threshold()
    gc.unfreeze()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


class Quick(Probe):
    name = "network"
    interval_s = 0.05

    def applies_to(self, server: Server) -> bool:
        return True

    async def probe(self, server: Server) -> ProbeResult:
        await asyncio.sleep(0.001)
        return ProbeResult.make("ok", Health.OK, latency_ms=1.0)


def inventory(tmp_path: Path, servers: int) -> object:
    lines = [f"  - {{name: s{i:02d}, role: database, site: dc}}" for i in range(servers)]
    text = "sites: [{name: dc, kind: datacenter}]\nservers:\n" + "\n".join(lines) + "\n"
    return load_inventory_text(text, tmp_path / "inventory.yaml")


def test_freeze_moves_live_objects_out_of_the_collector_and_raises_gen0() -> None:
    kept = [[i] for i in range(1000)]  # long-lived state
    gc_tuning.freeze()
    assert gc.get_freeze_count() >= len(kept)
    assert gc.get_threshold()[0] == gc_tuning.GEN0_THRESHOLD
    # Cyclic garbage made later is still collected.
    cycle: list[object] = []
    cycle.append(cycle)
    del cycle
    assert gc.collect() >= 1


async def test_tuning_waits_for_warm_then_freezes() -> None:
    warm = False
    task = asyncio.create_task(gc_tuning.tune_when_warm(lambda: warm, check_s=0.01))
    await asyncio.sleep(0.05)
    assert gc.get_freeze_count() == 0
    warm = True
    await asyncio.sleep(0.05)
    assert gc.get_freeze_count() > 0
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_pacs_tui_gc_default_leaves_the_collector_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(gc_tuning.ENV, "default")
    threshold = gc.get_threshold()
    await asyncio.wait_for(gc_tuning.tune_when_warm(lambda: True), 1.0)  # returns at once
    assert gc.get_freeze_count() == 0 and gc.get_threshold() == threshold


async def test_a_started_monitor_freezes_once_every_pair_has_a_reading(tmp_path: Path) -> None:
    monitor = FleetMonitor(inventory(tmp_path, 20), probes=[Quick()])  # type: ignore[arg-type]
    async with monitor:
        monitor.start()
        for _ in range(200):
            if gc.get_freeze_count():
                break
            await asyncio.sleep(0.02)
        assert len(monitor.state.keys()) == 20
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold()[0] == gc_tuning.GEN0_THRESHOLD
    assert monitor._gc_task is None  # stopped with the polling
