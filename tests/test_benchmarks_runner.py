"""``make bench``'s runner: it names every benchmark script, and a failing one fails the run.

The benchmarks themselves do not run here (minutes of CPU); the runner is
exercised on the real folder with ``--list`` and on small stand-in scripts.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "tests" / "benchmarks"


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.benchmarks", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_list_names_every_script_in_the_folder() -> None:
    listed = bench("--list")
    assert listed.returncode == 0, listed.stderr
    names = [line.split("\t")[0] for line in listed.stdout.splitlines()]
    scripts = sorted(p.stem for p in BENCHMARKS.glob("*.py") if not p.name.startswith("_"))
    assert names == scripts
    assert "dicom_association" in names
    assert all(len(line.split("\t")[1]) > 20 for line in listed.stdout.splitlines())


DECLARED = """
MEASURES = "what a stand-in measures, for the table"
LEAVES_OUT = "everything real"
QUICK_ARGS = ("--fast",)
"""


def stand_in(folder: Path, name: str, body: str, declared: str = DECLARED) -> None:
    (folder / f"{name}.py").write_text(
        f"import sys\n{textwrap.dedent(declared)}\n{textwrap.dedent(body)}"
    )


def test_a_failing_benchmark_shows_as_failed_and_the_run_exits_1(tmp_path: Path) -> None:
    stand_in(
        tmp_path,
        "good",
        """
        assert sys.argv[1:] == ["--fast"], sys.argv  # QUICK_ARGS are passed
        print("human output stays")
        print('BENCH-SUMMARY [{"name": "round trip", "value": 4.25, "unit": "ms"}]')
        """,
    )
    stand_in(tmp_path, "broken", "print('half way'); sys.exit(3)")
    stand_in(tmp_path, "silent", "print('no summary line')")
    (tmp_path / "_helper.py").write_text("raise SystemExit('helpers are not benchmarks')\n")
    run = bench("--folder", str(tmp_path))
    assert run.returncode == 1, run.stdout + run.stderr
    assert "human output stays" in run.stdout and "half way" in run.stdout
    lines = run.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("benchmark "))
    table = "\n".join(lines[header:])
    assert table.split("\n")[0].split(" | ")[-1] == "leaves out"
    assert "round trip" in table and "4.25" in table and "ms" in table
    rows = {line.split(" | ")[0].strip(): line for line in table.splitlines()}
    assert "FAILED: exit status 3" in rows["broken"] and "FAILED" not in rows["good"]
    assert "FAILED: printed no" in rows["silent"]
    assert "_helper" not in run.stdout
    assert "benchmark broken FAILED: exit status 3" in run.stderr
    assert "benchmark silent FAILED: printed no BENCH-SUMMARY line" in run.stderr


def test_a_script_that_does_not_say_what_it_leaves_out_is_refused(tmp_path: Path) -> None:
    stand_in(tmp_path, "vague", "print('x')", declared='MEASURES = "m"\nQUICK_ARGS = ()\n')
    run = bench("--folder", str(tmp_path), "--list")
    assert run.returncode == 2
    assert f"{tmp_path / 'vague.py'}: no module constant LEAVES_OUT" in run.stderr
    assert "Traceback" not in run.stderr


def test_a_benchmark_that_hangs_is_stopped_at_the_timeout(tmp_path: Path) -> None:
    stand_in(tmp_path, "hangs", "import time; print('started', flush=True); time.sleep(60)")
    run = bench("--folder", str(tmp_path), "--timeout", "1")
    assert run.returncode == 1
    assert "benchmark hangs FAILED: no result within 1 s (killed)" in run.stderr
