"""``pacs-tui inventory check|list|waves`` as an operator runs them."""

from __future__ import annotations

import argparse
import json
import textwrap
from pathlib import Path

import pytest

from pacs_tui.cli import inventory as inventory_cli

PASSWORD = "Winter-2025-bmc!"

INVENTORY = """\
credentials:
  bmc-admin: {username: root, password: env:PACS_TUI_TEST_BMC_PW}
  ssh-ops: {username: pacsops, private_key: file:id_test}
defaults:
  bmc: {credentials: bmc-admin}
  ssh: {credentials: ssh-ops}
servers:
  - {name: db-01, role: database, site: dc, address: 10.0.0.5, bmc: {address: 10.1.0.5}}
  - {name: arch-01, role: archive, site: dc, address: 10.0.0.11, bmc: {address: 10.1.0.11},
     dicom: {ae_title: ARCH01}, depends_on: [db-01]}
  - {name: gw-01, role: edge-gateway, site: st-mary, address: 10.0.0.50,
     dicom: {ae_title: GW01}, depends_on: [arch-01]}
"""


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="pacs-tui")
    inventory_cli.register(parser.add_subparsers())
    args = parser.parse_args(["inventory", *argv])
    code: int = args.handler(args)
    return code


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    path = tmp_path / "inventory.yaml"
    path.write_text(INVENTORY)
    key = tmp_path / "id_test"
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nnotreallyakey\n")
    key.chmod(0o600)
    return path


def test_check_ok_and_credentials_resolve_without_printing_them(
    inventory: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PACS_TUI_TEST_BMC_PW", PASSWORD)
    assert run("check", str(inventory), "--credentials") == 0
    out, err = capsys.readouterr()
    assert "3 servers, 2 sites, 3 roles, 2 credential sets" in out
    assert "all 2 credential sets resolve" in out
    assert PASSWORD not in out + err
    assert "notreallyakey" not in out + err


def test_check_unresolvable_credentials_exits_1(
    inventory: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("PACS_TUI_TEST_BMC_PW", raising=False)
    (inventory.parent / "id_test").chmod(0o644)
    assert run("check", str(inventory), "--credentials", "--json") == 1
    report = json.loads(capsys.readouterr().out)
    assert report["servers"] == 3
    assert report["credential_failures"] == [
        "credential set 'bmc-admin': env:PACS_TUI_TEST_BMC_PW: environment variable is not "
        "set or empty",
        f"credential set 'ssh-ops': file:{inventory.parent / 'id_test'}: file mode is 0644, "
        f"readable by others; run: chmod 600 {inventory.parent / 'id_test'}",
    ]


def test_check_invalid_inventory_exits_2_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            servers:
              - {name: db-01, role: database, site: dc, address: 10.0.0.5}
              - {name: arch-01, role: archive, site: dc, address: 10.0.0.11, depends_on: [db-1]}
            """
        )
    )
    assert run("check", str(path)) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"{path}:3:5: error: server arch-01: role 'archive' speaks DICOM; give dicom.ae_title "
        "(or 'dicom: false' if this server offers no DICOM service)",
        f"{path}: invalid, 1 error(s)",
    ]


def test_inventory_file_defaults_to_the_environment_variable(
    inventory: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PACS_TUI_INVENTORY", str(inventory))
    assert run("check") == 0
    assert str(inventory) in capsys.readouterr().out


def test_list_filters_and_json(inventory: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("list", str(inventory), "--site", "dc", "--json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == ["db-01", "arch-01"]
    assert rows[1]["bmc"] == "https://10.1.0.11:443" and rows[1]["dicom"] == "ARCH01@104"
    assert run("list", str(inventory), "--role", "edge-gateway") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "ROLE", "SITE", "ADDRESS", "BMC", "DICOM"]
    assert lines[1].split() == ["gw-01", "edge-gateway", "st-mary", "10.0.0.50", "-", "GW01@104"]


def test_waves_text_and_json(inventory: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("waves", str(inventory)) == 0
    assert capsys.readouterr().out.splitlines() == [
        "wave 1 (power on 1): db-01",
        "wave 2 (power on 1): arch-01",
        "wave 3 (power on 1): gw-01",
    ]
    assert run("waves", str(inventory), "--shutdown", "--json") == 0
    assert json.loads(capsys.readouterr().out) == [["gw-01"], ["arch-01"], ["db-01"]]
