"""The weekend itself: each phase driven through the engines the lead uses.

The order and what each phase checks are described in the package docstring
(``pacs_tui.rehearsal``); a phase that makes going on unsafe raises
``RehearsalStopped``, which ``Rehearsal.phase`` records as the stopping point.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from pacs_tui.batch.audit import AuditLog
from pacs_tui.batch.confirm import Confirmation
from pacs_tui.batch.gates import GatePolicy
from pacs_tui.batch.plan import BatchPlan, PlanOptions
from pacs_tui.batch.readings import MonitorReadings, power_facts
from pacs_tui.batch.result import FINE
from pacs_tui.batch.runner import BatchResult, FailurePolicy
from pacs_tui.custody import CustodyBoard, CustodyState
from pacs_tui.inventory import Inventory, Server, load_inventory
from pacs_tui.links import LinkReport, Sampling, measure_links, site_links
from pacs_tui.monitor import FleetMonitor
from pacs_tui.plugin_api import ProbeResult
from pacs_tui.plugin_catalog import load_probes
from pacs_tui.power import PowerState
from pacs_tui.rehearsal.control_client import SimControl
from pacs_tui.rehearsal.findings import name_problems
from pacs_tui.rehearsal.new_site import NewSitePlants
from pacs_tui.rehearsal.options import (
    DEAD_ON_ARRIVAL,
    FIND_QUERY,
    MISSING_STUDIES,
    REMOTE_BACKUP_KIND,
    RehearsalOptions,
    tolerances,
)
from pacs_tui.rehearsal.outcome import Detection, PhaseOutcome, RehearsalResult, RehearsalStopped
from pacs_tui.rehearsal.preflight import (
    RACK_POWER_PROBE,
    PreflightFindings,
    hold_dependents,
    link_findings,
    rack_power_findings,
)
from pacs_tui.rehearsal.report import write_summary
from pacs_tui.rehearsal.simulator_process import running_simulator
from pacs_tui.scheduler import ConcurrencyCaps
from pacs_tui.session import Session

log = logging.getLogger(__name__)

_GATE_PROBES = {"power", "ssh", "dicom"}


Progress = Callable[[str], None]
# Called with the simulator's control API once the weekend is over, before the simulator
# stops (tests count there what the simulated BMCs received).
Inspect = Callable[[SimControl], Awaitable[None]]


class Rehearsal(NewSitePlants):
    """One headless move weekend on a fresh simulated data center."""

    def __init__(
        self,
        options: RehearsalOptions,
        progress: Progress | None = None,
        on_simulator: Callable[[Path, Path], None] | None = None,
        inspect: Inspect | None = None,
    ) -> None:
        """``on_simulator(inventory_path, custody_path)`` is called once the simulator
        is up and the custody board written (a live view opens on them); ``inspect``
        once the weekend is over, while the simulator still runs."""
        self.options = options
        self.on_simulator = on_simulator
        self.inspect = inspect
        self.progress = progress or (lambda line: None)
        self.result = RehearsalResult(options)
        self.octet = options.address_octet or random.randint(100, 250)
        self._began = 0.0
        self.inventory: Inventory | None = None
        self.board: CustodyBoard | None = None
        self.audit: AuditLog | None = None
        self.written: Inventory | None = None  # the inventory file as the simulator wrote it
        self.power_up_failed: list[str] = []
        self.replaced: list[str] = []  # servers a spare replaced in this rehearsal
        self.planted_on: dict[str, str] = {}  # server (or site) -> the plant put there
        self.control: SimControl | None = None
        self.before: Any = None
        self.after: Any = None
        self.power_up_plan: BatchPlan | None = None  # the power-up's plan (rack budgets)
        self.budget_victim: str | None = None  # the rack rack-over-budget planted on
        self.power_up_peaks: dict[str, dict[str, float | None]] = {}  # rack -> budget and peaks, W

    # -- plumbing -------------------------------------------------------------------------

    def say(self, line: str) -> None:
        """Report progress (the CLI prints it)."""
        log.info("%s", line)
        self.progress(line)

    @contextlib.asynccontextmanager
    async def phase(self, name: str, kind: str) -> AsyncIterator[PhaseOutcome]:
        """Time one phase; a ``RehearsalStopped`` marks it failed and ends the run."""
        outcome = PhaseOutcome(name, kind, time.monotonic() - self._began)
        self.result.phases.append(outcome)
        self.say(f"[{outcome.started_s:6.1f} s] {name} ...")
        started = time.monotonic()
        try:
            yield outcome
        except RehearsalStopped as exc:
            outcome.ok = False
            outcome.summary = outcome.summary or str(exc)
            self.result.stopped_at = name
            raise
        finally:
            outcome.duration_s = time.monotonic() - started
            if self.board is not None and self.inventory is not None:
                no_service = self.board.affected_sites(self.inventory)
                outcome.no_service = sum(1 for a in no_service if str(a.level) == "no service")
            mark = "ok" if outcome.ok else "FAILED"
            self.say(f"         {name}: {mark} in {outcome.duration_s:.1f} s: {outcome.summary}")

    @property
    def moved(self) -> list[Server]:
        """Every server that moves: all but the remote-backup site's."""
        assert self.inventory is not None
        kinds = {n: s.kind for n, s in self.inventory.sites.items()}
        return [s for s in self.inventory.servers if kinds.get(s.site) != REMOTE_BACKUP_KIND]

    def _sim_args(self) -> list[str]:
        o = self.options
        return [
            "--servers", str(o.servers), "--seed", str(o.seed),
            "--address-octet", str(self.octet), "--time-scale", str(o.time_scale),
        ]  # fmt: skip

    # -- the run ----------------------------------------------------------------------------

    async def run(self) -> RehearsalResult:
        """Rehearse the weekend; write the report; return the result (never raises for a
        failed phase: the result says which one stopped it)."""
        o = self.options
        o.report_dir.mkdir(parents=True, exist_ok=True)
        self._began = time.monotonic()
        work = Path(tempfile.mkdtemp(prefix="pacs-tui-rehearsal-"))
        self.audit = AuditLog()
        try:
            self.say(
                f"rehearsal: {o.servers} simulated servers on 127.{self.octet}.x.y, "
                f"time scale {o.time_scale:g}, plants: {', '.join(o.plants) or 'none'}"
            )
            async with contextlib.AsyncExitStack() as stack:
                sim = await stack.enter_async_context(
                    running_simulator(
                        work / "dc", o.report_dir / "sim.log", self._sim_args(),
                        o.sim_start_timeout_s,
                    )
                )  # fmt: skip
                http = await stack.enter_async_context(aiohttp.ClientSession())
                self.control = SimControl(sim.control_url, http)
                self.inventory = self.written = load_inventory(sim.out / "inventory.yaml")
                board_path = o.report_dir / "custody.json"
                board_path.unlink(missing_ok=True)  # a fresh weekend: everything running
                self.board = CustodyBoard.open(self.inventory, path=board_path, audit=self.audit)
                self.board.save()
                if self.on_simulator is not None:
                    self.on_simulator(sim.out / "inventory.yaml", board_path)
                try:
                    await self._weekend()
                except RehearsalStopped:
                    pass  # the phase recorded why
                except Exception as exc:  # a bug or a broken peer: report it, never hide it
                    log.exception("rehearsal failed")
                    last = self.result.phases[-1].name if self.result.phases else "start"
                    self.result.stopped_at = last
                    self.result.detections.append(
                        Detection("rehearsal-error", f"{type(exc).__name__}: {exc}")
                    )
                if self.inspect is not None:
                    await self.inspect(self.control)
        except RehearsalStopped as exc:  # the simulator itself failed to start
            self.result.stopped_at = self.result.stopped_at or "simulator"
            self.result.detections.append(Detection("rehearsal", str(exc)))
        finally:
            self.result.elapsed_s = time.monotonic() - self._began
            self.result.summary_path = write_summary(self.result, self.board, self.inventory)
            if self.board is not None:
                self.board.close()
            self.audit.close()
            shutil.rmtree(work, ignore_errors=True)  # keys and credentials of the sim
        return self.result

    async def _weekend(self) -> None:
        await self._pre_checks()
        if MISSING_STUDIES in self.options.plants:
            await self._plant_missing_studies()
        await self._replication()
        self.before = await self._baseline("baseline before the move", "before")
        await self._shutdown()
        await self._transit()
        await self._preflight()
        await self._power_up()
        await self._replace_dead()
        self.after = await self._baseline("baseline at the new site", "after")
        await self._compare()

    # -- phases ---------------------------------------------------------------------------------

    def _monitor(self, servers: Sequence[Server], probes: set[str]) -> FleetMonitor:
        assert self.inventory is not None
        loaded = load_probes(probes)
        missing = probes - set(loaded.plugins)
        if missing:
            raise RehearsalStopped(f"probe plugin(s) not available: {', '.join(sorted(missing))}")
        return FleetMonitor(
            self.inventory,
            probes=list(loaded.plugins.values()),
            servers=list(servers),
            caps=ConcurrencyCaps(total=512),
        )

    async def _power_states(self, servers: Sequence[Server]) -> dict[str, str]:
        async with self._monitor(servers, {"power"}) as monitor:
            facts = await power_facts(MonitorReadings(monitor), servers)
        return {name: f.state for name, f in facts.items()}

    async def _pre_checks(self) -> None:
        assert self.inventory is not None
        async with self.phase("Pre-checks", "pre-checks") as outcome:
            states = await self._power_states(self.inventory.servers)
            off = sorted(n for n, s in states.items() if s != PowerState.ON)
            outcome.summary = f"{len(states) - len(off)} of {len(states)} servers On"
            if off:
                raise RehearsalStopped(f"not On before the move: {', '.join(off[:10])}")

    async def _plant_missing_studies(self) -> None:
        assert self.control is not None
        pairs = await self.control.call("GET", "/replicas")
        if not pairs:
            raise RehearsalStopped("the simulated fleet has no replica archive")
        replica = pairs[0]["replica"]
        # Inside the replication window, whatever its length.
        day = date.today() - timedelta(days=min(3, self.options.replication_days - 1))
        answer = await self.control.call(
            "POST", f"/hosts/{replica}/missing-days", {"days": [day.isoformat()]}
        )
        self.say(
            f"  planted {MISSING_STUDIES}: {replica} lacks {day} ({answer['studies']} studies)"
        )

    async def _replication(self) -> None:
        from pacs_tui.replication import check_replication

        assert self.control is not None and self.inventory is not None
        async with self.phase("Replication verified", "replication") as outcome:
            pairs = await self.control.call("GET", "/replicas")
            if not pairs:
                raise RehearsalStopped("no primary/replica archive pair to check")
            today = date.today()
            date_from = today - timedelta(days=self.options.replication_days - 1)
            unsafe: list[str] = []
            for pair in pairs:
                primary = self.inventory.server(pair["primary"])
                replica = self.inventory.server(pair["replica"])
                report = await check_replication(
                    primary, replica, date_from=date_from, date_to=today
                )
                if report.safe_to_shutdown:
                    continue
                unsafe.append(primary.name)
                if report.differences:
                    spans = ", ".join(
                        a.isoformat() if a == b else f"{a}..{b}" for a, b in report.ranges()
                    )
                    lacking = sum(
                        d.primary - d.replica for d in report.differences if d.modality is None
                    )
                    self.result.detections.append(
                        Detection(
                            MISSING_STUDIES,
                            f"replica {replica.name} lacks {lacking} studies of {primary.name} "
                            f"on {spans}: NOT SAFE to shut down {primary.name}",
                        )
                    )
                if report.errors:
                    self.result.detections.append(
                        Detection("replication-check", f"{report.verdict()}: {report.errors[0]}")
                    )
            outcome.summary = f"{len(pairs)} replica pair(s) over {date_from}..{today}: " + (
                f"NOT safe to shut down ({', '.join(unsafe)})" if unsafe else "identical"
            )
            if unsafe:
                raise RehearsalStopped(outcome.summary)

    async def _baseline(self, title: str, label: str) -> Any:
        from pacs_tui.baseline.capture import capture_baseline
        from pacs_tui.baseline.model import save_baseline

        assert self.inventory is not None
        async with self.phase(title.capitalize(), "baseline") as outcome:
            window = self.before.study_window if self.before is not None else None
            settings: dict[str, Any] = {
                "study_window_days": self.options.study_window_days,
                "max_concurrency": self.options.capture_concurrency,
            }
            if window is not None:  # AFTER counts exactly the days BEFORE counted
                settings["study_window"] = [window[0].isoformat(), window[1].isoformat()]
            find_query = dict(self.before.find_query) if self.before is not None else FIND_QUERY
            held = self.result.held
            # A server held Off is not measured: an Off box's errors prove nothing.
            servers = [s for s in self.inventory.servers if s.name not in held]
            baseline = await capture_baseline(
                self.inventory,
                servers=servers,
                samples=self.options.samples,
                label=label,
                settings=settings,
                find_query=find_query,
            )
            path = self.options.report_dir / f"baseline-{label}.json"
            save_baseline(baseline, path)
            errors = sum(1 for s in baseline.servers.values() if s.errors)
            outcome.summary = (
                f"{len(baseline.servers)} servers, {self.options.samples} samples each"
                + (f", {errors} with errors" if errors else "")
                + f" → {path.name}"
            )
            return baseline

    async def _power_batch(self, verb: str, servers: list[Server]) -> BatchResult:
        assert self.inventory is not None and self.audit is not None
        o = self.options
        budgets = verb == "on" and bool(self.inventory.racks)
        options = PlanOptions(
            escalate_after_s=o.escalate_after_s if verb == "off" else None,
            power_timeout_s=o.batch_timeout_s,
            gate=GatePolicy(timeout_s=o.batch_timeout_s, poll_s=o.poll_s),
            # The racks' budgets: each server's boot peak expected from its draw before.
            baseline_w={} if self.before is None else self.before.power_draws(),
            baseline_given=self.before is not None,
            settle_timeout_s=o.batch_timeout_s,
            settle_poll_s=o.poll_s,
        )
        settings = {"redfish_task_poll_s": o.poll_s, "ssh_max_new_connections": 20}
        probes = _GATE_PROBES | ({RACK_POWER_PROBE} if budgets else set())
        watched = list(servers)
        if budgets:  # the draw of everything sharing their racks is read to plan
            racks = {s.rack for s in servers if s.rack in self.inventory.racks}
            names = {s.name for s in servers}
            watched += [
                s for s in self.inventory.servers if s.rack in racks and s.name not in names
            ]
        async with self._monitor(watched, probes) as monitor:
            readings = MonitorReadings(monitor)
            async with Session(self.inventory, audit=self.audit, settings=settings) as session:
                plan, batch = await session.plan(
                    servers, verb, readings, options, selection="rehearsal: moved servers"
                )
                if plan.refused:
                    raise RehearsalStopped(f"{verb} plan refused: {'; '.join(plan.refusals)}")
                if verb == "on" and self.power_up_plan is None:
                    self.power_up_plan = plan
                confirmation = Confirmation.assumed(plan, "rehearsal")
                session.record_confirmation(plan, batch, confirmation, True)
                runner = session.runner(
                    plan,
                    readings,
                    batch_id=batch,
                    confirmation=confirmation,
                    concurrency=o.concurrency,
                    on_failure=FailurePolicy.LEAVE_OUT,
                    poll_s=o.poll_s,
                )
                result = await runner.run()
                if plan is self.power_up_plan:
                    self.power_up_peaks = result.budget_peaks
                return result

    def _batch_summary(self, result: BatchResult) -> str:
        counts = ", ".join(f"{v} {k}" for k, v in sorted(result.counts().items()))
        return (
            f"{counts} in {len(result.waves)} wave(s), critical path "
            f"{result.critical_path_s:.1f} s (batch {result.batch})"
        )

    def _batch_failures(self, result: BatchResult) -> list[str]:
        return [
            f"{r.server}: {r.status}: {r.detail}"
            for r in result.servers.values()
            if r.status not in FINE
        ]

    async def _moved_batch(
        self,
        outcome: PhaseOutcome,
        verb: str,
        state: CustodyState,
        reason: str,
        detection: str,
        servers: list[Server] | None = None,
    ) -> list[str]:
        """Run ``verb`` on ``servers`` (default: the moved ones); those at target advance
        to ``state``.

        Returns the failures (``server: status: detail``), each also a ``detection``.
        """
        assert self.board is not None
        result = await self._power_batch(verb, self.moved if servers is None else servers)
        at_target = [r.server for r in result.servers.values() if r.status in FINE]
        self.board.advance(at_target, state, reason=reason)
        outcome.summary = self._batch_summary(result)
        failures = self._batch_failures(result)
        self.result.detections.extend(Detection(detection, failure) for failure in failures)
        return failures

    async def _shutdown(self) -> None:
        async with self.phase("Shutdown waves", "shutdown") as outcome:
            failures = await self._moved_batch(
                outcome, "off", CustodyState.SHUT_DOWN, "rehearsal: powered off", "shutdown-failed"
            )
            if failures:
                raise RehearsalStopped(f"{len(failures)} server(s) did not power off")

    async def _transit(self) -> None:
        assert self.board is not None and self.control is not None
        names = [s.name for s in self.moved]
        async with self.phase("Transit", "transit") as outcome:
            self.board.advance(names, CustodyState.IN_TRANSIT, reason="rehearsal: on the truck")
            await self.control.set_faults(names, {"bmc_unreachable": True})
            states = await self._power_states(self.moved)
            answering = sorted(n for n, s in states.items() if s in (PowerState.ON, PowerState.OFF))
            if answering:
                raise RehearsalStopped(f"BMCs still answering in transit: {', '.join(answering)}")
            await asyncio.sleep(self.options.transit_s)  # the trucks: nothing to poll for
            outcome.summary = (
                f"{len(names)} BMCs unreachable for {self.options.transit_s:g} s "
                f"(power probe: {len(states)} unreachable)"
            )
        async with self.phase("Rack and cable", "rack") as outcome:
            self._set_rack_budgets()
            await self._plant_in_new_site()
            budgets = self._budget_summary()  # as in force, after any plant
            await self.control.set_faults(names, {"bmc_unreachable": False})
            self.board.advance(names, CustodyState.RACKED, reason="rehearsal: racked")
            outcome.summary = f"{len(names)} servers racked, BMCs reachable again; {budgets}"

    async def _preflight(self) -> None:
        """Before anything at the new site is powered on: every site's WAN link measured
        as ``pacs-tui preflight`` does, every moved server's rack power read while Off.
        Findings and held servers: ``pacs_tui.rehearsal.preflight``."""
        assert self.inventory is not None
        async with self.phase("Preflight at the new site", "preflight") as outcome:
            found = PreflightFindings()
            link_findings(await self._measure_links(), self.moved, found)
            rack_power_findings(await self._rack_power_off(), found)
            hold_dependents(self.inventory, self.moved, found)
            self.result.detections.extend(found.detections)
            self.result.held.update(found.held)
            self.result.not_proven.update(found.not_proven)
            self.result.preflight = [found.summary(), *found.lines]
            for name, why in found.held.items():
                self.say(f"  {name}: held Off at power-up ({why})")
            outcome.summary = found.summary()
            outcome.ok = not found.detections  # go on: what is not held powers up

    async def _measure_links(self) -> list[LinkReport]:
        """Every site link, as ``pacs-tui preflight`` measures it; a link not ``ok`` is
        measured once more (as an operator re-runs the preflight for that site) and the
        second reading stands."""
        assert self.inventory is not None
        o = self.options
        pairs = site_links(self.inventory)
        sampling = Sampling(samples=o.link_samples, parallel=o.link_parallel)
        reports = await measure_links(pairs, sampling)
        again = [i for i, r in enumerate(reports) if r.verdict != "ok"]
        if again:
            second = await measure_links([pairs[i] for i in again], sampling)
            for i, report in zip(again, second, strict=True):
                reports[i] = report
        return reports

    async def _rack_power_off(self) -> dict[str, ProbeResult | None]:
        """Each moved server's ``rack-power`` reading (supplies, input, inlet), taken while
        the server is Off: its BMC runs on standby power."""
        servers = self.moved
        async with self._monitor(servers, {"power", RACK_POWER_PROBE}) as monitor:
            readings = MonitorReadings(monitor)
            gate = asyncio.Semaphore(64)

            async def one(server: Server) -> tuple[str, ProbeResult | None]:
                async with gate:
                    return server.name, await readings.read(server, RACK_POWER_PROBE)

            return dict(await asyncio.gather(*(one(s) for s in servers)))

    async def _power_up(self) -> None:
        held = self.result.held
        async with self.phase("Power-up waves", "power-up") as outcome:
            failures = await self._moved_batch(
                outcome, "on", CustodyState.POWERED, "rehearsal: gate passed", "power-up-failed",
                servers=[s for s in self.moved if s.name not in held],
            )  # fmt: skip
            self.power_up_failed = [f.split(":", 1)[0] for f in failures]
            await self._rack_power_report()
            plan = self.power_up_plan
            if plan is not None and plan.budget is not None:
                groups = sum(len(w.groups) for w in plan.waves)
                outcome.summary += (
                    f"; {len(plan.budget.budgets)} rack budget(s), {groups} power group(s)"
                )
            if held:
                outcome.summary += f"; held Off: {', '.join(held)}"
            if failures or held:
                outcome.ok = False  # go on: the comparison tells what the failure costs

    async def _replace_dead(self) -> None:
        """Servers that failed the power-up and whose BMC still says Off are dead on
        arrival: each is replaced from the spares pool as ``pacs-tui replace`` does
        (the spare's BMC read, the replacement recorded, custody racked) and powered
        on through the spare's BMC. The simulator racks each spare with the server's
        OS image restored, SSH host keys included."""
        from pacs_tui.bmc_identity import IdentityError, read_identity
        from pacs_tui.replacements import load_applied, replace_server

        assert self.inventory is not None and self.written is not None
        assert self.control is not None and self.board is not None and self.audit is not None
        if not self.power_up_failed:
            return
        failed = [self.inventory.server(n) for n in self.power_up_failed]
        states = await self._power_states(failed)
        dead = [s.name for s in failed if states.get(s.name) == PowerState.OFF]
        if not dead:
            return
        path = self.options.report_dir / "replacements.json"
        path.unlink(missing_ok=True)
        async with self.phase("Replace from the spares pool", "rack") as outcome:
            pool = list(self.written.spares.values())
            for name in dead:
                if not pool:
                    raise RehearsalStopped(f"no spare left to replace {name}")
                spare = pool.pop(0)
                await self.control.call(
                    "POST", f"/spares/{spare.name}/rack", {"server": name, "new_host_key": False}
                )
                try:
                    box = await read_identity(self.written, spare.bmc)
                except IdentityError as exc:
                    raise RehearsalStopped(f"spare {spare.name}'s BMC: {exc}") from None
                if box.serial != spare.serial:
                    raise RehearsalStopped(
                        f"spare {spare.name}'s BMC reports serial {box.serial}, not {spare.serial}"
                    )
                replace_server(
                    self.written,
                    self.inventory.server(name),
                    spare.name,
                    serial=box.serial,
                    macs=box.macs,
                    old_serial=None,
                    audit=self.audit,
                    board=self.board,
                    path=path,
                )
                # Named by what was seen (power-on taken, PowerState Off), not by the plant.
                self.result.detections = [
                    d
                    for d in self.result.detections
                    if not (d.fault == "power-up-failed" and d.message.startswith(f"{name}:"))
                ]
                self.result.detections.append(
                    Detection(
                        DEAD_ON_ARRIVAL,
                        f"{name} stayed Off after its power-on; replaced by spare {spare.name} "
                        f"(serial {box.serial})",
                    )
                )
                self.replaced.append(name)
                self.say(f"  {name}: dead on arrival, replaced by {spare.name}")
            self.inventory = load_applied(self.written, path)
            result = await self._power_batch("on", [self.inventory.server(n) for n in dead])
            at_target = [r.server for r in result.servers.values() if r.status in FINE]
            self.board.advance(at_target, CustodyState.POWERED, reason="rehearsal: spare powered")
            failures = self._batch_failures(result)
            self.result.detections.extend(Detection("power-up-failed", f) for f in failures)
            outcome.summary = (
                f"{len(dead)} replaced ({', '.join(dead)}); {self._batch_summary(result)}"
            )
            outcome.ok = not failures

    def _planned(self) -> dict[str, Any]:
        """The replacements this rehearsal made, as the comparison's planned identities."""
        from pacs_tui.baseline.compare import PlannedIdentity
        from pacs_tui.replacements import read_replacements

        path = self.options.report_dir / "replacements.json"
        if not self.replaced:
            return {}
        return {
            e.server: PlannedIdentity(e.spare, e.serial, e.macs, f"recorded {e.at}")
            for e in read_replacements(path)
        }

    async def _compare(self) -> None:
        from pacs_tui.baseline.compare import compare_baselines
        from pacs_tui.baseline.report import write_report

        assert self.board is not None
        async with self.phase("Compare with the baseline", "compare") as outcome:
            held = self.result.held
            # Held servers are left out of both sides: they were never powered on here, so
            # the report neither judges them nor calls them missing (the verdict names them).
            before = replace(
                self.before,
                servers={n: s for n, s in self.before.servers.items() if n not in held},
            )
            comparison = compare_baselines(
                before, self.after, tolerances(self.options), planned=self._planned()
            )
            md, html = write_report(comparison, before, self.after, self.options.report_dir)
            self.result.report_paths = (md, html)
            detections = name_problems(comparison, self.before, self.after, held)
            self.result.detections.extend(detections)
            problems = [
                f for f in comparison.problems() if not (f.scope == "server" and f.name in held)
            ]
            troubled = {f.name for f in problems if f.scope == "server"}
            roles_bad = {f.name for f in problems if f.scope == "role"}
            verified = [
                s.name
                for s in self.moved
                if self.board.state(s.name) is CustodyState.POWERED
                and s.name not in troubled
                and s.name not in self.result.not_proven  # the preflight's degraded ones
                and s.role not in roles_bad
            ]
            self.board.advance(verified, CustodyState.VERIFIED, reason="rehearsal: same or better")
            verdicts = ", ".join(f"{v} {k}" for k, v in sorted(comparison.verdicts().items()))
            outcome.summary = f"{verdicts}; {len(verified)} of {len(self.moved)} verified"
            if held:
                outcome.summary += f"; held Off, not compared: {', '.join(held)}"
            # Held servers are the preflight's finding (the verdict fails on it), not this one's.
            outcome.ok = comparison.ok or (bool(held) and not problems)
