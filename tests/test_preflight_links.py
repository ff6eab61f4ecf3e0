"""Site links: inventory checks, preflight against a peer we did not write, verdict rules.

The peers are pynetdicom's own SCP (Verification and Study Root FIND) on a
loopback address and, where dcmtk is installed, its dcmqrscp archive (the
test skips, saying why, where it is not).
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind, Verification

from dcmqrscp_peer import SyntheticStudy, dcmqrscp
from dicom_peers import loopback_address
from pacs_tui.cli import main
from pacs_tui.inventory import SiteLink, load_inventory
from pacs_tui.links import LinkReport, LinkState, SampleSeries, Thresholds, judge_link
from pacs_tui.links.measure import PROBE_STUDY_UID

AET = "SITEGW"


@contextmanager
def pynetdicom_gateway(find: Callable[[evt.Event], Any]) -> Iterator[tuple[str, int]]:
    """pynetdicom's SCP as a site's gateway AE, on a loopback address of its own."""
    ae = AE(ae_title=AET)
    ae.add_supported_context(Verification)
    ae.add_supported_context(StudyRootQueryRetrieveInformationModelFind)
    ae.network_timeout = ae.acse_timeout = ae.dimse_timeout = 10
    address = loopback_address()
    server = ae.start_server((address, 0), block=False, evt_handlers=[(evt.EVT_C_FIND, find)])
    try:
        yield address, int(server.server_address[1])
    finally:
        server.shutdown()


def inventory(tmp_path: Path, links: str) -> Path:
    path = tmp_path / "inventory.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            sites:
              - {name: dc-main, kind: datacenter}
              - name: clinic-oak
                kind: clinic
                links:
            """
        )
        + textwrap.indent(textwrap.dedent(links), " " * 6)
        + "servers:\n  - {name: stor-1, site: dc-main, role: storage}\n"
    )
    return path


def one_link(tmp_path: Path, address: str, port: int) -> Path:
    return inventory(
        tmp_path,
        f"""\
        - name: wan-1
          kind: mpls
          expected_latency_ms: 5
          dicom: {{host: {address}, port: {port}, ae_title: {AET}}}
          tcp: "{address}:{port}"
        """,
    )


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["preflight", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _no_match(event: evt.Event) -> Iterator[tuple[int, Dataset | None]]:
    asked = event.identifier.StudyInstanceUID
    assert asked == PROBE_STUDY_UID  # the bounded probe query, nothing broader
    yield 0x0000, None


def _failing(event: evt.Event) -> Iterator[tuple[int, Dataset | None]]:
    yield 0xC001, None


def _truncated(event: evt.Event) -> Iterator[tuple[int, Dataset | None]]:
    yield 0xFE00, None  # a result limit: an answer cut short


def test_preflight_against_pynetdicom_is_ok(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pynetdicom_gateway(_no_match) as (address, port):
        code, out, _ = run(capsys, "-i", str(one_link(tmp_path, address, port)), "-n", "4")
    assert code == 0, out
    row = next(line for line in out.splitlines() if line.startswith("clinic-oak"))
    assert row.split()[:4] == ["clinic-oak", "clinic", "wan-1", "(mpls)"]
    assert row.split()[-2:] == ["ok", "-"]
    assert out.splitlines()[-1] == "1 link(s) of 1 site(s): 1 ok"


def test_preflight_against_dcmtk_dcmqrscp_is_ok(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    study = SyntheticStudy("1.2.826.0.1.3680043.10.543.7", "20261127", "CT", "P7")
    with dcmqrscp(tmp_path, [study]) as peer:
        path = inventory(
            tmp_path,
            f"""\
            - name: wan-1
              expected_latency_ms: 5
              dicom: {{host: {peer.address}, port: {peer.port}, ae_title: {peer.aet}}}
              tcp: "{peer.address}:{peer.port}"
            """,
        )
        code, out, _ = run(capsys, "-i", str(path), "-n", "4", "--json")
    row = json.loads(out)["links"][0]
    assert code == 0, row["reasons"]
    assert (row["verdict"], row["find"]["state"]) == ("ok", "ok")
    assert row["find"]["detail"] == "0 studies"  # the probe UID matches nothing


@pytest.mark.parametrize("find", [_failing, _truncated], ids=["failure-status", "truncated"])
def test_a_failed_or_truncated_c_find_is_unknown_never_ok(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], find: Callable[[evt.Event], Any]
) -> None:
    with pynetdicom_gateway(find) as (address, port):
        code, out, _ = run(
            capsys, "-i", str(one_link(tmp_path, address, port)), "-n", "3", "--json"
        )
    row = json.loads(out)["links"][0]
    assert code == 1
    assert row["verdict"] == "unknown"
    assert row["find"]["state"] == "unknown"
    assert row["echo"]["answered"] == 3 and row["tcp"]["answered"] == 3


def test_bad_links_are_refused_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = inventory(
        tmp_path,
        """\
        - name: wan-1
          expected_latency_ms: fast
          dicom: {host: 10.0.0.1, ae_title: "A\\\\B"}
          tcp: "10.0.0.1"
        - name: wan-2
          kind: vpn
          expected_latency_ms: 4
        """,
    )
    code, out, err = run(capsys, "-i", str(path))
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        f"{path}:7: sites[1].links[0].expected_latency_ms: expected a number of milliseconds, "
        "got 'fast'",
        f"{path}:9: sites[1].links[0].tcp: '10.0.0.1' is not HOST:PORT "
        "(write an IPv6 address as [ADDR]:PORT)",
        f"{path}:8: sites[1].links[0].dicom.ae_title: AE title 'A\\\\B' contains a backslash "
        "or a control character",
        f"{path}:10: sites[1].links[1]: a link needs an endpoint that proves it: dicom, tcp or both",
    ]


def test_bad_input_exits_2_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = one_link(tmp_path, "127.0.0.1", 9)
    (tmp_path / "bad.json").write_text('{"format": "something else"}')
    for argv, message in (
        (["--baseline", str(tmp_path / "bad.json")], "not a link baseline"),
        (["--baseline", str(tmp_path / "none.json")], "no such file"),
        (["--samples", "0"], "--samples must be 1..1000"),
        (["--site", "clinic-nope"], "no site 'clinic-nope'"),
        (["--site", "dc-main"], "no site links to measure"),
    ):
        code, out, err = run(capsys, "-i", str(path), *argv)
        assert (code, out) == (2, ""), argv
        assert len(err.splitlines()) == 1 and message in err, err
        assert err.startswith("pacs-tui preflight: error: ")


def test_ipv6_and_names_in_tcp_endpoints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = inventory(
        tmp_path,
        """\
        - {name: a, expected_latency_ms: 3, tcp: "[::1]:22"}
        - {name: b, expected_latency_ms: 3, tcp: "router.clinic.example:443"}
        """,
    )
    links = load_inventory(path).sites["clinic-oak"].links
    assert [(link.tcp.host, link.tcp.port) for link in links if link.tcp] == [
        ("::1", 22),
        ("router.clinic.example", 443),
    ]
    capsys.readouterr()
    assert main(["inventory", "check", str(path)]) == 0
    assert "2 sites, 2 site links, dependency depth 1" in capsys.readouterr().out


LINK = SiteLink("wan-1", "vpn", 5.0)


def report(verdict: str, site: str = "clinic-oak", name: str = "wan-1") -> LinkReport:
    link = SiteLink(name, "vpn", 5.0)
    return LinkReport(site, "clinic", link, None, None, None, verdict)  # type: ignore[arg-type]


def test_our_own_lateness_makes_unknown_never_degraded() -> None:
    # 400 ms medians over a 80 ms limit, but our loop was 390 ms late meanwhile.
    late = SampleSeries(5, (400.0,) * 5, lag_ms=390.0)
    assert judge_link(LINK, None, late, None, Thresholds())[0] == "unknown"
    slow = SampleSeries(5, (400.0,) * 5, lag_ms=10.0)
    assert judge_link(LINK, None, slow, None, Thresholds())[0] == "degraded"
    # A timeout our loop explains is not a lost sample.
    shaky = SampleSeries(5, (9.0,) * 4, unreliable=1)
    verdict, reasons = judge_link(LINK, None, shaky, None, Thresholds())
    assert verdict == "unknown" and "unreliable" in reasons[0]


def test_link_state_answers_which_sites_are_down(tmp_path: Path) -> None:
    path = inventory(
        tmp_path,
        """\
        - {name: wan-1, expected_latency_ms: 5, tcp: "127.0.0.1:9"}
        - {name: wan-2, expected_latency_ms: 5, tcp: "127.0.0.1:9"}
        """,
    )
    now = [0.0]
    state = LinkState(load_inventory(path), max_age_s=60, clock=lambda: now[0])
    assert state.site("clinic-oak").state == "unknown"  # nothing measured yet
    state.update([report("unreachable")])
    assert (state.site("clinic-oak").state, state.down_sites()) == ("degraded", [])
    state.update([report("unreachable", name="wan-2")])
    assert (state.site("clinic-oak").state, state.down_sites()) == ("down", ["clinic-oak"])
    now[0] = 120.0  # old news proves nothing
    assert state.down_sites() == []
    state.update([report("ok"), report("ok", name="wan-2")])
    assert state.site("clinic-oak").state == "ok"


def test_a_link_baseline_that_is_not_json_is_named_at_its_line(tmp_path: Path) -> None:
    from pacs_tui.links.baseline import LinkBaselineError, load

    broken = tmp_path / "links.json"
    broken.write_text('{"format": \n')
    with pytest.raises(LinkBaselineError) as caught:
        load(broken)
    assert str(caught.value).startswith(f"{broken}:2:1: not JSON: ")
