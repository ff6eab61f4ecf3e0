"""known_hosts is parsed once per version of the file, not on every SSH connection.

At 3 000 servers asyncssh re-reading a 3 000-line known_hosts for each
connection was half of ``pacs-tui serve``'s CPU. The parsed file is kept
until the file changes; a host key an operator adds is trusted at the next
connection, one removed is no longer trusted.
"""

from __future__ import annotations

import os
from pathlib import Path

import asyncssh

from pacs_tui.inventory import SshEndpoint
from pacs_tui_ssh_services.connections import trusted_hosts


def line(host: str) -> str:
    key = asyncssh.generate_private_key("ssh-ed25519")
    return f"[{host}]:2222 {key.export_public_key().decode().strip()}\n"


def listed(known: object, host: str) -> bool:
    found = asyncssh.match_known_hosts(known, host, host, 2222)  # type: ignore[arg-type]
    return bool(found[0])


def test_the_file_is_parsed_once_and_again_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "known_hosts"
    path.write_text(line("127.0.0.10"))
    ssh = SshEndpoint("127.0.0.10", 2222, known_hosts=path)
    first = trusted_hosts(ssh)
    assert isinstance(first, asyncssh.SSHKnownHosts)
    assert trusted_hosts(ssh) is first  # not read again
    assert listed(first, "127.0.0.10") and not listed(first, "127.0.0.11")
    path.write_text(line("127.0.0.10") + line("127.0.0.11"))  # the operator adds a key
    os.utime(path, ns=(1, 1))  # even with an old mtime, the size changed
    second = trusted_hosts(ssh)
    assert second is not first and listed(second, "127.0.0.11")
    replaced = tmp_path / "known_hosts.new"
    replaced.write_text(line("127.0.0.11") + line("127.0.0.12"))
    replaced.replace(path)  # a key removed by an atomic replace (a new inode)
    third = trusted_hosts(ssh)
    assert not listed(third, "127.0.0.10") and listed(third, "127.0.0.12")


def test_a_missing_file_is_passed_on_as_its_path(tmp_path: Path) -> None:
    path = tmp_path / "absent"
    assert trusted_hosts(SshEndpoint("127.0.0.10", known_hosts=path)) == str(path)
