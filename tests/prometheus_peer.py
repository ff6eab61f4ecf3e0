"""A real Prometheus server scraping a ``/metrics`` URL, for tests (Debian's ``prometheus``).

``scraping(url, token_file, folder)`` starts ``/usr/bin/prometheus`` with a
one-job configuration that scrapes ``url`` every second with the bearer token
read from ``token_file`` (``authorization: credentials_file:``, as a
hospital's Prometheus would scrape ``pacs-tui serve``), waits until its API
answers, and stops it on exit. Everything listens on 127.0.0.1 only.

Queries go through Prometheus's HTTP API (``/api/v1/query``), so a test sees
what Prometheus stored, not what the exporter meant to send.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import yaml

from peers import require_binary

LOOPBACK = "127.0.0.1"


def free_port(address: str = LOOPBACK) -> int:
    """A port free on ``address`` right now."""
    with socket.socket() as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningPrometheus:
    """A Prometheus server started by ``scraping``, and its HTTP API."""

    api: str  # http://127.0.0.1:<port>
    log: Path
    process: asyncio.subprocess.Process
    http: aiohttp.ClientSession

    async def query(self, promql: str) -> list[dict[str, Any]]:
        """The instant vector ``promql`` evaluates to now (``data.result``)."""
        async with self.http.get(f"{self.api}/api/v1/query", params={"query": promql}) as answer:
            body = await answer.json()
        if body.get("status") != "success":
            raise AssertionError(f"query {promql!r} failed: {body}")
        data = body["data"]
        if data["resultType"] != "vector":
            raise AssertionError(f"query {promql!r} gave a {data['resultType']}, not a vector")
        result: list[dict[str, Any]] = data["result"]
        return result

    async def value(self, promql: str) -> float | None:
        """The value of a one-series result; None while there is no series."""
        result = await self.query(promql)
        if not result:
            return None
        if len(result) > 1:
            raise AssertionError(f"{promql!r} has {len(result)} series: {result}")
        return float(result[0]["value"][1])

    async def wait_for(
        self, promql: str, expected: Callable[[float | None], bool], timeout: float = 20.0
    ) -> float | None:
        """Poll ``promql`` until ``expected(value)``; AssertionError (with the log) at timeout.

        Prometheus applies its targets on a 5 s tick, so the first scrape comes
        about 5 s after start whatever the scrape interval.
        """
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            if self.process.returncode is not None:
                raise AssertionError(f"prometheus exited: {self.log_tail()}")
            value = await self.value(promql)
            if expected(value):
                return value
            await asyncio.sleep(0.2)
        target = await self.target()
        raise AssertionError(
            f"{promql!r} still {value} after {timeout} s; target {target['health']}"
            f" ({target['lastError'] or 'no error'}); prometheus log: {self.log_tail()}"
        )

    async def target(self) -> dict[str, Any]:
        """The one scrape target's state (``/api/v1/targets``): health, lastError, ..."""
        async with self.http.get(f"{self.api}/api/v1/targets") as answer:
            body = await answer.json()
        active: list[dict[str, Any]] = body["data"]["activeTargets"]
        assert len(active) == 1, active
        return active[0]

    def log_tail(self, lines: int = 30) -> str:
        """The end of Prometheus's own log, for failure messages."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def scrape_config(url: str, token_file: Path, *, interval_s: float = 1.0) -> dict[str, Any]:
    """A Prometheus configuration with one job scraping ``url`` with a bearer token file."""
    parts = urlsplit(url)
    if parts.hostname != LOOPBACK:
        raise ValueError(f"tests scrape {LOOPBACK} only, not {parts.hostname!r}")
    interval = f"{int(interval_s * 1000)}ms"
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": [
            {
                "job_name": "pacs-tui",
                "scheme": parts.scheme,
                "metrics_path": parts.path or "/metrics",
                "scrape_timeout": interval,
                "authorization": {"type": "Bearer", "credentials_file": str(token_file)},
                "static_configs": [{"targets": [parts.netloc]}],
            }
        ],
    }


@asynccontextmanager
async def scraping(
    url: str, token_file: Path, folder: Path, *, interval_s: float = 1.0, ready_s: float = 20.0
) -> AsyncIterator[RunningPrometheus]:
    """A Prometheus server scraping ``url`` every ``interval_s``; stopped (always) on exit.

    Skips on a laptop without Debian's ``prometheus`` package, fails under CI.
    """
    binary = require_binary("prometheus", "/usr/bin/prometheus")
    config, log = _write_config(folder, scrape_config(url, token_file, interval_s=interval_s))
    port = free_port()
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address={LOOPBACK}:{port}",
            "--log.level=info",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=out,
        )
    api = f"http://{LOOPBACK}:{port}"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
            running = RunningPrometheus(api, log, process, http)
            await _ready(running, ready_s)
            yield running
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


def _write_config(folder: Path, config: dict[str, Any]) -> tuple[Path, Path]:
    """Write the configuration into ``folder``: (its path, the log's path)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path, folder / "prometheus.log"


async def _ready(running: RunningPrometheus, timeout: float) -> None:
    """Wait for ``/-/ready`` to answer 200 (the TSDB is open, scraping has begun)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if running.process.returncode is not None:
            raise AssertionError(f"prometheus exited at start: {running.log_tail()}")
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with running.http.get(f"{running.api}/-/ready") as answer:
                if answer.status == 200:
                    return
        await asyncio.sleep(0.1)
    raise AssertionError(f"prometheus not ready after {timeout} s: {running.log_tail()}")
