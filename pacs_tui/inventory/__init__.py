"""The fleet inventory: which servers exist, where, and how to reach them.

``load_inventory(path)`` reads a YAML (or CSV) file and returns a validated,
immutable :class:`Fleet`, or raises :class:`InventoryError` listing every
problem as ``file:line:col: error: message``.
"""

from pacs_tui.inventory.dump import dump_inventory
from pacs_tui.inventory.load import load_inventory, parse_inventory
from pacs_tui.inventory.model import (
    BmcAccess,
    DicomAccess,
    Fleet,
    Server,
    Site,
    SshAccess,
    Wave,
)
from pacs_tui.inventory.problems import InventoryError, Problem, SourceLocation

__all__ = [
    "BmcAccess",
    "DicomAccess",
    "Fleet",
    "InventoryError",
    "Problem",
    "Server",
    "Site",
    "SourceLocation",
    "SshAccess",
    "Wave",
    "dump_inventory",
    "load_inventory",
    "parse_inventory",
]
