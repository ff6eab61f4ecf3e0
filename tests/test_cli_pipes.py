"""A reader that stops early (``| head``) ends every command quietly: no traceback.

Each command writes far more than a pipe buffer (64 KiB), so its writes do hit
the closed pipe; the reader is a real ``head`` or a pipe we close ourselves.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pacs_tui.batch.audit import AuditLog
from pacs_tui.cli import EXIT_BROKEN_PIPE

SERVERS = 3000
PACS_TUI = str(Path(sys.executable).with_name("pacs-tui"))


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("pipes")
    lines = ["version: 1", "sites: [{name: dc, kind: datacenter}]", "servers:"]
    rows = ["name,site,site_kind,role,bmc_address"]
    for i in range(SERVERS):
        address = f"10.{i // 62500}.{i // 250 % 250}.{i % 250 + 1}"
        lines.append(
            f"  - {{name: srv-{i:05d}, site: dc, role: archive, bmc: {{address: {address}}}}}"
        )
        rows.append(f"srv-{i:05d},dc,datacenter,archive,{address}")
    inventory = folder / "inventory.yaml"
    inventory.write_text("\n".join(lines) + "\n")
    csv = folder / "servers.csv"
    csv.write_text("\n".join(rows) + "\n")
    audit = folder / "audit.sqlite3"
    with AuditLog(audit, operator="pipe-test") as log:
        for i in range(SERVERS):
            log.record("b-1", "step", verb="on", server=f"srv-{i:05d}", detail="x" * 40)
    return {"inventory": inventory, "csv": csv, "audit": audit}


COMMANDS = {
    "inventory show": ["inventory", "show", "{inventory}"],
    "inventory show --json": ["inventory", "show", "--json", "{inventory}"],
    "inventory import": ["inventory", "import", "{csv}"],
    "audit": ["audit", "--db", "{audit}"],
    "audit --json": ["audit", "--json", "--db", "{audit}"],
}


@pytest.mark.parametrize("name", list(COMMANDS))
def test_reader_closing_early_ends_the_command_quietly(
    name: str, files: dict[str, Path], tmp_path: Path
) -> None:
    args = [a.format(**files) for a in COMMANDS[name]]
    process = subprocess.Popen(
        [PACS_TUI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stdout is not None and process.stderr is not None
    first = process.stdout.readline()
    process.stdout.close()  # the reader goes away with most of the output unread
    stderr = process.stderr.read()
    code = process.wait(timeout=120)
    assert first, stderr
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr
    assert stderr == ""
    # 141 when a write met the closed pipe; 0 when the kernel took the last write whole.
    assert code in (0, EXIT_BROKEN_PIPE)


def test_audit_piped_to_head_in_a_shell(files: dict[str, Path]) -> None:
    script = (
        f'"{PACS_TUI}" audit --db "{files["audit"]}" | head -1; echo "status ${{PIPESTATUS[0]}}"'
    )
    result = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    out = result.stdout.splitlines()
    assert len(out) == 2 and "srv-00000" in out[0], result.stdout
    assert out[1] == f"status {EXIT_BROKEN_PIPE}"
    assert result.stderr == ""


def test_a_reader_that_reads_everything_still_gets_exit_0(files: dict[str, Path]) -> None:
    result = subprocess.run(
        [PACS_TUI, "inventory", "waves", str(files["inventory"])],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0
    assert result.stdout.startswith("wave 1 (power on 3000): srv-00000")
