"""The simulator's control API: plant and clear faults, pull plugs, read host state.

A small JSON-over-HTTP service on 127.0.0.1 only. Tests, demos and rehearsals
use it to change the simulated world while clients keep probing it.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from aiohttp import web

from pacs_tui.power import ResetType
from pacs_tui.sim.datacenter import SimulatedDataCenter, replica_pairs
from pacs_tui.sim.faults import HostFaults
from pacs_tui.sim.host import ResetRejected
from pacs_tui.sim.listen import open_listener

CENTER_KEY = web.AppKey("center", SimulatedDataCenter)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _center(request: web.Request) -> SimulatedDataCenter:
    return request.app[CENTER_KEY]


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": f"body is not JSON: {exc}"}), content_type="application/json"
        ) from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "body must be a JSON object"}),
            content_type="application/json",
        )
    return body


async def list_hosts(request: web.Request) -> web.Response:
    """GET /hosts: every server's power, OS, units and active faults."""
    return web.json_response([h.snapshot() for h in _center(request).hosts.values()])


async def get_host(request: web.Request) -> web.Response:
    """GET /hosts/{name}: the host's state, and ``ssh_logins`` (logins its sshd accepted)."""
    center = _center(request)
    name = request.match_info["name"]
    try:
        host = center.host(name)
    except KeyError as exc:
        return _error(404, str(exc.args[0]))
    sshd = center.ssh_servers.get(name)
    logins = {"ssh_logins": sshd.logins} if sshd is not None else {}
    return web.json_response(host.snapshot() | logins)


async def get_bmc(request: web.Request) -> web.Response:
    """GET /hosts/{name}/bmc: the BMC's flavour, what it received (requests, resets) and
    its live Redfish sessions."""
    center = _center(request)
    name = request.match_info["name"]
    try:
        center.host(name)
    except KeyError as exc:
        return _error(404, str(exc.args[0]))
    bmc = center.bmc
    if bmc is None:
        return _error(503, "the BMCs are not running")
    received = sorted(bmc.requests(name).items())
    return web.json_response(
        {
            "flavour": str(bmc.flavour(name)),
            "base_url": bmc.base_url(name),
            "system": bmc.system_id(name),
            "enclosure": bmc.enclosure(name),
            "requests": [{"method": m, "path": p, "count": n} for (m, p), n in received],
            "resets": bmc.resets(name),
            "sessions": bmc.active_sessions(name),  # live Redfish sessions (logins not logged out)
        }
    )


async def set_faults(request: web.Request) -> web.Response:
    """POST /hosts/{name}/faults {"bmc_503": true, ...}: switch faults on or off."""
    body = await _json_body(request)
    try:
        active = await _center(request).set_faults(request.match_info["name"], body)
    except KeyError as exc:
        return _error(404, str(exc.args[0]))
    except ValueError as exc:
        return _error(400, str(exc))
    return web.json_response({"faults": active})


async def clear_faults(request: web.Request) -> web.Response:
    """DELETE /hosts/{name}/faults: every fault off."""
    try:
        await _center(request).clear_faults(request.match_info["name"])
    except KeyError as exc:
        return _error(404, str(exc.args[0]))
    return web.json_response({"faults": {}})


async def press_power(request: web.Request) -> web.Response:
    """POST /hosts/{name}/power {"reset_type": "ForceOff"}: act on the box, bypassing its BMC."""
    body = await _json_body(request)
    try:
        host = _center(request).host(request.match_info["name"])
        host.reset(ResetType(str(body.get("reset_type", ""))))
    except KeyError as exc:
        return _error(404, str(exc.args[0]))
    except ValueError:
        return _error(400, f"reset_type must be one of {', '.join(ResetType)}")
    except ResetRejected as exc:
        return _error(409, str(exc))
    return web.json_response(host.snapshot(), status=202)


async def swap_hardware(request: web.Request) -> web.Response:
    """POST /swap-hardware {"a": NAME, "b": NAME}: rack two boxes in each other's place."""
    body = await _json_body(request)
    a, b = body.get("a"), body.get("b")
    if not isinstance(a, str) or not isinstance(b, str):
        return _error(400, 'body must be {"a": NAME, "b": NAME}')
    try:
        _center(request).swap_hardware(a, b)
    except KeyError as exc:
        return _error(404, str(exc.args[0]))
    except ValueError as exc:
        return _error(400, str(exc))
    return web.json_response({"swapped": [a, b]})


async def list_spares(request: web.Request) -> web.Response:
    """GET /spares: each spare's box (power, serial) and the server it replaced, if any."""
    center = _center(request)
    return web.json_response(
        [
            {
                "name": name,
                "address": host.address,
                "serial": host.hardware.serial_number,
                "power_state": str(host.power_state),
                "racked_in": center.racked_spares.get(name),
            }
            for name, host in center.spares.items()
        ]
    )


async def rack_spare(request: web.Request) -> web.Response:
    """POST /spares/{name}/rack {"server": NAME, "new_host_key": true}: the spare takes the
    server's place (``new_host_key`` false: the OS image kept its SSH host keys)."""
    body = await _json_body(request)
    server = body.get("server")
    new_key = body.get("new_host_key", True)
    if not isinstance(server, str) or not isinstance(new_key, bool):
        return _error(400, 'body must be {"server": NAME, "new_host_key": true|false}')
    center = _center(request)
    name = request.match_info["name"]
    try:
        await center.rack_spare(server, name, new_host_key=new_key)
    except KeyError as exc:
        return _error(404, str(exc.args[0]))
    except ValueError as exc:
        return _error(409, str(exc))
    return web.json_response(
        {"racked": name, "in": server} | {"host": center.host(server).snapshot()}
    )


async def list_replicas(request: web.Request) -> web.Response:
    """GET /replicas: [{"primary": NAME, "replica": NAME}, ...]."""
    pairs = replica_pairs(_center(request).fleet)
    return web.json_response([{"primary": p, "replica": r} for p, r in pairs])


async def drop_days(request: web.Request) -> web.Response:
    """POST /hosts/{name}/missing-days {"days": ["2024-05-01", ...]}: the archive lacks them."""
    body = await _json_body(request)
    raw = body.get("days")
    if not isinstance(raw, list) or not raw:
        return _error(400, 'body must be {"days": ["YYYY-MM-DD", ...]}')
    try:
        days = [date.fromisoformat(str(d)) for d in raw]
    except ValueError as exc:
        return _error(400, f"days: {exc}")
    try:
        lost = _center(request).drop_replica_days(request.match_info["name"], days)
    except KeyError as exc:
        return _error(404, str(exc.args[0]))
    except ValueError as exc:
        return _error(400, str(exc))
    return web.json_response({"missing_days": [d.isoformat() for d in days], "studies": lost})


async def plant_studies(request: web.Request) -> web.Response:
    """POST /hosts/{name}/study-plants {"day": "YYYY-MM-DD", "missing": N, "partial": N,
    "swapped": N}: the archive differs from its primary study by study on that day."""
    body = await _json_body(request)
    try:
        day = date.fromisoformat(str(body.get("day")))
    except ValueError:
        return _error(400, 'day: expected "YYYY-MM-DD"')
    counts: dict[str, int] = {}
    for kind in ("missing", "partial", "swapped"):
        value = body.get(kind, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            return _error(400, f"{kind}: expected a whole number >= 0, got {value!r}")
        counts[kind] = value
    try:
        planted = _center(request).plant_studies(request.match_info["name"], day, **counts)
    except KeyError as exc:
        return _error(404, str(exc.args[0]))
    except ValueError as exc:
        return _error(400, str(exc))
    return web.json_response({"day": day.isoformat(), **planted})


async def list_site_links(request: web.Request) -> web.Response:
    """GET /sites: every hospital's and clinic's WAN link (address, ports, latency, faults)."""
    return web.json_response([link.snapshot() for link in _center(request).site_links.values()])


async def set_link_faults(request: web.Request) -> web.Response:
    """POST /sites/{name}/link {"link_down": true} or {"link_latency_ms": 300, ...}."""
    body = await _json_body(request)
    try:
        link = _center(request).site_link(request.match_info["name"])
        active = await link.set_faults(body)
    except KeyError as exc:
        return _error(404, str(exc.args[0]))
    except ValueError as exc:
        return _error(400, str(exc))
    return web.json_response({"faults": active, "link": link.snapshot()})


async def clear_link_faults(request: web.Request) -> web.Response:
    """DELETE /sites/{name}/link: the link healthy again."""
    try:
        link = _center(request).site_link(request.match_info["name"])
    except KeyError as exc:
        return _error(404, str(exc.args[0]))
    await link.clear_faults()
    return web.json_response({"faults": {}, "link": link.snapshot()})


async def list_racks(request: web.Request) -> web.Response:
    """GET /racks: every rack's servers, draw now, breaker rating, peak draw and trips (W)."""
    racks = _center(request).breakers.racks.values()
    return web.json_response([breaker.snapshot() for breaker in racks])


async def set_rack_breaker(request: web.Request) -> web.Response:
    """POST /racks/{name}/breaker {"trip_w": W}: arm the rack's breaker (rack-over-budget)."""
    body = await _json_body(request)
    try:
        breaker = _center(request).breakers.set_trip(request.match_info["name"], body.get("trip_w"))
    except KeyError as exc:
        return _error(404, str(exc.args[0]))
    except ValueError as exc:
        return _error(400, str(exc))
    return web.json_response(breaker.snapshot())


async def clear_rack_breaker(request: web.Request) -> web.Response:
    """DELETE /racks/{name}/breaker: no rating: the rack never trips."""
    try:
        breaker = _center(request).breakers.set_trip(request.match_info["name"], None)
    except KeyError as exc:
        return _error(404, str(exc.args[0]))
    return web.json_response(breaker.snapshot())


async def list_faults(request: web.Request) -> web.Response:
    """GET /faults: the fault switches and their defaults."""
    return web.json_response(vars(HostFaults()))


def control_app(center: SimulatedDataCenter) -> web.Application:
    """The aiohttp application of the control API."""
    app = web.Application()
    app[CENTER_KEY] = center
    app.router.add_get("/hosts", list_hosts)
    app.router.add_get("/hosts/{name}", get_host)
    app.router.add_get("/hosts/{name}/bmc", get_bmc)
    app.router.add_post("/hosts/{name}/faults", set_faults)
    app.router.add_delete("/hosts/{name}/faults", clear_faults)
    app.router.add_post("/hosts/{name}/power", press_power)
    app.router.add_get("/faults", list_faults)
    app.router.add_post("/hosts/{name}/missing-days", drop_days)
    app.router.add_post("/hosts/{name}/study-plants", plant_studies)
    app.router.add_post("/swap-hardware", swap_hardware)
    app.router.add_get("/replicas", list_replicas)
    app.router.add_get("/spares", list_spares)
    app.router.add_post("/spares/{name}/rack", rack_spare)
    app.router.add_get("/racks", list_racks)
    app.router.add_post("/racks/{name}/breaker", set_rack_breaker)
    app.router.add_delete("/racks/{name}/breaker", clear_rack_breaker)
    app.router.add_get("/sites", list_site_links)
    app.router.add_post("/sites/{name}/link", set_link_faults)
    app.router.add_delete("/sites/{name}/link", clear_link_faults)
    return app


class ControlApi:
    """The control API bound to 127.0.0.1 (port 0 picks a free one)."""

    def __init__(self, center: SimulatedDataCenter, port: int = 0) -> None:
        self._runner = web.AppRunner(control_app(center), access_log=None)
        self._port = port
        self.url = ""

    async def start(self) -> str:
        """Start serving; return the base URL."""
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self._port)
        await open_listener("control API", "127.0.0.1", self._port, site.start())
        server = site._server
        assert server is not None
        sock = server.sockets[0]  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        return self.url

    async def stop(self) -> None:
        """Stop serving."""
        await self._runner.cleanup()
