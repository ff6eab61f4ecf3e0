"""The operating system of a simulated server, as seen over SSH.

``SshOs`` is the sshd of one ``SimulatedHost``: an asyncssh listener on the
host's loopback address that accepts one user with one public key and runs
exec requests through ``TinyShell``, a small interpreter for the commands
operators' tools send (``systemctl``, ``uptime``, ``poweroff``, ...). The
host owns the truth: ``systemctl`` and the power commands act on it, and the
host starts and stops this listener as its OS boots and goes down.

Hundreds to thousands of these live in one asyncio process, so a listener
costs one socket and no thread, and each connection a few small objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import shlex
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncssh

from pacs_tui.sim.host import SimulatedHost
from pacs_tui.sim.listen import open_listener

log = logging.getLogger(__name__)

# Like OpenSSH's LoginGraceTime (default 120 s): an unauthenticated connection
# holds a MaxStartups slot at most this long.
LOGIN_GRACE_S = 30.0

_KERNEL = "6.1.0-18-amd64"
_OS_RELEASE = """\
PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
SUPPORT_URL="https://www.debian.org/support"
BUG_REPORT_URL="https://bugs.debian.org/"
"""
_LOAD_AVERAGE = "0.08, 0.05, 0.01"
# Shell syntax beyond plain command lists is not simulated.
_OPERATORS = (";", "&&", "||")
_SUPPORTED_COMMANDS = (
    "systemctl is-active|status|start|stop|restart UNIT...",
    "systemctl poweroff|reboot",
    "uptime [-p|-s]",
    "hostname",
    "cat /etc/os-release | /etc/hostname",
    "echo [-n] WORDS",
    "true, false, exit [N]",
    "shutdown -h now | -r now, poweroff, halt [-p], reboot",
)


def quiet_asyncssh_logs() -> None:
    """Lower asyncssh's logger to WARNING unless someone configured it already.

    asyncssh logs every connection and channel at INFO; with thousands of
    simulated servers that drowns everything else.
    """
    asyncssh_logger = logging.getLogger("asyncssh")
    if asyncssh_logger.level == logging.NOTSET:
        asyncssh_logger.setLevel(logging.WARNING)


@dataclass(frozen=True)
class CommandResult:
    """What a command line printed, its exit status, and whether the shell ends."""

    status: int
    stdout: str = ""
    stderr: str = ""
    exit_shell: bool = False


class TinyShell:
    """The few shell commands a simulated server understands.

    Commands may be joined with ``;``, ``&&`` and ``||``; a leading ``sudo``
    is accepted and ignored (the SSH user may do anything). Anything else
    fails the way bash does: ``bash: X: command not found``, status 127.
    """

    def __init__(self, host: SimulatedHost, username: str) -> None:
        """A shell for ``username`` logged in on ``host``."""
        self.host = host
        self.username = username
        self._commands: dict[str, Callable[[list[str]], Awaitable[CommandResult]]] = {
            "systemctl": self._systemctl,
            "uptime": self._uptime,
            "hostname": self._hostname,
            "true": self._true,
            "false": self._false,
            "echo": self._echo,
            "cat": self._cat,
            "exit": self._exit,
            "help": self._help,
            "shutdown": self._shutdown,
            "poweroff": self._poweroff,
            "halt": self._poweroff,
            "reboot": self._reboot,
        }

    async def run(self, line: str) -> CommandResult:
        """Run one command line; return its combined output and final status."""
        try:
            pipeline = _split_command_list(line)
        except ValueError as exc:
            return CommandResult(2, stderr=f"bash: {exc}\n")
        out: list[str] = []
        err: list[str] = []
        status = 0
        for operator, argv in pipeline:
            if (operator == "&&" and status != 0) or (operator == "||" and status == 0):
                continue
            result = await self._run_argv(argv)
            out.append(result.stdout)
            err.append(result.stderr)
            status = result.status
            if result.exit_shell:
                return CommandResult(status, "".join(out), "".join(err), exit_shell=True)
        return CommandResult(status, "".join(out), "".join(err))

    async def _run_argv(self, argv: list[str]) -> CommandResult:
        if argv and argv[0] == "sudo":
            argv = argv[1:]
            while argv and argv[0].startswith("-"):  # sudo -n, -E, ...
                argv = argv[1:]
        if not argv:
            return CommandResult(0)
        name = argv[0]
        for prefix in ("/usr/bin/", "/usr/sbin/", "/bin/", "/sbin/"):
            if name.startswith(prefix):
                name = name[len(prefix) :]
        command = self._commands.get(name)
        if command is None:
            return CommandResult(127, stderr=f"bash: {argv[0]}: command not found\n")
        return await command(argv[1:])

    # -- commands ---------------------------------------------------------------

    async def _systemctl(self, args: list[str]) -> CommandResult:
        quiet = any(a in ("-q", "--quiet") for a in args)
        words = [a for a in args if not a.startswith("-")]  # --no-pager, --no-block, ...
        if not words:
            return CommandResult(1, stderr="systemctl: listing units is not simulated\n")
        verb, units = words[0], [_unit_name(u) for u in words[1:]]
        if verb in ("poweroff", "halt"):
            return await self._poweroff([])
        if verb == "reboot":
            return await self._reboot([])
        if verb == "status":
            return self._systemctl_status(units)
        if verb in ("is-active", "start", "stop", "restart") and not units:
            return CommandResult(1, stderr="Too few arguments.\n")
        status, output = await self.host.systemctl(verb, units)
        if quiet and verb == "is-active":
            output = ""
        if status == 0 or verb == "is-active":
            return CommandResult(status, stdout=output)
        return CommandResult(status, stderr=output)

    def _systemctl_status(self, units: list[str]) -> CommandResult:
        if not units:
            return CommandResult(
                1, stderr="systemctl: status of the whole system is not simulated\n"
            )
        known = [u for u in units if u in self.host.units]
        missing = "".join(
            f"Unit {u}.service could not be found.\n" for u in units if u not in known
        )
        blocks = "\n".join(self._status_block(u) for u in known)
        if missing:
            return CommandResult(4, stdout=blocks, stderr=missing)
        active = all(self.host.unit_state(u) == "active" for u in known)
        return CommandResult(0 if active else 3, stdout=blocks)

    def _status_block(self, unit: str) -> str:
        state = self.host.unit_state(unit)
        bullet, detail = {
            "active": ("●", "active (running)"),
            "failed": ("\u00d7", "failed (Result: exit-code)"),
            "activating": ("●", "activating (start)"),
            "deactivating": ("●", "deactivating (stop-sigterm)"),
        }.get(state, ("○", "inactive (dead)"))
        since = time.strftime(
            "%a %Y-%m-%d %H:%M:%S UTC", time.gmtime(time.time() - self.host.uptime_s())
        )
        lines = [
            f"{bullet} {unit}.service - {unit}",
            f"     Loaded: loaded (/etc/systemd/system/{unit}.service; enabled; preset: enabled)",
            f"     Active: {detail} since {since}; {_ago(self.host.uptime_s())} ago",
        ]
        if state == "active":
            # A stable fake PID per host and unit, so repeated calls agree.
            pid = 1000 + zlib.crc32(f"{self.host.name}/{unit}".encode()) % 60000
            lines.append(f"   Main PID: {pid} ({unit})")
        return "".join(f"{line}\n" for line in lines)

    async def _uptime(self, args: list[str]) -> CommandResult:
        seconds = int(self.host.uptime_s())
        if "-s" in args or "--since" in args:
            since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(time.time() - seconds))
            return CommandResult(0, stdout=f"{since}\n")
        days, rest = divmod(seconds, 86400)
        hours, minutes = rest // 3600, rest % 3600 // 60
        if "-p" in args or "--pretty" in args:
            parts = [
                f"{n} {unit}{'' if n == 1 else 's'}"
                for n, unit in ((days, "day"), (hours, "hour"), (minutes, "minute"))
                if n
            ]
            return CommandResult(0, stdout=f"up {', '.join(parts) or '0 minutes'}\n")
        up = f"{days} day{'' if days == 1 else 's'}, " if days else ""
        up += f"{hours:2d}:{minutes:02d}" if hours else f"{minutes} min"
        now = time.strftime("%H:%M:%S")
        return CommandResult(0, stdout=f" {now} up {up},  1 user,  load average: {_LOAD_AVERAGE}\n")

    async def _hostname(self, args: list[str]) -> CommandResult:
        if "-I" in args or "-i" in args or "--all-ip-addresses" in args:
            return CommandResult(0, stdout=f"{self.host.address}\n")
        return CommandResult(0, stdout=f"{self.host.name}\n")

    async def _true(self, args: list[str]) -> CommandResult:
        return CommandResult(0)

    async def _false(self, args: list[str]) -> CommandResult:
        return CommandResult(1)

    async def _echo(self, args: list[str]) -> CommandResult:
        newline = "\n"
        if args and args[0] == "-n":
            newline, args = "", args[1:]
        return CommandResult(0, stdout=" ".join(args) + newline)

    async def _cat(self, args: list[str]) -> CommandResult:
        files = {
            "/etc/os-release": _OS_RELEASE,
            "/usr/lib/os-release": _OS_RELEASE,
            "/etc/hostname": f"{self.host.name}\n",
        }
        out: list[str] = []
        for path in args:
            if path not in files:
                return CommandResult(
                    1, "".join(out), stderr=f"cat: {path}: No such file or directory\n"
                )
            out.append(files[path])
        return CommandResult(0, "".join(out))

    async def _exit(self, args: list[str]) -> CommandResult:
        status = int(args[0]) if args and args[0].isdigit() else 0
        return CommandResult(status, exit_shell=True)

    async def _help(self, args: list[str]) -> CommandResult:
        lines = ["Commands of this simulated server:", *(f"  {c}" for c in _SUPPORTED_COMMANDS)]
        return CommandResult(0, stdout="".join(f"{line}\n" for line in lines))

    async def _shutdown(self, args: list[str]) -> CommandResult:
        flags = [a for a in args if a.startswith("-") and a not in ("+0",)]
        words = [a for a in args if a not in flags]
        if "-c" in flags or not words or words[0] not in ("now", "+0"):
            return CommandResult(
                1, stderr="shutdown: only an immediate shutdown (now, +0) is simulated\n"
            )
        if "-r" in flags or "--reboot" in flags:
            return await self._reboot([])
        return await self._poweroff([])

    async def _poweroff(self, args: list[str]) -> CommandResult:
        # Like systemd: the command returns at once and the OS goes down behind
        # it; sshd dies with the OS and drops the connection.
        self.host.os_shutdown()
        return CommandResult(0)

    async def _reboot(self, args: list[str]) -> CommandResult:
        self.host.os_reboot()
        return CommandResult(0)


def _split_command_list(line: str) -> list[tuple[str, list[str]]]:
    """Split ``a; b && c || d`` into (operator before it, argv) pairs.

    Raises ``ValueError`` for unbalanced quotes and unsupported syntax.
    """
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|<>()")
    lexer.whitespace_split = True
    try:
        tokens = list(lexer)
    except ValueError as exc:
        raise ValueError(f"-c: line 1: {exc}") from None
    commands: list[tuple[str, list[str]]] = []
    operator = ";"
    argv: list[str] = []
    for token in tokens:
        if token in _OPERATORS:
            if not argv:
                raise ValueError(f"syntax error near unexpected token `{token}'")
            commands.append((operator, argv))
            operator, argv = token, []
        elif token and set(token) <= set(";&|<>()"):
            raise ValueError(f"{token}: pipes, redirections and subshells are not simulated")
        else:
            argv.append(token)
    if argv:
        commands.append((operator, argv))
    elif operator in ("&&", "||"):
        raise ValueError("syntax error: unexpected end of file")
    return commands


def _unit_name(word: str) -> str:
    return word.removesuffix(".service")


def _ago(seconds: float) -> str:
    minutes = int(seconds) // 60
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h {minutes}min"
    if minutes:
        return f"{minutes}min {int(seconds) % 60}s"
    return f"{int(seconds)}s"


class _SshdConnection(asyncssh.SSHServer):
    """Server-side callbacks of one SSH connection to a simulated server."""

    def __init__(self, sshd: SshOs) -> None:
        self._sshd = sshd
        self.conn: asyncssh.SSHServerConnection | None = None
        self.unauthenticated = False

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.conn = conn
        if not self._sshd._admit(self):
            # Before the version banner is sent: the client sees the
            # connection closed, as with OpenSSH's MaxStartups.
            conn.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self._sshd._forget(self)

    def begin_auth(self, username: str) -> bool:
        return True  # every user must authenticate

    def auth_completed(self) -> None:
        self._sshd.logins += 1
        self._sshd._authenticated(self)

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return self._sshd._accepts(username, key)

    def drop(self) -> None:
        """Abort the connection at once (the OS went down)."""
        if self.conn is not None:
            self.conn.abort()


class SshOs:
    """The sshd of one simulated server (a ``Listener`` of ``SimulatedHost``).

    ``start`` presents ``alternate_host_key`` instead of ``host_key`` while
    ``host.faults.ssh_host_key_changed`` is on; the owner restarts the listener
    when that fault changes. ``port=0`` binds a free port on the first start
    and keeps it for later starts.
    """

    def __init__(
        self,
        host: SimulatedHost,
        *,
        port: int,
        username: str,
        host_key: asyncssh.SSHKey,
        alternate_host_key: asyncssh.SSHKey,
        authorized_key: asyncssh.SSHKey,
    ) -> None:
        """The sshd of ``host``; nothing listens until :meth:`start`."""
        if not ipaddress.ip_address(host.address).is_loopback:
            raise ValueError(f"simulated servers listen on loopback only, not {host.address}")
        self.host = host
        self.port = port
        self.username = username
        self._host_key = host_key
        self._alternate_host_key = alternate_host_key
        self._authorized_key = authorized_key.public_data
        self._acceptor: asyncssh.SSHAcceptor | None = None
        self._connections: set[_SshdConnection] = set()
        self._unauthenticated = 0
        self.logins = 0  # connections that authenticated since the simulator started
        self._lock = asyncio.Lock()
        self.presented_host_key: asyncssh.SSHKey | None = None

    @property
    def listening(self) -> bool:
        """True while the listener accepts connections."""
        return self._acceptor is not None

    @property
    def unauthenticated_connections(self) -> int:
        """Connections that have not finished authentication yet."""
        return self._unauthenticated

    async def start(self) -> None:
        """Listen on ``host.address:port`` (no-op when already listening)."""
        async with self._lock:
            if self._acceptor is not None:
                return
            quiet_asyncssh_logs()
            changed = self.host.faults.ssh_host_key_changed
            key = self._alternate_host_key if changed else self._host_key
            self._acceptor = await open_listener(
                "SSH",
                self.host.address,
                self.port,
                asyncssh.create_server(
                    lambda: _SshdConnection(self),
                    self.host.address,
                    self.port,
                    server_host_keys=[key],
                    process_factory=self._serve,
                    encoding="utf-8",
                    login_timeout=LOGIN_GRACE_S,
                    agent_forwarding=False,
                    x11_forwarding=False,
                    allow_scp=False,
                ),
            )
            self.presented_host_key = key
            if self.port == 0:
                self.port = self._acceptor.get_port()
            log.debug("sshd of %s listening on %s:%d", self.host.name, self.host.address, self.port)

    async def stop(self) -> None:
        """Close the listener and drop every open connection (no-op when stopped)."""
        async with self._lock:
            acceptor, self._acceptor = self._acceptor, None
            if acceptor is None:
                return
            acceptor.close()
            for connection in list(self._connections):
                connection.drop()
            await acceptor.wait_closed()
            self.presented_host_key = None
            log.debug("sshd of %s stopped", self.host.name)

    # -- connection bookkeeping (called by _SshdConnection) ----------------------

    def _admit(self, connection: _SshdConnection) -> bool:
        limit = self.host.faults.ssh_burst_limit
        if self._acceptor is None or (limit and self._unauthenticated >= limit):
            log.debug("sshd of %s drops a connection (burst limit %d)", self.host.name, limit)
            return False
        self._connections.add(connection)
        connection.unauthenticated = True
        self._unauthenticated += 1
        return True

    def _authenticated(self, connection: _SshdConnection) -> None:
        if connection.unauthenticated:
            connection.unauthenticated = False
            self._unauthenticated -= 1

    def _forget(self, connection: _SshdConnection) -> None:
        self._authenticated(connection)
        self._connections.discard(connection)

    def _accepts(self, username: str, key: asyncssh.SSHKey) -> bool:
        return username == self.username and key.public_data == self._authorized_key

    # -- sessions -----------------------------------------------------------------

    async def _serve(self, process: asyncssh.SSHServerProcess[str]) -> None:
        shell = TinyShell(self.host, self.username)
        # A client that vanishes mid-command is normal (and the OS may go down).
        with contextlib.suppress(OSError, asyncssh.Error):
            if process.command is not None:
                status = await self._run_line(shell, process, process.command)
            else:
                status = await self._interactive(shell, process)
            process.exit(status)

    async def _run_line(
        self, shell: TinyShell, process: asyncssh.SSHServerProcess[str], line: str
    ) -> int:
        result = await shell.run(line)
        if result.stdout:
            process.stdout.write(result.stdout)
        if result.stderr:
            process.stderr.write(result.stderr)
        return result.status

    async def _interactive(self, shell: TinyShell, process: asyncssh.SSHServerProcess[str]) -> int:
        """A shell session: commands from stdin, one per line, until EOF or ``exit``."""
        terminal = process.get_terminal_type() is not None
        prompt = f"{self.username}@{self.host.name}:~{'#' if self.username == 'root' else '$'} "
        if terminal:
            process.stdout.write(
                f"Linux {self.host.name} {_KERNEL} x86_64\n\n"
                "This is a simulated server of pacs-tui; type 'help' for its commands.\n"
            )
        status = 0
        while True:
            if terminal:
                process.stdout.write(prompt)
            try:
                line = await process.stdin.readline()
            except asyncssh.TerminalSizeChanged:
                continue
            except (asyncssh.BreakReceived, asyncssh.SignalReceived):
                status = 130
                continue
            if not line:
                return status
            result = await shell.run(line)
            process.stdout.write(result.stdout)
            process.stderr.write(result.stderr)
            status = result.status
            if result.exit_shell:
                return status
