"""Spares and replacement without a network: the inventory's spares:, the
replacements file and how it is applied, baseline compare's ``replaced``,
forgetting an SSH host key, and bad ``replace`` invocations (exit 2, one line)."""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import subprocess
import sys
from pathlib import Path

import pytest

from pacs_tui.baseline import PlannedIdentity, compare_baselines, save_baseline
from pacs_tui.cli import baseline as baseline_cli
from pacs_tui.host_keys import forget_command, forget_host, matching_lines
from pacs_tui.inventory import InventoryError, load_inventory
from pacs_tui.replacements import (
    Replacement,
    ReplacementsError,
    apply_replacements,
    read_replacements,
    record_replacement,
)
from test_baseline_model import baseline, hardware, server

PACS_TUI = [sys.executable, "-m", "pacs_tui"]

INVENTORY = """\
version: 1
sites:
  - {name: dc-main, kind: datacenter}
credentials:
  bmc-admin: {username: admin, password_env: PACS_TUI_TEST_PW}
defaults:
  bmc: {port: 8443, scheme: https, verify_tls: false, credentials: bmc-admin}
servers:
  - name: db-001
    site: dc-main
    role: database
    bmc: {address: 127.0.0.5}
    dicom: {host: 127.0.0.6, ae_title: DB001}
    ssh: {host: 127.0.0.6, user: ops, known_hosts: known_hosts}
spares:
  - name: spare-01
    serial: SP0001
    model: MC-R640
    macs: [02:50:AC:FF:00:00]
    location: store room, shelf 1
    bmc: {address: 127.0.0.50}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "inventory.yaml"
    path.write_text(text)
    return path


def test_spares_are_read_with_the_bmc_defaults(tmp_path: Path) -> None:
    inventory = load_inventory(write(tmp_path, INVENTORY))
    spare = inventory.spares["spare-01"]
    assert spare.serial == "SP0001" and spare.macs == ("02:50:ac:ff:00:00",)
    assert (spare.bmc.address, spare.bmc.port, spare.bmc.credentials) == (
        "127.0.0.50",
        8443,
        "bmc-admin",
    )
    assert spare.bmc.verify_tls is False and spare.location == "store room, shelf 1"


@pytest.mark.parametrize(
    ("extra", "line", "expected"),
    [
        ("    colour: blue\n", 25, "spares[1].colour: unknown key"),
        ("    macs: [nope]\n", 25, "spares[1].macs: 'nope' is not a MAC address"),
        ("", 23, "spares[1].serial: serial 'SP0001' is also spare spare-01's"),
    ],
)
def test_bad_spares_name_file_line_and_key(
    tmp_path: Path, extra: str, line: int, expected: str
) -> None:
    text = INVENTORY + "  - name: spare-02\n    serial: SP0001\n    bmc: {address: 127.0.0.51}\n"
    text += extra
    path = write(tmp_path, text)
    with pytest.raises(InventoryError) as caught:
        load_inventory(path)
    shown = [str(p) for p in caught.value.problems]
    assert any(s.startswith(f"{path}:{line}: {expected}") for s in shown), shown


def test_a_spare_may_not_be_a_server_nor_use_its_bmc(tmp_path: Path) -> None:
    text = INVENTORY + "  - name: db-001\n    serial: SP0009\n    bmc: {address: 127.0.0.5}\n"
    path = write(tmp_path, text)
    done = subprocess.run(
        [*PACS_TUI, "inventory", "check", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert f"{path}:22: spares[1].name: 'db-001' is a server's name" in done.stderr
    assert f"{path}:22: spares[1].bmc.address: BMC 127.0.0.5:8443 is server db-001's" in (
        done.stderr
    )
    assert "Traceback" not in done.stderr


def entry(inventory: Path, **changes: object) -> Replacement:
    fields: dict[str, object] = {
        "inventory": str(inventory.absolute()),
        "server": "db-001",
        "spare": "spare-01",
        "serial": "SP0001",
        "macs": ("02:50:ac:ff:00:00",),
        "bmc_address": "127.0.0.50",
        "bmc_port": 8443,
        "old_serial": None,
        "at": "2026-12-01T11:00:00.000000Z",
        "operator": "alice",
    }
    fields.update(changes)
    return Replacement(**fields)  # type: ignore[arg-type]


def test_a_recorded_replacement_gives_the_server_the_spares_bmc(tmp_path: Path) -> None:
    path = write(tmp_path, INVENTORY)
    inventory = load_inventory(path)
    file = tmp_path / "data" / "replacements.json"
    record_replacement(entry(path), file)
    record_replacement(entry(tmp_path / "other.yaml"), file)  # another inventory: ignored
    assert len(read_replacements(file)) == 2
    applied = apply_replacements(inventory, read_replacements(file))
    db = applied.server("db-001")
    assert db.bmc is not None and db.bmc.address == "127.0.0.50"
    before = inventory.server("db-001")
    assert (db.name, db.role, db.dicom, db.ssh) == (
        before.name,
        before.role,
        before.dicom,
        before.ssh,
    )
    assert apply_replacements(inventory, []) is inventory


def test_a_broken_replacements_file_is_refused_by_name(tmp_path: Path) -> None:
    file = tmp_path / "replacements.json"
    file.write_text(json.dumps({"version": 1, "replacements": [{"server": "db-001"}]}))
    with pytest.raises(ReplacementsError, match=r"replacements\[0\]\.inventory: missing"):
        read_replacements(file)
    data = tmp_path / "data"
    data.mkdir()
    (data / "replacements.json").write_text("{")
    done = subprocess.run(
        [*PACS_TUI, "status", "-i", str(write(tmp_path, INVENTORY))],
        capture_output=True, text=True, timeout=60,
        env={"PACS_TUI_DATA_DIR": str(data), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert done.returncode == 2
    assert "replacements.json:1:2: not JSON" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["db-002", "--with", "spare-01"], "unknown server 'db-002' (did you mean 'db-001'?)"),
        (["db-001", "--with", "spare-1"], "unknown spare 'spare-1' (did you mean 'spare-01'?)"),
        (
            ["db-001", "--with", "spare-01", "--board", "/nonexistent/custody.json"],
            "--board: no custody board at /nonexistent/custody.json",
        ),
    ],
)
def test_bad_replace_invocations_exit_2_with_one_line(
    tmp_path: Path, args: list[str], message: str
) -> None:
    path = write(tmp_path, INVENTORY)
    done = subprocess.run(
        [*PACS_TUI, "replace", *args, "-i", str(path), "--dry-run"],
        capture_output=True, text=True, timeout=60,
        env={"PACS_TUI_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"pacs-tui replace: error: {message}"] or (
        message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    ), done.stderr


def test_a_used_spare_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, INVENTORY)
    record_replacement(entry(path), tmp_path / "data" / "replacements.json")
    done = subprocess.run(
        [*PACS_TUI, "replace", "db-001", "--with", "spare-01", "-i", str(path)],
        capture_output=True, text=True, timeout=60,
        env={"PACS_TUI_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert done.returncode == 2
    assert "spare spare-01 already took db-001's place" in done.stderr


def test_compare_says_replaced_for_the_planned_spare_and_changed_otherwise() -> None:
    old = server("db-001", role="database")
    spare_box = server("db-001", role="database", hardware=hardware("SP0001", "02:50:ac:ff:00:00"))
    other_box = server("db-001", role="database", hardware=hardware("XX9999", "02:50:ac:ff:00:00"))
    plan = {"db-001": PlannedIdentity("spare-01", "SP0001", ("02:50:ac:ff:00:00",), "by alice")}
    planned = compare_baselines(baseline(old), baseline(spare_box, label="after"), planned=plan)
    assert planned.ok, [f.detail for f in planned.problems()]
    verdicts = {f.metric: f.verdict for f in planned.findings if f.name == "db-001"}
    assert verdicts["serial_number"] == "replaced" and verdicts["mac_addresses"] == "replaced"
    serial = next(f for f in planned.findings if f.metric == "serial_number")
    assert "replaced by spare spare-01 as planned; by alice" in serial.detail
    unexplained = compare_baselines(baseline(old), baseline(spare_box, label="after"))
    assert {f.metric for f in unexplained.problems()} >= {"serial_number", "mac_addresses"}
    wrong = compare_baselines(baseline(old), baseline(other_box, label="after"), planned=plan)
    problem = next(f for f in wrong.problems() if f.metric == "serial_number")
    assert problem.verdict == "changed" and "not that box" in problem.detail


def test_compare_cli_reads_the_recorded_replacements(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inventory = Path("/srv/inventory.yaml")  # what baseline() records as the inventory
    old = server("db-001", role="database")
    new = server("db-001", role="database", hardware=hardware("SP0001", "02:50:ac:ff:00:00"))
    save_baseline(baseline(old), tmp_path / "before.json")
    save_baseline(baseline(new, label="after"), tmp_path / "after.json")
    record_replacement(entry(inventory), tmp_path / "replacements.json")
    args = argparse.Namespace(
        before=tmp_path / "before.json",
        after=tmp_path / "after.json",
        report=None,
        json=False,
        replacements=tmp_path / "replacements.json",
    )
    assert baseline_cli.run_compare(args) == 0, capsys.readouterr()
    assert "replaced" in capsys.readouterr().out
    args.replacements = tmp_path / "none.json"
    assert baseline_cli.run_compare(args) == 2


def hashed(pattern: str, salt: bytes = b"0123456789abcdefghij") -> str:
    digest = hmac.new(salt, pattern.encode(), hashlib.sha1).digest()
    return f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"


def test_forgetting_a_host_key_removes_plain_and_hashed_lines_only(tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text(
        "[127.0.0.6]:2222 ssh-ed25519 AAAAold\n"
        f"{hashed('[127.0.0.6]:2222')} ssh-ed25519 AAAAold\n"
        "[127.0.0.7]:2222 ssh-ed25519 AAAAother\n"
        "@cert-authority [127.0.0.6]:2222 ssh-ed25519 AAAAca\n"
    )
    known.chmod(0o600)
    assert matching_lines(known.read_text(), "127.0.0.6", 2222) == [0, 1]
    assert forget_host(known, "127.0.0.6", 2222) == 2
    assert known.read_text().splitlines() == [
        "[127.0.0.7]:2222 ssh-ed25519 AAAAother",
        "@cert-authority [127.0.0.6]:2222 ssh-ed25519 AAAAca",
    ]
    assert known.stat().st_mode & 0o777 == 0o600
    assert forget_command(known, "127.0.0.6", 22) == f"ssh-keygen -R 127.0.0.6 -f {known}"


def test_the_control_room_and_wall_load_the_replacements_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pacs_tui.cli import ui

    path = write(tmp_path, INVENTORY)
    monkeypatch.setenv("PACS_TUI_DATA_DIR", str(tmp_path / "data"))
    record_replacement(entry(path), tmp_path / "data" / "replacements.json")
    inventory = ui._load(path)
    assert inventory.server("db-001").bmc.address == "127.0.0.50"


RUNBOOK = """\
version: 1
name: dc-main move
start: 2026-12-01T20:00:00+00:00
phases:
  - name: Database firmware
    kind: firmware
    owner: Ben
    servers: "role=database"
    firmware: {bmc_firmware: "2.15.0"}
    planned_start: +00:00
    planned_end: +00:30
"""


@pytest.mark.parametrize(
    ("firmware", "expected"),
    [
        ("{bmc_firmware: 2.15}", "phases[0].firmware.bmc_firmware: expected a version as text"),
        ('{bios: "2.3"}', "phases[0].firmware.bios: unknown key (known: bios_version"),
    ],
)
def test_bad_firmware_plans_name_file_line_and_key(
    tmp_path: Path, firmware: str, expected: str
) -> None:
    from pacs_tui.runbook import RunbookError, load_runbook

    path = tmp_path / "runbook.yaml"
    path.write_text(RUNBOOK.replace('{bmc_firmware: "2.15.0"}', firmware))
    with pytest.raises(RunbookError) as caught:
        load_runbook(path)
    assert (
        [str(p) for p in caught.value.problems]
        == [str(p) for p in caught.value.problems if str(p).startswith(f"{path}:9: {expected}")]
        != []
    )
    path.write_text(RUNBOOK.replace("kind: firmware", "kind: rack"))
    with pytest.raises(RunbookError, match="only a phase of kind 'firmware' plans firmware"):
        load_runbook(path)


def test_runbook_planned_firmware_is_planned_other_versions_changed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inventory = write(tmp_path, INVENTORY)
    (tmp_path / "runbook.yaml").write_text(RUNBOOK)
    old = server("db-001", role="database")
    new_hw = dict(old.hardware, bmc_firmware="2.15.0")
    other_hw = dict(old.hardware, bmc_firmware="2.16.0")
    save_baseline(baseline(old), tmp_path / "before.json")
    args = argparse.Namespace(
        before=tmp_path / "before.json",
        after=tmp_path / "after.json",
        report=None,
        json=True,
        replacements=tmp_path / "replacements.json",
        runbook=tmp_path / "runbook.yaml",
        inventory=inventory,
    )
    record_replacement(entry(tmp_path / "elsewhere.yaml"), args.replacements)
    save_baseline(baseline(server("db-001", role="database", hardware=new_hw)), args.after)
    assert baseline_cli.run_compare(args) == 0
    findings = json.loads(capsys.readouterr().out)["findings"]
    bmc = next(f for f in findings if f["metric"] == "bmc_firmware")
    assert bmc["verdict"] == "planned" and "'Database firmware'" in bmc["detail"]
    save_baseline(baseline(server("db-001", role="database", hardware=other_hw)), args.after)
    assert baseline_cli.run_compare(args) == 1
    problem = json.loads(capsys.readouterr().out)["problems"][0]
    assert problem["verdict"] == "changed" and "plans 2.15.0" in problem["detail"]
