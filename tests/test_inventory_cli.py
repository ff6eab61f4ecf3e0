"""``pacs-tui inventory check|show|waves`` as an operator runs them."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from pacs_tui.cli import main

INVENTORY = """\
sites:
  - {name: dc, kind: datacenter}
  - {name: st-mary, kind: hospital}
credentials:
  bmc-admin: {username: root, password_env: PACS_TUI_TEST_BMC_PW}
defaults:
  bmc: {credentials: bmc-admin, verify_tls: false}
  ssh: {user: pacsops}
servers:
  - {name: db-01, site: dc, role: database, bmc: {address: 127.1.0.5}, ssh: {host: 127.1.1.5}}
  - {name: arch-01, site: dc, role: archive, depends_on: [db-01], bmc: {address: 127.1.0.11},
     dicom: {host: 127.1.1.11, ae_title: ARCH01}}
  - {name: gw-01, site: st-mary, role: edge-gateway, depends_on: [arch-01],
     dicom: {host: gw.example, port: 11112, ae_title: GW01}}
"""


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    path = tmp_path / "inventory.yaml"
    path.write_text(INVENTORY)
    return path


def test_check_good_file_prints_a_summary(
    inventory: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["inventory", "check", str(inventory)]) == 0
    out, err = capsys.readouterr()
    assert out == f"{inventory}: OK: 3 servers, 2 sites, dependency depth 3\n"
    assert err == ""


def test_check_counts_racks_and_their_budgets_in_words(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "racked.yaml"
    racks = "racks:\n  - {name: R01, budget_w: 6000}\n"
    for more, words in (("", "1 rack with a power budget"),
                        ("  - {name: R02, budget_w: 5000}\n", "2 racks with power budgets")):  # fmt: skip
        path.write_text(INVENTORY.replace("servers:\n", racks + more + "servers:\n", 1))
        assert main(["inventory", "check", str(path)]) == 0
        out, _ = capsys.readouterr()
        assert out == f"{path}: OK: 3 servers, 2 sites, {words}, dependency depth 3\n"


def test_check_prints_every_problem_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            sites: [{name: dc, kind: datacenter}]
            servers:
              - {name: db-01, site: dc, role: database, depends_on: [db-02]}
              - {name: db-02, site: dc, role: database, depends_on: [db-01],
                 ssh: {host: 127.0.0.1, port: 0, user: ops}}
            """
        )
    )
    assert main(["inventory", "check", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        f"{path}:5: servers[1].ssh.port: port 0 is out of range 1-65535",
        f"{path}: 1 problem(s)",
    ]
    path.write_text(path.read_text().replace("port: 0", "port: 22"))
    assert main(["inventory", "check", str(path)]) == 2
    assert f"{path}:3: servers[0].depends_on: dependency cycle: db-01 -> db-02 -> db-01" in (
        capsys.readouterr().err
    )


def test_show_json_is_the_normalized_list(
    inventory: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PACS_TUI_TEST_BMC_PW", "never-shown-password")
    assert main(["inventory", "show", str(inventory), "--json"]) == 0
    out = capsys.readouterr().out
    assert "never-shown-password" not in out
    servers = json.loads(out)
    assert [s["name"] for s in servers] == ["db-01", "arch-01", "gw-01"]
    assert servers[0]["bmc"]["credentials"] == "bmc-admin"
    assert servers[0]["bmc"]["verify_tls"] is False
    assert servers[0]["ssh"] == {
        "host": "127.1.1.5",
        "port": 22,
        "user": "pacsops",
        "credentials": None,
        "known_hosts": None,
    }
    assert servers[1]["ssh"] is None  # a default block never creates one
    assert servers[2]["dicom"]["port"] == 11112


def test_show_table(inventory: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inventory", "show", str(inventory)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "SITE", "ROLE", "BMC", "DICOM", "SSH"]
    assert lines[1].split() == [
        "db-01", "dc", "database", "https://127.1.0.5:443", "TLS-UNVERIFIED", "-",
        "pacsops@127.1.1.5:22",
    ]  # fmt: skip
    assert lines[3].split() == [
        "gw-01",
        "st-mary",
        "edge-gateway",
        "-",
        "GW01@gw.example:11112",
        "-",
    ]


def test_waves(inventory: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inventory", "waves", str(inventory), "--shutdown"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "wave 1 (power off 1): gw-01",
        "wave 2 (power off 1): arch-01",
        "wave 3 (power off 1): db-01",
    ]
