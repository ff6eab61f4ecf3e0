"""Run ``pacs-tui serve`` as a separate process on a simulator, for service tests."""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim_process import stop_process


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def add_token(tokens: Path, name: str, role: str) -> str:
    """``pacs-tui token add``; the new token."""
    done = subprocess.run(
        [sys.executable, "-m", "pacs_tui", "token", "add", "--tokens", str(tokens),
         "--name", name, "--role", role],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return done.stdout.strip()


@dataclass
class RunningService:
    """A running ``pacs-tui serve``: its URL, tokens and process."""

    url: str
    tokens: dict[str, str]  # name -> token ("lead" operator, "wall" viewer)
    process: subprocess.Popen[str]
    log: Path
    tokens_file: Path
    ca_file: Path | None = None  # the CA of an https:// service
    env: dict[str, str] | None = None  # what was added to its environment (to start it again)

    def request(
        self,
        method: str,
        path: str,
        token: str | None = None,
        body: Any = None,
        timeout: float = 30.0,
    ) -> tuple[int, Any]:
        """One blocking HTTP request; (status, JSON body or text)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        context = ssl.create_default_context(cafile=str(self.ca_file)) if self.ca_file else None
        try:
            with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
                raw = response.read().decode()
                status = response.status
        except urllib.error.HTTPError as exc:
            raw, status = exc.read().decode(), exc.code
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw

    def log_text(self) -> str:
        return self.log.read_text()[-4000:] if self.log.exists() else ""


@contextmanager
def running_service(
    inventory: Path,
    workdir: Path,
    *args: str,
    timeout: float = 60.0,
    env: dict[str, str] | None = None,
    scheme: str = "http",
    ca_file: Path | None = None,
) -> Iterator[RunningService]:
    """Start ``pacs-tui serve`` on ``inventory`` with an operator (lead) and a viewer
    (wall) token; wait until it answers; SIGTERM it on exit."""
    workdir.mkdir(parents=True, exist_ok=True)
    tokens_file = workdir / "tokens.yaml"
    tokens = {
        "lead": add_token(tokens_file, "lead", "operator"),
        "wall": add_token(tokens_file, "wall", "viewer"),
    }
    port = free_port()
    log = workdir / "serve.log"
    cmd = [
        sys.executable, "-m", "pacs_tui", "serve", "--inventory", str(inventory),
        "--tokens", str(tokens_file), "--listen", f"127.0.0.1:{port}", *args,
    ]  # fmt: skip
    handle = log.open("w")
    process = subprocess.Popen(
        cmd, stdout=handle, stderr=subprocess.STDOUT, text=True, env={**os.environ, **(env or {})}
    )
    service = RunningService(
        f"{scheme}://127.0.0.1:{port}", tokens, process, log, tokens_file, ca_file, env
    )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"serve exited with {process.returncode}: {service.log_text()}")
            try:
                status, _ = service.request("GET", "/api/v1/service", tokens["wall"], timeout=2)
                if status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"serve not ready in {timeout} s: {service.log_text()}")
            time.sleep(0.1)
        yield service
    finally:
        stop_process(process, 30)
        handle.close()
