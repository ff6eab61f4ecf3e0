"""The ``pacs-tui`` command line: one module per subcommand family.

Each module exposes ``register(subparsers)``, which adds its parser(s) and sets
``handler`` to a function taking the parsed namespace and returning an exit
code. Exit codes: 0 ok, 1 the checked thing is unhealthy, 2 usage or input
error (argparse uses 2 as well).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pacs_tui import __version__

if TYPE_CHECKING:
    from pacs_tui.inventory import Inventory, Server

Handler = Callable[[argparse.Namespace], int]

# Subcommand modules, imported lazily so `pacs-tui inventory check` never pays
# for the simulator or the UI.
COMMAND_MODULES = (
    "pacs_tui.cli.inventory",
    "pacs_tui.cli.sim",
    "pacs_tui.cli.plugins",
    "pacs_tui.cli.status",
    "pacs_tui.cli.power",
    "pacs_tui.cli.audit",
    "pacs_tui.cli.ui",
    "pacs_tui.cli.baseline",
    "pacs_tui.cli.preflight",
    "pacs_tui.cli.replication",
    "pacs_tui.cli.runbook",
    "pacs_tui.cli.rehearse",
    "pacs_tui.cli.serve",
    "pacs_tui.cli.replace",
)

EXIT_OK = 0
EXIT_UNHEALTHY = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """Bad input: ``main`` prints the message (already printed when empty) and exits 2."""


def load_fleet(path: Path) -> Inventory:
    """Load an inventory, or print every problem (file:line: key: reason) and raise.

    Replacements recorded by ``pacs-tui replace`` are applied: a replaced
    server is reached at its spare's BMC (``pacs_tui.replacements``).
    """
    from pacs_tui.inventory import InventoryError, load_inventory
    from pacs_tui.replacements import ReplacementsError, load_applied

    try:
        inventory = load_inventory(path)
    except InventoryError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        raise UsageError("") from None
    try:
        return load_applied(inventory)
    except ReplacementsError as exc:
        raise UsageError(f"{exc} (fix or move the replacements file)") from None


def select_servers(inventory: Inventory, expression: str | None) -> list[Server]:
    """The servers ``--select EXPR`` names (all without one); a bad or empty one raises."""
    from pacs_tui.selector import SelectorError, select

    if not expression:
        return list(inventory.servers)
    kinds = {name: site.kind for name, site in inventory.sites.items()}
    try:
        servers = select(inventory.servers, expression, kinds)
    except SelectorError as exc:
        raise UsageError(f"--select: {exc}\n{exc.pointer()}") from None
    if not servers:
        raise UsageError(f"--select {expression!r} matches no server")
    return servers


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="pacs-tui",
        description="Terminal control room for moving and running hospital PACS data centers.",
    )
    parser.add_argument("--version", action="version", version=f"pacs-tui {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages to stderr")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


# What a shell reports for a command whose reader went away (128 + SIGPIPE).
EXIT_BROKEN_PIPE = 141


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pacs-tui`` console script.

    A reader that goes away (``pacs-tui audit | head``) ends the command
    quietly with :data:`EXIT_BROKEN_PIPE`, whichever command was writing.
    """
    try:
        try:
            return _run(argv)
        finally:
            # Flush here (also after argparse's --help exit), not at interpreter exit,
            # where a broken pipe can only print a warning.
            sys.stdout.flush()
    except BrokenPipeError:
        return _reader_gone()


def _reader_gone() -> int:
    """Point stdout (and a broken stderr) at /dev/null so the exit flush cannot fail.

    As the Python documentation advises for SIGPIPE (``signal`` module, "Note
    on SIGPIPE"): Python ignores the signal, so writes raise instead.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, ValueError):
            # ValueError: already closed. Either way nothing more can be said there.
            with contextlib.suppress(OSError, ValueError):
                os.dup2(devnull, stream.fileno())
    with contextlib.suppress(OSError, ValueError):
        os.dup2(devnull, sys.stdout.fileno())  # the reader of stdout is gone for sure
    os.close(devnull)
    return EXIT_BROKEN_PIPE


def _run(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    # `pacs-tui --inventory F` is `pacs-tui run --inventory F` (run is the default command).
    if argv and (argv[0] in ("-i", "--inventory") or argv[0].startswith("--inventory=")):
        argv.insert(0, "run")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from pacs_tui.credentials import REDACTOR

    REDACTOR.install()  # scrub any resolved secret from log records, as a second guard
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return handler(args)
    except UsageError as exc:
        if str(exc):
            print(f"pacs-tui {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
