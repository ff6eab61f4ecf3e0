"""User-supplied files: FIFOs, devices, huge files, bad bytes, each one clear sentence.

The command-line cases run ``pacs-tui`` as a child process with a deadline, so
a regression that hangs on a FIFO fails the test instead of hanging the suite.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pacs_tui.credentials import CredentialError, resolve
from pacs_tui.input_file import (
    INVENTORY,
    MIB,
    FileKind,
    InputFileError,
    check_file,
    read_text,
)
from pacs_tui.inventory import InventoryError, load_inventory, load_inventory_text

GOOD = textwrap.dedent(
    """\
    version: 1
    sites: [{name: dc, kind: datacenter}]
    servers:
      - {name: db-1, site: dc, role: database}
    """
)


def pacs_tui(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run the command line in a child; a hang becomes a test failure after ``timeout``."""
    return subprocess.run(
        [sys.executable, "-m", "pacs_tui", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


# -- the reader itself ------------------------------------------------------------------


def test_fifo_without_writer_is_refused_at_once(tmp_path: Path) -> None:
    path = fifo(tmp_path / "pipe.yaml")
    started = time.monotonic()
    with pytest.raises(InputFileError) as caught:
        read_text(path, INVENTORY)
    assert time.monotonic() - started < 2.0
    assert str(caught.value) == f"{path}: is a FIFO, not a regular file"


@pytest.mark.parametrize(
    ("name", "what"),
    [("/dev/zero", "a character device"), ("/dev/null", "a character device")],
)
def test_devices_are_refused_by_name(name: str, what: str) -> None:
    with pytest.raises(InputFileError, match=f"is {what}, not a regular file"):
        read_text(name, INVENTORY)


def test_directory_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="is a directory, not a regular file"):
        read_text(tmp_path, INVENTORY)
    with pytest.raises(InputFileError, match="no such file"):
        read_text(tmp_path / "absent.yaml", INVENTORY)


def test_size_cap_names_the_kind_and_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(b"#" * (2 * MIB + 5))
    with pytest.raises(InputFileError) as caught:
        read_text(path, FileKind("inventory", MIB))
    assert str(caught.value) == f"{path}: is 2.0 MiB; an inventory may be at most 1.0 MiB"


def test_bad_utf8_and_nul_are_located_by_line_and_column(tmp_path: Path) -> None:
    latin = tmp_path / "latin1.yaml"
    latin.write_bytes("version: 1\nsites: [{name: Zürich}]\n".encode("latin-1"))
    with pytest.raises(InputFileError) as caught:
        read_text(latin, INVENTORY)
    # "sites: [{name: Z" is 16 characters: the bad byte is column 17 of line 2.
    assert (caught.value.line, caught.value.column) == (2, 17)
    assert str(caught.value).startswith(f"{latin}:2:17: not UTF-8 text (byte 0xfc)")

    nul = tmp_path / "nul.yaml"
    nul.write_bytes("version: 1\n# é\nsites: [\x00]\n".encode())
    with pytest.raises(InputFileError) as caught:
        read_text(nul, INVENTORY)
    assert str(caught.value) == f"{nul}:3:9: holds a NUL byte; not a text file"


def test_a_byte_order_mark_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + GOOD.encode())
    assert read_text(path, INVENTORY) == GOOD


def test_check_file_does_not_read_but_still_refuses_a_fifo(tmp_path: Path) -> None:
    path = tmp_path / "ca.pem"
    path.write_text("-----BEGIN CERTIFICATE-----\n")
    assert check_file(path, INVENTORY).st_size == 28
    with pytest.raises(InputFileError, match="is a FIFO"):
        check_file(fifo(tmp_path / "fifo.pem"), INVENTORY)


# -- inventory, through the command line --------------------------------------------------


def test_inventory_check_of_dev_zero_is_a_clear_error() -> None:
    result = pacs_tui("inventory", "check", "/dev/zero")
    assert result.returncode == 2
    assert "/dev/zero: is a character device, not a regular file" in result.stderr
    assert "Traceback" not in result.stderr and "MemoryError" not in result.stderr


def test_inventory_check_of_a_fifo_without_writer_does_not_hang(tmp_path: Path) -> None:
    path = fifo(tmp_path / "inventory.yaml")
    result = pacs_tui("inventory", "check", str(path), timeout=30)
    assert result.returncode == 2
    assert f"{path}: is a FIFO, not a regular file" in result.stderr


def test_inventory_over_the_cap_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    server = "  - {name: s%07d, site: dc, role: archive, bmc: {address: 10.1.2.3}}\n"
    with path.open("w") as handle:
        handle.write("version: 1\nsites: [{name: dc, kind: datacenter}]\nservers:\n")
        count = INVENTORY.max_bytes // len(server % 0) + 1000
        handle.writelines(server % i for i in range(count))
    started = time.monotonic()
    result = pacs_tui("inventory", "check", str(path))
    elapsed = time.monotonic() - started
    assert result.returncode == 2
    assert "; an inventory may be at most 8.0 MiB" in result.stderr
    assert elapsed < 15.0, f"refusing took {elapsed:.1f} s: the file was parsed"


def test_inventory_not_utf8_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_bytes(GOOD.replace("db-1", "db-\xe91").encode("latin-1"))
    result = pacs_tui("inventory", "check", str(path))
    assert result.returncode == 2
    assert f"{path}:4:15: not UTF-8 text (byte 0xe9)" in result.stderr
    path.write_bytes(GOOD.replace("db-1", "db\x001").encode())
    with pytest.raises(InventoryError) as caught:
        load_inventory(path)
    assert str(caught.value.problems[0]) == f"{path}:4:14: holds a NUL byte; not a text file"


def test_csv_import_of_a_fifo_and_of_bad_bytes(tmp_path: Path) -> None:
    result = pacs_tui("inventory", "import", str(fifo(tmp_path / "servers.csv")), timeout=30)
    assert result.returncode == 2
    assert "servers.csv: is a FIFO, not a regular file" in result.stderr
    csv = tmp_path / "export.csv"
    csv.write_bytes(b"name,site,site_kind,role\nsrv-\xff,dc,datacenter,archive\n")
    result = pacs_tui("inventory", "import", str(csv))
    assert result.returncode == 2
    assert f"{csv}:2:5: not UTF-8 text (byte 0xff)" in result.stderr
    assert "Traceback" not in result.stderr


# -- files the inventory points at ----------------------------------------------------------


def test_fifo_credential_and_ca_files_are_named_not_missing(tmp_path: Path) -> None:
    fifo(tmp_path / "secrets.yaml")
    fifo(tmp_path / "ca.pem")
    text = textwrap.dedent(
        """\
        credentials:
          bmc: {file: secrets.yaml}
        sites: [{name: dc, kind: datacenter}]
        servers:
          - name: db-1
            site: dc
            role: database
            bmc: {address: 10.0.0.1, credentials: bmc, ca_file: ca.pem}
        """
    )
    with pytest.raises(InventoryError) as caught:
        load_inventory_text(text, tmp_path / "inventory.yaml")
    found = [str(p) for p in caught.value.problems]
    assert (
        f"{tmp_path / 'inventory.yaml'}:2: credentials.bmc.file: file "
        + str(tmp_path / "secrets.yaml")
        + " is a FIFO, not a regular file"
        in found
    )
    assert any(
        p.endswith(f"ca_file: file {tmp_path / 'ca.pem'} is a FIFO, not a regular file")
        for p in found
    ), found
    assert not any("missing" in p for p in found)


def test_secrets_file_swapped_for_a_fifo_at_resolve_time(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.yaml"
    secrets.write_text("bmc: {password: s3cret-pass}\n")
    secrets.chmod(0o600)
    inventory = load_inventory_text(
        "credentials:\n  bmc: {file: secrets.yaml}\n"
        "sites: [{name: dc, kind: datacenter}]\n"
        "servers:\n  - {name: db-1, site: dc, role: database}\n",
        tmp_path / "inventory.yaml",
    )
    secrets.unlink()
    fifo(secrets)
    with pytest.raises(CredentialError) as caught:
        resolve(inventory, "bmc")
    assert str(caught.value) == (
        f"credential 'bmc' (secrets file {secrets}): is a FIFO, not a regular file"
    )
    secrets.unlink()
    secrets.write_bytes(b"bmc: {password: caf\xe9}\n")
    secrets.chmod(0o600)
    with pytest.raises(CredentialError) as caught:
        resolve(inventory, "bmc")
    assert str(caught.value).endswith("is not UTF-8 text (line 1, column 20)")
    assert "caf" not in str(caught.value)


# -- other files an operator hands over -------------------------------------------------------


def test_baseline_runbook_and_faults_files_that_are_fifos(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(GOOD)
    pipe = fifo(tmp_path / "pipe")
    for args in (
        ("baseline", "compare", str(pipe), str(pipe)),
        ("runbook", "check", str(pipe)),
        ("sim", "--faults", str(pipe), "--out", str(tmp_path / "sim")),
    ):
        result = pacs_tui(*args, timeout=30)
        assert result.returncode == 2, (args, result.stderr)
        assert f"{pipe}: is a FIFO, not a regular file" in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr


@pytest.mark.timeout(30)
def test_keymap_config_and_theme_files_that_are_fifos_do_not_stop_the_ui(tmp_path: Path) -> None:
    from pacs_tui_themes.loader import load_themes
    from pacs_tui_widgets.keymap import load_keymap

    config = fifo(tmp_path / "config.yaml")
    keymap = load_keymap(config)
    assert keymap.keymap == {}
    assert keymap.problems == [f"{config}: is a FIFO, not a regular file"]

    themes = tmp_path / "themes"
    themes.mkdir()
    fifo(themes / "night.yaml")
    (themes / "latin1.yaml").write_bytes(b"name: caf\xe9\n")
    found = load_themes(themes)
    shown = sorted(str(p) for p in found.problems)
    assert shown == [
        f"{themes / 'latin1.yaml'}:1: not UTF-8 text (byte 0xe9); save the file as UTF-8 (column 10)",
        f"{themes / 'night.yaml'}: is a FIFO, not a regular file",
    ]


def test_the_inventory_cap_leaves_room_for_thirty_thousand_servers(tmp_path: Path) -> None:
    from pacs_tui.sim.datacenter import SimOptions, SimulatedDataCenter, render_inventory

    # The simulator's own rendering of 300 servers, scaled: tens of thousands must fit.
    text = render_inventory(SimulatedDataCenter(SimOptions(servers=300, tls=False)))
    per_server = len(text.encode()) / 300
    assert per_server * 30_000 < INVENTORY.max_bytes
