"""The built-in ``redfish-reset`` action: ``ComputerSystem.Reset`` through the BMC.

It speaks through the power probe's ``BmcClient`` (login paths, token reuse,
the named system of a blade enclosure, the ResetTypes the BMC allows). While
a ``power`` probe is open in the same event loop on the same inventory (the
fleet monitor's, which the batch reads PowerState through), the action
borrows that probe's client of each BMC (``open_power_probe``): one kept-alive
TLS connection pool and one Redfish session per BMC, already logged in and
with the Reset target learnt, so a reset is one POST. Without one it makes
clients of its own over its own keep-alive HTTP session. What it adds is the
reset itself as real BMCs answer it — and one rule: a reset is POSTed once
per step; it is never sent again when its outcome is unknown.

- ``204``/``200``: accepted; the batch runner then re-reads PowerState.
- ``202`` + ``Location``: a task monitor (DSP0266 §12.2), polled while it
  answers ``202`` (honouring ``Retry-After``); any other ``2xx`` (200, 201,
  204) ends it, and a Task body's ``TaskState`` (Completed; Exception,
  Killed, Cancelled) and its Messages decide. A monitor that answers ``503``
  is asked again later; one that stops answering leaves the verdict to
  PowerState — the reset was accepted, so it is never re-sent.
- ``409``/``400``: rejected, with the BMC's most specific Redfish message;
  the runner then reads PowerState (a server already at its target is not a
  failure).
- ``503`` on the POST, or a connection that could not be opened: nothing was
  done, so the runner may retry (``transient``).
- A timeout or a dropped connection after the POST was sent: ``unknown``;
  the runner reads PowerState back and never re-sends blindly.
- A BMC with several systems and none named: refused, with the member ids.

Settings (``ProbeContext.settings``): ``redfish_auth`` (overrides each BMC's
``bmc.auth``), ``redfish_task_wait_s`` (120), ``redfish_task_poll_s`` (0.5);
per-request timeouts come from the inventory's ``bmc.timeout_s``.
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
    ResetAccepted,
    bmc_credentials,
    open_http_session,
)
from pacs_tui_redfish_power.errors import (
    BmcBusy,
    BmcConnectFailed,
    BmcError,
    BmcHttpError,
    BmcOutcomeUnknown,
    BmcTimeout,
    BmcUnreachable,
)
from pacs_tui_redfish_power.messages import task_message
from pacs_tui_redfish_power.probe import auth_setting, open_power_probe
from pacs_tui_redfish_power.trust import TlsTrust

log = logging.getLogger(__name__)

_TASK_FAILED = {"Exception", "Killed", "Cancelled", "Interrupted"}
_MAX_TASK_POLL_S = 10.0  # a Retry-After longer than this is not waited out in one go


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
        self._auth: AuthMode | None = None
        self.task_wait_s = 120.0
        self.task_poll_s = 0.5
        # ResetType -> (the read before, the read that saw the shortest task done), in s.
        self._task_shortest: dict[str, tuple[float, float]] = {}

    async def open(self, context: ProbeContext) -> None:
        """Read settings and open the shared keep-alive HTTP session."""
        self._auth = auth_setting(context.settings)
        self.task_wait_s = float(context.settings.get("redfish_task_wait_s", 120.0))
        self.task_poll_s = float(context.settings.get("redfish_task_poll_s", 0.5))
        self._inventory = context.inventory
        if self._http is None:
            self._http = open_http_session()

    async def close(self) -> None:
        """Log out of every BMC it logged in to itself, then close its connections.

        Clients borrowed from the power probe are the probe's to close.
        """
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
        """POST the reset once; follow a task monitor; classify every failure."""
        reset_type = step.params.get("reset_type", step.verb)
        try:
            client, system = self._client(step.server)
            accepted = await client.reset(reset_type, system)
            if accepted.task_monitor is None:
                return ActionOutcome(True, f"HTTP {accepted.status}: {reset_type} accepted")
            return await self._follow_task(client, accepted, reset_type)
        except CredentialError as exc:
            return ActionOutcome(False, str(exc))
        except BmcOutcomeUnknown as exc:
            return ActionOutcome(False, str(exc), unknown=True)
        except BmcBusy as exc:
            return ActionOutcome(False, str(exc), transient=True, retry_after_s=exc.retry_after_s)
        except BmcHttpError as exc:
            return ActionOutcome(False, _rejection(exc), facts={"status": exc.status})
        except (BmcConnectFailed, BmcUnreachable, BmcTimeout) as exc:
            # Raised before the POST left (discovery, login): nothing was reset.
            return ActionOutcome(False, f"{exc} (nothing sent)", transient=True)
        except BmcError as exc:
            return ActionOutcome(False, str(exc))

    async def _follow_task(
        self, client: BmcClient, accepted: ResetAccepted, reset_type: str
    ) -> ActionOutcome:
        """Poll a 202's task monitor until it answers anything but 202, or ``task_wait_s``."""
        monitor = accepted.task_monitor
        assert monitor is not None
        facts = {"task_monitor": monitor}
        started = time.monotonic()
        deadline = started + self.task_wait_s
        wait = accepted.retry_after_s
        state = "Running"
        reads = 0
        read_at = previous = 0.0  # this read and the one before, s into following the task
        while True:
            pause = wait or self._task_pause(reset_type, time.monotonic() - started)
            await asyncio.sleep(min(pause, _MAX_TASK_POLL_S))
            reads += 1
            previous, read_at = read_at, time.monotonic() - started
            try:
                poll = await client.task_monitor(monitor)
            except BmcBusy as exc:
                # A busy monitor says nothing about the reset, which was accepted.
                wait = exc.retry_after_s
                if time.monotonic() >= deadline:
                    return _accepted_unfollowed(reset_type, monitor, str(exc))
                continue
            except BmcHttpError as exc:
                if exc.status in (404, 410):
                    # Some BMCs drop a finished task's monitor at once.
                    return ActionOutcome(
                        True, f"202: task monitor {monitor} gone (task ended)", facts=facts
                    )
                return _accepted_unfollowed(reset_type, monitor, str(exc))
            except (BmcError, CredentialError) as exc:
                return _accepted_unfollowed(reset_type, monitor, str(exc))
            value = poll.body.get("TaskState")
            state = value if isinstance(value, str) else state
            if poll.status != 202:
                break
            if time.monotonic() >= deadline:
                return ActionOutcome(
                    True,
                    f"202: task {monitor} still {state} after {self.task_wait_s:g} s "
                    "(PowerState decides)",
                    facts=facts,
                )
            wait = poll.retry_after_s
        message = task_message(poll.body)
        if state in _TASK_FAILED:
            words = f"202: task {monitor} ended {state}"
            return ActionOutcome(False, f"{words}: {message}" if message else words, facts=facts)
        if "TaskState" not in poll.body:
            # DSP0266: once done, the monitor answers as the request itself would have.
            self._learn_task(reset_type, read_at, previous, reads)
            return ActionOutcome(
                True,
                f"202: {reset_type} done (task monitor answered {poll.status})",
                facts={**facts, "task_completed": True},
            )
        done = {"task_completed": state == "Completed"}
        if state == "Completed":
            self._learn_task(reset_type, read_at, previous, reads)
        return ActionOutcome(True, f"202: {reset_type} task {state}", facts={**facts, **done})

    def _learn_task(self, reset_type: str, took_s: float, previous_s: float, reads: int) -> None:
        """A task of ``reset_type`` read done at ``took_s``, running at ``previous_s``."""
        if reads > 1:  # done at the first read: says nothing of how long it takes
            shortest = self._task_shortest.get(reset_type)
            if shortest is None or took_s < shortest[1]:
                self._task_shortest[reset_type] = (min(previous_s, took_s), took_s)

    def _task_pause(self, reset_type: str, elapsed_s: float) -> float:
        """Seconds until the next read of a task monitor, ``elapsed_s`` into following it.

        ``task_poll_s``, but a fifth of it (at least 0.05 s) from just before the
        shortest task of this ResetType followed so far (from the read before the
        one that saw it done) until a step past it:
        the servers of a batch are mostly alike, so a task is likely to end
        there, and a wave waits for its slowest server (the batch engine paces
        its PowerState reads the same way, ``pacs_tui.batch.pacing``).
        """
        step = self.task_poll_s
        seen = self._task_shortest.get(reset_type)
        if seen is None:
            return step
        fine = min(step, max(0.05, step / 5))
        start, end = seen[0] - fine, seen[1] + step
        if elapsed_s + step < start:
            return step
        if elapsed_s < start:
            return max(start - elapsed_s, fine / 2)
        return fine if elapsed_s < end else step

    def _client(self, name: str) -> tuple[BmcClient, str | None]:
        if self._inventory is None or self._http is None:
            raise RuntimeError("the redfish-reset action was not opened")
        server = self._inventory.server(name)
        if server.bmc is None:
            raise BmcError(f"{name} has no BMC in the inventory")
        # The fleet's power probe holds this BMC's session already: one session per BMC
        # (small session tables), and no TLS handshake, login or discovery before the POST.
        donor = open_power_probe(self._inventory, self._auth)
        if donor is not None:
            return donor.client(server), server.bmc.system
        bmc = server.bmc.controller
        client = self._clients.get(bmc)
        if client is None:
            client = BmcClient(
                self._http,
                bmc,
                self._credential_source(bmc.credentials),
                auth=self._auth,
                trust=self._trust,
            )
            self._clients[bmc] = client
        return client, server.bmc.system

    def _credential_source(self, reference: str | None) -> CredentialSource:
        assert self._inventory is not None
        return bmc_credentials(self._inventory, reference)


def _accepted_unfollowed(reset_type: str, monitor: str, why: str) -> ActionOutcome:
    """The reset was accepted (202) but its task could not be followed: PowerState decides."""
    return ActionOutcome(
        True,
        f"202: {reset_type} accepted; task monitor unreadable ({why}); PowerState decides",
        facts={"task_monitor": monitor, "task_unfollowed": True},
    )


def _rejection(exc: BmcHttpError) -> str:
    """``HTTP 409 rejected: <Redfish message> (<MessageId>)``."""
    words = f"HTTP {exc.status} rejected"
    if exc.message:
        words += f": {exc.message}"
    if exc.message_id and exc.message_id not in exc.message:
        words += f" ({exc.message_id})"
    return words
