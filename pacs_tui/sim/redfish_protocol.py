"""DSP0266 protocol details every simulated BMC shares, whatever its flavour.

The DMTF Redfish Protocol Validator checks them on a real service, so the
simulator keeps them too: ``HEAD`` on every readable resource, an ``Allow``
header on reads, ``412`` for an ``OData-Version`` other than 4.0, and ``POST``
to a collection's ``Members`` URI as to the collection itself (DSP0266 §7.9).
"""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web

from pacs_tui.sim.redfish_messages import BASE, error_response

ODATA_VERSION = "4.0"
SESSIONS = "/redfish/v1/SessionService/Sessions"


def unsupported_version(request: web.Request) -> web.Response | None:
    """412 when the client asks for an OData version this service does not speak."""
    asked = request.headers.get("OData-Version")
    if asked is None or asked.strip() == ODATA_VERSION:
        return None
    return error_response(
        412,
        f"{BASE}.HeaderInvalid",
        f"The header 'OData-Version: {asked}' is invalid: this service supports OData-Version {ODATA_VERSION}.",
        args=[f"OData-Version: {asked}"],
        resolution=f"Send OData-Version {ODATA_VERSION}, or leave the header out.",
    )


def target(request: web.Request, path: str) -> tuple[str, str]:
    """The (method, path) to route: HEAD reads as GET, and a POST to the
    Sessions collection's ``Members`` creates a session as a POST to the collection."""
    method = "GET" if request.method == "HEAD" else request.method
    if method == "POST" and path == f"{SESSIONS}/Members":
        return method, SESSIONS
    return method, path


def allowed(methods: Iterable[str]) -> list[str]:
    """The ``Allow`` list of a resource: its methods, with HEAD wherever GET is."""
    names = set(methods)
    if "GET" in names:
        names.add("HEAD")
    return sorted(names)


def with_allow(
    response: web.StreamResponse, request: web.Request, methods: Iterable[str]
) -> web.StreamResponse:
    """Add ``Allow`` to a read's answer (DSP0266: returned on GET and HEAD)."""
    if request.method in ("GET", "HEAD") and not response.prepared:
        response.headers.setdefault("Allow", ", ".join(allowed(methods)))
    return response
