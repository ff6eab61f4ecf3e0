"""SSH peers for tests: simulated servers (``SshOs``) and a real OpenSSH sshd.

Both run on their own 127.x.y.z address and a free port. Each comes with
the key directory an operator would have (client key, ``known_hosts``) and a
helper that writes the matching inventory, so a test probes them exactly as
pacs-tui probes a real fleet.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from pacs_tui.inventory import Inventory, load_inventory_text
from pacs_tui.sim.host import HardwareFacts, HostTimings, SimulatedHost
from pacs_tui.sim.ssh_keys import FleetSshKeys
from pacs_tui.sim.ssh_os import SshOs
from peers import require_binary

USER = "root"
TINY_TIMINGS = HostTimings(
    power_transition_s=0.02, boot_s=0.03, service_start_s=0.02, shutdown_s=0.03
)


def loopback_octet() -> int:
    """A random second octet, so parallel tests use different 127.N.x.y ranges."""
    return random.randint(100, 250)


def loopback_address(octet: int | None = None) -> str:
    """A random 127.x.y.z address (never .0 or .255 in the last octet)."""
    second = loopback_octet() if octet is None else octet
    return f"127.{second}.{random.randint(0, 255)}.{random.randint(1, 254)}"


def free_port(host: str) -> int:
    """A TCP port free on ``host`` right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


async def until(condition: Callable[[], bool], deadline_s: float = 5.0) -> None:
    """Poll ``condition`` until it holds; fail the test after ``deadline_s``."""
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached before the deadline")
        await asyncio.sleep(0.01)


# -- simulated servers --------------------------------------------------------------


def _hardware(index: int) -> HardwareFacts:
    return HardwareFacts(
        manufacturer="Meridian Compute",
        model="MC-R640",
        serial_number=f"SIM{index:05d}",
        mac_addresses=(f"52:54:00:00:{index // 256:02x}:{index % 256:02x}",),
        bios_version="2.14.1",
        bmc_firmware="6.10.30.00",
    )


@dataclass
class SimFleet:
    """Started simulated servers with their sshds and the operator's key directory."""

    hosts: list[SimulatedHost]
    sshds: list[SshOs]
    keys: FleetSshKeys
    key_dir: Path

    def sshd(self, name: str) -> SshOs:
        """The sshd of host ``name``."""
        return next(s for s in self.sshds if s.host.name == name)

    def inventory(
        self, path: Path, *, services: dict[str, Sequence[str]] | None = None
    ) -> Inventory:
        """An inventory of every host (role image-manager, ssh with the fleet's key)."""
        lines = [
            "sites: [{name: dc, kind: datacenter}]",
            "credentials:",
            f"  ops: {{key_file: {self.key_dir / 'id_ed25519'}}}",
            "defaults:",
            f"  ssh: {{user: {USER}, credentials: ops, known_hosts: {self.key_dir / 'known_hosts'}}}",
            "servers:",
        ]
        for host, sshd in zip(self.hosts, self.sshds, strict=True):
            units = (services or {}).get(host.name, host.units)
            lines.append(
                f"  - {{name: {host.name}, role: {host.role}, site: dc, "
                f"services: [{', '.join(units)}], "
                f"ssh: {{host: '{host.address}', port: {sshd.port}}}}}"
            )
        return load_inventory_text("\n".join(lines) + "\n", path)


@contextlib.asynccontextmanager
async def sim_fleet(
    key_dir: Path,
    count: int = 1,
    *,
    units: tuple[str, ...] = ("pacs", "dicom-router"),
    timings: HostTimings = TINY_TIMINGS,
) -> AsyncIterator[SimFleet]:
    """``count`` simulated servers whose sshds listen; stopped on exit."""
    octet = loopback_octet()
    addresses: set[str] = set()
    while len(addresses) < count:
        addresses.add(loopback_address(octet))
    names = [f"sim-{i:03d}" for i in range(count)]
    keys = FleetSshKeys.create(names)
    hosts: list[SimulatedHost] = []
    sshds: list[SshOs] = []
    for index, (name, address) in enumerate(zip(names, sorted(addresses), strict=True)):
        host = SimulatedHost(
            name=name,
            role="dicom-router",
            site="dc",
            address=address,
            units=units,
            hardware=_hardware(index),
            timings=timings,
        )
        sshd = SshOs(
            host,
            port=0,
            username=USER,
            host_key=keys.host_key(name),
            alternate_host_key=keys.alternate_host_key(name),
            authorized_key=keys.client_key,
        )
        host.ssh_listener = sshd
        hosts.append(host)
        sshds.append(sshd)
    try:
        await asyncio.gather(*(s.start() for s in sshds))
        keys.write(
            key_dir, [(h.name, h.address, s.port) for h, s in zip(hosts, sshds, strict=True)]
        )
        yield SimFleet(hosts, sshds, keys, key_dir)
    finally:
        for host in hosts:
            await host.stop()
        await asyncio.gather(*(s.stop() for s in sshds))


# -- a real OpenSSH sshd --------------------------------------------------------------

# systemctl stand-in: prints each unit's word from STATE_DIR/UNIT (default
# "active") and exits like systemd (0 only when all are active).
_FAKE_SYSTEMCTL = """#!/bin/sh
state_dir='{state_dir}'
[ "$1" = is-active ] || {{ echo "fake systemctl: only is-active" >&2; exit 1; }}
shift
status=0
for unit in "$@"; do
    case "$unit" in -*) continue ;; esac
    word=active
    [ -f "$state_dir/$unit" ] && word=$(cat "$state_dir/$unit")
    echo "$word"
    [ "$word" = active ] || status=3
done
exit $status
"""


@dataclass
class RealSshd:
    """A running OpenSSH sshd on loopback, with its keys and a fake ``systemctl``."""

    host: str
    port: int
    root: Path  # temp dir holding keys, config, known_hosts, bin/ and units/
    process: subprocess.Popen[bytes]
    host_key: asyncssh.SSHKey
    client_key_file: Path
    known_hosts: Path

    def set_unit(self, unit: str, word: str) -> None:
        """Make the fake ``systemctl is-active`` report ``word`` for ``unit``."""
        (self.root / "units" / unit).write_text(f"{word}\n")

    def inventory(
        self,
        path: Path,
        *,
        services: Sequence[str],
        key_file: Path | None = None,
        known_hosts: Path | None = None,
    ) -> Inventory:
        """An inventory with server ``real-01`` on this sshd.

        ``key_file`` and ``known_hosts`` default to the right ones; tests pass
        wrong ones to see the probe refuse them.
        """
        text = (
            "sites: [{name: dc, kind: datacenter}]\n"
            "credentials:\n"
            f"  ops: {{key_file: {key_file or self.client_key_file}}}\n"
            "servers:\n"
            f"  - {{name: real-01, role: database, site: dc, services: [{', '.join(services)}], "
            f"ssh: {{host: '{self.host}', port: {self.port}, user: root, credentials: ops, "
            f"known_hosts: {known_hosts or self.known_hosts}}}}}\n"
        )
        return load_inventory_text(text, path)

    def log_text(self) -> str:
        """What sshd logged so far (for assertion messages)."""
        return (self.root / "sshd.log").read_text(errors="replace")


def _wait_listening(host: str, port: int, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), 0.2):
            return
        time.sleep(0.02)
    raise TimeoutError("sshd did not start listening")


@contextlib.contextmanager
def real_sshd(root: Path, extra_config: str = "") -> Iterator[RealSshd]:
    """Start ``/usr/sbin/sshd`` on a random 127.x.y.z and free port under ``root``.

    Skips on a laptop without OpenSSH's server, fails under CI. Sessions get a
    ``PATH`` (sshd_config ``SetEnv``, OpenSSH >= 8.7) that finds the fake
    ``systemctl`` first: this machine has no systemd. ``extra_config``: more
    sshd_config lines (``Ciphers ...``, ``LogLevel DEBUG1``).
    """
    sshd = require_binary("sshd", "/usr/sbin/sshd")
    host = loopback_address()
    port = free_port(host)
    root.mkdir(parents=True, exist_ok=True)
    for folder in ("bin", "units"):
        (root / folder).mkdir(exist_ok=True)
    systemctl = root / "bin" / "systemctl"
    systemctl.write_text(_FAKE_SYSTEMCTL.format(state_dir=root / "units"))
    systemctl.chmod(0o755)
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    host_key.write_private_key(str(root / "host_key"))
    (root / "host_key").chmod(0o600)
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    client_key.write_private_key(str(root / "id_ops"))
    (root / "id_ops").chmod(0o600)
    (root / "authorized_keys").write_bytes(client_key.export_public_key())
    known_hosts = root / "known_hosts"
    known_hosts.write_bytes(f"[{host}]:{port} ".encode() + host_key.export_public_key())
    (root / "sshd_config").write_text(
        f"ListenAddress {host}:{port}\n"
        f"HostKey {root / 'host_key'}\n"
        f"AuthorizedKeysFile {root / 'authorized_keys'}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "PermitRootLogin prohibit-password\nUsePAM no\nStrictModes no\n"
        f"PidFile {root / 'sshd.pid'}\n"
        f"SetEnv PATH={root / 'bin'}:/usr/sbin:/usr/bin:/sbin:/bin\n" + extra_config
    )
    Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation directory
    # Its log goes to a file: a pipe nobody reads would block sshd once full.
    with (root / "sshd.log").open("wb") as log_file:
        proc = subprocess.Popen(
            [sshd, "-D", "-e", "-f", str(root / "sshd_config")],
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
    try:
        _wait_listening(host, port, proc, timeout_s=10)
        yield RealSshd(host, port, root, proc, host_key, root / "id_ops", known_hosts)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
