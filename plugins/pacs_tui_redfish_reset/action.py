"""The built-in ``redfish-reset`` action: ``ComputerSystem.Reset`` through the BMC.

It reuses the power probe's ``BmcClient`` (session login, token reuse,
system path discovery, the ResetTypes the BMC allows) over its own
keep-alive HTTP session. What it adds is the reset itself as real BMCs
answer it:

- ``204``/``200``: accepted; the batch runner then re-reads PowerState.
- ``202`` + ``Location``: a task monitor, polled until the task ends (or
  ``redfish_task_wait_s`` passes; PowerState decides in the end anyway).
- ``409``/``400``: rejected, with the BMC's own Redfish message (e.g. a
  strict BMC refusing ``On`` while On); never retried.
- ``503`` (with ``Retry-After``), refused or dropped connections and
  timeouts: transient, so the runner retries with backoff.

Settings (``ProbeContext.settings``): ``redfish_auth`` (``session``/``basic``),
``redfish_timeout_s`` (5), ``redfish_task_wait_s`` (120), ``redfish_task_poll_s`` (0.5).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

import aiohttp

from pacs_tui.credentials import CredentialError
from pacs_tui.inventory import BmcEndpoint, Inventory, Server
from pacs_tui.plugin_api import Action, ActionOutcome, ActionStep, ProbeContext
from pacs_tui.power import ResetType
from pacs_tui_redfish_power.client import (
    AuthMode,
    BmcClient,
    CredentialSource,
    bmc_credentials,
    open_http_session,
)
from pacs_tui_redfish_power.errors import (
    BmcBusy,
    BmcError,
    BmcHttpError,
    BmcTimeout,
    BmcUnreachable,
)
from pacs_tui_redfish_power.trust import TlsTrust

log = logging.getLogger(__name__)

_TASK_DONE = {"Completed", "Exception", "Killed", "Cancelled", "Interrupted"}
_TASK_FAILED = {"Exception", "Killed", "Cancelled", "Interrupted"}


def reset_url(server: Server, facts: Mapping[str, Any] | None) -> str:
    """The full URL a reset of ``server`` is POSTed to, as far as it is known."""
    assert server.bmc is not None
    target = (facts or {}).get("reset_target")
    if isinstance(target, str) and target:
        return server.bmc.url + target
    system = (facts or {}).get("system_path")
    if isinstance(system, str) and system:
        return f"{server.bmc.url}{system.rstrip('/')}/Actions/ComputerSystem.Reset"
    return f"{server.bmc.url}/redfish/v1/Systems/<discovered>/Actions/ComputerSystem.Reset"


class RedfishResetAction(Action):
    """Power resets (On, ForceOff, GracefulShutdown, GracefulRestart, ...) via Redfish."""

    name = "redfish-reset"
    verbs = frozenset(str(t) for t in ResetType)
    dangerous = False  # force-off is dangerous as a batch verb; the runner asks for that

    def __init__(self) -> None:
        """An action for the whole fleet; clients are made on first use."""
        self._inventory: Inventory | None = None
        self._http: aiohttp.ClientSession | None = None
        self._clients: dict[BmcEndpoint, BmcClient] = {}
        self._trust = TlsTrust()
        self._auth: AuthMode = "session"
        self._timeout_s = 5.0
        self.task_wait_s = 120.0
        self.task_poll_s = 0.5

    async def open(self, context: ProbeContext) -> None:
        """Read settings and open the shared keep-alive HTTP session."""
        auth = context.settings.get("redfish_auth", "session")
        if auth not in ("session", "basic"):
            raise ValueError(f"redfish_auth must be 'session' or 'basic', not {auth!r}")
        self._auth = "basic" if auth == "basic" else "session"
        self._timeout_s = float(context.settings.get("redfish_timeout_s", 5.0))
        self.task_wait_s = float(context.settings.get("redfish_task_wait_s", 120.0))
        self.task_poll_s = float(context.settings.get("redfish_task_poll_s", 0.5))
        self._inventory = context.inventory
        if self._http is None:
            self._http = open_http_session()

    async def close(self) -> None:
        """Log out of every BMC, then close the connections."""
        clients, self._clients = self._clients, {}
        await asyncio.gather(*(c.close() for c in clients.values()))
        if self._http is not None:
            http, self._http = self._http, None
            await http.close()

    def applies_to(self, server: Server, verb: str) -> bool:
        """Servers with a BMC, for any Redfish ResetType."""
        return server.bmc is not None and verb in self.verbs

    def steps(
        self, server: Server, verb: str, facts: Mapping[str, Any] | None = None
    ) -> list[ActionStep]:
        """One POST of ``ComputerSystem.Reset`` with ``ResetType=verb``."""
        if not self.applies_to(server, verb):
            raise ValueError(f"{self.name} cannot {verb} {server.name}")
        call = f"POST {reset_url(server, facts)} ResetType={verb}"
        return [
            ActionStep(
                server.name,
                verb,
                call,
                target="reset accepted",
                action=self.name,
                params={"reset_type": verb},
            )
        ]

    async def run(self, step: ActionStep) -> ActionOutcome:
        """POST the reset; follow a task monitor; classify every failure."""
        reset_type = step.params.get("reset_type", step.verb)
        try:
            client = self._client(step.server)
            accepted = await client.reset(reset_type)
            if accepted.task_monitor is None:
                return ActionOutcome(True, f"HTTP {accepted.status}: {reset_type} accepted")
            return await self._follow_task(client, accepted.task_monitor, reset_type)
        except CredentialError as exc:
            return ActionOutcome(False, str(exc))
        except BmcBusy as exc:
            return ActionOutcome(False, str(exc), transient=True, retry_after_s=exc.retry_after_s)
        except BmcHttpError as exc:
            return ActionOutcome(False, _rejection(exc), facts={"status": exc.status})
        except (BmcUnreachable, BmcTimeout) as exc:
            return ActionOutcome(False, str(exc), transient=True)
        except BmcError as exc:
            return ActionOutcome(False, str(exc))

    async def _follow_task(self, client: BmcClient, monitor: str, reset_type: str) -> ActionOutcome:
        """Poll a 202's task monitor until the task ends or ``task_wait_s`` passes."""
        deadline = time.monotonic() + self.task_wait_s
        state = "Running"
        while True:
            try:
                status, body = await client.get(monitor)
            except BmcHttpError as exc:
                if exc.status == 404:
                    # Some BMCs drop a finished task's monitor at once.
                    return ActionOutcome(True, f"202: task monitor {monitor} gone (task ended)")
                raise
            value = body.get("TaskState")
            state = value if isinstance(value, str) else state
            if status != 202 and (state in _TASK_DONE or status == 200):
                break
            if time.monotonic() >= deadline:
                return ActionOutcome(
                    True,
                    f"202: task {monitor} still {state} after {self.task_wait_s:g} s "
                    "(PowerState decides)",
                    facts={"task_monitor": monitor},
                )
            await asyncio.sleep(self.task_poll_s)
        if state in _TASK_FAILED:
            return ActionOutcome(
                False, f"202: task {monitor} ended {state}: {_task_message(body)}".rstrip(": ")
            )
        return ActionOutcome(
            True, f"202: {reset_type} task {state}", facts={"task_monitor": monitor}
        )

    def _client(self, name: str) -> BmcClient:
        if self._inventory is None or self._http is None:
            raise RuntimeError("the redfish-reset action was not opened")
        server = self._inventory.server(name)
        bmc = server.bmc
        if bmc is None:
            raise BmcError(f"{name} has no BMC in the inventory")
        client = self._clients.get(bmc)
        if client is None:
            client = BmcClient(
                self._http,
                bmc,
                self._credential_source(bmc.credentials),
                auth=self._auth,
                timeout_s=self._timeout_s,
                trust=self._trust,
            )
            self._clients[bmc] = client
        return client

    def _credential_source(self, reference: str | None) -> CredentialSource:
        assert self._inventory is not None
        return bmc_credentials(self._inventory, reference)


def _rejection(exc: BmcHttpError) -> str:
    """``HTTP 409 rejected: <Redfish message> (<MessageId>)``."""
    words = f"HTTP {exc.status} rejected"
    if exc.message:
        words += f": {exc.message}"
    if exc.message_id:
        words += f" ({exc.message_id})"
    return words


def _task_message(body: Mapping[str, Any]) -> str:
    messages = body.get("Messages")
    if isinstance(messages, list) and messages and isinstance(messages[0], dict):
        text = messages[0].get("Message")
        if isinstance(text, str):
            return text[:200]
    return ""
