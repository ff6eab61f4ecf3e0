"""Reading an inventory file: ``load_inventory(path)``."""

from __future__ import annotations

from pathlib import Path

from pacs_tui.inventory.model import Inventory
from pacs_tui.inventory.problems import InventoryError, Problem
from pacs_tui.inventory.validate import build_inventory
from pacs_tui.inventory.yaml_source import read_yaml


def load_inventory(path: Path | str) -> Inventory:
    """Load and validate the YAML inventory at ``path``.

    Raises :class:`InventoryError` listing every problem (file, line, key,
    reason); nothing is half-loaded.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: editors on Windows add a BOM
    except FileNotFoundError:
        raise InventoryError([Problem(path, 0, "", "no such file")]) from None
    except IsADirectoryError:
        raise InventoryError([Problem(path, 0, "", "is a directory, not a file")]) from None
    except UnicodeDecodeError as exc:
        raise InventoryError([Problem(path, 0, "", f"not UTF-8 text (byte {exc.start})")]) from None
    except OSError as exc:
        raise InventoryError([Problem(path, 0, "", exc.strerror or str(exc))]) from None
    return load_inventory_text(text, path)


def load_inventory_text(text: str, path: Path | str) -> Inventory:
    """Validate inventory ``text`` as if read from ``path``.

    ``path`` names the file in messages, and relative paths in the inventory
    (``ca_file``, ``file``, ``key_file``, ``known_hosts``) are taken from its folder.
    """
    path = Path(path).absolute()
    data, problems = read_yaml(text, path)
    if data is None and problems:
        raise InventoryError(problems)
    return build_inventory(data, path, problems)
