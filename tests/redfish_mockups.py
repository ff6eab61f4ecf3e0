"""The DMTF's published Redfish mockups, served read-only for client tests.

A mockup is a folder of ``index.json`` files laid out as their URIs
(``Systems/437XR1138R2/index.json`` answers ``GET /redfish/v1/Systems/437XR1138R2``).
``serve_mockup`` answers GET and HEAD from it and nothing else, plus the two
things a client needs to log in: HTTP Basic, and when the mockup has a
SessionService, ``POST`` to its Sessions collection (201, ``X-Auth-Token``,
``Location``) and ``DELETE`` of that session. Every other write is 405: the
payloads are the DMTF's examples and stay exactly as published.

The mockups live in ``shared/redfish-mockups`` beside the repository (here
and in CI), found with ``mockup_folder``.
"""

from __future__ import annotations

import hmac
import json
import secrets
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import BasicAuth, web

from pacs_tui.inventory import Inventory
from pacs_tui.sim.pki import FleetPki
from peers import IN_CI
from redfish_peers import PASSWORD, USER, free_port

REPO = Path(__file__).resolve().parents[1]
# shared/ sits beside the repository: /work/shared here, $(repo)/../shared in CI.
SHARED = REPO.parent / "shared"
MOCKUPS = SHARED / "redfish-mockups"
SESSIONS = "/redfish/v1/SessionService/Sessions"
# DSP0266: these answer without credentials, as on a real service.
PUBLIC = frozenset({"/redfish", "/redfish/v1", "/redfish/v1/odata", "/redfish/v1/$metadata"})


def mockup_folder(name: str) -> Path:
    """The mockup called ``name``; skip (laptop) or fail (CI) when it is missing."""
    folder = MOCKUPS / name
    if (folder / "index.json").is_file():
        return folder
    reason = (
        f"DMTF mockup {name!r} not found in {MOCKUPS} (a copy of shared/ beside the repository)"
    )
    if IN_CI:
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


def mockup_payload(folder: Path, path: str) -> dict[str, Any]:
    """The mockup's JSON for ``path`` (below ``/redfish/v1``): what a test expects to read."""
    return dict(json.loads((folder / path.removeprefix("/redfish/v1/") / "index.json").read_text()))


@asynccontextmanager
async def mockup_as_servers(
    tmp: Path, folder: Path, servers: Mapping[str, Mapping[str, Any]]
) -> AsyncIterator[tuple[MockupService, Inventory]]:
    """``folder`` served over HTTPS as the BMC of each of ``servers`` (name -> extra
    ``bmc`` keys, e.g. ``system``) of an inventory in ``tmp`` (the fleet CA written
    there, credentials ``bmc-admin``)."""
    from redfish_peers import net, write_inventory

    pki = FleetPki.create()
    pki.write_ca(tmp / "fleet-ca.pem")
    async with serve_mockup(folder, f"{net()}.1", pki=pki) as mockup:
        bmc = {
            "address": mockup.address,
            "port": mockup.port,
            "ca_file": "fleet-ca.pem",
            "credentials": "bmc-admin",
        }
        inventory = write_inventory(
            tmp, {name: {**bmc, **extra} for name, extra in servers.items()}
        )
        yield mockup, inventory


@asynccontextmanager
async def mockup_as_server(
    tmp: Path, folder: Path, name: str
) -> AsyncIterator[tuple[MockupService, Inventory]]:
    """``folder`` served over HTTPS as the BMC of server ``name`` (``mockup_as_servers``)."""
    async with mockup_as_servers(tmp, folder, {name: {}}) as served:
        yield served


@dataclass
class MockupService:
    """A mockup being served: where, and the sessions clients have opened."""

    address: str
    port: int
    scheme: str
    sessions: dict[str, str] = field(default_factory=dict)  # token -> session id

    @property
    def url(self) -> str:
        """``https://ADDRESS:PORT`` (``http`` without a PKI)."""
        return f"{self.scheme}://{self.address}:{self.port}"


@asynccontextmanager
async def serve_mockup(
    folder: Path, address: str, *, pki: FleetPki | None = None
) -> AsyncIterator[MockupService]:
    """Serve ``folder`` on ``address`` (HTTPS with a ``pki`` leaf, else HTTP) until the block ends."""
    service = MockupService(address, free_port(address), "https" if pki else "http")
    has_sessions = (folder / "SessionService" / "Sessions" / "index.json").is_file()

    def authorised(request: web.Request) -> bool:
        token = request.headers.get("X-Auth-Token")
        if token is not None:
            return token in service.sessions
        try:
            basic = BasicAuth.decode(request.headers.get("Authorization", ""))
        except ValueError:
            return False
        return _same(basic.login, USER) and _same(basic.password, PASSWORD)

    async def answer(request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        if request.method == "POST" and path == SESSIONS and has_sessions:
            return await log_in(request)
        if path not in PUBLIC and not authorised(request):
            return _error(401, "NoValidSession", "There is no valid session established.")
        if request.method == "DELETE" and path.startswith(f"{SESSIONS}/"):
            return log_out(request, path.rsplit("/", 1)[1])
        if request.method not in ("GET", "HEAD"):
            return _error(405, "OperationNotAllowed", "The mockup is read-only.")
        if path == "/redfish":
            return web.json_response({"v1": "/redfish/v1/"})
        return _read(folder, path)

    async def log_in(request: web.Request) -> web.Response:
        try:
            body: Any = json.loads(await request.read())
        except ValueError:
            body = None
        if not isinstance(body, dict) or not (
            _same(str(body.get("UserName")), USER) and _same(str(body.get("Password")), PASSWORD)
        ):
            return _error(401, "ResourceAtUriUnauthorized", "Invalid user name or password.")
        token, session_id = secrets.token_hex(16), secrets.token_hex(8)
        service.sessions[token] = session_id
        uri = f"{SESSIONS}/{session_id}"
        session = {
            "@odata.id": uri,
            "@odata.type": "#Session.v1_6_0.Session",
            "Id": session_id,
            "Name": "User Session",
            "UserName": USER,
        }
        return web.json_response(
            session, status=201, headers={"X-Auth-Token": token, "Location": uri}
        )

    def log_out(request: web.Request, session_id: str) -> web.Response:
        for token, known in list(service.sessions.items()):
            if known == session_id:
                del service.sessions[token]
                return web.Response(status=204)
        return _error(
            404, "ResourceMissingAtURI", f"The resource at {request.path} does not exist."
        )

    app = web.Application()
    app.router.add_route("*", "/{path:.*}", answer)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    context = pki.server_ssl_context(address) if pki else None
    site = web.TCPSite(runner, address, service.port, ssl_context=context)
    try:
        await site.start()
        yield service
    finally:
        await runner.cleanup()


def _read(folder: Path, path: str) -> web.Response:
    if not path.startswith("/redfish/v1"):
        return _missing(path)
    relative = path.removeprefix("/redfish/v1").strip("/")
    if relative == "$metadata":
        xml = folder / "$metadata" / "index.xml"
        if xml.is_file():
            return web.Response(body=xml.read_bytes(), content_type="application/xml")
        return _missing(path)
    target = (folder / relative / "index.json").resolve()
    # Only files inside the mockup: a ".." in the URI must not read anything else.
    if not target.is_relative_to(folder.resolve()) or not target.is_file():
        return _missing(path)
    return web.Response(
        body=target.read_bytes(), content_type="application/json", headers={"OData-Version": "4.0"}
    )


def _missing(path: str) -> web.Response:
    return _error(404, "ResourceMissingAtURI", f"The resource at the URI '{path}' was not found.")


def _error(status: int, message_id: str, message: str) -> web.Response:
    info = {"MessageId": f"Base.1.12.{message_id}", "Message": message}
    body = {
        "error": {"code": info["MessageId"], "message": message, "@Message.ExtendedInfo": [info]}
    }
    return web.json_response(body, status=status)


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())
