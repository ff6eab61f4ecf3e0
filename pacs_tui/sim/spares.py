"""The simulated data center's spares pool: boxes on the shelf, BMC cabled, powered off.

Each spare is a ``SimulatedHost`` of its own (no units, no SSH or DICOM: no
OS installed yet) whose Redfish BMC answers on an address of its own
(``127.OCTET.250.N``, beyond any server's). ``SimulatedDataCenter.rack_spare``
puts one in a server's place: the server's host takes the spare's hardware
(serial, MACs, model), the spare's BMC manages that host from then on and the
server's old BMC is gone; the host keeps its name, DICOM AE and services, and
its freshly installed OS presents a new SSH host key.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from pacs_tui.power import PowerState
from pacs_tui.sim.fleet import DATACENTER, VENDORS
from pacs_tui.sim.host import HardwareFacts, HostTimings, SimulatedHost
from pacs_tui.sim.redfish_flavour import BmcFlavour

SPARE_SUBNET = 250  # 127.OCTET.250.N: servers stop at 127.OCTET.249.250 (62 500 servers)
SPARE_ROLE = "spare"


@dataclass(frozen=True)
class SimSpare:
    """One spare of the pool: its name, BMC address and the box's identity."""

    name: str
    address: str
    hardware: HardwareFacts
    location: str


def build_spares(count: int, *, octet: int, seed: int) -> list[SimSpare]:
    """``count`` spares of the generic vendor, with serials and MACs no server has."""
    if not 0 <= count <= 250:
        raise ValueError("spares must be 0..250")
    rng = random.Random(seed * 7919 + 1)
    manufacturer, model, firmware = VENDORS[BmcFlavour.GENERIC]
    spares = []
    for i in range(count):
        base = 0x02_50_AC_FF_00_00 + i * 4  # locally administered, apart from the servers'
        macs = tuple(
            ":".join(f"{(base + nic) >> (8 * k) & 0xFF:02x}" for k in range(5, -1, -1))
            for nic in range(2)
        )
        spares.append(
            SimSpare(
                name=f"spare-{i + 1:02d}",
                address=f"127.{octet}.{SPARE_SUBNET}.{i + 1}",
                hardware=HardwareFacts(
                    manufacturer=manufacturer,
                    model=model,
                    serial_number=f"SP{rng.randrange(16**6):06X}{i:03d}",
                    mac_addresses=macs,
                    bios_version="2.1.0",
                    bmc_firmware=firmware,
                ),
                location=f"{DATACENTER} store room, shelf {i // 4 + 1}",
            )
        )
    return spares


def spare_host(spare: SimSpare, timings: HostTimings) -> SimulatedHost:
    """The spare's box: powered off, no OS, no units."""
    return SimulatedHost(
        name=spare.name,
        role=SPARE_ROLE,
        site=DATACENTER,
        address=spare.address,
        units=(),
        hardware=spare.hardware,
        timings=timings,
        power_state=PowerState.OFF,
        os_state="down",
    )


def inventory_spares(spares: list[SimSpare]) -> list[dict[str, object]]:
    """The ``spares:`` entries of the generated inventory (BMC settings from defaults)."""
    return [
        {
            "name": s.name,
            "serial": s.hardware.serial_number,
            "model": s.hardware.model,
            "macs": list(s.hardware.mac_addresses),
            "location": s.location,
            "bmc": {"address": s.address},
        }
        for s in spares
    ]
