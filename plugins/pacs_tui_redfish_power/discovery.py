"""Service discovery: the ``Systems`` collection, the chosen member, its Reset action.

What a client learns here is cached (the collection's members, each
system's Reset target and allowed ResetTypes) so a warm poll is one GET.
A BMC may front several ComputerSystems (a blade enclosure): with several
members and none named, ``choose_system`` raises ``BmcAmbiguousSystem`` and
never guesses (never ``Systems/1``).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from pacs_tui_redfish_power.bounded_http import json_object, link, path_of
from pacs_tui_redfish_power.errors import (
    BmcAmbiguousSystem,
    BmcBadAnswer,
    BmcHttpError,
    BmcSystemNotFound,
    BmcTimeout,
)
from pacs_tui_redfish_power.session_auth import SessionAuth
from pacs_tui_redfish_power.transport import Use

# The client's logger, as before the split: log configs and filters name it.
log = logging.getLogger("pacs_tui_redfish_power.client")


@dataclass(frozen=True)
class ResetInfo:
    """Where ``ComputerSystem.Reset`` is POSTed and which ResetTypes the BMC allows."""

    target: str | None
    allowed: tuple[str, ...]  # empty when the BMC did not say


def member_id(path: str) -> str:
    """``Blade2`` for ``/redfish/v1/Systems/Blade2`` (the last path segment)."""
    return path.rstrip("/").rsplit("/", 1)[-1]


class SystemDiscovery(SessionAuth):
    """Finds the ComputerSystem and its Reset action (a base of ``BmcClient``)."""

    _members: tuple[str, ...] | None  # paths of the Systems collection's members
    _resets: dict[str, ResetInfo]  # per system path
    _discovery_lock: asyncio.Lock

    async def _system(self, system: str | None, use: Use) -> str:
        wanted = system if system is not None else self.bmc.system
        if self._members is None:
            async with self._discovery_lock:
                if self._members is None:
                    root = await self._service_root()
                    if root.systems is None:
                        raise BmcBadAnswer(f"the service root of {self._where} lists no Systems")
                    answer = await self._call("GET", root.systems, use)
                    members = json_object(answer, "GET", root.systems).get("Members")
                    paths = [link(m) for m in members] if isinstance(members, list) else []
                    found = tuple(p for p in paths if p is not None)
                    if not found:
                        raise BmcBadAnswer(f"the Systems collection of {self._where} is empty")
                    self._members = found
        return choose_system(self._members, wanted, self._where)

    async def _learn_reset(self, path: str, system: dict[str, Any], use: Use) -> ResetInfo:
        cached = self._resets.get(path)
        if cached is not None:
            return cached
        actions = system.get("Actions")
        action = actions.get("#ComputerSystem.Reset") if isinstance(actions, dict) else None
        if not isinstance(action, dict):
            self._resets[path] = ResetInfo(None, ())
            return self._resets[path]
        target = action.get("target")
        target = path_of(target) if isinstance(target, str) else None
        allowed: tuple[str, ...] | None = None
        learned = True
        info_path = action.get("@Redfish.ActionInfo")
        if isinstance(info_path, str):
            try:
                answer = await self._call("GET", path_of(info_path), use)
                allowed = allowable_from_info(json_object(answer, "GET", info_path))
            except (BmcHttpError, BmcBadAnswer, BmcTimeout) as exc:
                # An ActionInfo that fails is not the poll's failure; the inline list may do.
                log.debug("ActionInfo of %s unreadable: %s", self._where, exc)
                learned = False
        if allowed is None:
            inline = action.get("ResetType@Redfish.AllowableValues")
            if isinstance(inline, list):
                allowed = tuple(v for v in inline if isinstance(v, str))
                learned = True
        info = ResetInfo(target, allowed or ())
        if learned:
            self._resets[path] = info  # a transient ActionInfo failure is retried next poll
        return info

    def _forget_discovery(self) -> None:
        self._root = None
        self._members = None
        self._resets.clear()


def choose_system(members: tuple[str, ...], wanted: str | None, where: str) -> str:
    """The member path for ``wanted`` (an Id or a path; None: the only member).

    Raises ``BmcAmbiguousSystem`` (several members, none named) or ``BmcSystemNotFound``.
    """
    ids = tuple(member_id(m) for m in members)
    if wanted is None:
        if len(members) == 1:
            return members[0]
        raise BmcAmbiguousSystem(where, ids)
    wanted_path = wanted.rstrip("/")
    for path, member in zip(members, ids, strict=True):
        if path.rstrip("/") == wanted_path or member == wanted:
            return path
    raise BmcSystemNotFound(where, wanted, ids)


def allowable_from_info(info: dict[str, Any]) -> tuple[str, ...] | None:
    """The ResetType AllowableValues of an ActionInfo; None when it does not list them."""
    parameters = info.get("Parameters")
    if not isinstance(parameters, list):
        return None
    for parameter in parameters:
        if isinstance(parameter, dict) and parameter.get("Name") == "ResetType":
            values = parameter.get("AllowableValues")
            if isinstance(values, list):
                return tuple(v for v in values if isinstance(v, str))
    return None
