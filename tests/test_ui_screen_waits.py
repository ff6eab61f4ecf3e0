"""A screen switched on before its service waits for it, in a real terminal.

The room's wall and laptops may boot before the service (a power cut of the
room, a reboot order): ``pacs-tui run --connect URL`` started while nothing
listens says it is waiting, stays up, and draws the fleet once ``pacs-tui
serve`` answers on that port. A token file others can read is refused before
anything is sent (exit 2, naming the file and the chmod).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from service_process import add_token, free_port
from sim_process import running_sim, stop_process

pytest.importorskip("pyte", reason="pyte (dev extras) emulates the terminal")
sys.path.insert(0, str(Path(__file__).parent / "benchmarks"))
from pty_terminal import PtyTerminal

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]

PACS_TUI = [sys.executable, "-m", "pacs_tui"]


def test_a_room_started_before_its_service_waits_then_draws_the_fleet(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.yaml"
    viewer = tmp_path / "wall.token"
    viewer.write_text(add_token(tokens, "wall", "viewer") + "\n")
    viewer.chmod(0o644)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"PACS_TUI_DATA_DIR": str(tmp_path / "data"), "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    screen = [*PACS_TUI, "run", "--connect", url, "--token-file", str(viewer)]

    refused = subprocess.run(screen, capture_output=True, text=True, timeout=60,
                             env={**os.environ, **env})  # fmt: skip
    assert refused.returncode == 2, refused
    assert f"chmod 600 {viewer}" in refused.stderr and "Traceback" not in refused.stderr
    viewer.chmod(0o600)

    with running_sim(tmp_path / "dc", "--servers", "8", "--time-scale", "0.05") as sim:
        first = sim.servers()[0]["name"]
        with PtyTerminal(screen, columns=160, lines=40, env=env) as term:
            assert term.wait_for(
                lambda lines: any("waiting for the service" in line for line in lines), 30
            ), "\n".join(term.lines())
            time.sleep(2.0)  # a few retries: still up, still waiting
            assert term.process is not None and term.process.poll() is None
            log = (tmp_path / "serve.log").open("w")
            service = subprocess.Popen(
                [*PACS_TUI, "serve", "--inventory", str(sim.out / "inventory.yaml"),
                 "--tokens", str(tokens), "--listen", f"127.0.0.1:{port}"],
                stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **env},
            )  # fmt: skip
            try:
                drawn = term.wait_for(lambda lines: any(first in line for line in lines), 60)
                assert drawn, "\n".join(term.lines())
                assert term.process.poll() is None
            finally:
                status = term.close(quit_keys=b"q")
                stop_process(service, 30)
                log.close()
            assert status == 0, (status, "\n".join(term.lines()))
