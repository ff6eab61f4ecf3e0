"""A power batch asked for over the service's API: what is checked before any plan.

The request body (JSON)::

    {"verb": "off", "servers": ["arc-01", "arc-02"]}        # or "selector": "role:archive"
    {"verb": "on", "selector": "site:dc-main", "options": {
        "escalate_after_s": 120, "override_dependents": false, "stop_units": true,
        "power_timeout_s": 300, "gate_timeout_s": 600, "include_unknown": ["arc-07"]}}

Running adds ``"confirm": "<the count the plan asks for>"`` and, optionally,
``"expect": {"touched": [names]}``: the servers the operator saw in the plan.
The service plans again from fresh PowerStates and refuses (409) when that
plan would touch other servers than the ones shown.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pacs_tui.batch.gates import GatePolicy
from pacs_tui.batch.plan import VERBS, PlanOptions
from pacs_tui.inventory import Inventory, Server
from pacs_tui.selector import SelectorError, select

_OPTION_KEYS = {
    "escalate_after_s", "override_dependents", "stop_units", "power_timeout_s",
    "gate_timeout_s", "include_unknown", "settle_timeout_s", "settle_poll_s",
}  # fmt: skip


_BATCH_ID = re.compile(r"[0-9a-f]{6,32}")  # what ``session.new_batch_id`` makes


class RequestError(ValueError):
    """The request is malformed; the message names the field and the reason."""


@dataclass(frozen=True)
class BatchRequest:
    """A checked request: the verb, the servers, the options, what the caller confirmed."""

    verb: str
    servers: tuple[Server, ...]
    selection: str
    options: PlanOptions
    confirm: str | None
    expect_touched: frozenset[str] | None
    plan_id: str | None = None  # the batch id of the plan shown (POST /batches/plan)


def _number(options: Mapping[str, Any], key: str, default: float | None) -> float | None:
    value = options.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise RequestError(f"options.{key}: must be a number > 0")
    return float(value)


def _flag(options: Mapping[str, Any], key: str, default: bool) -> bool:
    value = options.get(key, default)
    if not isinstance(value, bool):
        raise RequestError(f"options.{key}: must be true or false")
    return value


def parse_batch_request(
    inventory: Inventory, body: Any, *, poll_s: float = 1.0, to_run: bool = False
) -> BatchRequest:
    """Check a request body against the inventory; ``RequestError`` says what is wrong.

    ``to_run``: the request starts a batch, so it must say what the operator was
    shown (``expect.touched``, from a plan): one mistyped request must not switch
    servers off without a plan having been made and read.
    """
    if not isinstance(body, dict):
        raise RequestError("the body must be a JSON object")
    verb = body.get("verb")
    if verb not in VERBS:
        raise RequestError(f"verb: must be one of {', '.join(VERBS)}")
    names, selector = body.get("servers"), body.get("selector")
    if (names is None) == (selector is None):
        raise RequestError("give exactly one of servers (a list of names) or selector")
    if selector is not None:
        if not isinstance(selector, str) or not selector.strip():
            raise RequestError("selector: must be a non-empty selector expression")
        kinds = {name: site.kind for name, site in inventory.sites.items()}
        try:
            servers = select(inventory.servers, selector, kinds)
        except SelectorError as exc:
            raise RequestError(f"selector: {exc}") from None
        selection = selector
    else:
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise RequestError("servers: must be a non-empty list of server names")
        known = set(inventory.names())
        unknown = [n for n in names if n not in known]
        if unknown:
            raise RequestError(f"servers: not in the inventory: {', '.join(unknown[:10])}")
        wanted = set(names)
        servers = [s for s in inventory.servers if s.name in wanted]
        selection = "servers " + ",".join(names[:20]) + (" …" if len(names) > 20 else "")
    if not servers:
        raise RequestError(f"selector {selector!r} matches no server")
    options = body.get("options", {})
    if not isinstance(options, dict):
        raise RequestError("options: must be an object")
    extra = set(options) - _OPTION_KEYS
    if extra:
        raise RequestError(f"options: unknown {', '.join(sorted(extra))}")
    include = options.get("include_unknown", [])
    if not isinstance(include, list) or not all(isinstance(n, str) for n in include):
        raise RequestError("options.include_unknown: must be a list of server names or 'all'")
    gate_timeout = _number(options, "gate_timeout_s", 600.0)
    power_timeout = _number(options, "power_timeout_s", 300.0)
    settle_timeout = _number(options, "settle_timeout_s", 300.0)
    settle_poll = _number(options, "settle_poll_s", 5.0)
    assert gate_timeout is not None and power_timeout is not None
    assert settle_timeout is not None and settle_poll is not None
    plan_options = PlanOptions(
        escalate_after_s=_number(options, "escalate_after_s", None),
        override_dependents=_flag(options, "override_dependents", False),
        power_timeout_s=power_timeout,
        gate=GatePolicy(timeout_s=gate_timeout, poll_s=poll_s),
        stop_units=_flag(options, "stop_units", True),
        include_unknown=frozenset("*" if n == "all" else n for n in include),
        settle_timeout_s=settle_timeout,
        settle_poll_s=settle_poll,
    )
    confirm = body.get("confirm")
    if confirm is not None and not isinstance(confirm, str):
        raise RequestError("confirm: must be a string (the count the plan asks for)")
    expect = body.get("expect")
    expect_touched: frozenset[str] | None = None
    if expect is None and to_run:
        raise RequestError(
            "expect.touched: required to run a batch: the servers the plan you were shown "
            "touches (POST /api/v1/batches/plan first, then send its touched list)"
        )
    if expect is not None:
        touched = expect.get("touched") if isinstance(expect, dict) else None
        if not isinstance(touched, list) or not all(isinstance(n, str) for n in touched):
            raise RequestError("expect.touched: must be a list of server names")
        expect_touched = frozenset(touched)
    plan_id = body.get("batch")
    if plan_id is not None and (not isinstance(plan_id, str) or not _BATCH_ID.fullmatch(plan_id)):
        raise RequestError("batch: must be the id of a plan (POST /api/v1/batches/plan)")
    return BatchRequest(
        verb, tuple(servers), selection, plan_options, confirm, expect_touched, plan_id
    )
