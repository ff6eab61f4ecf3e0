"""Rack power budgets: the inventory's ``racks:`` and the packing of a wave into groups.

Pure logic (no peer): what the plan expects each rack to draw. That the
expectation holds on a running fleet is tested against the simulator's rack
breakers in ``test_power_budget_sim``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pacs_tui.batch.power_budget import (
    DEFAULT_BOOT_PEAK_FACTOR,
    ExpectedDraw,
    expected_draw,
    pack_wave,
    present_load,
)
from pacs_tui.inventory import InventoryError, Server, load_inventory_text

HEAD = """
sites: [{name: dc, kind: datacenter}]
racks:
  - name: R01
    budget_w: 1000
    circuits:
      - {name: A, budget_w: 600}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(InventoryError) as caught:
        load_inventory_text(text, Path("inv.yaml"))
    return ["inv.yaml:" + str(p).split("inv.yaml:", 1)[1] for p in caught.value.problems]


def test_racks_and_server_power_keys_load() -> None:
    inv = load_inventory_text(
        HEAD
        + "servers:\n"
        + "  - {name: a, site: dc, role: archive, rack: R01, circuit: A, nameplate_w: 500}\n"
        + "  - {name: b, site: dc, role: archive, rack: R01, boot_peak_factor: 1.5}\n",
        Path("inv.yaml"),
    )
    rack = inv.racks["R01"]
    assert rack.budget_w == 1000.0 and rack.circuits["A"].budget_w == 600.0
    a, b = inv.server("a"), inv.server("b")
    assert (a.circuit, a.nameplate_w, b.boot_peak_factor) == ("A", 500.0, 1.5)


def test_rack_mistakes_are_named_with_their_line() -> None:
    found = problems(
        HEAD
        + "  - name: R02\n"  # line 8: no budget at all
        + "servers:\n"
        + "  - {name: a, site: dc, role: archive, rack: R1}\n"  # line 10: a typo
        + "  - {name: b, site: dc, role: archive, rack: R01, circuit: B}\n"
        + "  - {name: c, site: dc, role: archive, circuit: A}\n"
        + "  - {name: d, site: dc, role: archive, nameplate_w: 0}\n"
    )
    assert sorted(found) == sorted(
        [
            "inv.yaml:8: racks[1]: a rack needs a budget: budget_w, or circuits with their budget_w",
            "inv.yaml:10: servers[0].rack: rack 'R1' is not under 'racks:' (did you mean 'R01'?)",
            "inv.yaml:11: servers[1].circuit: rack R01 has no circuit 'B' (its circuits: A)",
            "inv.yaml:12: servers[2].circuit: a circuit belongs to a rack: set rack too",
            "inv.yaml:13: servers[3].nameplate_w: 0 W is out of range (0, 1000000]",
        ]
    )


def test_expected_draw_sources() -> None:
    plain = Server("a", "dc", "archive", rack="R01")
    assert expected_draw(plain, 200.0) == ExpectedDraw(
        200.0 * DEFAULT_BOOT_PEAK_FACTOR, 200.0, f"baseline 200 W × {DEFAULT_BOOT_PEAK_FACTOR:g}"
    )
    capped = Server("a", "dc", "archive", rack="R01", nameplate_w=300.0)
    assert expected_draw(capped, 200.0) == ExpectedDraw(  # never above what its PSUs give
        300.0, 200.0, "baseline 200 W × 2, capped at nameplate 300 W"
    )
    assert expected_draw(capped, 100.0).source == "baseline 100 W × 2"  # 200 W: no cap
    assert expected_draw(capped, None) == ExpectedDraw(300.0, 300.0, "nameplate 300 W")
    assert not expected_draw(plain, None).known


def test_a_wave_is_packed_so_no_group_exceeds_the_budget() -> None:
    draws = {n: ExpectedDraw(400.0, 200.0, "test") for n in "abcd"}
    keys = {n: {"R01": 1100.0} for n in "abcd"}
    packing = pack_wave(list("abcd"), keys, draws, prior={"R01": 100.0})
    # a, b: 100 + 2 × 400 = 900. c with them: 1 300, so a group of its own over their
    # steady 400: 900. d: 1 300 with c, so after c settled: 100 + 600 + 400 = 1 100.
    assert packing.groups == [["a", "b"], ["c"], ["d"]]
    assert packing.peaks == [{"R01": 900.0}, {"R01": 900.0}, {"R01": 1100.0}]
    assert packing.refusals == []
    # One watt less and d fits nowhere: refused, never squeezed in.
    keys = {n: {"R01": 1099.0} for n in "abcd"}
    packing = pack_wave(list("abcd"), keys, draws, prior={"R01": 100.0})
    assert packing.groups == [["a", "b"], ["c"]] and packing.refusals[0].startswith("d: ")


def test_a_server_that_fits_no_group_refuses_the_plan() -> None:
    draws = {"a": ExpectedDraw(900.0, 450.0, "baseline 450 W × 2")}
    packing = pack_wave(["a"], {"a": {"R01": 1000.0}}, draws, prior={"R01": 200.0})
    assert packing.groups == [] and not packing.peak_alone
    assert packing.refusals == [
        "a: boot peak 900 W (baseline 450 W × 2) does not fit R01's budget 1000 W: 200 W is "
        "expected there before it boots (the servers not powered on by this plan, at their "
        "draw now, and the power-ons before it, settled)"
    ]
    # Where no budget could ever hold it, the refusal says so rather than blame the others.
    packing = pack_wave(["a"], {"a": {"R01": 800.0}}, draws, prior={"R01": 200.0})
    assert packing.refusals == [
        "a: boot peak 900 W (baseline 450 W × 2) alone is over R01's budget 800 W"
    ]
    assert packing.peak_alone  # the plan's hint then points at the server's figures
    # And when even the settled rack would be over, that is said too.
    packing = pack_wave(["a"], {"a": {"R01": 1000.0}}, draws, prior={"R01": 600.0})
    assert packing.refusals[0].endswith("; even settled, R01 would draw 1050 W")


def test_a_later_server_never_pushes_an_earlier_group_over() -> None:
    # c fits group 1's peak, but its steady draw under group 2's peak would not.
    draws = {
        "a": ExpectedDraw(400.0, 100.0, "t"),
        "b": ExpectedDraw(500.0, 300.0, "t"),
        "c": ExpectedDraw(200.0, 200.0, "t"),
    }
    keys = {n: {"R01": 1000.0} for n in "abc"}
    packing = pack_wave(["a", "b", "c"], keys, draws, prior={})
    for g, peak in enumerate(packing.peaks):
        assert peak["R01"] <= 1000.0, (g, packing.groups)


def test_circuit_and_rack_are_both_respected() -> None:
    draws = {n: ExpectedDraw(300.0, 150.0, "t") for n in "abc"}
    keys = {
        "a": {"R01": 1000.0, "R01/A": 600.0},
        "b": {"R01": 1000.0, "R01/A": 600.0},
        "c": {"R01": 1000.0},
    }
    packing = pack_wave(["a", "b", "c"], keys, draws, prior={})
    assert packing.groups == [["a", "b", "c"]]  # circuit A: 600 of 600; the rack 900
    packing = pack_wave(["a", "b", "c"], keys, draws, prior={"R01/A": 100.0})
    assert packing.groups[0] == ["a", "c"] and packing.groups[1] == ["b"]


def test_present_load_counts_what_is_not_powered_on() -> None:
    inv = load_inventory_text(
        HEAD
        + "servers:\n"
        + "  - {name: a, site: dc, role: archive, rack: R01}\n"
        + "  - {name: b, site: dc, role: archive, rack: R01, nameplate_w: 350}\n"
        + "  - {name: c, site: dc, role: archive, rack: R01}\n"
        + "  - {name: d, site: dc, role: archive}\n",
        Path("inv.yaml"),
    )
    assert present_load(inv, ["d"], {}, {}) == ({}, [], {}, [])  # d draws from no budget
    load, refusals, assumed, _ = present_load(inv, ["a"], {"b": None, "c": 120.0, "d": 999.0}, {})
    assert load == {"R01": 350.0 + 120.0}  # b unread: its nameplate; d has no rack budget
    assert refusals == []
    assert assumed == {"b": 350.0}  # said, not silently counted
    load, refusals, _, _ = present_load(inv, ["a"], {"b": None, "c": None}, {})
    assert refusals == [
        "c: its draw could not be read and is not known (rack R01's present load cannot be bounded)"
    ]


def test_a_rack_or_circuit_named_twice_is_named_at_its_line() -> None:
    found = problems(
        "sites: [{name: dc, kind: datacenter}]\n"
        "racks:\n"
        "  - {name: R01, budget_w: 900}\n"  # 3
        "  - {name: R01, budget_w: 900}\n"  # 4
        "  - name: R02\n"
        "    circuits:\n"
        "      - {name: A, budget_w: 600}\n"  # 7
        "      - {name: A, budget_w: 700}\n"  # 8
        "  - oops\n"
        "servers: [{name: a, site: dc, role: archive}]\n"
    )
    assert found == [
        "inv.yaml:4: racks[1].name: duplicate rack 'R01' (also on line 3)",
        "inv.yaml:8: racks[2].circuits[1].name: duplicate circuit 'A' (also on line 7)",
        "inv.yaml:9: racks[3]: expected a mapping, got 'oops'",
    ]


def _racked(tmp_path: Path, budget: float) -> object:
    """view-1 and view-2 (both depend on arch) in rack R01 with ``budget`` W."""
    from dataclasses import replace

    from pacs_tui.inventory import Rack
    from test_batch_plan import inventory as plan_inventory

    inv = plan_inventory(tmp_path)
    servers = tuple(
        replace(s, rack="R01") if s.name in ("view-1", "view-2") else s for s in inv.servers
    )
    return replace(inv, servers=servers, racks={"R01": Rack("R01", budget)})


def test_a_restart_that_would_boot_a_rack_past_its_budget_is_refused(tmp_path: Path) -> None:
    from pacs_tui.batch.plan import PlanOptions, build_plan
    from test_batch_plan import ACTIONS, facts

    options = PlanOptions(baseline_w={"view-1": 200.0, "view-2": 300.0})
    draws = {"view-1": 200.0, "view-2": 300.0}
    # Both reboot in one wave: 2 × 200 + 2 × 300 = 1 000 W at once.
    tight = build_plan(_racked(tmp_path, 999), ["view-1", "view-2"], "restart", facts(), ACTIONS,
                       options, draw_now=draws)  # type: ignore[arg-type]  # fmt: skip
    assert tight.refusals == (
        "restart wave 1: 2 server(s) rebooting at once would take R01 to 1000 W, over its "
        "budget 999 W (a restart is not staggered)",
    )
    assert any("power them off and on" in h for h in tight.hints)
    fits = build_plan(_racked(tmp_path, 1000), ["view-1", "view-2"], "restart", facts(), ACTIONS,
                      options, draw_now=draws)  # type: ignore[arg-type]  # fmt: skip
    assert not fits.refused
    # One at a time: the other runs on at its draw (200 W) under view-2's peak (600 W).
    for budget, refused in ((800, False), (799, True)):
        one = build_plan(_racked(tmp_path, budget), ["view-2"], "restart", facts(), ACTIONS,
                         options, draw_now=draws)  # type: ignore[arg-type]  # fmt: skip
        assert one.refused is refused, one.refusals


def test_a_wrong_rack_is_named_at_its_own_line() -> None:
    found = problems(
        HEAD
        + "servers:\n"
        + "  - name: a\n"  # 9 (HEAD starts with an empty line)
        + "    site: dc\n"
        + "    role: archive\n"
        + "    rack: R1\n"  # 12
        + "    circuit: A\n"
    )
    assert found == [
        "inv.yaml:12: servers[0].rack: rack 'R1' is not under 'racks:' (did you mean 'R01'?)"
    ]


def test_only_a_power_on_that_holds_a_later_one_waits_for_its_draw(tmp_path: Path) -> None:
    from pacs_tui.batch.plan import PlanOptions, build_plan
    from test_batch_plan import ACTIONS, facts

    options = PlanOptions(baseline_w={"view-1": 200.0, "view-2": 300.0})
    plan = build_plan(_racked(tmp_path, 800), ["view-1", "view-2"], "on", facts("Off"), ACTIONS,
                      options, draw_now={"view-1": 0.0, "view-2": 0.0})  # type: ignore[arg-type]  # fmt: skip
    assert not plan.refused, plan.refusals
    (wave,) = plan.waves
    assert [g.servers for g in wave.groups] == [("view-1",), ("view-2",)]
    settles = {sp.server.name: [s for s in sp.steps if s.kind == "settle"] for sp in wave.servers}
    # view-1's draw must settle before view-2 starts; nothing waits on view-2's.
    assert len(settles["view-1"]) == 1 and settles["view-2"] == []


def test_a_rack_whose_draw_was_never_read_has_no_highest_load(tmp_path: Path) -> None:
    from pacs_tui.batch.plan import PlanOptions, build_plan
    from pacs_tui.batch.result import highest_read
    from pacs_tui.batch.settle import BudgetWatch
    from test_batch_plan import ACTIONS, facts

    options = PlanOptions(baseline_w={"view-1": 200.0, "view-2": 300.0})
    for draws, before in (({"view-1": None, "view-2": None}, None), ({"view-1": 0.0}, 0)):
        # Unreadable, both count at their peaks for good: 400 + 600 W.
        plan = build_plan(_racked(tmp_path, 1000), ["view-1", "view-2"], "on", facts("Off"),
                          ACTIONS, options, draw_now=draws)  # type: ignore[arg-type]  # fmt: skip
        assert not plan.refused, plan.refusals
        watch = BudgetWatch(plan, 1.0)
        # Nothing read is unknown, not 0 W; a server read Off at 0 W is a reading.
        assert watch.peaks()["R01"]["measured_peak_w"] == before
        assert highest_read(watch.peaks()["R01"]) == ("not read" if before is None else "0 W")
        watch.note_draw("view-1", 212.4)
        assert watch.peaks()["R01"]["measured_peak_w"] == 212
        assert highest_read(watch.peaks()["R01"]) == "212 W"
    # Only a neighbour's draw read (view-2 runs at 310 W, view-1 unreadable): a reading.
    plan = build_plan(_racked(tmp_path, 1000), ["view-1"], "on", facts("Off", view_2="On"),
                      ACTIONS, options, draw_now={"view-1": None, "view-2": 310.0})  # type: ignore[arg-type]  # fmt: skip
    assert not plan.refused, plan.refusals
    assert BudgetWatch(plan, 1.0).peaks()["R01"]["measured_peak_w"] == 310


def test_an_unread_running_neighbour_counts_at_its_boot_peak_and_is_said(tmp_path: Path) -> None:
    """view-2 runs (On) but its draw was not read: it may have been powered on by an earlier
    batch moments ago, so its boot peak (600 W) stands in, not its steady draw (300 W).
    Counted at 300 W, a power-on refused as a whole and split into two runs passed the
    budget (a fresh user's trial against sushy-emulator)."""
    from pacs_tui.batch.dry_run import dry_run_lines
    from pacs_tui.batch.plan import PlanOptions, build_plan
    from pacs_tui.batch.power_budget import HINT_OVER_BUDGET, HINT_PLAN_TOO_BIG
    from test_batch_plan import ACTIONS, facts

    options = PlanOptions(baseline_w={"view-1": 200.0, "view-2": 300.0})
    draws = {"view-1": 0.0, "view-2": None}
    running = facts("Off", view_2="On")
    plan = build_plan(_racked(tmp_path, 1000), ["view-1"], "on", running, ACTIONS, options,
                      draw_now=draws)  # type: ignore[arg-type]  # fmt: skip
    assert not plan.refused, plan.refusals
    data = plan.to_json()
    assert data["present_load_w"] == {"R01": 600.0}
    assert data["assumed_w"] == {"view-2": 600.0}
    assert (
        "  of that, not read but counted at their expected boot peak (they may be booting; "
        "baseline × boot_peak_factor, else nameplate): view-2 600 W"
    ) in dry_run_lines(plan)
    # Neither draw readable: together, view-2 counts its 600 W peak for good, 1 000 W in
    # all, refused at 999 W; the second half alone, after view-2 booted, must be too.
    whole = build_plan(_racked(tmp_path, 999), ["view-1", "view-2"], "on", facts("Off"),
                       ACTIONS, options, draw_now={"view-1": None, "view-2": None})  # type: ignore[arg-type]  # fmt: skip
    assert whole.refused
    # Nothing else draws there: the hint blames the plan's own size, not other servers.
    assert HINT_PLAN_TOO_BIG in whole.hints and HINT_OVER_BUDGET not in whole.hints
    half = build_plan(_racked(tmp_path, 999), ["view-1"], "on", running, ACTIONS, options,
                      draw_now=draws)  # type: ignore[arg-type]  # fmt: skip
    assert half.refused, "the split run would pass the budget"
    assert HINT_OVER_BUDGET in half.hints  # view-2 takes the room
    # Read, its draw counts as read.
    read = build_plan(_racked(tmp_path, 800), ["view-1"], "on", running, ACTIONS, options,
                      draw_now={"view-1": 0.0, "view-2": 310.0})  # type: ignore[arg-type]  # fmt: skip
    assert read.to_json()["assumed_w"] == {} and read.to_json()["present_load_w"] == {"R01": 310.0}
    assert not any(line.startswith("  of that, not read") for line in dry_run_lines(read))


def test_a_server_the_baseline_lacks_is_said_to_count_at_its_nameplate(tmp_path: Path) -> None:
    from dataclasses import replace

    from pacs_tui.batch.dry_run import dry_run_lines
    from pacs_tui.batch.plan import PlanOptions, build_plan
    from test_batch_plan import ACTIONS, facts

    racked = _racked(tmp_path, 2000)
    inventory = replace(  # type: ignore[type-var]
        racked,
        servers=tuple(
            replace(s, nameplate_w=450.0) if s.name == "view-1" else s
            for s in racked.servers  # type: ignore[attr-defined]
        ),
    )
    options = PlanOptions(baseline_w={"view-2": 300.0}, baseline_given=True)  # view-1 not in it
    plan = build_plan(inventory, ["view-1", "view-2"], "on", facts("Off"), ACTIONS, options,
                      draw_now={"view-1": 0.0, "view-2": 0.0})  # type: ignore[arg-type]  # fmt: skip
    assert not plan.refused, plan.refusals
    line = (
        "  no draw in the baseline given, counted at their nameplate (steady = peak): view-1 450 W"
    )
    assert line in dry_run_lines(plan)
    # Without a baseline the nameplate is the only figure there is: nothing to say.
    plain = build_plan(inventory, ["view-1"], "on", facts("Off"), ACTIONS, PlanOptions(),
                       draw_now={"view-1": 0.0, "view-2": 0.0})  # type: ignore[arg-type]  # fmt: skip
    assert not plain.refused, plain.refusals
    assert not any("no draw in the baseline" in x for x in dry_run_lines(plain))
    # A baseline with no draw at all (BMCs that report none) is said too, not ignored.
    empty = build_plan(inventory, ["view-1"], "on", facts("Off"), ACTIONS,
                       PlanOptions(baseline_given=True), draw_now={"view-1": 0.0, "view-2": 0.0})  # type: ignore[arg-type]  # fmt: skip
    assert line in dry_run_lines(empty)


async def test_a_draw_that_cannot_be_read_says_only_why() -> None:
    from pacs_tui.batch.settle import read_draw
    from pacs_tui.plugin_api import Health, ProbeResult

    class One:
        def __init__(self, result: ProbeResult) -> None:
            self.result = result

        def has(self, probe: str) -> bool:
            return probe == "rack-power"

        async def read(self, server: Server, probe: str) -> ProbeResult | None:
            return self.result

    server = Server(name="a", site="dc", role="archive")
    cut = ProbeResult.make(
        "unknown", Health.UNKNOWN,
        detail="inlet 24.0 °C (Thermal); unknown: malformed JSON from BMC (GET /x/Power)",
        watts=None, not_offered=[], unread=["malformed JSON from BMC (GET /x/Power)"],
    )  # fmt: skip
    assert await read_draw(One(cut), server) == (None, "malformed JSON from BMC (GET /x/Power)")
    none = ProbeResult.make(
        "ok", Health.OK, detail="inlet 25.0 °C (Thermal); power not offered by this BMC (...)",
        watts=None, not_offered=["power"],
    )  # fmt: skip
    assert await read_draw(One(none), server) == (
        None, "the BMC offers no power reading (no PowerSubsystem nor Power)"
    )  # fmt: skip
    read = ProbeResult.make("ok", Health.OK, detail="210 W", watts=210)
    assert await read_draw(One(read), server) == (210.0, "")


def test_a_peak_alone_over_the_budget_hints_at_the_servers_figures(tmp_path: Path) -> None:
    from pacs_tui.batch.plan import PlanOptions, build_plan
    from pacs_tui.batch.power_budget import HINT_OVER_BUDGET, HINT_PEAK_ALONE
    from test_batch_plan import ACTIONS, facts

    options = PlanOptions(baseline_w={"view-1": 200.0, "view-2": 300.0})
    # view-2 boots at 600 W: alone over 500 W, whatever else the rack draws.
    plan = build_plan(_racked(tmp_path, 500), ["view-2"], "on", facts("Off"), ACTIONS, options,
                      draw_now={"view-1": 0.0, "view-2": 0.0})  # type: ignore[arg-type]  # fmt: skip
    assert plan.refused and HINT_PEAK_ALONE in plan.hints and HINT_OVER_BUDGET not in plan.hints
    # 600 W fits 700 W, but not on top of view-1 running at 200 W: the rack's load is to blame.
    plan = build_plan(_racked(tmp_path, 700), ["view-2"], "on", facts("Off"), ACTIONS, options,
                      draw_now={"view-1": 200.0, "view-2": 0.0})  # type: ignore[arg-type]  # fmt: skip
    assert plan.refused and HINT_OVER_BUDGET in plan.hints and HINT_PEAK_ALONE not in plan.hints


async def test_a_settle_that_never_read_a_draw_says_so_not_a_comparison(tmp_path: Path) -> None:
    from pacs_tui.batch.plan import PlanOptions, build_plan
    from pacs_tui.batch.settle import BudgetWatch
    from pacs_tui.plugin_api import Health, ProbeResult
    from test_batch_plan import ACTIONS, facts

    options = PlanOptions(baseline_w={"view-1": 200.0, "view-2": 300.0}, settle_timeout_s=0.3)
    plan = build_plan(_racked(tmp_path, 800), ["view-1", "view-2"], "on", facts("Off"), ACTIONS,
                      options, draw_now={"view-1": 0.0, "view-2": 0.0})  # type: ignore[arg-type]  # fmt: skip
    (sp,) = [sp for sp in plan.waves[0].servers if sp.server.name == "view-1"]
    (step,) = [s for s in sp.steps if s.kind == "settle"]

    class Draws:
        def __init__(self, *watts: float | None) -> None:
            self.watts = list(watts)

        def has(self, probe: str) -> bool:
            return True

        async def read(self, server: Server, probe: str) -> ProbeResult | None:
            w = self.watts.pop(0) if len(self.watts) > 1 else self.watts[0]
            unread = [] if w is not None else ["no answer from BMC within 10 s"]
            detail = "; ".join(f"unknown: {u}" for u in unread)  # as the probe writes both
            return ProbeResult.make("ok", Health.OK, detail=detail, watts=w, unread=unread)

    never = BudgetWatch(plan, 0.05)
    label, detail = await never.settle(Draws(None), sp.server, step, lambda: False)
    assert (label, detail) == ("timeout", "draw not read in 0.3 s (no answer from BMC within 10 s)")
    high = BudgetWatch(plan, 0.05)
    label, detail = await high.settle(Draws(410.0, None), sp.server, step, lambda: False)
    assert label == "timeout"
    assert detail == (
        "not ≤ 220 W after 0.3 s (last read 410 W, then unreadable: no answer from BMC within 10 s)"
    )


def test_an_off_neighbour_whose_bmc_gives_no_draw_counts_0_w_and_is_named(
    tmp_path: Path,
) -> None:
    """sushy-emulator's case: view-2 reads Off and its BMC offers no draw. Counted at its
    steady draw (300 W) it refused a power-on that fits; it stays off, so 0 W, said."""
    from pacs_tui.batch.dry_run import dry_run_lines
    from pacs_tui.batch.plan import PlanOptions, build_plan
    from test_batch_plan import ACTIONS, facts

    options = PlanOptions(baseline_w={"view-1": 200.0, "view-2": 300.0})
    draws = {"view-1": 0.0, "view-2": None}
    plan = build_plan(_racked(tmp_path, 500), ["view-1"], "on", facts("Off"), ACTIONS, options,
                      draw_now=draws)  # type: ignore[arg-type]  # fmt: skip
    assert not plan.refused, plan.refusals
    data = plan.to_json()
    assert data["present_load_w"] == {"R01": 0.0} and data["off_unread"] == ["view-2"]
    assert data["assumed_w"] == {}
    assert (
        "  read Off, their BMC gives no draw: counted at 0 W (standby not counted): view-2"
    ) in dry_run_lines(plan)
    # Running (On) and unreadable, it counts its steady draw: 300 + 400 W > 500 W.
    on = build_plan(_racked(tmp_path, 500), ["view-1"], "on", facts("Off", view_2="On"), ACTIONS,
                    options, draw_now=draws)  # type: ignore[arg-type]  # fmt: skip
    assert on.refused


def test_a_power_on_whose_draw_cannot_be_read_counts_its_peak_and_waits_for_nothing(
    tmp_path: Path,
) -> None:
    """A draw unreadable when planned would never be seen to settle: the server is counted at
    its boot peak for good and gets no settle step (the run once waited out the timeout and
    then held the next group)."""
    from pacs_tui.batch.dry_run import dry_run_lines
    from pacs_tui.batch.plan import PlanOptions, build_plan
    from test_batch_plan import ACTIONS, facts

    options = PlanOptions(baseline_w={"view-1": 200.0, "view-2": 300.0})
    plan = build_plan(_racked(tmp_path, 1000), ["view-1", "view-2"], "on", facts("Off"), ACTIONS,
                      options, draw_now={"view-1": None, "view-2": 0.0})  # type: ignore[arg-type]  # fmt: skip
    assert not plan.refused, plan.refusals
    (wave,) = plan.waves
    # view-1 counts 400 W for good, so staggering gains nothing: both boot together.
    assert [g.servers for g in wave.groups] == [("view-1", "view-2")]
    assert wave.groups[0].expected_peak_w["R01"] == 1000.0
    settles = {sp.server.name: [s for s in sp.steps if s.kind == "settle"] for sp in wave.servers}
    assert settles == {"view-1": [], "view-2": []}
    assert plan.to_json()["at_peak_w"] == {"view-1": 400.0}
    assert (
        "  draw not readable now, so counted at their boot peak for good (no settle step): "
        "view-1 400 W"
    ) in dry_run_lines(plan)


def test_a_restart_refusal_hints_at_what_can_be_done(tmp_path: Path) -> None:
    from pacs_tui.batch.plan import PlanOptions, build_plan
    from pacs_tui.batch.power_budget import HINT_OVER_BUDGET, HINT_PEAK_ALONE, HINT_RESTART
    from test_batch_plan import ACTIONS, facts

    options = PlanOptions(baseline_w={"view-1": 200.0, "view-2": 300.0})
    draws = {"view-1": 200.0, "view-2": 300.0}

    def hints(budget: float, names: list[str]) -> tuple[str, ...]:
        plan = build_plan(_racked(tmp_path, budget), names, "restart", facts(), ACTIONS, options,
                          draw_now=draws)  # type: ignore[arg-type]  # fmt: skip
        assert plan.refused
        return plan.hints

    # One server's peak alone (600 W) over 500 W: not "restart fewer".
    assert HINT_PEAK_ALONE in hints(500, ["view-2"])
    # 600 W on top of view-1's 200 W over 700 W: one server, so the rack's load is to blame.
    alone = hints(700, ["view-2"])
    assert HINT_OVER_BUDGET in alone and HINT_RESTART not in alone
    # Both at once (1 000 W) over 999 W: fewer at once would fit.
    assert HINT_RESTART in hints(999, ["view-1", "view-2"])
