"""The fleet inventory: which servers exist, where, and how to reach them.

``load_inventory(path)`` reads a YAML file and returns a validated, immutable
:class:`Inventory`, or raises :class:`InventoryError` listing every problem as
``FILE:LINE: KEY: message``. ``csv_to_yaml`` converts a spreadsheet export.
"""

from pacs_tui.inventory.csv_import import CSV_COLUMNS, csv_to_yaml
from pacs_tui.inventory.loader import load_inventory, load_inventory_text
from pacs_tui.inventory.model import (
    SITE_KINDS,
    BmcEndpoint,
    Circuit,
    CredentialRef,
    DicomEndpoint,
    DicomTls,
    Inventory,
    LinkDicom,
    LinkTcp,
    Rack,
    Server,
    Site,
    SiteLink,
    Spare,
    SshEndpoint,
    Wave,
)
from pacs_tui.inventory.problems import InventoryError, Problem

__all__ = [
    "CSV_COLUMNS",
    "SITE_KINDS",
    "BmcEndpoint",
    "Circuit",
    "CredentialRef",
    "DicomEndpoint",
    "DicomTls",
    "Inventory",
    "InventoryError",
    "LinkDicom",
    "LinkTcp",
    "Problem",
    "Rack",
    "Server",
    "Site",
    "SiteLink",
    "Spare",
    "SshEndpoint",
    "Wave",
    "csv_to_yaml",
    "load_inventory",
    "load_inventory_text",
]
