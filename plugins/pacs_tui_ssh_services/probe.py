"""The SSH services probe: are a server's systemd units active?

It logs in with asyncssh, checks the host key strictly against
``known_hosts`` and runs ``systemctl is-active UNIT...`` for the server's
``services`` in one command over a connection kept open between polls. A
host key that is unknown or has changed is an alarm: the connection is
refused, nothing runs, and it is never retried with weaker checking.

Settings (``ProbeContext.settings``):

- ``ssh_max_new_connections``: new connections in flight at once (default 10);
- ``ssh_timeout_s``: limit of each step (default 5 s); a poll takes at most twice that.

Our own waits are never the host's fault: a poll that found every new-connection
slot of the pool busy, or that timed out while our event loop was late for half
the step's limit or more, is UNKNOWN "measurement unreliable", never DOWN.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import shlex
import time

import asyncssh

from pacs_tui.credentials import CredentialError
from pacs_tui.inventory import Inventory, Server, SshEndpoint
from pacs_tui.plugin_api import (
    Health,
    Probe,
    ProbeContext,
    ProbeResult,
    lag_explains_timeout,
    measure_loop_lag,
    unreliable_detail,
)
from pacs_tui_ssh_services.connections import (
    HostConnections,
    MissingKeyFile,
    NoConnectSlot,
    known_hosts_source,
    login_key,
    strict_connect,
)

log = logging.getLogger(__name__)

# Errors of a connection that was fine at the last poll: make a new one once.
_STALE_CONNECTION_ERRORS = (
    asyncssh.ChannelOpenError,
    asyncssh.ConnectionLost,
    asyncssh.DisconnectError,
    BrokenPipeError,
    ConnectionResetError,
)


def systemctl_command(units: tuple[str, ...]) -> str:
    """The one command line that reads every unit's state."""
    return shlex.join(["systemctl", "is-active", *units])


class _Failed(Exception):
    """A probe step failed; carries the reading to report."""

    def __init__(self, result: ProbeResult) -> None:
        super().__init__(result.detail)
        self.result = result


class _TimedOut(Exception):
    """A poll ran out of time; ``step`` says during what."""

    def __init__(self, step: str) -> None:
        super().__init__(step)
        self.step = step


def _down(state: str, detail: str, health: Health = Health.DOWN) -> _Failed:
    return _Failed(ProbeResult.make(state, health, detail=detail))


class SshServiceProbe(Probe):
    """``systemctl is-active`` of a server's units over a kept-open SSH connection."""

    name = "ssh"
    interval_s = 10.0
    timeout_s = 5.0  # per step; a whole poll takes at most twice this

    def __init__(self) -> None:
        """A probe for the whole fleet; connections are made on first use."""
        self._inventory: Inventory | None = None
        self._pool: HostConnections | None = None

    async def open(self, context: ProbeContext) -> None:
        """Remember the inventory (for credentials) and size the connection pool."""
        self._inventory = context.inventory
        self.timeout_s = float(context.settings.get("ssh_timeout_s", type(self).timeout_s))
        max_new = int(context.settings.get("ssh_max_new_connections", 10))
        self._pool = HostConnections(self._connect, max_new=max_new)
        # The ssh-control action runs its unit stops over these connections (issue 14).
        self._pool.share(context.inventory)
        # asyncssh logs every connection at INFO; a fleet's worth drowns the log.
        asyncssh_logger = logging.getLogger("asyncssh")
        if asyncssh_logger.level == logging.NOTSET:
            asyncssh_logger.setLevel(logging.WARNING)

    async def close(self) -> None:
        """Close every kept-open connection."""
        if self._pool is not None:
            self._pool.unshare()
            await self._pool.close()

    @property
    def pool(self) -> HostConnections:
        """The connection pool (``open`` must have run)."""
        if self._pool is None:
            raise RuntimeError("SshServiceProbe.open() has not been called")
        return self._pool

    def applies_to(self, server: Server) -> bool:
        """Servers with an SSH endpoint."""
        return server.ssh is not None

    def endpoint(self, server: Server) -> str:
        """``ssh:HOST:PORT``, capped per sshd by the scheduler."""
        assert server.ssh is not None
        return f"ssh:{server.ssh.host}:{server.ssh.port}"

    async def probe(self, server: Server) -> ProbeResult:
        """Run ``systemctl is-active`` for the server's units (or just log in)."""
        ssh = server.ssh
        if ssh is None:
            return ProbeResult.make("error", Health.UNKNOWN, detail="server has no ssh endpoint")
        command = systemctl_command(server.services) if server.services else "true"
        lag = measure_loop_lag()
        try:
            with lag:
                result = await self._poll(ssh, command, server.services)
        except _Failed as failed:
            if failed.result.state == "timeout" and lag_explains_timeout(
                lag.late_ms, self.timeout_s
            ):
                return ProbeResult.unreliable(
                    "timeout", unreliable_detail(lag.late_ms, "the SSH login"), lag.late_ms
                )
            return failed.result
        except NoConnectSlot as exc:
            # Our own pool was full: nothing was asked of the host.
            return ProbeResult.unreliable("queued", f"not measured: {exc}", lag.late_ms)
        except _TimedOut as timed_out:
            if lag_explains_timeout(lag.late_ms, self.timeout_s):
                return ProbeResult.unreliable(
                    "timeout",
                    unreliable_detail(lag.late_ms, timed_out.step),
                    lag.late_ms,
                )
            return ProbeResult.make(
                "timeout", Health.DOWN, detail=f"no answer in time while {timed_out.step}"
            )
        return result

    async def _poll(self, ssh: SshEndpoint, command: str, units: tuple[str, ...]) -> ProbeResult:
        """One poll; raises ``_Failed``, ``NoConnectSlot`` or ``_TimedOut`` (naming the step)."""
        # Each step (waiting for a connect slot, connecting, the command) has
        # its own limit, and the whole poll twice that: within the scheduler's
        # 2 * timeout_s + 1 even when a stale connection has to be replaced.
        conn: asyncssh.SSHClientConnection | None = None
        step = "connecting"
        try:
            async with asyncio.timeout(2 * self.timeout_s):
                conn, fresh = await self.pool.get(ssh, self.timeout_s)
                step = f"running {command!r}"
                try:
                    completed, rtt_ms = await self._run(conn, command)
                except _STALE_CONNECTION_ERRORS:
                    if fresh:
                        raise
                    # The connection died since the last poll (reboot, sshd restart).
                    log.debug("connection to %s:%d went stale; reconnecting", ssh.host, ssh.port)
                    self.pool.discard(ssh, conn)
                    step = "reconnecting"
                    conn, fresh = await self.pool.get(ssh, self.timeout_s)
                    step = f"running {command!r}"
                    completed, rtt_ms = await self._run(conn, command)
        except TimeoutError:
            if conn is not None:
                self.pool.discard(ssh, conn)  # it may hang; the next poll starts afresh
            raise _TimedOut(step) from None
        except (asyncssh.Error, OSError) as exc:
            if conn is not None:
                self.pool.discard(ssh, conn)
            return ProbeResult.make("down", Health.DOWN, detail=f"connection lost: {_reason(exc)}")
        return _judge(units, completed, rtt_ms, fresh)

    async def _run(
        self, conn: asyncssh.SSHClientConnection, command: str
    ) -> tuple[asyncssh.SSHCompletedProcess, float]:
        """Run ``command`` within one step's time; return it and its round trip (ms)."""
        started = time.perf_counter()
        async with asyncio.timeout(self.timeout_s):
            completed = await conn.run(command, check=False)
        return completed, (time.perf_counter() - started) * 1000

    async def _connect(self, ssh: SshEndpoint) -> asyncssh.SSHClientConnection:
        """Log in to ``ssh`` with strict host key checking; raise ``_Failed`` saying why not."""
        where = f"{ssh.host}:{ssh.port}"
        known_hosts = known_hosts_source(ssh)
        if self._inventory is None:
            raise _down("credential-error", "no inventory to resolve credentials", Health.UNKNOWN)
        try:
            username, key_file = login_key(self._inventory, ssh)
        except CredentialError as exc:
            raise _down("credential-error", str(exc), Health.UNKNOWN) from None
        except MissingKeyFile:
            raise _down(
                "credential-error",
                f"credential {ssh.credentials!r} has no key_file; the SSH probe logs in with keys",
                Health.UNKNOWN,
            ) from None
        try:
            return await strict_connect(ssh, username, key_file, self.timeout_s)
        except asyncssh.HostKeyNotVerifiable:
            raise _host_key_alarm(ssh, known_hosts) from None
        except asyncssh.PermissionDenied:
            who = f"key {key_file}" if key_file is not None else "the SSH agent's keys"
            raise _down("auth-failed", f"{username}@{where} refused {who}") from None
        except asyncssh.KeyImportError as exc:
            # Never the key's contents; asyncssh's message names the problem only.
            raise _down("auth-failed", f"key file {key_file} cannot be used: {exc}") from None
        except ConnectionRefusedError:
            raise _down("refused", f"{where} refused the connection") from None
        except TimeoutError:
            raise _down("timeout", f"no SSH login to {where} in {self.timeout_s:g} s") from None
        except asyncssh.KeyExchangeFailed as exc:
            raise _down("down", f"{where}: key exchange failed: {exc.reason}") from None
        except asyncssh.ConnectionLost:
            raise _down(
                "down", f"{where} closed the connection during login (sshd MaxStartups?)"
            ) from None
        except asyncssh.Error as exc:
            raise _down("down", f"{where}: {_reason(exc)}") from None
        except OSError as exc:
            state = (
                "unreachable" if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH) else "down"
            )
            raise _down(state, f"{where}: {_reason(exc)}") from None


def _host_key_alarm(ssh: SshEndpoint, known_hosts: str | bytes) -> _Failed:
    """The alarm for a host key not in ``known_hosts``: changed, or never seen."""
    where = f"{ssh.host}:{ssh.port}"
    source = known_hosts if isinstance(known_hosts, str) else "no known_hosts file"
    try:
        matched = asyncssh.match_known_hosts(
            known_hosts, ssh.host, ssh.host, None if ssh.port == 22 else ssh.port
        )
        listed = bool(matched[0] or matched[1] or matched[2])
    except (OSError, ValueError) as exc:
        return _down(
            "host-key-unknown",
            f"host key of {where} NOT accepted: {source} cannot be read ({_reason(exc)})",
        )
    if listed:
        return _down(
            "host-key-mismatch",
            f"ALARM: host key of {where} differs from {source}; NOT accepted, nothing was run "
            "(reinstalled or impersonated server? check before updating known_hosts)",
        )
    return _down(
        "host-key-unknown",
        f"ALARM: host key of {where} is not in {source}; NOT accepted, nothing was run "
        "(add the verified key to known_hosts)",
    )


def _judge(
    units: tuple[str, ...], completed: asyncssh.SSHCompletedProcess, rtt_ms: float, fresh: bool
) -> ProbeResult:
    connection = "new" if fresh else "reused"
    stdout = completed.stdout if isinstance(completed.stdout, str) else ""
    stderr = completed.stderr if isinstance(completed.stderr, str) else ""
    if not units:
        if completed.exit_status == 0:
            return ProbeResult.make(
                "ok", Health.OK, latency_ms=rtt_ms, detail="logged in; no units to check",
                units={}, connection=connection,
            )  # fmt: skip
        return ProbeResult.make(
            "error", Health.UNKNOWN, latency_ms=rtt_ms,
            detail=f"'true' exited {completed.exit_status}: {_first_line(stderr)}",
        )  # fmt: skip
    words = stdout.split()
    if completed.exit_status == 127 or len(words) != len(units):
        return ProbeResult.make(
            "error",
            Health.UNKNOWN,
            latency_ms=rtt_ms,
            detail=f"systemctl is-active exited {completed.exit_status}: "
            f"{_first_line(stderr) or _first_line(stdout) or 'no output'}",
            connection=connection,
        )
    states = dict(zip(units, words, strict=True))
    not_active = [f"{u} {w}" for u, w in states.items() if w != "active"]
    if not_active:
        return ProbeResult.make(
            "degraded", Health.DEGRADED, latency_ms=rtt_ms, detail=", ".join(not_active),
            units=states, connection=connection,
        )  # fmt: skip
    return ProbeResult.make(
        "ok", Health.OK, latency_ms=rtt_ms, detail=f"{', '.join(units)} active",
        units=states, connection=connection,
    )  # fmt: skip


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0][:200] if text.strip() else ""


def _reason(exc: BaseException) -> str:
    if isinstance(exc, asyncssh.Error):
        return exc.reason or type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
