"""``pacs-tui replace SERVER --with SPARE``: a spare takes a failed server's place.

The server keeps its name, role, dependencies and service identity (DICOM
AE, SSH address); its serial, MACs and BMC become the spare's. Before
anything is written the spare's BMC is read over Redfish and must report the
spare's serial (and MACs, when the inventory lists them); the server's old
BMC must not answer, or the operator confirms it is the box being pulled.
The replacement goes to ``replacements.json`` in the data directory, the
audit log (kind ``replace``) and the custody board (the server ``racked``:
a new box in the rack, not yet powered). The old SSH host key is removed
from the inventory's known_hosts only when the operator confirms; the new
key is never trusted silently.

Exit codes: 0 replaced (or a dry run that would), 1 refused (the spare's BMC
is unreachable or reports another box, the operator declined), 2 bad input.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pacs_tui.cli import EXIT_OK, EXIT_UNHEALTHY, UsageError

if TYPE_CHECKING:
    from pacs_tui.bmc_identity import BoxIdentity
    from pacs_tui.inventory import Inventory, Server, Spare
    from pacs_tui.replacements import Replacement

OLD_BMC_TIMEOUT_S = 3.0  # a pulled box's BMC answers nothing: do not wait for long


def register(subparsers: Any) -> None:
    """Add ``replace``."""
    p = subparsers.add_parser(
        "replace",
        help="a spare takes a server's place (serial, MACs and BMC become the spare's)",
        description="Make SPARE (from the inventory's spares:) take SERVER's place: the server "
        "keeps its name, role, dependencies, DICOM AE and SSH address; its serial, MACs and "
        "BMC address become the spare's, as read from the spare's BMC. Recorded in the data "
        "directory, the audit log and custody. Exit 0 replaced, 1 refused, 2 bad input.",
    )
    p.add_argument("server", help="the server being replaced")
    p.add_argument("--with", dest="spare", required=True, help="the spare taking its place")
    p.add_argument("--inventory", "-i", type=Path, required=True, help="inventory YAML file")
    p.add_argument("--dry-run", action="store_true", help="check and show; change nothing")
    p.add_argument("--board", type=Path, help="custody file (default: in the data dir)")
    p.add_argument(
        "--yes", action="store_true", help="do not ask for the typed confirmation (scripts)"
    )
    p.add_argument(
        "--forget-host-key",
        action="store_true",
        help="also remove the server's old SSH host key from the inventory's known_hosts "
        "(asked interactively otherwise; with --yes alone the command is printed instead)",
    )
    p.set_defaults(handler=run_replace)


def _say(message: str) -> None:
    print(f"pacs-tui replace: {message}", file=sys.stderr)


def _refused(message: str) -> int:
    _say(f"refused: {message}")
    _say("nothing was changed")
    return EXIT_UNHEALTHY


def _load(path: Path) -> tuple[Inventory, Inventory, dict[str, Replacement]]:
    """The inventory as written, as applied (replacements in force), and those in force."""
    from pacs_tui.cli import load_fleet
    from pacs_tui.inventory import InventoryError, load_inventory
    from pacs_tui.replacements import ReplacementsError, in_force, read_replacements

    applied = load_fleet(path)  # prints file:line problems and raises UsageError
    try:
        written = load_inventory(path)
        force = in_force(read_replacements(), written)
    except (InventoryError, ReplacementsError) as exc:  # changed in between: say so
        raise UsageError(str(exc)) from None
    return written, applied, force


def run_replace(args: argparse.Namespace) -> int:
    """Check, show, confirm, record."""
    from pacs_tui.inventory.checker import suggest

    written, applied, force = _load(args.inventory)
    if written.read_only:
        raise UsageError(
            f"the inventory {written.path} is marked read_only; replacements are disabled"
        )
    if args.server not in applied.names():
        raise UsageError(f"unknown server {args.server!r}{suggest(args.server, applied.names())}")
    spare = written.spares.get(args.spare)
    if spare is None:
        known = ", ".join(written.spares) or "none declared under 'spares:'"
        raise UsageError(
            f"unknown spare {args.spare!r}{suggest(args.spare, written.spares)} (spares: {known})"
        )
    user = next((e for e in force.values() if e.spare == spare.name), None)
    if user is not None:
        raise UsageError(
            f"spare {spare.name} already took {user.server}'s place ({user.at} by {user.operator})"
        )
    if args.board is not None and not args.board.is_file():
        # A typo in --board must not start a private board the team never sees.
        raise UsageError(f"--board: no custody board at {args.board}")
    server = applied.server(args.server)
    if server.bmc is None:
        raise UsageError(f"{server.name} has no bmc block: nothing for a spare to take over")
    if server.bmc.system is not None:
        raise UsageError(
            f"{server.name} is a blade ({server.bmc.system}) behind a shared BMC; "
            "a blade is replaced in its enclosure, not by a spare"
        )
    old, new = asyncio.run(_read_both(applied, server, spare))
    if isinstance(new, str):
        return _refused(
            f"the spare's BMC {spare.bmc.address}:{spare.bmc.port} cannot be read: {new}"
        )
    if new.serial != spare.serial:
        return _refused(
            f"the BMC at {spare.bmc.address} reports serial {new.serial or '(none)'}, "
            f"the inventory says spare {spare.name} is {spare.serial}: another box?"
        )
    if spare.macs and tuple(sorted(spare.macs)) != new.macs:
        return _refused(
            f"the BMC at {spare.bmc.address} reports MACs {', '.join(new.macs) or '(none)'}, "
            f"the inventory lists {', '.join(sorted(spare.macs))} for {spare.name}"
        )
    _show(server, spare, old, new)
    if not isinstance(old, str) and old.serial != new.serial:
        print(
            f"WARNING: {server.name}'s old BMC {server.bmc.address} still answers "
            f"(serial {old.serial or '(none)'}, power {old.power_state or '?'}): "
            "make sure that is the box being pulled"
        )
    if args.dry_run:
        print("dry run: nothing was changed")
        return EXIT_OK
    if not args.yes and not _typed(server.name):
        return _refused("not confirmed")
    return _record(args, written, server, spare, old, new)


async def _read_both(
    inventory: Inventory, server: Server, spare: Spare
) -> tuple[BoxIdentity | str, BoxIdentity | str]:
    """(old BMC, spare's BMC) identities; a string says why one could not be read."""
    from pacs_tui.bmc_identity import IdentityError, read_identity

    assert server.bmc is not None

    async def one(bmc: Any, timeout_s: float) -> BoxIdentity | str:
        try:
            return await read_identity(inventory, bmc, timeout_s=timeout_s)
        except IdentityError as exc:
            return str(exc)

    old, new = await asyncio.gather(
        one(server.bmc, min(OLD_BMC_TIMEOUT_S, server.bmc.timeout_s)),
        one(spare.bmc, spare.bmc.timeout_s),
    )
    return old, new


def _show(server: Server, spare: Spare, old: BoxIdentity | str, new: BoxIdentity) -> None:
    assert server.bmc is not None
    old_serial = old if isinstance(old, str) else old.serial or "(none)"
    old_macs = "unknown" if isinstance(old, str) else ", ".join(old.macs) or "none"
    if isinstance(old, str):
        old_serial = f"unknown (old BMC does not answer: {old})"
    print(f"replace {server.name} with spare {spare.name}:")
    print(f"  serial  {old_serial} -> {new.serial} (read from the spare's BMC)")
    print(f"  MACs    {old_macs} -> {', '.join(new.macs) or 'none'}")
    print(
        f"  BMC     {server.bmc.address}:{server.bmc.port} -> "
        f"{spare.bmc.address}:{spare.bmc.port} (power {new.power_state or '?'})"
    )
    kept = [f"role {server.role}"]
    if server.depends_on:
        kept.append(f"depends_on {', '.join(server.depends_on)}")
    if server.dicom is not None:
        kept.append(f"DICOM AE {server.dicom.ae_title} at {server.dicom.host}:{server.dicom.port}")
    if server.ssh is not None:
        kept.append(f"SSH {server.ssh.host}:{server.ssh.port}")
    print(f"  keeps   {server.name}: {'; '.join(kept)}")
    if server.ssh is not None:
        print("  SSH host key: the new box has a new key; the old one must be forgotten and")
        print("               the new one learned (its fingerprint checked at the console)")


def _typed(name: str) -> bool:
    try:
        answer = input(f"Type the server's name ({name}) to replace it: ")
    except EOFError:
        return False
    return answer.strip() == name


def _record(
    args: argparse.Namespace,
    written: Inventory,
    server: Server,
    spare: Spare,
    old: BoxIdentity | str,
    new: BoxIdentity,
) -> int:
    from pacs_tui.batch.audit import AuditLog
    from pacs_tui.custody import CustodyBoard, CustodyError
    from pacs_tui.replacements import ReplacementsError, replace_server

    custody = "racked"
    with AuditLog() as audit:
        board: CustodyBoard | None = None
        try:
            board = CustodyBoard.open(written, path=args.board, audit=audit)
        except CustodyError as exc:  # a broken board must not lose the replacement
            _say(f"the custody board cannot be used: {exc}")
            custody = "not changed (board unusable)"
        try:
            replace_server(
                written,
                server,
                spare.name,
                serial=new.serial,
                macs=new.macs,
                old_serial=None if isinstance(old, str) else old.serial or None,
                audit=audit,
                board=board,
            )
        except (ReplacementsError, OSError) as exc:
            raise UsageError(f"cannot record the replacement: {exc}") from None
        except CustodyError as exc:
            _say(f"recorded, but custody was not changed: {exc}")
            custody = "not changed"
        finally:
            if board is not None:
                board.close()
    print(f"{server.name}: replaced by {spare.name} (serial {new.serial}); custody: {custody}")
    _host_key(args, server)
    return EXIT_OK


def _host_key(args: argparse.Namespace, server: Server) -> None:
    from pacs_tui.host_keys import forget_command, forget_host, matching_lines

    ssh = server.ssh
    if ssh is None:
        return
    path = ssh.known_hosts or Path("~/.ssh/known_hosts").expanduser()
    try:
        found = len(matching_lines(path.read_text(encoding="utf-8"), ssh.host, ssh.port))
    except FileNotFoundError:
        found = 0
    except (OSError, UnicodeDecodeError) as exc:
        _say(f"cannot read {path}: {exc}; remove the old key yourself")
        return
    if not found:
        print(f"SSH: no key of {ssh.host}:{ssh.port} in {path}; learn the new one on first ssh")
        return
    forget = args.forget_host_key
    if not forget and not args.yes:
        try:
            answer = input(
                f"Remove the old SSH host key of {ssh.host}:{ssh.port} from {path}? [y/N] "
            )
        except EOFError:
            answer = ""
        forget = answer.strip().lower() in ("y", "yes")
    if forget:
        removed = forget_host(path, ssh.host, ssh.port)
        print(f"SSH: removed {removed} old key line(s) of {ssh.host}:{ssh.port} from {path}")
        print("SSH: learn the new key by ssh to the server once its fingerprint is checked")
    else:
        print(
            f"SSH: the old key is still trusted; remove it with: {forget_command(path, ssh.host, ssh.port)}"
        )
