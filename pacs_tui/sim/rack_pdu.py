"""Simulated rack PDUs: the measured draw of a rack's servers, per feed, over Redfish.

A rack has two PDUs, feed A supplying every server's ``PSU 1`` and feed B
every ``PSU 2``; each outlet's draw is that supply's share of the server's
draw now (``redfish_power.supply_watts``), so an unplugged supply moves its
load to the other feed and a rack booting at once shows its boot peak on
both. Outlets sit on branch circuits of ``OUTLETS_PER_BRANCH`` (A, B, C...,
each 16 A), behind one mains input (32 A), at 230 V.

Resources (the shapes of the DMTF's ``public-pdu`` mockup, 2025.4):
``/redfish/v1`` → ``PowerEquipment`` (``PowerEquipment.v1_2_3``) →
``RackPDUs/1`` (``PowerDistribution.v1_6_0``) with ``Metrics``
(``PowerDistributionMetrics.v1_4_0``), ``Mains/AC1`` and ``Branches/<X>``
(``Circuit.v1_9_0``) and ``Outlets/<X><n>`` (``Outlet.v1_4_4``). HTTP Basic
only (no SessionService, as on many PDUs); read-only.

Fault (``SimulatedRackPdu.extra_watts``): other load on branch A (another
rack's gear on the circuit, a heater): the way to push a rack circuit over
its budget. Breakers never trip here; the reader's 80 % rule flags the load.
"""

from __future__ import annotations

import hmac
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import BasicAuth, web

from pacs_tui.sim.host import SimulatedHost
from pacs_tui.sim.listen import open_listener
from pacs_tui.sim.redfish_messages import BASE, error_response, json_response, not_found
from pacs_tui.sim.redfish_power import supply_watts

V1 = "/redfish/v1"
PDU = f"{V1}/PowerEquipment/RackPDUs/1"
VOLTS = 230.0
BRANCH_AMPS = 16.0
MAINS_AMPS = 32.0
OUTLETS_PER_BRANCH = 8

Body = dict[str, Any]


def _ref(uri: str) -> dict[str, str]:
    return {"@odata.id": uri}


def _collection(uri: str, odata_type: str, members: Sequence[str]) -> Body:
    return {
        "@odata.id": uri,
        "@odata.type": f"#{odata_type}.{odata_type}",
        "Name": odata_type,
        "Members": [_ref(m) for m in members],
        "Members@odata.count": len(members),
    }


@dataclass
class SimulatedRackPdu:
    """One rack PDU: the feed it supplies (1: every PSU 1, 2: every PSU 2) and its servers."""

    name: str
    feed: int
    hosts: list[SimulatedHost]
    extra_watts: float = 0.0  # fault: other load on branch A
    rated_amps: float = BRANCH_AMPS  # of each branch circuit
    _outlets: dict[str, SimulatedHost] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        for index, host in enumerate(self.hosts):
            branch = chr(ord("A") + index // OUTLETS_PER_BRANCH)
            self._outlets[f"{branch}{index % OUTLETS_PER_BRANCH + 1}"] = host

    # -- the model -----------------------------------------------------------------

    def outlet_watts(self, outlet: str) -> float:
        """What the server on ``outlet`` draws through this feed now, in W."""
        return supply_watts(self._outlets[outlet], self.feed)

    def branches(self) -> list[str]:
        """Branch circuit ids, in order (A, B, ...)."""
        return sorted({o[0] for o in self._outlets}) or ["A"]

    def branch_watts(self, branch: str) -> float:
        """A branch's load in W: its outlets, plus ``extra_watts`` on branch A."""
        load = sum(self.outlet_watts(o) for o in self._outlets if o[0] == branch)
        return round(load + (self.extra_watts if branch == "A" else 0.0), 1)

    def total_watts(self) -> float:
        """The whole PDU's input in W."""
        return round(sum(self.branch_watts(b) for b in self.branches()), 1)

    # -- resources -----------------------------------------------------------------

    def resource(self, path: str) -> Body | None:
        """The body at ``path`` (no trailing slash), or None."""
        fixed: dict[str, Callable[[], Body]] = {
            V1: self._root,
            f"{V1}/PowerEquipment": self._equipment,
            f"{V1}/PowerEquipment/RackPDUs": lambda: _collection(
                f"{V1}/PowerEquipment/RackPDUs", "PowerDistributionCollection", [PDU]
            ),
            PDU: self._pdu,
            f"{PDU}/Metrics": self._metrics,
            f"{PDU}/Mains": lambda: _collection(
                f"{PDU}/Mains", "CircuitCollection", [f"{PDU}/Mains/AC1"]
            ),
            f"{PDU}/Mains/AC1": self._mains,
            f"{PDU}/Branches": lambda: _collection(
                f"{PDU}/Branches",
                "CircuitCollection",
                [f"{PDU}/Branches/{b}" for b in self.branches()],
            ),
            f"{PDU}/Outlets": lambda: _collection(
                f"{PDU}/Outlets", "OutletCollection", [f"{PDU}/Outlets/{o}" for o in self._outlets]
            ),
        }
        if path in fixed:
            return fixed[path]()
        parent, _, leaf = path.rpartition("/")
        if parent == f"{PDU}/Branches" and leaf in self.branches():
            return self._branch(leaf)
        if parent == f"{PDU}/Outlets" and leaf in self._outlets:
            return self._outlet(leaf)
        return None

    def _root(self) -> Body:
        return {
            "@odata.id": f"{V1}/",
            "@odata.type": "#ServiceRoot.v1_15_0.ServiceRoot",
            "Id": "RootService",
            "Name": "Root Service",
            "RedfishVersion": "1.15.0",
            "UUID": "00000000-0000-4000-8000-0000000000" + f"{self.feed:02d}",
            "PowerEquipment": _ref(f"{V1}/PowerEquipment"),
        }

    def _equipment(self) -> Body:
        return {
            "@odata.id": f"{V1}/PowerEquipment",
            "@odata.type": "#PowerEquipment.v1_2_3.PowerEquipment",
            "Id": "PowerEquipment",
            "Name": "Power Equipment",
            "RackPDUs": _ref(f"{V1}/PowerEquipment/RackPDUs"),
            "Status": {"State": "Enabled", "HealthRollup": "OK"},
        }

    def _pdu(self) -> Body:
        return {
            "@odata.id": PDU,
            "@odata.type": "#PowerDistribution.v1_6_0.PowerDistribution",
            "Id": "1",
            "Name": self.name,
            "EquipmentType": "RackPDU",
            "Manufacturer": "Meridian Power",
            "Model": "MPDU-32",
            "Status": {"State": "Enabled", "Health": "OK"},
            "Metrics": _ref(f"{PDU}/Metrics"),
            "Mains": _ref(f"{PDU}/Mains"),
            "Branches": _ref(f"{PDU}/Branches"),
            "Outlets": _ref(f"{PDU}/Outlets"),
        }

    def _metrics(self) -> Body:
        return {
            "@odata.id": f"{PDU}/Metrics",
            "@odata.type": "#PowerDistributionMetrics.v1_4_0.PowerDistributionMetrics",
            "Id": "Metrics",
            "Name": "Summary Metrics",
            "PowerWatts": {"Reading": self.total_watts()},
        }

    def _circuit(self, uri: str, member: str, kind: str, watts: float, rated: float) -> Body:
        return {
            "@odata.id": uri,
            "@odata.type": "#Circuit.v1_9_0.Circuit",
            "Id": member,
            "Name": f"{kind} Circuit {member}",
            "CircuitType": kind,
            "Status": {"State": "Enabled", "Health": "OK"},
            "NominalVoltage": "AC200To240V",
            "RatedCurrentAmps": rated,
            "BreakerState": "Normal",
            "CurrentAmps": {"Reading": round(watts / VOLTS, 2)},
            "PowerWatts": {"Reading": watts},
        }

    def _mains(self) -> Body:
        return self._circuit(f"{PDU}/Mains/AC1", "AC1", "Mains", self.total_watts(), MAINS_AMPS)

    def _branch(self, branch: str) -> Body:
        body = self._circuit(
            f"{PDU}/Branches/{branch}", branch, "Branch", self.branch_watts(branch), self.rated_amps
        )
        outlets = [o for o in self._outlets if o[0] == branch]
        body["Links"] = {"Outlets": [_ref(f"{PDU}/Outlets/{o}") for o in outlets]}
        return body

    def _outlet(self, outlet: str) -> Body:
        watts = self.outlet_watts(outlet)
        return {
            "@odata.id": f"{PDU}/Outlets/{outlet}",
            "@odata.type": "#Outlet.v1_4_4.Outlet",
            "Id": outlet,
            "Name": f"Outlet {outlet} ({self._outlets[outlet].name})",
            "Status": {"State": "Enabled", "Health": "OK"},
            "NominalVoltage": "AC200To240V",
            "RatedCurrentAmps": 10,
            "PowerState": "On",
            "PowerEnabled": True,
            "CurrentAmps": {"Reading": round(watts / VOLTS, 2)},
            "PowerWatts": {"Reading": watts},
            "Links": {"BranchCircuit": _ref(f"{PDU}/Branches/{outlet[0]}")},
        }


class RackPduService:
    """Serves one ``SimulatedRackPdu`` over HTTP(S) Basic auth on ``address:port``."""

    def __init__(
        self, pdu: SimulatedRackPdu, address: str, port: int, username: str, password: str
    ) -> None:
        self.pdu = pdu
        self.address = address
        self.port = port
        self._user = username.encode()
        self._password = password.encode()
        self._runner: web.AppRunner | None = None

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> None:
        """Listen (``ListenError`` when the address is taken)."""
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._answer)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        self._runner = runner
        site = web.TCPSite(runner, self.address, self.port, ssl_context=ssl_context)
        await open_listener("rack PDU", self.address, self.port, site.start())

    async def stop(self) -> None:
        """Close the listener and its connections."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    def _authorised(self, request: web.Request) -> bool:
        try:
            basic = BasicAuth.decode(request.headers.get("Authorization", ""))
        except ValueError:
            return False
        user_ok = hmac.compare_digest(basic.login.encode(), self._user)
        return user_ok and hmac.compare_digest(basic.password.encode(), self._password)

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        if request.method not in ("GET", "HEAD"):
            return error_response(405, f"{BASE}.OperationNotAllowed", "The PDU is read-only here.")
        if path == "/redfish":
            return json_response({"v1": f"{V1}/"})
        if path != V1 and not self._authorised(request):
            return error_response(
                401,
                f"{BASE}.NoValidSession",
                "There is no valid session established with the implementation.",
                headers={"WWW-Authenticate": 'Basic realm="Redfish"'},
            )
        body = self.pdu.resource(path)
        return json_response(body) if body is not None else not_found(request.path)
