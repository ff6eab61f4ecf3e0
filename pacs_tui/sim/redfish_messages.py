"""Redfish responses: JSON with the OData header, and DSP0266 error bodies.

An error is ``{"error": {"code", "message", "@Message.ExtendedInfo": [...]}}``
with a registry ``MessageId`` such as ``Base.1.12.NoValidSession``; clients
(and our probes) read the first extended message, so it always says why.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from aiohttp import web

BASE = "Base.1.12"
ODATA_HEADERS = {"OData-Version": "4.0", "Cache-Control": "no-cache"}


SCHEMAS = "https://redfish.dmtf.org/schemas/v1"


def described_by(odata_type: object) -> dict[str, str]:
    """The ``Link: <schema>; rel=describedby`` header of a resource (DSP0266 §8.2).

    ``#ServiceRoot.v1_15_0.ServiceRoot`` links ``ServiceRoot.v1_15_0.json`` and
    an unversioned ``#ChassisCollection.ChassisCollection`` ``ChassisCollection.json``.
    """
    if not isinstance(odata_type, str):
        return {}
    namespace = odata_type.lstrip("#").rsplit(".", 1)[0]
    return {"Link": f"<{SCHEMAS}/{namespace}.json>; rel=describedby"}


def json_response(
    body: Mapping[str, Any],
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """A Redfish JSON answer with the OData-Version header (and Link for a resource)."""
    return web.Response(
        status=status,
        body=json.dumps(body, separators=(",", ":")).encode(),
        content_type="application/json",
        charset="utf-8",
        headers={**ODATA_HEADERS, **described_by(body.get("@odata.type")), **(headers or {})},
    )


def no_content(headers: Mapping[str, str] | None = None) -> web.Response:
    """204 No Content, as a successful action or DELETE answers."""
    return web.Response(status=204, headers={**ODATA_HEADERS, **(headers or {})})


def error_body(
    message_id: str,
    message: str,
    *,
    args: Sequence[str] = (),
    resolution: str = "None.",
    severity: str = "Critical",
) -> dict[str, Any]:
    """A DSP0266 error object with one extended message."""
    return {
        "error": {
            "code": message_id,
            "message": message,
            "@Message.ExtendedInfo": [
                {
                    "@odata.type": "#Message.v1_1_1.Message",
                    "MessageId": message_id,
                    "Message": message,
                    "MessageArgs": list(args),
                    "MessageSeverity": severity,
                    "Severity": severity,
                    "Resolution": resolution,
                }
            ],
        }
    }


def error_response(
    status: int,
    message_id: str,
    message: str,
    *,
    args: Sequence[str] = (),
    resolution: str = "None.",
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """An HTTP error carrying a Redfish error body."""
    body = error_body(message_id, message, args=args, resolution=resolution)
    return json_response(body, status=status, headers=headers)


def unauthorized(realm: str) -> web.Response:
    """401 for a request without valid credentials or session."""
    return error_response(
        401,
        f"{BASE}.NoValidSession",
        "There is no valid session established with the implementation.",
        resolution="Establish a session before attempting any operations.",
        headers={"WWW-Authenticate": f'Basic realm="{realm}"'},
    )


def not_found(path: str) -> web.Response:
    """404 for a URI the service does not have."""
    return error_response(
        404,
        f"{BASE}.ResourceMissingAtURI",
        f"The resource at the URI '{path}' was not found.",
        args=[path],
        resolution="Place a valid resource at the URI or correct the URI and resubmit the request.",
    )


def method_not_allowed(path: str, allowed: Sequence[str]) -> web.Response:
    """405 naming the methods the URI accepts."""
    return error_response(
        405,
        f"{BASE}.OperationNotAllowed",
        f"The HTTP method is not allowed on the resource '{path}'.",
        headers={"Allow": ", ".join(allowed)},
    )


def malformed_json() -> web.Response:
    """400 for a request body that is not a JSON object."""
    return error_response(
        400,
        f"{BASE}.MalformedJSON",
        "The request body submitted was malformed JSON and could not be parsed by the receiving service.",
        resolution="Ensure that the request body is valid JSON and resubmit the request.",
    )


def truncated(response: web.Response) -> web.Response:
    """The same answer with its JSON body cut in half (the malformed-JSON fault)."""
    body = response.body
    if not isinstance(body, bytes) or response.content_type != "application/json":
        return response
    response.body = body[: max(1, len(body) // 2)]
    return response
