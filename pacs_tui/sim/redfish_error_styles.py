"""Error bodies as some vendors spell them: the reason only in ``@Message.ExtendedInfo``.

Every error the simulator builds is a full DSP0266 body. A BMC of the
``extended-info-only`` or ``extended-info-vendor`` flavour rewrites it on the
way out, so a client that reads ``error.message`` learns nothing:

- ``extended-info-only``: ``{"error": {"code": "Base.1.12.GeneralError", "message":
  "See @Message.ExtendedInfo for more information.", "@Message.ExtendedInfo": [{
  "@odata.type", "MessageId", "MessageArgs", "MessageSeverity", "Severity",
  "Resolution"}]}}``: no ``Message`` anywhere.
- ``extended-info-vendor``: ``{"error": {"code": "Base.1.12.GeneralError", "message":
  "See @Message.ExtendedInfo for more information."}, "@Message.ExtendedInfo": [{
  "MessageID", "MessageArguments", "Severity", "Resolution"}]}``: the list at the
  top level beside ``error``, ids and arguments under vendor key spellings.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from pacs_tui.sim.redfish_flavour import ErrorStyle
from pacs_tui.sim.redfish_messages import BASE

GENERAL_ERROR = f"{BASE}.GeneralError"
SEE_EXTENDED_INFO = "See @Message.ExtendedInfo for more information."


def _bare(info: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in info.items() if k != "Message"}


def _vendor(info: dict[str, Any]) -> dict[str, Any]:
    return {
        "MessageID": info.get("MessageId"),
        "MessageArguments": list(info.get("MessageArgs", [])),
        "Severity": info.get("Severity", "Critical"),
        "Resolution": info.get("Resolution", "None."),
    }


def restyle(response: web.StreamResponse, style: ErrorStyle) -> web.StreamResponse:
    """``response`` with its Redfish error body rewritten in ``style`` (others unchanged)."""
    if style is ErrorStyle.STANDARD or not isinstance(response, web.Response):
        return response
    raw = response.body
    if not isinstance(raw, bytes) or response.content_type != "application/json":
        return response
    body = json.loads(raw)
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return response
    infos = [i for i in error.get("@Message.ExtendedInfo", []) if isinstance(i, dict)]
    head = {"code": GENERAL_ERROR, "message": SEE_EXTENDED_INFO}
    if style is ErrorStyle.EXTENDED_ONLY:
        styled: dict[str, Any] = {
            "error": {**head, "@Message.ExtendedInfo": [_bare(i) for i in infos]}
        }
    else:
        styled = {"error": head, "@Message.ExtendedInfo": [_vendor(i) for i in infos]}
    response.body = json.dumps(styled, separators=(",", ":")).encode()
    return response
