"""Writing a fleet back out as an inventory file (the simulator generates its own)."""

from __future__ import annotations

from typing import Any

import yaml

from pacs_tui.inventory.model import Fleet, Server
from pacs_tui.inventory.schema import SUPPORTED_VERSION
from pacs_tui.roles import ROLES


def dump_inventory(fleet: Fleet) -> str:
    """The fleet as inventory YAML, every value spelled out (no ``defaults:``).

    Loading the result gives an equal fleet. Credential sets are written as
    their references; no secret is ever resolved here.
    """
    document: dict[str, Any] = {"version": SUPPORTED_VERSION}
    document["sites"] = [
        _prune({"name": s.name, "kind": s.kind, "description": s.description})
        for s in fleet.sites.values()
    ]
    if fleet.credentials:
        document["credentials"] = {
            c.name: _prune(
                {
                    "username": c.username,
                    "password": c.password and str(c.password),
                    "private_key": c.private_key and str(c.private_key),
                    "passphrase": c.passphrase and str(c.passphrase),
                }
            )
            for c in fleet.credentials.values()
        }
    document["servers"] = [_server(s) for s in fleet.servers]
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)


def _server(server: Server) -> dict[str, Any]:
    role = ROLES.get(server.role)
    body: dict[str, Any] = {
        "name": server.name,
        "role": server.role,
        "site": server.site,
        "address": server.address,
    }
    if role is None or role.units != server.services:
        body["services"] = list(server.services)
    if server.depends_on:
        body["depends_on"] = list(server.depends_on)
    if server.tags:
        body["tags"] = sorted(server.tags)
    if server.rack:
        body["rack"] = server.rack
    if server.bmc is not None:
        bmc = server.bmc
        body["bmc"] = _prune(
            {
                "address": bmc.address,
                "port": bmc.port,
                "scheme": bmc.scheme,
                "credentials": bmc.credentials,
                "verify_tls": bmc.verify_tls,
                "ca_file": bmc.ca_file and str(bmc.ca_file),
                "fingerprint": bmc.fingerprint,
                "system_path": bmc.system_path,
            }
        )
    if server.dicom is not None:
        dicom = server.dicom
        body["dicom"] = {
            "ae_title": dicom.ae_title,
            "port": dicom.port,
            "calling_ae": dicom.calling_ae,
        }
    elif role is not None and role.speaks_dicom:
        body["dicom"] = False
    if server.ssh is None:
        body["ssh"] = False
    else:
        body["ssh"] = _prune(
            {
                "port": server.ssh.port,
                "credentials": server.ssh.credentials,
                "known_hosts": server.ssh.known_hosts and str(server.ssh.known_hosts),
            }
        )
    return body


def _prune(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None and v != ""}
