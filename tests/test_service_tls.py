"""``pacs-tui serve --tls-cert/--tls-key``: screens attach over HTTPS with the site's CA.

A real serve on the simulator answers over TLS; a client that trusts the CA
(``--ca-file``) attaches and reads the fleet, one that does not is refused
with the reason, and plain HTTP gets nothing.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from pacs_tui.credentials import Secret
from pacs_tui.remote.client import ServiceClient, ServiceUnavailable
from pacs_tui.remote.mirror import attach
from pacs_tui.sim.pki import FleetPki
from service_process import running_service
from sim_process import running_sim

pytestmark = [pytest.mark.timeout(120)]


async def test_screens_attach_over_https_with_the_sites_ca(tmp_path: Path) -> None:
    pki = FleetPki.create()
    ca, cert, key = tmp_path / "ca.pem", tmp_path / "serve.pem", tmp_path / "serve.key"
    pki.write_ca(ca)
    pki.write_server_identity("127.0.0.1", cert, key)
    with (
        running_sim(tmp_path / "dc", "--servers", "7", "--time-scale", "0.05") as sim,
        running_service(
            sim.out / "inventory.yaml", tmp_path / "svc", "--tls-cert", str(cert),
            "--tls-key", str(key), scheme="https", ca_file=ca,
        ) as service,
    ):  # fmt: skip
        assert service.url.startswith("https://127.0.0.1:")
        token = Secret(service.tokens["wall"])
        inventory, described = await attach(ServiceClient(service.url, token, ca_file=ca))
        assert len(inventory.servers) == 7
        assert described["caller"] == {"name": "wall", "role": "viewer"}
        with pytest.raises(ServiceUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
            await attach(ServiceClient(service.url, token))  # the system CAs do not know it
        # A screen without the site's CA fails at once (waiting would not fix a certificate).
        token_file = tmp_path / "wall.token"
        token_file.write_text(service.tokens["wall"] + "\n")
        token_file.chmod(0o600)
        screen = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "pacs_tui", "run", "--connect", service.url,
             "--token-file", str(token_file)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert screen.returncode == 1, screen
        assert "CERTIFICATE_VERIFY_FAILED" in screen.stderr and "Traceback" not in screen.stderr
        plain = service.url.replace("https://", "http://")
        with pytest.raises(ServiceUnavailable):
            await attach(ServiceClient(plain, token))
