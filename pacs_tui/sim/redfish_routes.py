"""The Redfish resources and actions of a simulated BMC, as a route table.

Handlers are plain functions of (BMC, request, URI match): the BMC carries
its host, flavour profile, session table and tasks, so the service that owns
the sockets stays small and every handler reads the host's state afresh.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from pacs_tui.power import ResetType
from pacs_tui.sim import redfish_enclosure as enclosure
from pacs_tui.sim import redfish_resources as res
from pacs_tui.sim.bmc_state import Credentials, SimulatedBmc
from pacs_tui.sim.host import ResetRejected
from pacs_tui.sim.redfish_flavour import state_conflict
from pacs_tui.sim.redfish_messages import (
    BASE,
    error_response,
    json_response,
    malformed_json,
    method_not_allowed,
    no_content,
    not_found,
)
from pacs_tui.sim.redfish_power_routes import POWER_ROUTES
from pacs_tui.sim.redfish_tasks import MONITORS, TASKS

__all__ = ["REALM", "ROUTES", "Credentials", "Route", "SimulatedBmc"]

log = logging.getLogger(__name__)

REALM = "Redfish"
TASK_RETRY_AFTER_S = 1  # what a task-503-once monitor asks the client to wait


Match = re.Match[str]
Resp = web.StreamResponse
Handler = Callable[[SimulatedBmc, web.Request, Match], Awaitable[Resp]]


@dataclass(frozen=True)
class Route:
    """A URI pattern, its handlers per HTTP method, and which need no login."""

    pattern: re.Pattern[str]
    methods: dict[str, Handler]
    public: frozenset[str] = frozenset()


# -- handlers: service, system, manager, chassis ------------------------------


async def _get_versions(bmc: SimulatedBmc, request: web.Request, m: Match) -> Resp:
    return json_response(res.versions())


async def _get_root(bmc: SimulatedBmc, request: web.Request, m: Match) -> Resp:
    # Links.Sessions stays even where the POST is refused: the schema requires it, and
    # the misbehaviour reported from the field is the 405, not the missing link.
    return json_response(res.service_root(bmc.host, bmc.profile))


async def _get_odata(bmc: SimulatedBmc, request: web.Request, m: Match) -> Resp:
    return json_response(res.odata_document())


async def _get_metadata(bmc: SimulatedBmc, request: web.Request, m: Match) -> Resp:
    return web.Response(
        text=res.METADATA_XML, content_type="application/xml", headers={"OData-Version": "4.0"}
    )


async def _get_systems(bmc: SimulatedBmc, request: web.Request, m: Match) -> Resp:
    body = res.collection(
        res.SYSTEMS,
        "ComputerSystemCollection",
        "Computer System Collection",
        enclosure.system_uris(bmc),
    )
    return json_response(body)


async def _get_system(bmc: SimulatedBmc, request: web.Request, m: Match) -> Resp:
    found = bmc.system(m["sid"])
    if found is None:
        return not_found(request.path)
    host, view = found
    body = res.system(host, view)
    word = host.faults.bmc_power_state_word
    if word:
        body["PowerState"] = None if word == "null" else word
    elif view.null_power_state:
        body["PowerState"] = None  # the schema allows null; some BMCs send it mid-transition
    return json_response(body)


async def _get_nics(bmc: SimulatedBmc, request: web.Request, m: Match) -> Resp:
    found = bmc.system(m["sid"])
    if found is None:
        return not_found(request.path)
    host, view = found
    uri = f"{res.system_uri(view)}/EthernetInterfaces"
    members = res.nic_uris(host, view)
    body = res.collection(
        uri, "EthernetInterfaceCollection", "Ethernet Interface Collection", members
    )
    return json_response(body)


async def _get_nic(bmc: SimulatedBmc, request: web.Request, m: Match) -> Resp:
    found = bmc.system(m["sid"])
    body = res.ethernet_interface(found[0], found[1], m["id"]) if found else None
    if body is None:
        return not_found(request.path)
    return json_response(body)


async def _get_action_info(bmc: SimulatedBmc, request: web.Request, m: Match) -> Resp:
    found = bmc.system(m["sid"])
    if found is None:
        return not_found(request.path)
    return json_response(res.action_info(found[1]))


async def _get_managers(bmc: SimulatedBmc, request: web.Request, m: Match) -> Resp:
    uri = f"{res.MANAGERS}/{bmc.profile.manager_id}"
    return json_response(
        res.collection(res.MANAGERS, "ManagerCollection", "Manager Collection", [uri])
    )


async def _get_manager(bmc: SimulatedBmc, request: web.Request, m: Match) -> Resp:
    if m["id"] != bmc.profile.manager_id:
        return not_found(request.path)
    return json_response(enclosure.manager(bmc))


async def _get_chassis_collection(bmc: SimulatedBmc, request: web.Request, m: Match) -> Resp:
    members = [f"{res.CHASSIS}/{c}" for c in enclosure.chassis_ids(bmc)]
    return json_response(
        res.collection(res.CHASSIS, "ChassisCollection", "Chassis Collection", members)
    )


async def _get_chassis(bmc: SimulatedBmc, request: web.Request, m: Match) -> Resp:
    body = enclosure.chassis(bmc, m["id"])
    if body is None:
        return not_found(request.path)
    return json_response(body)


# -- handlers: reset and tasks ------------------------------------------------


async def _post_reset(bmc: SimulatedBmc, request: web.Request, m: Match) -> Resp:
    found = bmc.system(m["sid"])
    if found is None:
        return not_found(request.path)
    host, view = found
    body = await _json_object(request)
    if body is None:
        return malformed_json()
    value = body.get("ResetType")
    if isinstance(value, str):
        bmc.record_reset(host, value)
    if value is None:
        return error_response(
            400,
            f"{BASE}.ActionParameterMissing",
            "The action ComputerSystem.Reset requires the parameter ResetType to be present in the request body.",
            args=["ComputerSystem.Reset", "ResetType"],
        )
    allowed = [str(t) for t in view.reset_types]
    if not isinstance(value, str) or value not in allowed:
        return error_response(
            400,
            f"{BASE}.ActionParameterValueNotInList",
            f"The value '{value}' for the parameter ResetType in the action "
            f"ComputerSystem.Reset is not in the list of acceptable values "
            f"({', '.join(allowed)}).",
            args=[str(value), "ResetType", "ComputerSystem.Reset"],
            resolution="Choose a value from the AllowableValues of the action's ActionInfo.",
        )
    kind = ResetType(value)
    power = str(host.power_state)
    if view.strict_state and state_conflict(kind, host.power_state):
        return _state_conflict(kind, power, f"the system is already {power}")
    try:
        host.reset(kind)
    except ResetRejected as exc:
        return _state_conflict(kind, power, str(exc))
    log.debug("%s: ComputerSystem.Reset %s", host.name, kind)
    if view.reset_via_task:
        task = bmc.tasks.start(host, res.reset_target(view), value)
        return json_response(task.body(), 202, headers={"Location": task.monitor_uri})
    return no_content()


async def _get_task_service(bmc: SimulatedBmc, request: web.Request, m: Match) -> Resp:
    return json_response(res.task_service())


async def _get_tasks(bmc: SimulatedBmc, request: web.Request, m: Match) -> Resp:
    members = [f"{TASKS}/{t.task_id}" for t in bmc.tasks.tasks()]
    return json_response(res.collection(TASKS, "TaskCollection", "Task Collection", members))


async def _get_task(bmc: SimulatedBmc, request: web.Request, m: Match) -> Resp:
    task = bmc.tasks.get(m["id"])
    if task is None:
        return not_found(request.path)
    return json_response(task.body())


async def _get_task_monitor(bmc: SimulatedBmc, request: web.Request, m: Match) -> Resp:
    task = bmc.tasks.get(m["id"])
    if task is None:
        return not_found(request.path)
    task.polls += 1
    p = bmc.profile
    if p.task_503_once and task.polls == 1:
        return error_response(
            503,
            f"{BASE}.ServiceTemporarilyUnavailable",
            f"The service is temporarily unavailable. Retry in {TASK_RETRY_AFTER_S} seconds.",
            args=[str(TASK_RETRY_AFTER_S)],
            resolution="Wait for the indicated retry duration and retry the operation.",
            headers={"Retry-After": str(TASK_RETRY_AFTER_S)},
        )
    if task.done:
        # DSP0266: a finished monitor answers as the synchronous request would have.
        return no_content() if p.task_done_status == 204 else json_response(task.body())
    return json_response(task.body(), 202, headers={"Location": task.monitor_uri})


# -- handlers: sessions -------------------------------------------------------


async def _get_session_service(bmc: SimulatedBmc, request: web.Request, m: Match) -> Resp:
    return json_response(res.session_service(bmc.sessions.limit, bmc.sessions.idle_timeout_s))


async def _get_sessions(bmc: SimulatedBmc, request: web.Request, m: Match) -> Resp:
    members = [f"{res.SESSIONS}/{s.session_id}" for s in bmc.sessions.sessions()]
    return json_response(
        res.collection(res.SESSIONS, "SessionCollection", "Session Collection", members)
    )


async def _post_login(bmc: SimulatedBmc, request: web.Request, m: Match) -> Resp:
    p = bmc.profile
    if not p.session_post:
        return method_not_allowed(request.path, ["GET"])
    if p.session_redirect and not request.path.endswith("/"):
        location = f"{res.SESSIONS}/"
        return web.Response(
            status=p.session_redirect,
            headers={"Location": location, "OData-Version": "4.0"},
        )
    answer = await _log_in(bmc, request)
    if p.slow_login:
        # The session exists already: a client that gives up still leaves it behind.
        await asyncio.sleep(bmc.timings.login_delay_s)
    return answer


async def _log_in(bmc: SimulatedBmc, request: web.Request) -> Resp:
    body = await _json_object(request)
    if body is None:
        return malformed_json()
    username, password = body.get("UserName"), body.get("Password")
    if not isinstance(username, str) or not isinstance(password, str):
        missing = "UserName" if not isinstance(username, str) else "Password"
        return error_response(
            400,
            f"{BASE}.PropertyMissing",
            f"The property {missing} is a required property and must be included in the request.",
            args=[missing],
        )
    if bmc.faults.bmc_401 or not bmc.credentials.matches(username, password):
        log.info("%s: Redfish login refused (bad credentials)", bmc.host.name)
        return error_response(
            401,
            f"{BASE}.ResourceAtUriUnauthorized",
            f"While accessing the resource at '{res.SESSIONS}', the service received an "
            "authorization error: invalid user name or password.",
            args=[res.SESSIONS, "Unauthorized"],
            headers={"WWW-Authenticate": f'Basic realm="{REALM}"'},
        )
    session = None if bmc.faults.bmc_sessions_exhausted else bmc.sessions.open(username)
    if session is None:
        p = bmc.profile
        log.info("%s: Redfish session limit reached", bmc.host.name)
        return error_response(
            p.session_limit_status,
            p.session_limit_message_id,
            p.session_limit_message,
            resolution="Log out of other sessions, or wait for idle sessions to expire.",
        )
    log.debug("%s: Redfish session %s opened", bmc.host.name, session.session_id)
    uri = f"{res.SESSIONS}/{session.session_id}"
    headers = {"X-Auth-Token": session.token, "Location": uri}
    return json_response(res.session(session), 201, headers=headers)


async def _get_session(bmc: SimulatedBmc, request: web.Request, m: Match) -> Resp:
    session = bmc.sessions.get(m["id"])
    if session is None:
        return not_found(request.path)
    return json_response(res.session(session))


async def _delete_session(bmc: SimulatedBmc, request: web.Request, m: Match) -> Resp:
    if not bmc.sessions.close(m["id"]):
        return not_found(request.path)
    log.debug("%s: Redfish session %s closed", bmc.host.name, m["id"])
    return no_content()


async def _json_object(request: web.Request) -> dict[str, Any] | None:
    """The request body as a JSON object, or None when it is not one."""
    try:
        body = json.loads(await request.read() or b"null")
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


def _state_conflict(kind: ResetType, power: str, reason: str) -> web.Response:
    return error_response(
        409,
        f"{BASE}.OperationNotAllowed",
        f"ResetType '{kind}' is not allowed while the system PowerState is {power}: {reason}.",
        args=[str(kind), power],
        resolution="Read PowerState and choose a ResetType that fits it.",
    )


def _route_table() -> list[Route]:
    sid = r"/redfish/v1/Systems/(?P<sid>[^/]+)"
    one = r"(?P<id>[^/]+)"

    def route(pattern: str, public: Sequence[str] = (), **methods: Handler) -> Route:
        return Route(re.compile(pattern), dict(methods), frozenset(public))

    return [
        route(r"/redfish", ("GET",), GET=_get_versions),
        route(r"/redfish/v1", ("GET",), GET=_get_root),
        route(r"/redfish/v1/odata", ("GET",), GET=_get_odata),
        route(r"/redfish/v1/\$metadata", ("GET",), GET=_get_metadata),
        route(r"/redfish/v1/Systems", GET=_get_systems),
        route(sid, GET=_get_system),
        route(f"{sid}/EthernetInterfaces", GET=_get_nics),
        route(f"{sid}/EthernetInterfaces/{one}", GET=_get_nic),
        route(f"{sid}/ResetActionInfo", GET=_get_action_info),
        route(f"{sid}/Actions/ComputerSystem\\.Reset", POST=_post_reset),
        route(r"/redfish/v1/Managers", GET=_get_managers),
        route(f"/redfish/v1/Managers/{one}", GET=_get_manager),
        route(r"/redfish/v1/Chassis", GET=_get_chassis_collection),
        route(f"/redfish/v1/Chassis/{one}", GET=_get_chassis),
        *(route(pattern, GET=handler) for pattern, handler in POWER_ROUTES),
        route(r"/redfish/v1/SessionService", GET=_get_session_service),
        route(res.SESSIONS, ("POST",), GET=_get_sessions, POST=_post_login),
        route(f"{res.SESSIONS}/{one}", GET=_get_session, DELETE=_delete_session),
        route(r"/redfish/v1/TaskService", GET=_get_task_service),
        route(TASKS, GET=_get_tasks),
        route(f"{TASKS}/{one}", GET=_get_task),
        route(f"{MONITORS}/{one}", GET=_get_task_monitor),
    ]


# Every resource a simulated BMC serves, matched against the path without a
# trailing slash; ``public`` methods need no credentials (DSP0266: the service
# root, the OData documents, and the login itself).
ROUTES = _route_table()
