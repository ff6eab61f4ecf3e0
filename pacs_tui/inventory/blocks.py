"""The specs of the inventory's blocks: which keys each takes and how each is checked.

An endpoint block (``bmc``, ``dicom`` with its nested ``tls``, ``ssh``), a
server, ``defaults``, a site and a credential each map their keys to a
converter (``values``) or to one of ``Check``'s file checks; ``REQUIRED``
names an endpoint block's keys that must be set (by the server or a default).
"""

from __future__ import annotations

from typing import Any

from pacs_tui.inventory.checker import Check, Nested
from pacs_tui.inventory.model import DicomTls
from pacs_tui.inventory.values import (
    Converter,
    Invalid,
    ae_title,
    as_text,
    bmc_auth,
    env_name,
    flag,
    host,
    peak_factor,
    port,
    scheme,
    seconds,
    server_name,
    site_kind,
    system_id,
    watts,
    word_list,
)

BLOCKS = ("bmc", "dicom", "ssh")


def dicom_tls(values: dict[str, Any]) -> DicomTls:
    """The ``dicom.tls`` block from its converted keys; ``Invalid`` for half a client pair."""
    if ("cert_file" in values) != ("key_file" in values):
        raise Invalid(
            "cert_file and key_file go together (the client certificate and its private key)"
        )
    return DicomTls(**values)


def block_specs(check: Check) -> dict[str, dict[str, Converter]]:
    """Spec per block name (bmc, dicom, ssh, server, defaults, site, credential).

    The file checks are ``check``'s own, so each file is checked once per run.
    """
    server: dict[str, Converter] = {
        "name": server_name,
        "site": as_text,
        "role": as_text,
        "rack": as_text,
        "circuit": as_text,
        "nameplate_w": watts,
        "boot_peak_factor": peak_factor,
        "tags": word_list,
        "depends_on": word_list,
        "services": word_list,
    }
    return {
        "bmc": {
            "address": host,
            "port": port,
            "scheme": scheme,
            "verify_tls": flag,
            "ca_file": check.certificate_path,
            "credentials": as_text,
            "system": system_id,
            "auth": bmc_auth,
            "timeout_s": seconds,
            "login_timeout_s": seconds,
            "tls_legacy": flag,
        },
        "dicom": {
            "host": host,
            "port": port,
            "ae_title": ae_title,
            "calling_ae_title": ae_title,
            "tls": Nested(
                {
                    "ca_file": check.certificate_path,
                    "cert_file": check.certificate_path,
                    "key_file": check.private_path,
                    "verify": flag,
                },
                dicom_tls,
            ),
        },
        "ssh": {
            "host": host,
            "port": port,
            "user": as_text,
            "credentials": as_text,
            "known_hosts": check.known_hosts_path,
        },
        "server": server,
        "defaults": {k: v for k, v in server.items() if k != "name"},
        # "links" is read by pacs_tui.inventory.links; listed so the known keys name it.
        "site": {"name": as_text, "kind": site_kind, "links": lambda value: value},
        "credential": {
            "username": as_text,
            "password_env": env_name,
            "file": check.secrets_path,
            "key_file": check.private_path,
        },
    }


REQUIRED = {"bmc": ("address",), "dicom": ("host", "ae_title"), "ssh": ("host", "user")}
