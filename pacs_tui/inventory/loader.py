"""Reading an inventory file: ``load_inventory(path)``."""

from __future__ import annotations

from pathlib import Path

from pacs_tui.input_file import INVENTORY, InputFileError, read_text
from pacs_tui.inventory.model import Inventory
from pacs_tui.inventory.problems import InventoryError, Problem
from pacs_tui.inventory.validate import build_inventory
from pacs_tui.inventory.yaml_source import read_yaml


def load_inventory(path: Path | str) -> Inventory:
    """Load and validate the YAML inventory at ``path``.

    Raises :class:`InventoryError` listing every problem (file, line, key,
    reason); nothing is half-loaded. The file must be a regular UTF-8 file of at
    most 8 MiB (:data:`pacs_tui.input_file.INVENTORY`): a FIFO, a device or a
    larger file is refused before parsing.
    """
    path = Path(path)
    try:
        text = read_text(path, INVENTORY)
    except InputFileError as exc:
        raise InventoryError([Problem.of_file(exc)]) from None
    return load_inventory_text(text, path)


def load_inventory_text(text: str, path: Path | str, *, check_files: bool = True) -> Inventory:
    """Validate inventory ``text`` as if read from ``path``.

    ``path`` names the file in messages, and relative paths in the inventory
    (``ca_file``, ``file``, ``key_file``, ``known_hosts``) are taken from its folder.
    ``check_files=False``: the text is a service's (``pacs-tui serve``), whose
    files are on the service's machine; they are not looked for here.
    """
    path = Path(path).absolute()
    data, problems = read_yaml(text, path)
    if data is None and problems:
        raise InventoryError(problems)
    return build_inventory(data, path, problems, check_files=check_files)
