"""A client of the simulator's control API (``pacs_tui.sim.control``) over HTTP on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any

import aiohttp

from pacs_tui.rehearsal.outcome import RehearsalStopped


class SimControl:
    """The simulator's control API (plant faults, swap boxes, drop replica days)."""

    def __init__(self, url: str, http: aiohttp.ClientSession) -> None:
        self.url = url
        self.http = http

    async def call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        """One request; raise ``RehearsalStopped`` with the simulator's error."""
        async with self.http.request(method, self.url + path, json=body) as answer:
            data = await answer.json()
            if answer.status >= 400:
                raise RehearsalStopped(f"sim control {method} {path}: {data.get('error', data)}")
            return data

    async def set_faults(self, names: Iterable[str], changes: Mapping[str, Any]) -> None:
        """Apply the same fault switches to many servers."""
        gate = asyncio.Semaphore(32)

        async def one(name: str) -> None:
            async with gate:
                await self.call("POST", f"/hosts/{name}/faults", changes)

        await asyncio.gather(*(one(n) for n in names))
