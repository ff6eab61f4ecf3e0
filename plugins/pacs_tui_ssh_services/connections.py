"""Open SSH connections, one per login, made gently.

An SSH connect costs 6-8 ms CPU on each side and holds one of sshd's
``MaxStartups`` slots until authentication finishes (OpenSSH's default
``10:30:100`` starts dropping new connections beyond ten unauthenticated
ones). A command over an open connection costs a fraction of that. So the
pool keeps each connection open for the next poll, makes at most one new
connection to a host at a time, and at most ``max_new`` at a time in total,
so the first sweep of a large fleet does not burst any sshd.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import weakref
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncssh

from pacs_tui.credentials import resolve
from pacs_tui.inventory import Inventory, SshEndpoint

_DEFAULT_KNOWN_HOSTS = Path("~/.ssh/known_hosts")

# Ciphers we offer, best first; SSH takes the first of ours the host also offers.
# asyncssh's own order puts chacha20-poly1305 first, whose packets cost it a
# new ChaCha20 cipher object per packet for the length, the Poly1305 key and
# the payload each (8.8 % of the control room's CPU at 300 servers, issue 14);
# AES-GCM costs one AESGCM object per packet, on AES-NI. The rest of asyncssh's
# defaults stay as fallbacks, so no host that offers only those is refused.
PREFERRED_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")


def encryption_algs() -> list[str]:
    """``PREFERRED_CIPHERS``, then asyncssh's other default ciphers in its order."""
    defaults = [alg.decode("ascii") for alg in asyncssh.encryption.get_default_encryption_algs()]
    return [
        *(a for a in PREFERRED_CIPHERS if a in defaults),
        *(a for a in defaults if a not in PREFERRED_CIPHERS),
    ]


class MissingKeyFile(Exception):
    """The server's SSH credential names no key file (pacs-tui logs in with keys only)."""


def known_hosts_source(ssh: SshEndpoint) -> str | bytes:
    """The ``known_hosts`` the server's key is checked against.

    The inventory's file, else the user's ``~/.ssh/known_hosts``; when that
    does not exist, empty data, so that no host key is trusted. (asyncssh
    treats ``None`` as "accept any key", which is never passed.)
    """
    if ssh.known_hosts is not None:
        return str(ssh.known_hosts)
    default = _DEFAULT_KNOWN_HOSTS.expanduser()
    return str(default) if default.is_file() else b""


# path -> (file version, parsed known_hosts): asyncssh reads and parses a file named
# by path on every connection, which at 3 000 servers (a 3 000-line known_hosts) was
# half of pacs-tui serve's CPU; a changed file (mtime, size, inode) is read again.
_PARSED: dict[str, tuple[tuple[int, int, int], asyncssh.SSHKnownHosts]] = {}


def trusted_hosts(ssh: SshEndpoint) -> str | bytes | asyncssh.SSHKnownHosts:
    """``known_hosts_source(ssh)``, parsed once per version of the file.

    What cannot be read is passed on as the path, so asyncssh reports it as
    before (the caller words the error).
    """
    source = known_hosts_source(ssh)
    if not isinstance(source, str):
        return source
    try:
        info = os.stat(source)
    except OSError:
        return source
    version = (info.st_mtime_ns, info.st_size, info.st_ino)
    cached = _PARSED.get(source)
    if cached is not None and cached[0] == version:
        return cached[1]
    try:
        parsed = asyncssh.read_known_hosts(source)
    except (OSError, ValueError):
        return source
    _PARSED[source] = (version, parsed)
    return parsed


def login_key(inventory: Inventory, ssh: SshEndpoint) -> tuple[str, Path | None]:
    """(user name, key file) for ``ssh``; no key file means the SSH agent.

    Raises ``CredentialError`` (never with the secret) or ``MissingKeyFile``.
    """
    if ssh.credentials is None:
        return ssh.user, None
    credential = resolve(inventory, ssh.credentials)
    if credential.key_file is None:
        raise MissingKeyFile(ssh.credentials)
    return ssh.user or credential.username or "", credential.key_file


async def strict_connect(
    ssh: SshEndpoint, username: str, key_file: Path | None, timeout_s: float
) -> asyncssh.SSHClientConnection:
    """Log in with strict host key checking, keys only, bounded by ``timeout_s``.

    asyncssh's exceptions (HostKeyNotVerifiable, PermissionDenied, ...) and
    ``TimeoutError`` pass through for the caller to word.
    """
    async with asyncio.timeout(timeout_s):
        return await asyncssh.connect(
            ssh.host,
            ssh.port,
            username=username or None,
            known_hosts=trusted_hosts(ssh),  # never None: no "accept any key"
            # The inventory is the only source of truth: no ~/.ssh/config.
            config=None,
            # A key file: that key only (like IdentitiesOnly). None: the
            # agent and the user's default keys.
            client_keys=[str(key_file)] if key_file is not None else (),
            agent_path=None if key_file is not None else (),
            preferred_auth="publickey",
            encryption_algs=encryption_algs(),
            connect_timeout=timeout_s,
            login_timeout=timeout_s,
        )


Connector = Callable[[SshEndpoint], Awaitable[asyncssh.SSHClientConnection]]


class NoConnectSlot(Exception):
    """Waited too long for the right to open a new connection."""


class HostConnections:
    """One open SSH connection per login (``SshEndpoint``), reused across polls.

    ``connect`` makes a new connection (and bounds its own time); the pool
    decides when to call it: never twice at once for one host and port, and
    never more than ``max_new`` at once in total.
    """

    def __init__(self, connect: Connector, *, max_new: int = 10) -> None:
        """A pool that opens connections with ``connect``."""
        if max_new < 1:
            raise ValueError("max_new must be at least 1")
        self._connect = connect
        self._open: dict[SshEndpoint, asyncssh.SSHClientConnection] = {}
        self._host_gates: dict[tuple[str, int], asyncio.Lock] = {}
        self._slots = asyncio.Semaphore(max_new)
        self.max_new = max_new
        self._lent_to: tuple[Inventory, asyncio.AbstractEventLoop] | None = None
        self.opened = 0  # connections made since the pool was created
        self.connecting = 0  # connection attempts in flight now
        self.peak_connecting = 0

    def __len__(self) -> int:
        """Connections open now."""
        return sum(1 for c in self._open.values() if not c.is_closed())

    def cached(self, login: SshEndpoint) -> asyncssh.SSHClientConnection | None:
        """The open connection of ``login``, if it is still alive."""
        conn = self._open.get(login)
        if conn is not None and conn.is_closed():
            del self._open[login]
            return None
        return conn

    async def get(
        self, login: SshEndpoint, wait_s: float
    ) -> tuple[asyncssh.SSHClientConnection, bool]:
        """The connection of ``login`` and whether it was made just now.

        Waits at most ``wait_s`` for this host's gate and a free slot
        (``NoConnectSlot`` otherwise); errors of ``connect`` propagate.
        """
        conn = self.cached(login)
        if conn is not None:
            return conn, False
        gate = self._host_gates.setdefault((login.host, login.port), asyncio.Lock())
        deadline = asyncio.get_running_loop().time() + wait_s
        try:
            async with asyncio.timeout_at(deadline):
                await gate.acquire()
        except TimeoutError:
            raise NoConnectSlot(
                f"another connection to {login.host}:{login.port} was still being made "
                f"after {wait_s:g} s"
            ) from None
        try:
            conn = self.cached(login)  # made by whoever held the gate before us
            if conn is not None:
                return conn, False
            try:
                async with asyncio.timeout_at(deadline):
                    await self._slots.acquire()
            except TimeoutError:
                raise NoConnectSlot(
                    f"all {self.max_new} new-connection slots stayed busy for {wait_s:g} s"
                ) from None
            self.connecting += 1
            self.peak_connecting = max(self.peak_connecting, self.connecting)
            try:
                conn = await self._connect(login)
            finally:
                self.connecting -= 1
                self._slots.release()
            self._open[login] = conn
            self.opened += 1
            return conn, True
        finally:
            gate.release()

    def share(self, inventory: Inventory) -> None:
        """Lend this pool's open connections to others in this event loop on ``inventory``.

        The SSH probe shares its pool while it is open, so the ssh-control
        action runs its commands over a connection the probe already holds
        (``shared_connection``) instead of a second key exchange and login.
        """
        self._lent_to = (inventory, asyncio.get_running_loop())
        _SHARED.add(self)

    def unshare(self) -> None:
        """Lend no connection any more (before closing)."""
        _SHARED.discard(self)
        self._lent_to = None

    def discard(self, login: SshEndpoint, conn: asyncssh.SSHClientConnection) -> None:
        """Forget and close ``conn`` (it hung or broke); the next poll reconnects."""
        if self._open.get(login) is conn:
            del self._open[login]
        conn.close()

    async def close(self, timeout_s: float = 2.0) -> None:
        """Close every connection and wait (bounded) until they are gone."""
        conns, self._open = list(self._open.values()), {}
        for conn in conns:
            conn.close()
        if conns:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    await asyncio.gather(*(c.wait_closed() for c in conns), return_exceptions=True)


# Pools that lend their open connections (``HostConnections.share``).
_SHARED: weakref.WeakSet[HostConnections] = weakref.WeakSet()


def shared_connection(
    inventory: Inventory, login: SshEndpoint
) -> asyncssh.SSHClientConnection | None:
    """An open connection of ``login`` that a shared pool holds, or None.

    Only connections already open are lent (made by their owner with the
    same strict host-key check and the same inventory key); a borrower that
    finds none connects through its own pool. SSH runs each command in a
    channel of its own, so borrower and owner may use one connection at once.
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    for pool in list(_SHARED):
        lent = pool._lent_to
        if lent is not None and lent[0] is inventory and lent[1] is loop:
            conn = pool.cached(login)
            if conn is not None:
                return conn
    return None
