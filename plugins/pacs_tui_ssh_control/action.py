"""The built-in ``ssh-control`` action: systemd units and OS shutdown over SSH.

Verbs:

- ``stop-units`` / ``start-units``: ``systemctl stop|start UNIT...`` of the
  server's ``services`` (the role's PACS units by default), so the PACS
  closes its database and DICOM associations before the OS goes down;
- ``shutdown``: ``shutdown -h now``, for BMCs that lack ``GracefulShutdown``.

Host keys are checked strictly against the inventory's ``known_hosts`` (the
same source the SSH probe uses); an unknown or changed key refuses the
connection and nothing runs. A unit stop or start runs over the connection
the SSH probe holds open to the server, when it holds one (same event loop,
same inventory: ``shared_connection``), so a batch costs no second key
exchange and login per server; otherwise, and for ``shutdown`` (which ends
the connection), over the action's own connections, kept per login in a
pool that opens at most one new connection per host at a time.

Settings: ``ssh_timeout_s`` (10), ``ssh_max_new_connections`` (10).
"""

from __future__ import annotations

import asyncio
import logging
import shlex
from collections.abc import Mapping
from typing import Any

import asyncssh

from pacs_tui.credentials import CredentialError
from pacs_tui.inventory import Inventory, Server, SshEndpoint
from pacs_tui.plugin_api import Action, ActionOutcome, ActionStep, ProbeContext
from pacs_tui_ssh_services.connections import (
    HostConnections,
    MissingKeyFile,
    NoConnectSlot,
    login_key,
    shared_connection,
    strict_connect,
)

log = logging.getLogger(__name__)

STOP_UNITS = "stop-units"
START_UNITS = "start-units"
SHUTDOWN = "shutdown"
SHUTDOWN_COMMAND = "shutdown -h now"

# A connection that drops while ``shutdown`` runs is the shutdown working.
_DROPPED = (
    asyncssh.ConnectionLost,
    asyncssh.DisconnectError,
    BrokenPipeError,
    ConnectionResetError,
)


class _Refused(Exception):
    """A login that must not be retried (host key, credentials)."""


def command_for(server: Server, verb: str) -> str:
    """The command line ``verb`` runs on ``server``."""
    if verb == SHUTDOWN:
        return SHUTDOWN_COMMAND
    if verb in (STOP_UNITS, START_UNITS):
        if not server.services:
            raise ValueError(f"{server.name} has no services to {verb.split('-')[0]}")
        return shlex.join(["systemctl", verb.split("-")[0], *server.services])
    raise ValueError(f"unknown ssh-control verb {verb!r}")


def login_text(ssh: SshEndpoint) -> str:
    """``user@host:port`` for plans and the audit log."""
    user = f"{ssh.user}@" if ssh.user else ""
    return f"{user}{ssh.host}:{ssh.port}"


class SshControlAction(Action):
    """Stops/starts units and shuts the OS down over SSH with strict host keys."""

    name = "ssh-control"
    verbs = frozenset({STOP_UNITS, START_UNITS, SHUTDOWN})

    def __init__(self) -> None:
        """An action for the whole fleet; connections are made on first use."""
        self._inventory: Inventory | None = None
        self._pool: HostConnections | None = None
        self._step_s = 10.0

    async def open(self, context: ProbeContext) -> None:
        """Remember the inventory and size the connection pool."""
        self._inventory = context.inventory
        self._step_s = float(context.settings.get("ssh_timeout_s", 10.0))
        max_new = int(context.settings.get("ssh_max_new_connections", 10))
        self._pool = HostConnections(self._connect, max_new=max_new)
        asyncssh_logger = logging.getLogger("asyncssh")
        if asyncssh_logger.level == logging.NOTSET:
            asyncssh_logger.setLevel(logging.WARNING)

    async def close(self) -> None:
        """Close every kept-open connection."""
        if self._pool is not None:
            await self._pool.close()

    def applies_to(self, server: Server, verb: str) -> bool:
        """Servers with an SSH endpoint (and units, for the unit verbs)."""
        if server.ssh is None or verb not in self.verbs:
            return False
        return verb == SHUTDOWN or bool(server.services)

    def steps(
        self, server: Server, verb: str, facts: Mapping[str, Any] | None = None
    ) -> list[ActionStep]:
        """One command over SSH."""
        if not self.applies_to(server, verb):
            raise ValueError(f"{self.name} cannot {verb} {server.name}")
        assert server.ssh is not None
        command = command_for(server, verb)
        target = {
            STOP_UNITS: "units stopped",
            START_UNITS: "units started",
            SHUTDOWN: "OS shutting down",
        }[verb]
        return [
            ActionStep(
                server.name,
                verb,
                f"ssh {login_text(server.ssh)} {command}",
                target,
                action=self.name,
                params={"command": command},
            )
        ]

    async def run(self, step: ActionStep) -> ActionOutcome:
        """Run the step's command; a dropped connection during shutdown is success."""
        if self._inventory is None or self._pool is None:
            raise RuntimeError("the ssh-control action was not opened")
        server = self._inventory.server(step.server)
        ssh = server.ssh
        if ssh is None:
            return ActionOutcome(False, f"{server.name} has no SSH endpoint")
        command = step.params.get("command") or command_for(server, step.verb)
        conn: asyncssh.SSHClientConnection | None = None
        # The probe's open connection, if any; a shutdown ends its connection: our own.
        borrowed = None if step.verb == SHUTDOWN else shared_connection(self._inventory, ssh)
        try:
            if borrowed is not None:
                # Dropped since the probe last used it: one fresh try on our own (below).
                conn, fresh = borrowed, False
            else:
                conn, fresh = await self._pool.get(ssh, self._step_s)
            try:
                completed = await self._run(conn, command)
            except _DROPPED:
                if step.verb == SHUTDOWN:
                    return ActionOutcome(True, "connection closed by the shutdown")
                if fresh:
                    raise
                # The kept connection died since it was last used: one fresh try.
                self._pool.discard(ssh, conn)
                conn, _ = await self._pool.get(ssh, self._step_s)
                completed = await self._run(conn, command)
            except asyncssh.ChannelOpenError:
                if borrowed is None:
                    raise
                # The probe's connection refused one more channel (sshd's MaxSessions):
                # nothing ran; our own connection, and the probe keeps its own.
                conn, _ = await self._pool.get(ssh, self._step_s)
                completed = await self._run(conn, command)
        except _Refused as exc:
            return ActionOutcome(False, str(exc))
        except NoConnectSlot as exc:
            return ActionOutcome(False, str(exc), transient=True)
        except TimeoutError:
            if conn is not None:
                self._pool.discard(ssh, conn)
            return ActionOutcome(
                False, f"{command!r} gave no answer in {self._step_s:g} s", transient=True
            )
        except _DROPPED as exc:
            if conn is not None:
                self._pool.discard(ssh, conn)
            if step.verb == SHUTDOWN:
                return ActionOutcome(True, "connection closed by the shutdown")
            return ActionOutcome(False, f"connection lost: {_reason(exc)}", transient=True)
        except (asyncssh.Error, OSError) as exc:
            if conn is not None:
                self._pool.discard(ssh, conn)
            return ActionOutcome(False, f"{login_text(ssh)}: {_reason(exc)}", transient=True)
        if step.verb == SHUTDOWN:
            # The OS is going down; this connection will not survive it.
            self._pool.discard(ssh, conn)
        status = completed.exit_status
        if status == 0:
            return ActionOutcome(True, f"{command}: exit 0", facts={"exit_status": 0})
        err = completed.stderr if isinstance(completed.stderr, str) else ""
        first = err.strip().splitlines()[0][:200] if err.strip() else "no output"
        return ActionOutcome(
            False, f"{command}: exit {status}: {first}", facts={"exit_status": status}
        )

    async def _run(
        self, conn: asyncssh.SSHClientConnection, command: str
    ) -> asyncssh.SSHCompletedProcess:
        async with asyncio.timeout(self._step_s):
            return await conn.run(command, check=False)

    async def _connect(self, ssh: SshEndpoint) -> asyncssh.SSHClientConnection:
        """Log in with strict host key checking and the inventory's key."""
        where = login_text(ssh)
        assert self._inventory is not None
        try:
            username, key_file = login_key(self._inventory, ssh)
        except CredentialError as exc:
            raise _Refused(str(exc)) from None
        except MissingKeyFile:
            raise _Refused(f"credential {ssh.credentials!r} has no key_file") from None
        try:
            return await strict_connect(ssh, username, key_file, self._step_s)
        except asyncssh.HostKeyNotVerifiable:
            raise _Refused(
                f"host key of {where} is not in known_hosts (or changed): NOT accepted, nothing run"
            ) from None
        except asyncssh.PermissionDenied:
            raise _Refused(f"{where} refused the login key") from None
        except asyncssh.KeyImportError as exc:
            raise _Refused(f"key file {key_file} cannot be used: {exc}") from None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, asyncssh.Error):
        return exc.reason or type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
