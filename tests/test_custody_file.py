"""The custody board file: validation, bounded reading, durable writes, the CLI on bad boards."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pacs_tui.batch.audit import AuditLog
from pacs_tui.cli import runbook as runbook_cli
from pacs_tui.custody import CustodyBoard, CustodyError, CustodyFileError, CustodyState
from pacs_tui.custody_file import MAX_BOARD_BYTES, board_lock

INVENTORY = """\
sites:
  - {name: dc-main, kind: datacenter}
servers:
  - {name: s1, site: dc-main, role: database}
  - {name: s2, site: dc-main, role: archive, depends_on: [s1]}
"""
NAMES = ("s1", "s2")

# (board text, what the message must say besides the file name)
MALFORMED = {
    "entry-not-object": ('{"servers": {"s1": "racked"}}', "server 's1': must be an object"),
    "unknown-state": (
        '{"servers": {"s1": {"state": "flying"}}}',
        "server 's1': field 'state': unknown custody state 'flying'",
    ),
    "top-level-list": ('[{"s1": "racked"}]', "must be a JSON object"),
    "truncated": ('{\n  "servers": {\n    "s1": {"sta', ":3:12: not valid JSON"),
}


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PACS_TUI_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


@pytest.fixture
def inventory_path(tmp_path: Path) -> Path:
    path = tmp_path / "inventory.yaml"
    path.write_text(INVENTORY)
    return path


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    runbook_cli.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return int(args.handler(args))


# -- validation ---------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_board_is_refused_naming_file_server_field_and_reason(
    case: str, tmp_path: Path
) -> None:
    text, reason = MALFORMED[case]
    path = tmp_path / "custody.json"
    path.write_text(text)
    with pytest.raises(CustodyFileError) as caught:
        CustodyBoard(NAMES, path=path)
    message = str(caught.value)
    assert message.startswith(str(path)), message
    assert reason in message


@pytest.mark.parametrize(
    ("servers", "reason"),
    [
        ({"s1": {}}, "server 's1': field 'state': missing"),
        ({"s1": {"state": 3}}, "unknown custody state 3"),
        ({"s1": {"state": "racked", "since": 5}}, "field 'since': must be a time stamp string"),
        ({"s1": {"state": "racked", "stat": "x"}}, "unknown field(s) 'stat'"),
    ],
)
def test_entry_fields_are_checked(servers: object, reason: str, tmp_path: Path) -> None:
    path = tmp_path / "custody.json"
    path.write_text(json.dumps({"version": 1, "servers": servers}))
    with pytest.raises(CustodyFileError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        CustodyBoard(NAMES, path=path)


def test_every_bad_entry_is_listed_and_nothing_half_loaded(tmp_path: Path) -> None:
    path = tmp_path / "custody.json"
    board = CustodyBoard(NAMES, path=path)
    board.advance(["s1"])  # shut-down, saved
    good = path.read_text()
    path.write_text(
        json.dumps({"servers": {"s1": {"state": "verified"}, "s2": "racked", "s3": []}})
    )
    with pytest.raises(CustodyFileError) as caught:
        board.reload()
    assert len(caught.value.problems) == 2
    assert "server 's2'" in str(caught.value) and "server 's3'" in str(caught.value)
    # All or nothing: s1's valid entry in the bad file was not taken.
    assert board.state("s1") is CustodyState.SHUT_DOWN
    path.write_text(good)
    board.reload()
    assert board.state("s1") is CustodyState.SHUT_DOWN


def test_duplicate_keys_and_versions_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "custody.json"
    path.write_text('{"servers": {"s1": {"state": "racked"}, "s1": {"state": "running"}}}')
    with pytest.raises(CustodyFileError, match="'s1' appears twice"):
        CustodyBoard(NAMES, path=path)
    path.write_text('{"version": 2, "servers": {}}')
    with pytest.raises(CustodyFileError, match="version: 2 is not supported"):
        CustodyBoard(NAMES, path=path)
    path.write_text('{"version": 1}')
    with pytest.raises(CustodyFileError, match="servers: missing"):
        CustodyBoard(NAMES, path=path)
    path.write_bytes(b'{"servers": {"s\xff": {"state": "racked"}}}')
    with pytest.raises(CustodyFileError, match="byte 15: not UTF-8"):
        CustodyBoard(NAMES, path=path)


def test_not_a_regular_file_or_too_big_is_refused_without_reading(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)  # no writer: a plain open() would wait for ever
    with pytest.raises(CustodyFileError, match="not a regular file \\(a FIFO\\)"):
        CustodyBoard(NAMES, path=fifo)
    directory = tmp_path / "dir.json"
    directory.mkdir()
    with pytest.raises(CustodyFileError, match="not a regular file \\(a directory\\)"):
        CustodyBoard(NAMES, path=directory)
    with pytest.raises(CustodyFileError, match="a character device"):
        CustodyBoard(NAMES, path=Path("/dev/zero"))
    big = tmp_path / "big.json"
    with big.open("wb") as out:
        out.truncate(MAX_BOARD_BYTES + 1)  # sparse: costs no disk
    with pytest.raises(CustodyFileError, match=f"over the {MAX_BOARD_BYTES} byte cap"):
        CustodyBoard(NAMES, path=big)


def test_a_missing_file_is_a_board_where_every_server_runs(tmp_path: Path) -> None:
    board = CustodyBoard(NAMES, path=tmp_path / "none" / "custody.json")
    assert set(board.states().values()) == {CustodyState.RUNNING}


# -- writing ------------------------------------------------------------------------


def test_a_change_is_refused_on_a_bad_file_and_the_file_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "custody.json"
    board = CustodyBoard(NAMES, path=path, audit=AuditLog(tmp_path / "audit.sqlite3"))
    path.write_text('{"servers": {"s1": "racked"}}')  # hand-edited meanwhile
    with pytest.raises(CustodyFileError):
        board.advance(["s2"])
    assert path.read_text() == '{"servers": {"s1": "racked"}}'
    assert board.state("s2") is CustodyState.RUNNING
    assert board.audit.events() == []
    board.close()


def test_a_failed_write_keeps_the_old_file_and_the_old_states(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "board" / "custody.json"
    board = CustodyBoard(NAMES, path=path, audit=AuditLog(tmp_path / "audit.sqlite3"))
    board.advance(["s1"])
    before = path.read_bytes()

    def failing_disk(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_disk)
    with pytest.raises(OSError, match="Input/output error"):
        board.advance(["s1"])
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert board.state("s1") is CustodyState.SHUT_DOWN  # not the unsaved in-transit
    assert sorted(p.name for p in path.parent.iterdir()) == [".custody.json.lock", "custody.json"]
    assert [e.call for e in board.audit.events()] == ["running -> shut-down"]
    board.close()


def test_a_failed_rename_keeps_the_old_file_and_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "board" / "custody.json"
    board = CustodyBoard(NAMES, path=path, audit=AuditLog(tmp_path / "audit.sqlite3"))
    board.advance(["s1"])
    before = path.read_bytes()

    def full_disk(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OSError, match="No space left"):
        board.advance(["s1"])
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert board.state("s1") is CustodyState.SHUT_DOWN
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []
    board.close()


def test_the_write_is_fsynced_before_the_rename_and_the_directory_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "custody.json"
    board = CustodyBoard(NAMES, path=path, audit=AuditLog(tmp_path / "audit.sqlite3"))
    calls: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        kind = "dir" if os.path.isdir(f"/proc/self/fd/{fd}") else "file"
        calls.append(f"fsync-{kind}")
        real_fsync(fd)

    def replace(src: str, dst: str) -> None:
        calls.append("replace")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    board.advance(["s1"])
    monkeypatch.undo()
    assert calls == ["fsync-file", "replace", "fsync-dir"]
    board.close()


def test_entries_of_servers_another_inventory_holds_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "custody.json"
    with AuditLog(tmp_path / "audit.sqlite3") as audit:
        CustodyBoard(["s1", "other-9"], path=path, audit=audit).advance(["other-9"])
        mine = CustodyBoard(NAMES, path=path, audit=audit)
        assert mine.unknown == ["other-9"]
        mine.advance(["s1"])
    saved = json.loads(path.read_text())["servers"]
    assert saved["other-9"]["state"] == "shut-down" and saved["s1"]["state"] == "shut-down"


def test_a_held_lock_makes_a_change_wait_then_give_up_without_changing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "custody.json"
    board = CustodyBoard(NAMES, path=path, audit=AuditLog(tmp_path / "audit.sqlite3"))
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, pathlib\n"
            "from pacs_tui.custody_file import board_lock\n"
            "with board_lock(pathlib.Path(sys.argv[1])):\n"
            "    print('held', flush=True); sys.stdin.read()\n",
            str(path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        monkeypatch.setattr("pacs_tui.custody.board_lock", lambda p: board_lock(p, wait_s=0.3))
        with pytest.raises(CustodyError, match="another custody change has held the board"):
            board.advance(["s1"])
        monkeypatch.undo()
        assert not path.exists() and board.state("s1") is CustodyState.RUNNING
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=10)
    board.advance(["s1"])  # free again
    assert board.state("s1") is CustodyState.SHUT_DOWN
    with board_lock(path, wait_s=0.1):
        pass
    board.close()


# -- the CLI ------------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(MALFORMED))
@pytest.mark.parametrize("action", ["show", "advance"])
def test_cli_exits_2_naming_the_file_and_reason(
    case: str, action: str, inventory_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text, reason = MALFORMED[case]
    board = tmp_path / "custody.json"
    board.write_text(text)
    extra = ["-s", "s1"] if action == "advance" else []
    code = cli("custody", action, "-i", str(inventory_path), "--board", str(board), *extra)
    out, err = capsys.readouterr()
    assert code == 2
    assert f"pacs-tui custody: error: {board}" in err and reason in err
    assert "Traceback" not in err and out == ""
    assert board.read_text() == text  # an advance did not overwrite it


@pytest.mark.parametrize("kind", ["fifo", "directory", "dev-zero"])
def test_cli_refuses_a_board_that_is_not_a_file_without_hanging(
    kind: str, inventory_path: Path, tmp_path: Path
) -> None:
    board = {"fifo": tmp_path / "fifo", "directory": tmp_path / "dir", "dev-zero": None}[kind]
    if kind == "fifo":
        assert board is not None
        os.mkfifo(board)
    elif kind == "directory":
        assert board is not None
        board.mkdir()
    target = str(board) if board is not None else "/dev/zero"
    done = subprocess.run(
        [sys.executable, "-m", "pacs_tui", "custody", "show", "-i", str(inventory_path),
         "--board", target],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert f"{target}: not a regular file" in done.stderr
    assert "Traceback" not in done.stderr


def test_wall_refuses_a_bad_board_at_start_with_exit_2(
    inventory_path: Path, tmp_path: Path
) -> None:
    board = tmp_path / "custody.json"
    board.write_text('{"servers": {"s1": "racked"}}')
    done = subprocess.run(
        [sys.executable, "-m", "pacs_tui", "wall", "-i", str(inventory_path), "--board", str(board)],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert f"{board}: server 's1': must be an object" in done.stderr
    assert "Traceback" not in done.stderr
