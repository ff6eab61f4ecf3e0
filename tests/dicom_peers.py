"""Real DICOM peers for tests: Orthanc and dcmtk's storescp, on loopback only.

Reusable by any test that needs a real PACS to talk to (the DICOM layer's
tests now, the probe's tests later). Every starter returns once the peer
answers and terminates the process it started, by pid, at exit.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from peers import require_binary, require_dcmtk

ORTHANC_AET = "ORTHANC"
ORTHANC_KNOWN_AET = "KNOWNSCU"


def loopback_address() -> str:
    """A random 127.x.y.z address, so parallel tests do not collide."""
    return f"127.{random.randint(100, 250)}.{random.randint(0, 255)}.{random.randint(1, 254)}"


def free_port(address: str = "127.0.0.1") -> int:
    """A TCP port free on every address right now, below the ephemeral range.

    Orthanc and storescp bind all addresses, so the check binds 0.0.0.0; ports
    under 32768 are never handed out as ephemeral client ports by Linux.
    """
    for _ in range(200):
        port = random.randint(20000, 32000)
        with socket.socket() as probe:
            try:
                probe.bind(("0.0.0.0", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port on {address}")


def dcmtk_env() -> dict[str, str]:
    """The environment for dcmtk tools: without TCP_NODELAY each reply waits ~40 ms."""
    return {**os.environ, "TCP_NODELAY": "1"}


def wait_for_port(
    address: str, port: int, timeout: float = 10.0, process: subprocess.Popen[Any] | None = None
) -> None:
    """Return when ``address:port`` accepts TCP connections; raise after ``timeout``.

    With ``process``, fail at once when it exits (e.g. its port was taken).
    """
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"peer exited with {process.returncode} before listening on {port}")
        try:
            with socket.create_connection((address, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {address}:{port}") from None
            time.sleep(0.02)


def _terminate(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@dataclass(frozen=True)
class RunningOrthanc:
    """An Orthanc started for one test; connect only to 127.0.0.1."""

    dicom_port: int
    http_port: int
    aet: str
    known_aet: str
    log: Path

    @property
    def address(self) -> str:
        return "127.0.0.1"

    def rest(self, path: str) -> object:
        """GET a REST resource (e.g. ``/statistics``) as JSON."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}", timeout=5) as r:
            return json.load(r)


@contextmanager
def orthanc(
    tmp_path: Path, *, open_to_all: bool = False, extra: Mapping[str, object] | None = None
) -> Iterator[RunningOrthanc]:
    """Start Orthanc with its own config: checks the called AE, knows one calling AE.

    ``extra`` adds or overrides configuration options (e.g. ``DicomTlsEnabled``).

    ``DicomAlwaysAllow*`` are all false, else Orthanc accepts any calling AE at
    association time (and only refuses the request inside it). ``open_to_all``
    is Orthanc as often deployed instead: any calling AE may echo and query.
    """
    binary = require_binary("Orthanc", "/usr/sbin/Orthanc")
    http_port, dicom_port = free_port(), free_port()
    root = tmp_path / f"orthanc-{'open' if open_to_all else 'strict'}-{dicom_port}"
    (root / "storage").mkdir(parents=True)
    (root / "index").mkdir()
    checks: dict[str, object] = {
        "DicomCheckCalledAet": True,
        "DicomAlwaysAllowEcho": False,
        "DicomAlwaysAllowStore": False,
        "DicomAlwaysAllowFind": False,
        "DicomAlwaysAllowMove": False,
        "DicomAlwaysAllowGet": False,
        "DicomCheckModalityHost": False,
        "DicomModalities": {"known": [ORTHANC_KNOWN_AET, "127.0.0.1", 4242]},
    }
    if open_to_all:
        checks = {"DicomAlwaysAllowFind": True}  # echo and store are allowed by default
    config = {
        "Name": "pacs-tui-open" if open_to_all else "pacs-tui-test",
        "StorageDirectory": str(root / "storage"),
        "IndexDirectory": str(root / "index"),
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": ORTHANC_AET,
        **checks,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "Plugins": [],
        **(extra or {}),
    }
    config_path = root / "config.json"
    config_path.write_text(json.dumps(config))
    log = root / "orthanc.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [binary, str(config_path)], stdout=log_file, stderr=subprocess.STDOUT, env=dcmtk_env()
        )
    try:
        deadline = time.monotonic() + 20
        known = "" if open_to_all else ORTHANC_KNOWN_AET
        running = RunningOrthanc(dicom_port, http_port, ORTHANC_AET, known, log)
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"Orthanc exited: {log.read_text()[-2000:]}")
            try:
                running.rest("/system")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"Orthanc not ready: {log.read_text()[-2000:]}") from None
                time.sleep(0.05)
        wait_for_port("127.0.0.1", dicom_port)
        yield running
    finally:
        _terminate(process)


@dataclass(frozen=True)
class RunningStorescp:
    """A dcmtk storescp on loopback."""

    address: str
    port: int
    aet: str


@contextmanager
def storescp(
    tmp_path: Path, *, aet: str = "STORESCP", refuse: bool = False
) -> Iterator[RunningStorescp]:
    """Start ``storescp`` (with ``--refuse`` it rejects every association)."""
    binary = require_dcmtk("storescp")
    address = loopback_address()
    port = free_port(address)
    out = tmp_path / f"storescp-{port}"
    out.mkdir()
    args = [binary, "-aet", aet, "-od", str(out)]
    if refuse:
        args.append("--refuse")
    # storescp binds every address; its port is unique, and we only connect to loopback.
    args.append(str(port))
    process = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dcmtk_env()
    )
    try:
        wait_for_port(address, port)
        yield RunningStorescp(address, port, aet)
    finally:
        _terminate(process)


def orthanc_upload(peer: RunningOrthanc, data: bytes) -> dict[str, Any]:
    """Store one DICOM file through Orthanc's REST API (``POST /instances``)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{peer.http_port}/instances",
        data=data,
        method="POST",
        headers={"Content-Type": "application/dicom"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        result: dict[str, Any] = json.load(answer)
    return result
