"""Baseline file format, verdict rules and the report, on hand-built baselines."""

from __future__ import annotations

import argparse
import json
import re
import xml.etree.ElementTree as ET
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from pacs_tui.baseline import (
    Baseline,
    BaselineError,
    Samples,
    ServerBaseline,
    Tolerances,
    compare_baselines,
    judge_latency,
    load_baseline,
    save_baseline,
    write_report,
)
from pacs_tui.cli import baseline as baseline_cli


def hardware(serial: str, *macs: str) -> dict[str, Any]:
    return {
        "serial_number": serial,
        "model": "MC-R640",
        "manufacturer": "Meridian Compute",
        "bios_version": "2.1",
        "bmc_firmware": "2.14.1",
        "mac_addresses": list(macs),
    }


def server(name: str, role: str = "archive", **changes: Any) -> ServerBaseline:
    fields: dict[str, Any] = {
        "name": name,
        "site": "dc-main",
        "role": role,
        "echo": Samples((1.0, 1.1, 0.9, 1.0, 1.2)),
        "find": Samples((20.0, 21.0, 19.5, 20.5, 22.0)),
        "study_count": 1000,
        "redfish": Samples((3.0, 3.2, 2.9, 3.1, 3.0)),
        "hardware": hardware(f"SN-{name}", f"02:00:00:00:{sum(map(ord, name)) % 256:02x}:01"),
        "services": {"pacs": "active"},
        "errors": (),
    }
    fields.update(changes)
    return ServerBaseline(**fields)


def baseline(*servers: ServerBaseline, label: str = "before") -> Baseline:
    return Baseline(
        version=1,
        label=label,
        captured_at="2026-05-01T20:00:00Z",
        inventory="/srv/inventory.yaml",
        samples=5,
        servers={s.name: s for s in servers},
        find_query={"StudyDate": "20260430", "ModalitiesInStudy": "NM"},
        study_window=(date(2026, 4, 24), date(2026, 4, 30)),
    )


def test_samples_median_and_p95() -> None:
    samples = Samples(tuple(float(v) for v in range(1, 21)))
    assert samples.count == 20
    assert samples.median == 10.5
    assert samples.p95 == 19.0  # nearest rank: the 19th of 20
    assert Samples((5.0, 1.0, 3.0)).p95 == 5.0
    with pytest.raises(ValueError):
        Samples(())


def test_latency_verdicts_need_ratio_and_floor() -> None:
    t = Tolerances()
    base = Samples((1.0,) * 20)
    # +300 % but only 3 ms: scheduling noise on a fast metric, within the 5 ms floor.
    assert judge_latency(base, Samples((4.0,) * 20), t)[0] == "same"
    # 7 ms is beyond both the ratio and the floor.
    verdict, detail = judge_latency(base, Samples((7.0,) * 20), t)
    assert verdict == "worse" and "median" in detail
    assert judge_latency(Samples((20.0,) * 12), Samples((10.0,) * 12), t)[0] == "better"
    # One outlier moves neither the median nor (with 20 samples) the nearest-rank p95.
    spiky = Samples((1.0,) * 19 + (50.0,))
    assert judge_latency(base, spiky, t)[0] == "same"
    # A slow tail: p95 worse while the median holds.
    tail = Samples((1.0,) * 17 + (30.0,) * 3)
    verdict, detail = judge_latency(base, tail, t)
    assert verdict == "worse" and "p95" in detail and "median" not in detail.split(":")[0]
    # With fewer than 20 samples the nearest-rank p95 is the maximum: one sample, not judged.
    assert judge_latency(Samples((1.0,) * 19), Samples((1.0,) * 16 + (30.0,) * 3), t)[0] == "same"


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    before = baseline(server("arch-001"), server("rtr-001", "dicom-router", find=None))
    path = tmp_path / "before.json"
    save_baseline(before, path)
    data = json.loads(path.read_text())
    assert data["format"] == "pacs-tui-baseline" and data["version"] == 1
    assert data["servers"]["arch-001"]["echo"]["median_ms"] == 1.0
    assert load_baseline(path) == before
    assert [p.name for p in tmp_path.iterdir()] == ["before.json"]  # no partial file left


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (lambda d: d.update(format="something-else"), "format"),
        (lambda d: d.update(version=99), "version"),
        (lambda d: d.pop("servers"), "servers"),
        (
            lambda d: d["servers"]["arch-001"]["echo"]["values_ms"].__setitem__(1, "fast"),
            "servers.arch-001.echo.values_ms[1]",
        ),
        (
            lambda d: d["servers"]["arch-001"]["echo"].update(values_ms=[]),
            "servers.arch-001.echo.values_ms",
        ),
        (lambda d: d["servers"]["arch-001"].update(study_count=-3), "servers.arch-001.study_count"),
        (lambda d: d["servers"]["arch-001"].pop("role"), "servers.arch-001.role"),
        (
            lambda d: d["servers"]["arch-001"]["hardware"].update(mac_addresses="02:00"),
            "servers.arch-001.hardware.mac_addresses",
        ),
        (
            lambda d: d.update(study_window={"from": "2026-05-01", "to": "yesterday"}),
            "study_window.to",
        ),
    ],
)
def test_bad_baseline_files_name_the_field(tmp_path: Path, mutate: Any, where: str) -> None:
    path = tmp_path / "bad.json"
    save_baseline(baseline(server("arch-001")), path)
    data = json.loads(path.read_text())
    mutate(data)
    path.write_text(json.dumps(data))
    with pytest.raises(BaselineError) as caught:
        load_baseline(path)
    assert caught.value.where == where
    assert str(caught.value).startswith(f"{path}: {where}: ")


def test_unreadable_baseline_files(tmp_path: Path) -> None:
    cases = {
        tmp_path / "missing.json": "no such file",
        tmp_path: "is a directory",
    }
    garbage = tmp_path / "garbage.json"
    garbage.write_text('{"format": "pacs-tui-baseline",\n  "version": }')
    cases[garbage] = "line 2: not JSON"
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00")
    cases[binary] = "not UTF-8"
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    cases[listed] = "(top level): expected an object, got a list"
    for path, message in cases.items():
        with pytest.raises(BaselineError, match=re.escape(message)):
            load_baseline(path)


def verdicts(comparison: Any) -> dict[tuple[str, str, str], str]:
    return {(f.scope, f.name, f.metric): f.verdict for f in comparison.findings}


def test_identical_baselines_are_same() -> None:
    before = baseline(server("arch-001"), server("img-001", "image-manager"))
    comparison = compare_baselines(before, before)
    assert comparison.ok and comparison.problems() == []
    assert set(verdicts(comparison).values()) == {"same"}


def test_missing_new_swapped_fewer_studies_and_failed_unit() -> None:
    a, b = server("arch-001"), server("arch-002")
    before = baseline(a, b, server("img-001", "image-manager"), server("web-001", "web-viewer"))
    after = baseline(
        server("arch-001", hardware=b.hardware),  # arch-002's box in arch-001's slot
        server("arch-002", hardware=a.hardware),
        server("img-001", "image-manager", study_count=990, services={"pacs": "failed"}),
        server("gw-001", "edge-gateway"),
        label="after",
    )
    comparison = compare_baselines(before, after)
    v = verdicts(comparison)
    assert not comparison.ok
    assert v[("server", "web-001", "presence")] == "missing"
    assert v[("fleet", "fleet", "servers")] == "missing"
    assert v[("role", "web-viewer", "presence")] == "missing"
    assert v[("server", "gw-001", "presence")] == "new"
    assert v[("role", "edge-gateway", "presence")] == "new"
    for name, other in (("arch-001", "arch-002"), ("arch-002", "arch-001")):
        assert v[("server", name, "serial_number")] == "changed"
        assert v[("server", name, "mac_addresses")] == "changed"
        serial = next(
            f for f in comparison.findings if f.name == name and f.metric == "serial_number"
        )
        assert serial.before == f"SN-{name}" and serial.after == f"SN-{other}"
        assert f"swapped with {other}" in serial.detail
    assert v[("server", "arch-001", "model")] == "same"
    assert v[("server", "img-001", "study_count")] == "worse"
    assert v[("role", "image-manager", "study_count")] == "worse"
    assert v[("server", "img-001", "unit:pacs")] == "worse"
    # Latency did not change anywhere.
    assert {v[k] for k in v if k[2] in ("echo", "find", "redfish")} == {"same"}
    problems = comparison.problems()
    assert problems[0].scope == "fleet"
    assert all(p.verdict in ("worse", "missing", "changed") for p in problems)
    assert comparison.to_json()["ok"] is False


def test_different_study_windows_are_not_compared() -> None:
    before = baseline(server("arch-001"))
    after = Baseline(**{**vars(before), "study_window": (date(2026, 5, 1), date(2026, 5, 7))})
    v = verdicts(compare_baselines(before, after))
    assert v[("fleet", "fleet", "study_window")] == "changed"
    assert ("server", "arch-001", "study_count") not in v


def test_report_is_self_contained(tmp_path: Path) -> None:
    before = baseline(server("arch-001"), server("img-001", "image-manager"))
    after = baseline(
        server("arch-001", find=Samples((90.0, 95.0, 91.0, 92.0, 93.0))),
        server("img-001", "image-manager"),
        label="after <move>",
    )
    comparison = compare_baselines(before, after)
    md, page = write_report(comparison, before, after, tmp_path / "report")
    markdown = md.read_text()
    assert "NOT PROVEN: 2 problem(s)" in markdown
    assert "- **worse** role `archive` find:" in markdown
    assert "| archive | C-FIND latency | 20.50 / 22.00 ms | 92.00 / 95.00 ms | worse |" in markdown
    html = page.read_text()
    assert "<script" not in html and "<link" not in html and "src=" not in html
    assert "after &lt;move&gt;" in html  # labels are escaped
    svgs = re.findall(r"<svg.*?</svg>", html, re.S)
    assert len(svgs) == 3  # C-ECHO, C-FIND, Redfish
    for svg in svgs:
        ET.fromstring(svg)  # well-formed
    assert "C-FIND latency per role" in svgs[1] and ">worse<" in svgs[1]


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    baseline_cli.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    code: int = args.handler(args)
    return code


def test_compare_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = baseline(server("arch-001"))
    worse = baseline(server("arch-001", study_count=10))
    for name, value in (("before", before), ("worse", worse)):
        save_baseline(value, tmp_path / f"{name}.json")
    assert (
        run_cli("baseline", "compare", str(tmp_path / "before.json"), str(tmp_path / "before.json"))
        == 0
    )
    assert "same or better" in capsys.readouterr().out
    code = run_cli(
        "baseline",
        "compare",
        str(tmp_path / "before.json"),
        str(tmp_path / "worse.json"),
        "--json",
        "--report",
        str(tmp_path / "r"),
    )
    assert code == 1
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is False
    assert {(p["name"], p["metric"]) for p in out["problems"]} == {
        ("arch-001", "study_count"),
        ("archive", "study_count"),
    }
    assert (tmp_path / "r" / "report.html").is_file()
    (tmp_path / "broken.json").write_text("{")
    assert (
        run_cli("baseline", "compare", str(tmp_path / "before.json"), str(tmp_path / "broken.json"))
        == 2
    )
    assert "broken.json: line 1: not JSON" in capsys.readouterr().err
