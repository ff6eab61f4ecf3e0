"""An example third-party probe plugin: is a web viewer's HTTPS port open?

The README's "Writing a plugin" section shows this file; ``tests/test_plugin_catalog.py``
installs it as a distribution with an entry point and runs it through the monitor.
"""

from __future__ import annotations

import asyncio
import time

from pacs_tui.inventory import Server
from pacs_tui.plugin_api import Health, Probe, ProbeContext, ProbeResult


class ViewerPortProbe(Probe):
    """TCP connect to port ``viewer_port`` (default 443) of every web viewer."""

    name = "viewer"
    interval_s = 30.0
    timeout_s = 3.0

    async def open(self, context: ProbeContext) -> None:
        self.port = int(context.settings.get("viewer_port", 443))

    def applies_to(self, server: Server) -> bool:
        return server.role == "web-viewer" and server.ssh is not None

    def endpoint(self, server: Server) -> str:
        return f"host:{server.ssh.host}"  # type: ignore[union-attr]

    async def probe(self, server: Server) -> ProbeResult:
        host = server.ssh.host  # type: ignore[union-attr]
        started = time.perf_counter()
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(host, self.port), self.timeout_s
            )
        except (OSError, TimeoutError) as exc:
            return ProbeResult.make("closed", Health.DOWN, detail=f"port {self.port}: {exc}")
        writer.close()
        latency = (time.perf_counter() - started) * 1000
        return ProbeResult.make("open", Health.OK, latency_ms=latency, detail=f"port {self.port}")
