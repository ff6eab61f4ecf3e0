"""A default-size simulated fleet: every endpoint of every server answers."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from sim_process import running_sim


async def _answers(host: str, port: int) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 5)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


@pytest.mark.slow
def test_300_servers_answer_on_every_endpoint(tmp_path: Path) -> None:
    with running_sim(tmp_path / "dc", "--servers", "300") as sim:
        bmc, ssh, dicom = (sim.defaults[k]["port"] for k in ("bmc", "ssh", "dicom"))
        endpoints = []
        for server in sim.servers():
            endpoints += [(server["bmc"]["address"], bmc), (server["ssh"]["host"], ssh)]
            if "dicom" in server:
                endpoints.append((server["dicom"]["host"], dicom))

        async def sweep() -> list[bool]:
            gate = asyncio.Semaphore(100)

            async def one(host: str, port: int) -> bool:
                async with gate:
                    return await _answers(host, port)

            return await asyncio.gather(*(one(h, p) for h, p in endpoints))

        results = asyncio.run(sweep())
    assert len(sim.servers()) == 300
    silent = [e for e, ok in zip(endpoints, results, strict=True) if not ok]
    assert not silent, f"{len(silent)} endpoints did not answer, e.g. {silent[:5]}"
    assert len({s["site"] for s in sim.servers()}) == 21  # dc, backup, 6 hospitals, 13 clinics
