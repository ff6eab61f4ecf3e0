"""The HTTP API of ``pacs-tui serve`` (aiohttp): documented in ``docs/openapi.yaml``.

Every route needs ``Authorization: Bearer <token>`` (``tokens``); the routes
in ``WRITES`` need an operator's token, and each write is audited under the
token's name. Reads:

- ``GET /api/v1/service`` who this service is; ``GET /api/v1/inventory`` the
  inventory text (credential references only: the file never holds secrets);
- ``GET /api/v1/snapshot`` the whole state at a sequence number;
- ``GET /api/v1/events`` Server-Sent Events (``snapshot``, ``readings``,
  ``batch``, ``batch-result``, ``custody``, ``notice``), resuming after
  ``Last-Event-ID``; a gap older than the hub keeps is answered with a fresh
  ``snapshot`` event, as is a viewer whose queue overflowed;
- ``GET /api/v1/batches/current``, ``GET /api/v1/custody``, ``GET /api/v1/audit``,
  ``GET /api/v1/audit/interrupted``; ``GET /metrics`` (Prometheus text format).

Errors are JSON ``{"error": "..."}`` with 400 (malformed), 401 (no or unknown
token), 403 (viewer token, or a read-only service), 404, 409 (conflict: a
batch runs, the plan changed), 422 (refused plan or confirmation).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp_sse import sse_response

from pacs_tui.batch.audit import parse_since
from pacs_tui.batch.confirm import DEFAULT_THRESHOLD, ConfirmationRule
from pacs_tui.service.batch_request import RequestError, parse_batch_request
from pacs_tui.service.fleet_service import FleetService, ServiceRefusal
from pacs_tui.service.hub import Event
from pacs_tui.service.tokens import Caller, TokenTable

log = logging.getLogger(__name__)

API = "/api/v1"
# (method, path) of every route that changes something: operators only.
WRITES: frozenset[tuple[str, str]] = frozenset(
    {
        ("POST", f"{API}/batches/plan"),
        ("POST", f"{API}/batches/plan/{{batch}}/decline"),
        ("POST", f"{API}/batches"),
        ("POST", f"{API}/batches/current/pause"),
        ("POST", f"{API}/batches/current/resume"),
        ("POST", f"{API}/batches/current/abort"),
        ("POST", f"{API}/custody"),
        ("POST", f"{API}/audit/interrupted/{{batch}}/ack"),
    }
)
# A ping (an SSE comment) every 5 s lets a screen tell a hung service from a quiet one
# within its silence limit (pacs_tui.remote.client.STREAM_SILENCE_S).
PING_INTERVAL_S = 5.0
SEND_TIMEOUT_S = 30.0  # a viewer that takes no data for this long is dropped; it resumes later
AUDIT_LIMIT = 1000

SERVICE_KEY = web.AppKey("service", FleetService)
TOKENS_KEY = web.AppKey("tokens", TokenTable)
CALLER = web.RequestKey("caller", Caller)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=status)


@web.middleware
async def _authorize(request: web.Request, handler: Handler) -> web.StreamResponse:
    caller = request.app[TOKENS_KEY].caller(request.headers.get("Authorization"))
    if caller is None:
        response = _error(401, "a valid bearer token is required (Authorization: Bearer …)")
        response.headers["WWW-Authenticate"] = 'Bearer realm="pacs-tui"'
        return response
    route = request.match_info.route.resource
    path = route.canonical if route is not None else request.path
    if (request.method, path) in WRITES and not caller.may_write:
        return _error(403, f"token {caller.name!r} is a viewer: it can change nothing")
    request[CALLER] = caller
    try:
        return await handler(request)
    except ServiceRefusal as exc:
        return _error(exc.status, exc.reason)
    except RequestError as exc:
        return _error(400, str(exc))
    except web.HTTPException as exc:  # aiohttp's own 404/405/413: JSON like every error
        if exc.status < 400:
            raise
        response = _error(exc.status, exc.reason)
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response


def _service(request: web.Request) -> FleetService:
    return request.app[SERVICE_KEY]


def _caller(request: web.Request) -> Caller:
    return request[CALLER]


async def _json_body(request: web.Request) -> Any:
    try:
        return await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise RequestError("the body is not JSON") from None


async def get_service(request: web.Request) -> web.Response:
    caller = _caller(request)  # who asks: a screen shows or hides its write keys by it
    return web.json_response(
        {**_service(request).describe(), "caller": {"name": caller.name, "role": caller.role.value}}
    )


async def get_inventory(request: web.Request) -> web.Response:
    service = _service(request)
    return web.json_response({"name": service.inventory.path.name, "text": service.inventory_text})


async def get_snapshot(request: web.Request) -> web.Response:
    return web.json_response(_service(request).snapshot())


def _last_event_id(request: web.Request) -> int | None:
    """The sequence number to resume after; None (a snapshot) for none or a foreign id.

    Ids are ``INSTANCE:SEQ``: a viewer that reconnects to a restarted service
    (a new instance) gets a snapshot, never the new run's events as if they
    followed the old run's.
    """
    text = request.headers.get("Last-Event-ID") or request.query.get("last_event_id")
    instance, _, seq = (text or "").partition(":")
    if instance != _service(request).instance or not seq.isdigit():
        return None
    return int(seq)


async def get_events(request: web.Request) -> web.StreamResponse:
    """The SSE stream: a snapshot (unless resuming), then every event as it is published.

    The viewer's queue is attached before the snapshot or backlog is taken, so
    nothing published meanwhile is lost; what the queue holds that the
    snapshot or backlog already covered (ids up to ``sent``) is skipped, so
    nothing is sent twice either.
    """
    service = _service(request)
    hub = service.hub
    viewer = hub.attach()
    stream: web.StreamResponse | None = None
    try:
        async with sse_response(
            request, send_timeout=SEND_TIMEOUT_S, ping_interval=PING_INTERVAL_S
        ) as sse:
            stream = sse
            last = _last_event_id(request)
            backlog = hub.since(last) if last is not None else None
            if backlog is None:
                sent = await _send_snapshot(sse, service)
            else:
                sent = last if last is not None else 0
                for event in backlog:
                    await _send(sse, event, service.instance)
                    sent = event.id
            while sse.is_connected():
                events = await viewer.next(timeout=5.0)
                if viewer.overflowed:
                    viewer.resynced()
                    sent = await _send_snapshot(sse, service)
                    continue
                for event in events:
                    if event.id > sent:
                        await _send(sse, event, service.instance)
                        sent = event.id
    except (ConnectionResetError, TimeoutError):
        pass  # the viewer went away or stopped reading: it resumes with Last-Event-ID
    finally:
        hub.detach(viewer)
    return stream if stream is not None else web.Response(status=503)


async def _send(stream: Any, event: Event, instance: str) -> None:
    await stream.send(event.data, id=f"{instance}:{event.id}", event=event.kind)


async def _send_snapshot(stream: Any, service: FleetService) -> int:
    """Send the whole state; the sequence number it stands at."""
    snapshot = service.snapshot()
    await stream.send(
        json.dumps(snapshot, separators=(",", ":")),
        id=f"{service.instance}:{snapshot['seq']}",
        event="snapshot",
    )
    return int(snapshot["seq"])


async def post_plan(request: web.Request) -> web.Response:
    service = _service(request)
    batch_request = parse_batch_request(service.inventory, await _json_body(request))
    plan, batch = await service.plan(_caller(request), batch_request)
    rule = ConfirmationRule(int(service.settings.get("confirm_threshold", DEFAULT_THRESHOLD)))
    return web.json_response(
        {
            "batch": batch,
            "summary": plan.summary(),
            "refused": plan.refused,
            "refusals": list(plan.refusals),
            "hints": list(plan.hints),
            "confirm": ConfirmationRule.expected(plan) if rule.required(plan) else None,
            "prompt": rule.prompt(plan) if rule.required(plan) else None,
            "touched": [sp.server.name for sp in plan.touched],
            "plan": plan.to_json(),
        }
    )


async def post_decline(request: web.Request) -> web.Response:
    batch = request.match_info["batch"]
    return web.json_response(_service(request).decline_plan(_caller(request), batch))


async def post_batch(request: web.Request) -> web.Response:
    service = _service(request)
    batch_request = parse_batch_request(service.inventory, await _json_body(request), to_run=True)
    await service.start_batch(_caller(request), batch_request)
    state = service.batch_state()
    return web.json_response(state, status=202)


async def get_current_batch(request: web.Request) -> web.Response:
    state = _service(request).batch_state()
    if state is None:
        return _error(404, "no batch has run on this service")
    return web.json_response(state)


def _batch_control(what: str) -> Handler:
    async def control(request: web.Request) -> web.Response:
        return web.json_response(_service(request).control_batch(_caller(request), what))

    return control


async def get_custody(request: web.Request) -> web.Response:
    state = _service(request).custody_state()
    if state is None:
        return _error(404, "this service has no custody board (serve --custody)")
    return web.json_response(state)


async def post_custody(request: web.Request) -> web.Response:
    body = await _json_body(request)
    if not isinstance(body, dict):
        raise RequestError("the body must be a JSON object")
    how, names = body.get("how"), body.get("servers")
    to, reason = body.get("to"), body.get("reason", "")
    if how not in ("advance", "correct"):
        raise RequestError("how: must be advance or correct")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise RequestError("servers: must be a non-empty list of server names")
    if to is not None and not isinstance(to, str):
        raise RequestError("to: must be a custody state word")
    if not isinstance(reason, str):
        raise RequestError("reason: must be a string")
    changes = _service(request).change_custody(_caller(request), how, names, to, reason)
    return web.json_response({"changes": [c.to_json() for c in changes]})


async def post_ack(request: web.Request) -> web.Response:
    item = _service(request).acknowledge(_caller(request), request.match_info["batch"])
    return web.json_response({"acknowledged": item})


async def get_audit(request: web.Request) -> web.Response:
    service = _service(request)
    since_text, batch = request.query.get("since"), request.query.get("batch")
    try:
        since = parse_since(since_text) if since_text else None
        limit = int(request.query.get("limit", AUDIT_LIMIT))
    except ValueError as exc:
        raise RequestError(f"since/limit: {exc}") from None
    if not 1 <= limit <= AUDIT_LIMIT:
        raise RequestError(f"limit: must be 1..{AUDIT_LIMIT}")
    events = await asyncio.to_thread(service.audit_events, since, batch)
    return web.json_response({"events": events[-limit:]})


async def get_interrupted(request: web.Request) -> web.Response:
    items = await asyncio.to_thread(_service(request).interrupted)
    return web.json_response({"interrupted": items})


def build_app(
    service: FleetService,
    tokens: TokenTable,
    *,
    metrics: Callable[[], Awaitable[tuple[bytes, str]]] | None = None,
) -> web.Application:
    """The aiohttp application of one service; ``metrics()`` renders ``/metrics``."""
    app = web.Application(middlewares=[_authorize], client_max_size=1024 * 1024)
    app[SERVICE_KEY] = service
    app[TOKENS_KEY] = tokens
    app.router.add_get(f"{API}/service", get_service)
    app.router.add_get(f"{API}/inventory", get_inventory)
    app.router.add_get(f"{API}/snapshot", get_snapshot)
    app.router.add_get(f"{API}/events", get_events)
    app.router.add_post(f"{API}/batches/plan", post_plan)
    app.router.add_post(f"{API}/batches/plan/{{batch}}/decline", post_decline)
    app.router.add_post(f"{API}/batches", post_batch)
    app.router.add_get(f"{API}/batches/current", get_current_batch)
    for what in ("pause", "resume", "abort"):
        app.router.add_post(f"{API}/batches/current/{what}", _batch_control(what))
    app.router.add_get(f"{API}/custody", get_custody)
    app.router.add_post(f"{API}/custody", post_custody)
    app.router.add_get(f"{API}/audit", get_audit)
    app.router.add_get(f"{API}/audit/interrupted", get_interrupted)
    app.router.add_post(f"{API}/audit/interrupted/{{batch}}/ack", post_ack)
    if metrics is not None:
        render = metrics

        async def get_metrics(request: web.Request) -> web.Response:
            # The collector reads live state on the loop; formatting runs in a thread.
            body, content_type = await render()
            response = web.Response(body=body)
            response.headers["Content-Type"] = content_type
            response.enable_compression()  # Prometheus asks for gzip: 15 MB → 0.4 MB at 3 000
            return response

        app.router.add_get("/metrics", get_metrics)
    return app
