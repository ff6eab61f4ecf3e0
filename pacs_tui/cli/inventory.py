"""``pacs-tui inventory``: check an inventory, show it, import a spreadsheet export."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pacs_tui.input_file import CSV_EXPORT, InputFileError, read_text
from pacs_tui.inventory import (
    BmcEndpoint,
    Inventory,
    InventoryError,
    csv_to_yaml,
    load_inventory,
)

EXIT_OK, EXIT_USAGE = 0, 2


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``inventory check|show|import|waves`` to the command line."""
    parser = subparsers.add_parser(
        "inventory",
        help="check, show and import the fleet inventory",
        description="Check an inventory, show it, or import a CSV export.",
    )
    commands = parser.add_subparsers(dest="inventory_command", metavar="ACTION", required=True)

    check = commands.add_parser(
        "check",
        help="validate an inventory (exit 0 good, 2 bad)",
        description="Validate FILE; print every problem as FILE:LINE: KEY: reason and exit 2, "
        "or a one-line summary and exit 0.",
    )
    check.add_argument("file", type=Path, help="inventory YAML file")
    check.set_defaults(handler=run_check)

    show = commands.add_parser(
        "show",
        help="print the normalized inventory (defaults applied, no secrets)",
        description="Print every server with defaults applied; credentials appear as "
        "reference names only.",
    )
    show.add_argument("file", type=Path, help="inventory YAML file")
    show.add_argument("--json", action="store_true", help="a JSON list of server objects")
    show.set_defaults(handler=run_show)

    imports = commands.add_parser(
        "import",
        help="convert a CSV export (one row per server) into inventory YAML",
        description="Convert FILE.csv into the inventory's YAML form; problems name the "
        "CSV row and column (exit 2).",
    )
    imports.add_argument("file", type=Path, help="CSV file with a header row")
    imports.add_argument("--out", type=Path, help="write the YAML here instead of stdout")
    imports.set_defaults(handler=run_import)

    waves = commands.add_parser(
        "waves", help="power-on order by dependencies (--shutdown: power-off order)"
    )
    waves.add_argument("file", type=Path, help="inventory YAML file")
    waves.add_argument("--shutdown", action="store_true", help="power-off order instead")
    waves.set_defaults(handler=run_waves)


def _load(path: Path) -> Inventory | None:
    try:
        return load_inventory(path)
    except InventoryError as exc:
        _report(exc, path)
        return None


def _report(exc: InventoryError, path: Path) -> None:
    for problem in exc.problems:
        print(problem, file=sys.stderr)
    print(f"{path}: {len(exc.problems)} problem(s)", file=sys.stderr)


def run_check(args: argparse.Namespace) -> int:
    """Validate; exit 0 with a summary line, or 2 with every problem on stderr."""
    inventory = _load(args.file)
    if inventory is None:
        return EXIT_USAGE
    depth = len(inventory.startup_waves())
    links = sum(len(site.links) for site in inventory.sites.values())
    parts = [
        _count(len(inventory), "server"),
        _count(len(inventory.sites), "site"),
        _count(links, "site link") if links else "",
        _count(len(inventory.spares), "spare") if inventory.spares else "",
        _racks(len(inventory.racks)) if inventory.racks else "",
        f"dependency depth {depth}",
    ]
    print(f"{args.file}: OK: " + ", ".join(p for p in parts if p))
    return EXIT_OK


def run_show(args: argparse.Namespace) -> int:
    """Print the normalized servers as a table or JSON."""
    inventory = _load(args.file)
    if inventory is None:
        return EXIT_USAGE
    if args.json:
        print(json.dumps(inventory.to_json(), indent=2))
        return EXIT_OK
    header = ("NAME", "SITE", "ROLE", "BMC", "DICOM", "SSH")
    table = [
        (
            s.name,
            s.site,
            s.role,
            _bmc_cell(s.bmc) if s.bmc else "-",
            f"{s.dicom.ae_title}@{s.dicom.host}:{s.dicom.port}" if s.dicom else "-",
            f"{s.ssh.user}@{s.ssh.host}:{s.ssh.port}" if s.ssh else "-",
        )
        for s in inventory
    ]
    widths = [max(len(row[i]) for row in (header, *table)) for i in range(len(header))]
    for row in (header, *table):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return EXIT_OK


def _bmc_cell(bmc: BmcEndpoint) -> str:
    """The BMC URL, the system behind a shared BMC, and settings that differ from defaults."""
    cell: str = bmc.url + (f" system={bmc.system}" if bmc.system else "")
    if bmc.auth != "auto":
        cell += f" auth={bmc.auth}"
    if bmc.tls_legacy:
        cell += " TLS-LEGACY"
    if not bmc.verify_tls:
        cell += " TLS-UNVERIFIED"
    return cell


def run_import(args: argparse.Namespace) -> int:
    """Convert a CSV export; write YAML to --out or stdout; exit 2 on problems."""
    try:
        text = read_text(args.file, CSV_EXPORT)  # regular, at most 8 MiB, UTF-8 (BOM dropped)
    except InputFileError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    try:
        yaml_text = csv_to_yaml(text, args.file, target=args.out)
    except InventoryError as exc:
        _report(exc, args.file)
        return EXIT_USAGE
    if args.out is None:
        sys.stdout.write(yaml_text)
    else:
        args.out.write_text(yaml_text)
        print(f"wrote {args.out}", file=sys.stderr)
    return EXIT_OK


def run_waves(args: argparse.Namespace) -> int:
    """Print the dependency waves, one line per wave."""
    inventory = _load(args.file)
    if inventory is None:
        return EXIT_USAGE
    waves = inventory.shutdown_waves() if args.shutdown else inventory.startup_waves()
    verb = "power off" if args.shutdown else "power on"
    for number, wave in enumerate(waves, 1):
        print(f"wave {number} ({verb} {len(wave)}): {' '.join(s.name for s in wave)}")
    return EXIT_OK


def _racks(n: int) -> str:
    """Every listed rack has a budget (the check refuses one without)."""
    return "1 rack with a power budget" if n == 1 else f"{n} racks with power budgets"


def _count(n: int, noun: str) -> str:
    """``1 server``, ``2 servers``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
