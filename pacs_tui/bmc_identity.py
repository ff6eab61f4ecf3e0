"""Reading a box's identity from its BMC: serial number, model, MACs, power state.

``pacs-tui replace`` reads what a spare's BMC reports before it lets the
spare take a server's place (never assuming the inventory's serial is the
box's), and asks the server's old BMC whether it still answers. One
ComputerSystem GET, the EthernetInterfaces, one session, logged out after.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pacs_tui.credentials import CredentialError
from pacs_tui.inventory import BmcEndpoint, Inventory
from pacs_tui_redfish_power.client import BmcClient, bmc_credentials, open_http_session
from pacs_tui_redfish_power.errors import BmcError
from pacs_tui_redfish_power.trust import TlsTrust


@dataclass(frozen=True)
class BoxIdentity:
    """What a BMC says about its box. ``macs`` lower case, sorted; "" when not reported."""

    serial: str
    model: str
    macs: tuple[str, ...]
    power_state: str  # the Redfish word (On, Off, ...), "" when absent


class IdentityError(Exception):
    """The BMC could not be read; the message says why (unreachable, login, ...)."""


async def read_identity(
    inventory: Inventory, bmc: BmcEndpoint, *, timeout_s: float = 10.0
) -> BoxIdentity:
    """Log in to ``bmc`` with its inventory credentials and read the box's identity.

    ``timeout_s`` bounds each request. Raises :class:`IdentityError` for any
    failure (connection refused, TLS, 401, a missing credential).
    """
    http = open_http_session(limit=4, limit_per_host=1)
    client = BmcClient(
        http,
        bmc,
        bmc_credentials(inventory, bmc.credentials),
        timeout_s=timeout_s,
        trust=TlsTrust(),
    )
    try:
        path = await client.system_path(bmc.system)
        _, system = await client.get(path)
        macs = await system_macs(client, system)
        return BoxIdentity(
            serial=_text(system.get("SerialNumber")),
            model=_text(system.get("Model")),
            macs=tuple(sorted(macs)),
            power_state=_text(system.get("PowerState")),
        )
    except (BmcError, CredentialError) as exc:
        raise IdentityError(str(exc)) from None
    finally:
        await client.close()
        await http.close()


async def system_macs(client: BmcClient, system: Mapping[str, Any]) -> list[str]:
    """The MAC addresses of a ComputerSystem's EthernetInterfaces, lower case, in order.

    One GET of the collection and one per interface (DSP0268 EthernetInterface:
    ``MACAddress``, else ``PermanentMACAddress``). ``BmcError`` as the client raises.
    """
    macs: list[str] = []
    nics = odata_link(system.get("EthernetInterfaces"))
    if nics is not None:
        _, collection = await client.get(nics)
        for member in collection.get("Members") or []:
            target = odata_link(member)
            if target is None:
                continue
            _, nic = await client.get(target)
            mac = nic.get("MACAddress") or nic.get("PermanentMACAddress")
            if isinstance(mac, str) and mac:
                macs.append(mac.lower())
    return macs


def odata_link(value: Any) -> str | None:
    """The ``@odata.id`` of a Redfish link object, or None."""
    if isinstance(value, dict):
        target = value.get("@odata.id")
        if isinstance(target, str) and target:
            return target
    return None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""
