"""``pacs-tui inventory``: check an inventory, list its servers, show power order."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from pacs_tui.credentials import CredentialResolver
from pacs_tui.inventory import Fleet, InventoryError, Server, load_inventory

EXIT_OK, EXIT_UNHEALTHY, EXIT_USAGE = 0, 1, 2
DEFAULT_INVENTORY = "inventory.yaml"
INVENTORY_ENV = "PACS_TUI_INVENTORY"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``inventory check|list|waves`` to the command line."""
    parser = subparsers.add_parser(
        "inventory",
        help="check and show the fleet inventory",
        description="Check an inventory, list its servers, show power order.",
    )
    commands = parser.add_subparsers(dest="inventory_command", metavar="ACTION", required=True)

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "file",
            nargs="?",
            default=os.environ.get(INVENTORY_ENV, DEFAULT_INVENTORY),
            help=f"inventory file, .yaml or .csv (default: ${INVENTORY_ENV} or {DEFAULT_INVENTORY})",
        )
        sub.add_argument("--json", action="store_true", help="print JSON instead of text")

    def selection(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--role", help="only servers of this role")
        sub.add_argument("--site", help="only servers at this site")
        sub.add_argument("--tag", help="only servers with this tag")

    check = commands.add_parser(
        "check",
        help="validate the inventory (exit 2 when invalid)",
        description="Validate the inventory and print every problem as file:line:col. "
        "With --credentials, also resolve every credential reference (exit 1 when one fails); "
        "secrets are never printed.",
    )
    common(check)
    check.add_argument(
        "--credentials", action="store_true", help="also resolve every credential reference"
    )
    check.set_defaults(handler=run_check)

    listing = commands.add_parser("list", help="list servers")
    common(listing)
    selection(listing)
    listing.set_defaults(handler=run_list)

    waves = commands.add_parser(
        "waves", help="power-on (or --shutdown power-off) order by dependencies"
    )
    common(waves)
    selection(waves)
    waves.add_argument("--shutdown", action="store_true", help="power-off order instead")
    waves.set_defaults(handler=run_waves)


def _load(args: argparse.Namespace) -> Fleet | None:
    try:
        fleet = load_inventory(args.file)
    except InventoryError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        errors = len(exc.errors)
        print(f"{args.file}: invalid, {errors} error(s)", file=sys.stderr)
        return None
    for warning in fleet.warnings:
        print(warning, file=sys.stderr)
    return fleet


def run_check(args: argparse.Namespace) -> int:
    """Validate; optionally resolve credentials. Exit 0, 1 (credentials) or 2 (invalid)."""
    fleet = _load(args)
    if fleet is None:
        return EXIT_USAGE
    failures = CredentialResolver().check(fleet.credentials.values()) if args.credentials else []
    if args.json:
        report = {
            "file": args.file,
            "servers": len(fleet),
            "sites": len(fleet.sites),
            "roles": fleet.roles(),
            "warnings": [str(w) for w in fleet.warnings],
            "credential_failures": [str(f) for f in failures],
        }
        print(json.dumps(report, indent=2))
    else:
        print(
            f"{args.file}: {len(fleet)} servers, {len(fleet.sites)} sites, "
            f"{len(fleet.roles())} roles, {len(fleet.credentials)} credential sets"
            + (f", {len(fleet.warnings)} warning(s)" if fleet.warnings else "")
        )
        for failure in failures:
            print(failure, file=sys.stderr)
        if args.credentials and not failures:
            print(f"all {len(fleet.credentials)} credential sets resolve")
    return EXIT_UNHEALTHY if failures else EXIT_OK


def _selected(fleet: Fleet, args: argparse.Namespace) -> tuple[Server, ...]:
    return fleet.select(role=args.role, site=args.site, tag=args.tag)


def _row(server: Server) -> dict[str, Any]:
    return {
        "name": server.name,
        "role": server.role,
        "site": server.site,
        "address": server.address,
        "bmc": server.bmc.url if server.bmc else None,
        "dicom": f"{server.dicom.ae_title}@{server.dicom.port}" if server.dicom else None,
        "ssh_port": server.ssh.port if server.ssh else None,
        "services": list(server.services),
        "depends_on": list(server.depends_on),
        "tags": sorted(server.tags),
    }


def run_list(args: argparse.Namespace) -> int:
    """Print the selected servers, one a line (or as JSON)."""
    fleet = _load(args)
    if fleet is None:
        return EXIT_USAGE
    rows = [_row(s) for s in _selected(fleet, args)]
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    columns = ("name", "role", "site", "address", "bmc", "dicom")
    table = [[str(r[c] or "-") for c in columns] for r in rows]
    widths = [max([len(c), *(len(t[i]) for t in table)]) for i, c in enumerate(columns)]
    for line in ([c.upper() for c in columns], *table):
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
    return EXIT_OK


def run_waves(args: argparse.Namespace) -> int:
    """Print the dependency waves of the selected servers."""
    fleet = _load(args)
    if fleet is None:
        return EXIT_USAGE
    chosen = _selected(fleet, args)
    waves = fleet.shutdown_waves(chosen) if args.shutdown else fleet.startup_waves(chosen)
    if args.json:
        print(json.dumps([[s.name for s in wave] for wave in waves], indent=2))
        return EXIT_OK
    verb = "power off" if args.shutdown else "power on"
    for number, wave in enumerate(waves, 1):
        print(f"wave {number} ({verb} {len(wave)}): {' '.join(s.name for s in wave)}")
    return EXIT_OK
