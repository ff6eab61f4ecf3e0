"""SSH key material of a simulated fleet: one client key, host keys per server.

The simulator hands operators' tools a client key and a ``known_hosts`` file,
exactly what a real data center's jump host would have, so OpenSSH and
asyncssh verify the simulated servers the same way they verify real ones.
Each server also has an alternate host key, presented while the
``ssh_host_key_changed`` fault is on (a reinstalled or spoofed server).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import asyncssh

_KEY_ALGORITHM = "ssh-ed25519"
_CLIENT_KEY_COMMENT = "pacs-tui-sim-operator"


def _new_key(comment: str | None = None) -> asyncssh.SSHKey:
    # ed25519 generation costs ~50 µs, so a fleet of 3 000 servers takes well
    # under a second; there is no point in caching keys on disk.
    return asyncssh.generate_private_key(_KEY_ALGORITHM, comment=comment)


def known_hosts_pattern(address: str, port: int) -> str:
    """The host field OpenSSH writes for ``address:port`` (bare address on port 22)."""
    return address if port == 22 else f"[{address}]:{port}"


class FleetSshKeys:
    """The client key and per-server host keys of a simulated fleet."""

    def __init__(
        self,
        client_key: asyncssh.SSHKey,
        host_keys: dict[str, asyncssh.SSHKey],
    ) -> None:
        """Wrap existing keys; most callers want :meth:`create`."""
        self._client_key = client_key
        self._host_keys = host_keys
        self._alternate_keys: dict[str, asyncssh.SSHKey] = {}

    @classmethod
    def create(cls, host_names: Iterable[str]) -> FleetSshKeys:
        """Generate a client key and one host key per name in ``host_names``."""
        host_keys = {name: _new_key() for name in host_names}
        return cls(_new_key(_CLIENT_KEY_COMMENT), host_keys)

    @property
    def client_key(self) -> asyncssh.SSHKey:
        """The private key operators' tools log in with."""
        return self._client_key

    @property
    def host_names(self) -> list[str]:
        """Names of the servers that have host keys."""
        return list(self._host_keys)

    def host_key(self, name: str) -> asyncssh.SSHKey:
        """The normal host key of server ``name`` (``KeyError`` if unknown)."""
        return self._host_keys[name]

    def alternate_host_key(self, name: str) -> asyncssh.SSHKey:
        """The host key server ``name`` presents while ``ssh_host_key_changed`` is on.

        Generated on first use: most servers never need one.
        """
        if name not in self._host_keys:
            raise KeyError(name)
        key = self._alternate_keys.get(name)
        if key is None:
            key = self._alternate_keys[name] = _new_key()
        return key

    def known_hosts_lines(self, endpoints: Iterable[tuple[str, str, int]]) -> list[str]:
        """One OpenSSH ``known_hosts`` line per (host name, address, port).

        The line carries the normal host key and the host name as comment.
        """
        lines = []
        for name, address, port in endpoints:
            public = self.host_key(name).export_public_key("openssh").decode("ascii").strip()
            lines.append(f"{known_hosts_pattern(address, port)} {public} {name}")
        return lines

    def write(self, out_dir: Path, endpoints: Iterable[tuple[str, str, int]]) -> None:
        """Write ``id_ed25519`` (mode 0600), ``id_ed25519.pub`` and ``known_hosts``.

        ``endpoints`` are (host name, address, port) of the SSH listeners.
        """
        out_dir.mkdir(parents=True, exist_ok=True)
        private_path = out_dir / "id_ed25519"
        # Create the file 0600 from the start: the key must never be readable
        # by others, even briefly, and OpenSSH refuses keys with looser modes.
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as private_file:
            os.fchmod(private_file.fileno(), 0o600)  # an older file may have had another mode
            private_file.write(self._client_key.export_private_key("openssh"))
        (out_dir / "id_ed25519.pub").write_bytes(self._client_key.export_public_key("openssh"))
        lines = self.known_hosts_lines(endpoints)
        (out_dir / "known_hosts").write_text("".join(f"{line}\n" for line in lines))
