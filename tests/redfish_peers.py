"""Redfish peers for the power probe's tests: sushy-emulator and simulated BMCs.

- ``sushy_emulator(tmp)``: OpenStack's Redfish emulator as a real subprocess
  (fake driver, bcrypt htpasswd, its own state dir), on 127.x and a free port.
- ``bmc_lab(tmp, flavours)``: the simulator's BMCs in-process over HTTPS with
  a fresh ``FleetPki``, an inventory pointing at them, and an opened probe.
  Any flavour works; consecutive ``blade-enclosure`` names share one enclosure
  BMC (up to ``enclosure_size``), each with its ``bmc.system`` in the inventory.
- ``python tests/redfish_peers.py serve-bmcs OUT N``: N simulated BMCs in a
  separate process (for sweeps that measure the client's CPU alone).

Loopback only: every address is 127.A.B.C with a random A.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pacs_tui.inventory import Inventory, Server, load_inventory_text
from pacs_tui.plugin_api import ProbeContext
from pacs_tui.power import PowerState
from pacs_tui.sim.bmc import BmcFlavour, BmcService
from pacs_tui.sim.host import HardwareFacts, HostTimings, SimulatedHost
from pacs_tui.sim.pki import FleetPki
from pacs_tui.sim.redfish_flavour import ENCLOSURE_SIZE, FlavourTimings, group_blades, profile
from pacs_tui_redfish_power.probe import RedfishPowerProbe
from sim_process import stop_process

USER = "root"
PASSWORD = "pw-" + "x7Qk2-sim-bmc"  # a test secret; tests assert it never shows up
FAST = HostTimings(power_transition_s=0.05, boot_s=0.05, service_start_s=0.02, shutdown_s=0.05)


def net() -> str:
    """A random 127.A.B prefix, so parallel tests never share an address."""
    return f"127.{random.randint(100, 250)}.{random.randint(0, 255)}"


def free_port(address: str) -> int:
    """A port free on ``address`` right now."""
    with socket.socket() as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


# -- inventory ------------------------------------------------------------------------


def write_inventory(
    folder: Path,
    bmcs: Mapping[str, Mapping[str, Any]],
    *,
    username: str = USER,
    password: str = PASSWORD,
    credentials: Mapping[str, Any] | None = None,
) -> Inventory:
    """An inventory of one server per entry of ``bmcs`` (name -> bmc block).

    The default credential ``bmc-admin`` lives in a 0600 ``credentials.yaml``.
    """
    secrets = folder / "credentials.yaml"
    secrets.write_text(yaml.safe_dump({"bmc-admin": {"username": username, "password": password}}))
    secrets.chmod(0o600)
    document = {
        "sites": [{"name": "dc", "kind": "datacenter"}],
        "credentials": dict(credentials or {"bmc-admin": {"file": "credentials.yaml"}}),
        "servers": [
            {"name": name, "site": "dc", "role": "archive", "bmc": dict(bmc)}
            for name, bmc in bmcs.items()
        ],
    }
    text = yaml.safe_dump(document, sort_keys=False)
    (folder / "inventory.yaml").write_text(text)  # for tests that run the CLI on it
    return load_inventory_text(text, folder / "inventory.yaml")


# -- simulated BMCs in-process ------------------------------------------------------


def make_host(
    name: str, address: str, power: PowerState = PowerState.ON, *, timings: HostTimings = FAST
) -> SimulatedHost:
    """A simulated server with tiny timings (by default)."""
    hardware = HardwareFacts(
        manufacturer="Torvik Data",
        model="TD-740xd",
        serial_number=f"SN-{name}",
        mac_addresses=("b0:7b:25:00:00:01",),
        bios_version="1.9.2",
        bmc_firmware="6.10.30.00",
    )
    return SimulatedHost(
        name=name,
        role="archive",
        site="dc",
        address=address,
        units=("pacs",),
        hardware=hardware,
        timings=timings,
        power_state=power,
        os_state="up" if power is PowerState.ON else "down",
    )


@dataclass
class BmcLab:
    """Simulated BMCs, the inventory that points at them, and an opened probe."""

    service: BmcService
    hosts: dict[str, SimulatedHost]
    inventory: Inventory
    probe: RedfishPowerProbe
    ca_file: Path

    def server(self, name: str) -> Server:
        """The inventory server called ``name``."""
        return self.inventory.server(name)

    def sessions(self, name: str) -> int:
        """Open Redfish sessions on that server's BMC."""
        return self.service.active_sessions(name)


@asynccontextmanager
async def bmc_lab(
    folder: Path,
    flavours: Mapping[str, BmcFlavour],
    *,
    probe: RedfishPowerProbe | None = None,
    settings: Mapping[str, Any] | None = None,
    bmc_options: Mapping[str, Any] | None = None,
    power: Mapping[str, PowerState] | None = None,
    session_timeout_s: float = 600.0,
    session_limit: int = 8,
    credentials: Mapping[str, Any] | None = None,
    enclosure_size: int = ENCLOSURE_SIZE,
    timings: FlavourTimings | None = None,
) -> AsyncIterator[BmcLab]:
    """Serve one HTTPS BMC per name in ``flavours`` and open ``probe`` on them.

    ``bmc_options`` is merged into every inventory ``bmc`` block (e.g.
    ``verify_tls: false`` or another ``ca_file``). Names flavoured
    ``blade-enclosure`` are blades: up to ``enclosure_size`` consecutive ones
    share one BMC on the first one's address, and each inventory entry names its
    ``system`` (``Blade1``..). A ``legacy-tls`` BMC's entry gets ``tls_legacy:
    true``. ``timings`` scales the slow flavours' delays (defaults: the real ones).
    """
    prefix = net()
    hosts = {
        name: make_host(name, f"{prefix}.{i + 1}", (power or {}).get(name, PowerState.ON))
        for i, name in enumerate(flavours)
    }
    pki = FleetPki.create()
    ca_file = folder / "fleet-ca.pem"
    pki.write_ca(ca_file)
    first = next(iter(hosts.values()))
    enclosures = group_blades(flavours.items(), enclosure_size)
    service = BmcService(
        list(hosts.values()),
        port=free_port(first.address),
        username=USER,
        password=PASSWORD,
        pki=pki,
        flavours=dict(flavours),
        session_limit=session_limit,
        session_timeout_s=session_timeout_s,
        enclosures=enclosures,
        timings=timings,
    )
    bmcs: dict[str, dict[str, Any]] = {}
    for name in hosts:
        bmc: dict[str, Any] = {
            "address": hosts[service.enclosure(name)[0]].address,
            "port": service.port,
            "ca_file": ca_file.name,
            "credentials": "bmc-admin",
        }
        if len(service.enclosure(name)) > 1 or profile(flavours[name]).enclosure:
            bmc["system"] = service.system_id(name)
        if profile(flavours[name]).legacy_tls:
            bmc["tls_legacy"] = True
        bmcs[name] = {**bmc, **(bmc_options or {})}
    inventory = write_inventory(folder, bmcs, credentials=credentials)
    probe = probe or RedfishPowerProbe()
    await service.start()
    try:
        await probe.open(ProbeContext(inventory, dict(settings or {})))
        try:
            yield BmcLab(service, hosts, inventory, probe, ca_file)
        finally:
            await probe.close()
    finally:
        await service.stop()
        for host in hosts.values():
            await host.stop()


# -- sushy-emulator -------------------------------------------------------------------

SUSHY_RESET_TYPES = [
    "On",
    "ForceOff",
    "GracefulShutdown",
    "GracefulRestart",
    "ForceRestart",
    "Nmi",
    "ForceOn",
]


@dataclass(frozen=True)
class SushyEmulator:
    """A running sushy-emulator and what a test needs to reach it."""

    address: str
    port: int
    username: str
    password: str
    system_uuid: str
    process: subprocess.Popen[bytes]
    log: Path  # its access log: what it received

    @property
    def url(self) -> str:
        """``http://ADDRESS:PORT``."""
        return f"http://{self.address}:{self.port}"

    def reset_posts(self, at_least: int = 0, within_s: float = 5.0) -> int:
        """The ``ComputerSystem.Reset`` POSTs sushy-emulator logged as received, once it
        logged ``at_least`` or ``within_s`` passed (it logs a request after answering it)."""
        deadline = time.monotonic() + within_s
        while True:
            text = self.log.read_text(errors="replace")
            found = len(re.findall(r'"POST /redfish/v1/Systems/[^ ]+/ComputerSystem\.Reset ', text))
            if found >= at_least or time.monotonic() > deadline:
                return found
            time.sleep(0.05)


@contextmanager
def sushy_emulator(
    binary: str,
    folder: Path,
    *,
    power_state: str = "On",
    password: str = PASSWORD,
    ready_within_s: float = 20.0,
) -> Iterator[SushyEmulator]:
    """Run ``binary`` (sushy-emulator) with the fake driver until the block ends."""
    import bcrypt

    address = f"{net()}.{random.randint(1, 254)}"
    port = free_port(address)
    system_uuid = f"5a1c0c8e-0000-4000-8000-{random.randint(0, 10**12 - 1):012d}"
    htpasswd = folder / "htpasswd"
    digest = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    htpasswd.write_text(f"{USER}:{digest}\n")
    state_dir = folder / "sushy-state"
    state_dir.mkdir()
    systems = [
        {
            "uuid": system_uuid,
            "name": "pacs-arch-01",
            "power_state": power_state,
            "nics": [{"mac": "00:5c:52:31:3a:9c", "ip": address}],
        }
    ]
    config = folder / "sushy.conf"
    config.write_text(
        "SUSHY_EMULATOR_FAKE_DRIVER = True\n"
        f"SUSHY_EMULATOR_FAKE_SYSTEMS = {systems!r}\n"
        f"SUSHY_EMULATOR_AUTH_FILE = {str(htpasswd)!r}\n"
        f"SUSHY_EMULATOR_STATE_DIR = {str(state_dir)!r}\n"
        f"SUSHY_EMULATOR_LISTEN_IP = {address!r}\n"
        f"SUSHY_EMULATOR_LISTEN_PORT = {port}\n"
    )
    log = (folder / "sushy.log").open("wb")
    process = subprocess.Popen(
        [binary, "--config", str(config), "--interface", address, "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "SUSHY_EMULATOR_CONFIG": str(config)},
    )
    try:
        _wait_ready(f"http://{address}:{port}/redfish/v1/", process, folder, ready_within_s)
        yield SushyEmulator(
            address, port, USER, password, system_uuid, process, folder / "sushy.log"
        )
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _wait_ready(url: str, process: subprocess.Popen[bytes], folder: Path, within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while True:
        if process.poll() is not None:
            raise RuntimeError(
                f"sushy-emulator exited with {process.returncode}: "
                f"{(folder / 'sushy.log').read_text(errors='replace')[-2000:]}"
            )
        with (
            contextlib.suppress(OSError, urllib.error.URLError),
            urllib.request.urlopen(url, timeout=1) as answer,
        ):
            if answer.status == 200:
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"sushy-emulator not ready within {within_s} s")
        time.sleep(0.1)


# -- simulated BMCs in a separate process ---------------------------------------------


@dataclass
class RemoteBmcs:
    """BMCs served by another process: addresses, port, CA and its pid."""

    addresses: list[str]
    port: int
    ca_file: Path
    process: subprocess.Popen[bytes]

    def cpu_s(self) -> float:
        """CPU seconds (user + system) the serving process has used so far."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])  # utime, stime
        return ticks / os.sysconf("SC_CLK_TCK")


@contextmanager
def remote_bmcs(folder: Path, count: int, *, within_s: float = 60.0) -> Iterator[RemoteBmcs]:
    """``count`` HTTPS BMCs in a child process (generic flavour, password ``PASSWORD``)."""
    ready = folder / "bmcs.json"
    process = subprocess.Popen(
        [sys.executable, __file__, "serve-bmcs", str(folder), str(count)],
        stdout=(folder / "bmcs.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + within_s
        while not ready.exists():
            if process.poll() is not None:
                raise RuntimeError((folder / "bmcs.log").read_text(errors="replace")[-2000:])
            if time.monotonic() > deadline:
                raise TimeoutError(f"simulated BMCs not ready within {within_s} s")
            time.sleep(0.05)
        info = json.loads(ready.read_text())
        yield RemoteBmcs(info["addresses"], info["port"], Path(info["ca_file"]), process)
    finally:
        stop_process(process, 10)


async def _serve_bmcs(folder: Path, count: int) -> None:
    prefix = f"127.{random.randint(100, 250)}"
    hosts = [make_host(f"srv-{i:04d}", f"{prefix}.{i // 250}.{i % 250 + 1}") for i in range(count)]
    pki = FleetPki.create()
    ca_file = folder / "fleet-ca.pem"
    pki.write_ca(ca_file)
    service = BmcService(
        hosts, port=free_port(hosts[0].address), username=USER, password=PASSWORD, pki=pki
    )
    await service.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    info = {"addresses": [h.address for h in hosts], "port": service.port, "ca_file": str(ca_file)}
    partial = folder / "bmcs.json.part"
    partial.write_text(json.dumps(info))
    partial.rename(folder / "bmcs.json")  # atomic: the parent never reads half a file
    await stop.wait()
    await service.stop()


if __name__ == "__main__" and sys.argv[1:2] == ["serve-bmcs"]:
    asyncio.run(_serve_bmcs(Path(sys.argv[2]), int(sys.argv[3])))
