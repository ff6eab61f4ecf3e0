"""Rack budgets on a running fleet: ``pacs-tui power on`` staggers a rack so its breaker holds.

The simulator's rack breaker (``pacs_tui.sim.rack_breakers``) samples the
rack's summed draw every 20 ms, keeps the highest, and cuts the whole rack
when the sum passes its rating, as a real circuit breaker does. Its boot
peak is 1.6 × the server's idle draw; the plan assumes the default 2 × the
draw a baseline captured. The control case (no budgets in the inventory)
trips the same breaker, so the budgeted pass is not luck.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from service_process import add_token, running_service
from sim_process import RunningSim, running_sim, wait_until

PACS_TUI = [sys.executable, "-m", "pacs_tui"]
SPEC = Path(__file__).resolve().parents[1] / "docs" / "openapi.yaml"
FAST = ["--poll", "0.1", "--gate-timeout", "60", "--timeout", "60", "--settle-timeout", "60",
        "--settle-poll", "0.2"]  # fmt: skip
RACK = "R01"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSim]:
    out = tmp_path_factory.mktemp("budget-sim") / "dc"
    # 0.15: a boot peak lasts ~1.3 s, long enough for power-ons of one group to overlap.
    with running_sim(out, "--servers", "24", "--time-scale", "0.15") as running:
        yield running


@pytest.fixture(scope="module")
def baseline(sim: RunningSim, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A baseline of the rack, captured while it runs: each server's draw among the rest."""
    out = tmp_path_factory.mktemp("budget-baseline")
    path = out / "before.json"
    captured = pacs(sim, out / "data", "baseline", "capture", "-i", str(sim.out / "inventory.yaml"),
                    "--out", str(path), "--samples", "1", "--select", f"rack={RACK}")  # fmt: skip
    assert captured.returncode == 0, captured.stderr
    return path


def draws(baseline: Path, names: list[str]) -> dict[str, float]:
    servers = json.loads(baseline.read_text())["servers"]
    return {n: servers[n]["power_watts"] for n in names}


def rack_names(sim: RunningSim) -> list[str]:
    return [s["name"] for s in sim.servers() if s.get("rack") == RACK]


def pacs(sim: RunningSim, data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PACS_TUI_DATA_DIR": str(data)}
    return subprocess.run([*PACS_TUI, *args], capture_output=True, text=True, env=env, timeout=300)


def rack(sim: RunningSim) -> dict[str, Any]:
    return next(r for r in sim.control("GET", "/racks") if r["rack"] == RACK)


def power_off_rack(sim: RunningSim, data: Path, names: list[str]) -> None:
    """Every server of the rack Off, and whatever depends on them (the edge gateways)."""
    dependents = [s["name"] for s in sim.servers() if set(s.get("depends_on", [])) & set(names)]
    select = ",".join(sorted(set(names) | set(dependents)))
    done = pacs(sim, data, "power", "off", "-i", str(sim.out / "inventory.yaml"),
                "--select", select, "--yes", "--escalate-after", "10", *FAST)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    wait_until(lambda: rack(sim)["draw_w"] == 0, 30, what="the rack drew nothing")


def budget_inventory(sim: RunningSim, path: Path, budget_w: float) -> Path:
    document = yaml.safe_load((sim.out / "inventory.yaml").read_text())
    # Every rack a server names must be listed (a typo would escape its budget).
    document["racks"] = [{"name": RACK, "budget_w": budget_w}, {"name": "B01", "budget_w": 5000}]
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def resets(sim: RunningSim, name: str) -> list[str]:
    return [str(r) for r in sim.bmc(name)["resets"]]


def test_the_service_plans_a_budgeted_power_on_from_its_power_baseline(
    sim: RunningSim, baseline: Path, tmp_path: Path
) -> None:
    from openapi_core import OpenAPI
    from openapi_core.testing import MockRequest, MockResponse

    names = rack_names(sim)
    idle = draws(baseline, names)
    budget = sum(idle.values()) + max(idle.values()) + 20
    inventory = budget_inventory(sim, sim.out / "budget.yaml", budget)
    power_off_rack(sim, tmp_path / "data", names)
    env = {"PACS_TUI_DATA_DIR": str(tmp_path / "served")}
    add_token(tmp_path / "tokens.yaml", "lead", "operator")
    bad = pacs(sim, tmp_path / "data", "serve", "-i", str(inventory), "--tokens",
               str(tmp_path / "tokens.yaml"), "--power-baseline", str(inventory))  # fmt: skip
    assert bad.returncode == 2 and "--power-baseline" in bad.stderr, bad.stderr
    # The settle options travel too (the CLI's --settle-timeout and --settle-poll).
    body = {"verb": "on", "selector": f"rack={RACK}",
            "options": {"settle_timeout_s": 90, "settle_poll_s": 2}}  # fmt: skip
    sent = {n: resets(sim, n) for n in names}
    with running_service(inventory, tmp_path / "serve", "--power-baseline", str(baseline),
                         env=env) as served:  # fmt: skip
        assert f"power baseline: {len(names)} server draw(s) from {baseline}" in served.log_text()
        status, answer = served.request("POST", "/api/v1/batches/plan", served.tokens["lead"], body)
        assert status == 200, answer
        assert not answer["refused"], answer["refusals"]
        plan = answer["plan"]
        assert plan["budgets_w"] == {RACK: pytest.approx(budget)}
        groups = [g for w in plan["waves"] for g in w.get("groups", [])]
        assert max(g["group"] for g in groups) > 1  # staggered from the service's baseline
        # Every server of the rack is planned: an Off behind an Off parent is still Off.
        planned = {s["server"]: s for w in plan["waves"] for s in w["servers"]}
        assert {n: planned[n]["power_state"] for n in names} == dict.fromkeys(names, "Off")
        assert all(p <= budget for g in groups for p in g["expected_peak_w"].values())
        settles = [st for w in plan["waves"] for sv in w["servers"] for st in sv.get("steps", [])
                   if st["kind"] == "settle"]  # fmt: skip
        assert settles and all(st["timeout_s"] == 90 for st in settles)
        assert "every 2 s" in settles[0]["call"]
        request = MockRequest(served.url, "POST", "/api/v1/batches/plan",
                              data=json.dumps(body).encode(),
                              headers={"Authorization": f"Bearer {served.tokens['wall']}"})  # fmt: skip
        response = MockResponse(json.dumps(answer).encode(), status_code=200,
                                content_type="application/json")  # fmt: skip
        OpenAPI.from_file_path(str(SPEC)).validate_response(request, response)
    # Without the baseline the service cannot expect a draw: refused, naming the hint.
    with running_service(inventory, tmp_path / "serve2", env=env) as served:
        status, answer = served.request("POST", "/api/v1/batches/plan", served.tokens["lead"], body)
        assert answer["refused"] and "its expected draw is unknown" in answer["refusals"][0]
        assert any("capture a baseline" in h for h in answer["hints"])
    # Plans only: not a reset reached the rack's BMCs.
    assert {n: resets(sim, n) for n in names} == sent


def test_a_budgeted_power_on_keeps_the_rack_under_its_breaker(
    sim: RunningSim, baseline: Path, tmp_path: Path
) -> None:
    names = rack_names(sim)
    assert len(names) >= 12
    data = tmp_path / "data"
    idle = draws(baseline, names)
    assert all(isinstance(w, float) and 150 <= w < 300 for w in idle.values()), idle

    # A budget the whole rack fits at its steady draw, with room for one boot peak on top
    # (the plan's: 2 × the draw) but not for a wave booting at once (1.6 × in the simulator).
    budget = sum(idle.values()) + max(idle.values()) + 20
    inventory = budget_inventory(sim, sim.out / "budget.yaml", budget)
    power_off_rack(sim, data, names)
    before = {n: len(resets(sim, n)) for n in names}

    dry = pacs(sim, data, "power", "on", "-i", str(inventory), "--select", f"rack={RACK}",
               "--baseline", str(baseline), "--dry-run", *FAST)  # fmt: skip
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert f"power budgets: {RACK} {budget:.0f} W" in dry.stdout
    assert "group 2/" in dry.stdout, dry.stdout  # staggered
    assert "read draw every 0.2 s until ≤" in dry.stdout

    sim.control("POST", f"/racks/{RACK}/breaker", {"trip_w": budget})
    run = pacs(sim, data, "power", "on", "-i", str(inventory), "--select", f"rack={RACK}",
               "--baseline", str(baseline), "--yes", "--json", *FAST)  # fmt: skip
    breaker = rack(sim)
    assert breaker["trips"] == [], breaker["trips"]
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr
    assert breaker["peak_w"] <= budget
    # It was close to the budget, not far below: the stagger used the room it had.
    assert breaker["peak_w"] > sum(idle.values())
    result = json.loads(run.stdout.strip().splitlines()[-1])
    peak = result["budget_peaks"][RACK]
    assert peak["budget_w"] == pytest.approx(budget)
    assert 0 < peak["measured_peak_w"] <= breaker["peak_w"] + 1  # sampled: a lower bound
    # One power-on per server: the groups never sent a reset twice.
    assert {n: len(resets(sim, n)) - before[n] for n in names} == dict.fromkeys(names, 1)


def test_without_budgets_the_same_power_on_trips_the_breaker(
    sim: RunningSim, tmp_path: Path
) -> None:
    names = [s["name"] for s in sim.servers() if s.get("rack") == RACK]
    data = tmp_path / "data"
    sim.control("DELETE", f"/racks/{RACK}/breaker")
    wait_until(lambda: rack(sim)["draw_w"] > 0, 30, what="the rack on (the test before)")
    # The rack settled at its idle draw: 10 % above it holds every server, not a wave's peaks.
    budget = rack(sim)["draw_w"] * 1.1
    power_off_rack(sim, data, names)
    sim.control("POST", f"/racks/{RACK}/breaker", {"trip_w": budget})
    try:
        # Short waits: the servers the trip cuts off never come On (60 s each was a minute
        # of the suite spent waiting for what the breaker already showed).
        short = [*FAST, "--timeout", "10", "--gate-timeout", "10"]
        run = pacs(sim, data, "power", "on", "-i", str(sim.out / "inventory.yaml"),
                   "--select", f"rack={RACK}", "--yes", *short)  # fmt: skip
        breaker = rack(sim)
        assert breaker["trips"], "the unstaggered power-on did not trip the breaker"
        assert breaker["trips"][0]["draw_w"] > budget
        assert run.returncode != 0  # the servers the trip cut off missed their gate
    finally:
        sim.control("DELETE", f"/racks/{RACK}/breaker")


def test_a_draw_that_does_not_settle_holds_the_later_groups_of_its_rack(
    sim: RunningSim, baseline: Path, tmp_path: Path
) -> None:
    # A baseline that halves every draw: no server ever reads at or below its expected
    # steady draw, so none settles; the groups after the first of each wave must be held.
    names = rack_names(sim)
    document = json.loads(baseline.read_text())
    for name in names:
        document["servers"][name]["power_watts"] /= 2
    low = tmp_path / "low.json"
    low.write_text(json.dumps(document))
    halved = draws(low, names)
    budget = sum(halved.values()) + max(halved.values()) + 20
    inventory = budget_inventory(sim, sim.out / "budget-low.yaml", budget)
    data = tmp_path / "data"
    sim.control("DELETE", f"/racks/{RACK}/breaker")  # the real draw is twice the budget's idea
    power_off_rack(sim, data, names)
    before = {n: len(resets(sim, n)) for n in names}
    run = pacs(sim, data, "power", "on", "-i", str(inventory), "--select", f"rack={RACK}",
               "--baseline", str(low), "--yes", "--json", "--on-failure", "leave-out",
               *FAST[:-4], "--settle-timeout", "2", "--settle-poll", "0.2")  # fmt: skip
    assert run.returncode == 1, run.stdout[-2000:] + run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    status = {s["server"]: s for s in result["servers"]}
    held = [n for n, s in status.items() if s["detail"].startswith("held: ")]
    assert held, status
    for name in held:
        assert status[name]["status"] == "left-out"
        assert "did not settle" in status[name]["detail"] and RACK in status[name]["detail"]
        assert len(resets(sim, name)) == before[name]  # never sent a power-on
    # Later waves too: the plan counted the unsettled ones at their steady draw.
    assert all(s["detail"].startswith("held: ") for s in status.values() if s["wave"] > 1)
    started = [n for n in names if len(resets(sim, n)) > before[n]]
    assert started and set(started).isdisjoint(held)
    assert all(len(resets(sim, n)) - before[n] == 1 for n in started)


def test_a_power_on_answered_late_is_sent_once_and_its_group_still_settles(
    sim: RunningSim, baseline: Path, tmp_path: Path
) -> None:
    # stor-001's BMC carries the On out at once and answers after 3 s; we wait 2 s: the
    # outcome is unknown, so PowerState and then the draw are read back, never re-sent.
    names = rack_names(sim)
    idle = draws(baseline, names)
    budget = sum(idle.values()) + max(idle.values()) + 20
    path = budget_inventory(sim, sim.out / "budget-late.yaml", budget)
    document = yaml.safe_load(path.read_text())
    late = next(s for s in document["servers"] if s["name"] == "stor-001")
    late["bmc"]["timeout_s"] = 2
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    data = tmp_path / "data"
    sim.control("DELETE", f"/racks/{RACK}/breaker")
    power_off_rack(sim, data, names)
    before = {n: len(resets(sim, n)) for n in names}
    sim.control("POST", "/hosts/stor-001/faults", {"bmc_post_answer_delay_s": 3})
    try:
        run = pacs(sim, data, "power", "on", "-i", str(path), "--select", f"rack={RACK}",
                   "--baseline", str(baseline), "--yes", "--json", *FAST)  # fmt: skip
    finally:
        sim.control("DELETE", "/hosts/stor-001/faults")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr
    events = [json.loads(line) for line in run.stdout.strip().splitlines()]
    unknown = [e for e in events if e.get("server") == "stor-001" and e.get("outcome") == "unknown"]
    assert len(unknown) == 1 and "ResetType=On" in unknown[0]["call"]
    settled = [
        e for e in events if e.get("server") == "stor-001" and "read draw" in e.get("call", "")
    ]
    assert settled and settled[-1]["outcome"] == "ok"
    # One On per server at the BMCs, the late one included.
    assert {n: resets(sim, n)[before[n] :] for n in names} == {n: ["On"] for n in names}
