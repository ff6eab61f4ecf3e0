"""The inventory's ``dicom.tls`` block (PS3.15 Annex B.1): keys, defaults, file:line problems."""

from __future__ import annotations

from pathlib import Path

import pytest

from pacs_tui.inventory import DicomTls, InventoryError, load_inventory_text

HEAD = """\
sites: [{name: dc, kind: datacenter}]
defaults:
  dicom: {calling_ae_title: PACSTUI}
servers:
  - name: arch-01
    site: dc
    role: archive
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "ca.pem").write_text("CA\n")
    (tmp_path / "client.pem").write_text("CERT\n")
    key = tmp_path / "client.key"
    key.write_text("KEY\n")
    key.chmod(0o600)
    return tmp_path


def load(folder: Path, dicom: str) -> DicomTls | None:
    inventory = load_inventory_text(HEAD + f"    dicom: {dicom}\n", folder / "inventory.yaml")
    endpoint = inventory.server("arch-01").dicom
    assert endpoint is not None
    return endpoint.tls


def problems(folder: Path, text: str) -> list[str]:
    with pytest.raises(InventoryError) as caught:
        load_inventory_text(text, folder / "inventory.yaml")
    return [f"{p.line}: {p.key}: {p.message}" for p in caught.value.problems]


def test_a_full_tls_block_with_a_client_certificate(folder: Path) -> None:
    tls = load(
        folder,
        "{host: 10.0.0.5, ae_title: ARCH, tls: {ca_file: ca.pem, cert_file: client.pem,"
        " key_file: client.key}}",
    )
    assert tls == DicomTls(folder / "ca.pem", folder / "client.pem", folder / "client.key", True)


def test_tls_defaults_to_port_2762_and_no_block_means_plain(folder: Path) -> None:
    text = HEAD + "    dicom: {host: 10.0.0.5, ae_title: ARCH, tls: {ca_file: ca.pem}}\n"
    text += "  - {name: arch-02, site: dc, role: archive, dicom: {host: 10.0.0.6, ae_title: A2}}\n"
    inventory = load_inventory_text(text, folder / "inventory.yaml")
    tls_server, plain_server = inventory.server("arch-01"), inventory.server("arch-02")
    assert tls_server.dicom is not None and tls_server.dicom.port == 2762
    assert plain_server.dicom is not None and plain_server.dicom.tls is None
    assert plain_server.dicom.port == 104
    shown = tls_server.to_json()["dicom"]["tls"]
    assert shown == {
        "ca_file": str(folder / "ca.pem"),
        "cert_file": None,
        "key_file": None,
        "verify": True,
    }


def test_a_default_tls_block_applies_to_every_dicom_server(folder: Path) -> None:
    text = HEAD.replace(
        "dicom: {calling_ae_title: PACSTUI}", "dicom: {tls: {ca_file: ca.pem, verify: false}}"
    )
    text += "    dicom: {host: 10.0.0.5, ae_title: ARCH}\n"
    endpoint = load_inventory_text(text, folder / "inventory.yaml").server("arch-01").dicom
    assert endpoint is not None and endpoint.tls == DicomTls(folder / "ca.pem", verify=False)


def test_every_tls_problem_is_named_at_its_line(folder: Path) -> None:
    (folder / "loose.key").write_text("KEY\n")
    (folder / "loose.key").chmod(0o644)
    text = HEAD + "    dicom:\n      host: 10.0.0.5\n      ae_title: ARCH\n      tls:\n"
    text += "        ca_file: missing.pem\n"  # line 12
    text += "        verify: maybe\n"  # line 13
    text += "        cert_file: client.pem\n"
    text += "        key_file: loose.key\n"  # line 15
    text += "        verfy: true\n"  # line 16
    text += "  - name: arch-02\n    site: dc\n    role: archive\n"
    text += "    dicom: {host: 10.0.0.6, ae_title: A2, tls: {cert_file: client.pem}}\n"  # line 20
    found = problems(folder, text)
    assert found[0].startswith("12: servers[0].dicom.tls.ca_file: file ")
    assert found[0].endswith("missing.pem is missing")
    assert found[1] == "13: servers[0].dicom.tls.verify: expected true or false, got 'maybe'"
    assert found[2].startswith("15: servers[0].dicom.tls.key_file: ")
    assert "mode 0644; it must be 0600" in found[2]
    assert found[3].startswith(
        "16: servers[0].dicom.tls.verfy: unknown key (did you mean 'verify'?)"
    )
    assert found[4] == (
        "20: servers[1].dicom.tls: cert_file and key_file go together "
        "(the client certificate and its private key)"
    )
    assert len(found) == 5
