"""The control room: the Textual app the on-site lead drives.

The app owns one ``FleetMonitor`` (the fleet's only poller) and reads its
``FleetState``; it never polls an endpoint itself. A 4 Hz timer drains the
state's coalesced change feed and hands the changed servers to the widgets,
which redraw at most once per tick; a 1 Hz timer refreshes ages, STALE
readings and the roll-up.

Read-only is a property of the engine, not of the keys: the app owns a
``pacs_tui.session.Session``; with ``read_only=True`` (or an inventory
marked ``read_only``) that session is read-only, refuses to load action
plugins or build a runner, the app holds no runner, and the batch keys are
not even bound (they live on ``BatchDesk``, which is then not mounted).

A writable room runs power batches on the marked servers through the same
engine as ``pacs-tui power``: plan (``PlanScreen``: waves, dry-run calls,
refusals, override, escalation, typed confirmation), then a live
``BatchPane`` under the grid while the grid keeps the focus. The batch
reads PowerStates through ``MonitorReadings`` on the app's own poller.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import Footer, Header

from pacs_tui.baseline.model import BaselineError
from pacs_tui.batch.audit import AuditLog, default_audit_path
from pacs_tui.batch.confirm import DEFAULT_THRESHOLD, ConfirmationRequired, ConfirmationRule
from pacs_tui.batch.gates import GatePolicy
from pacs_tui.batch.plan import VERBS, BatchPlan, PlanError, PlanOptions
from pacs_tui.batch.progress import BatchProgress
from pacs_tui.batch.readings import MonitorReadings
from pacs_tui.batch.runner import BatchResult, BatchRunner, PlanRefused
from pacs_tui.custody import CustodyBoard, CustodyChange, CustodyError, parse_state
from pacs_tui.inventory import Inventory, Server
from pacs_tui.monitor import FleetMonitor
from pacs_tui.plugin_api import Health, Probe
from pacs_tui.rollup import FleetRollup, fleet_rollup
from pacs_tui.runbook import Runbook
from pacs_tui.selector import SelectorError, compile_selector
from pacs_tui.session import ReadOnlySession, Session
from pacs_tui.state import ChangeFeed
from pacs_tui_widgets.abort_prompt import AbortPrompt
from pacs_tui_widgets.audit_pane import AuditPane
from pacs_tui_widgets.baseline_screen import BaselineScreen, load_view
from pacs_tui_widgets.batch_desk import BATCH_BINDING_IDS, BatchDesk
from pacs_tui_widgets.batch_pane import BatchPane
from pacs_tui_widgets.command_line import CommandError, CommandLine, parse_command
from pacs_tui_widgets.commands import ControlRoomCommands, PaletteCommand
from pacs_tui_widgets.crash import crash_report
from pacs_tui_widgets.custody_desk import (
    CUSTODY_BINDING_IDS,
    CUSTODY_BINDINGS,
    CustodyDesk,
    CustodyPrompt,
)
from pacs_tui_widgets.detail_pane import DetailPane
from pacs_tui_widgets.event_log import DownNotices, EventLog
from pacs_tui_widgets.filter_bar import FilterBar
from pacs_tui_widgets.fleet_grid import FleetGrid
from pacs_tui_widgets.fleet_health import FleetHealth
from pacs_tui_widgets.fleet_rows import COLUMNS, CUSTODY_COLUMNS, GROUP_KEYS
from pacs_tui_widgets.health_style import STATE_VARIABLE_DEFAULTS
from pacs_tui_widgets.help_screen import BindingRow, HelpScreen, binding_rows
from pacs_tui_widgets.keymap import KeymapConfig, load_keymap
from pacs_tui_widgets.modal import Palette
from pacs_tui_widgets.move_bar import MoveBar
from pacs_tui_widgets.move_status import MoveStatus, wall_clock
from pacs_tui_widgets.plan_screen import PlanDecision, PlanScreen
from pacs_tui_widgets.summary_bar import SummaryBar

log = logging.getLogger(__name__)

DEFAULT_THEME = "dark"
FALLBACK_THEME = "textual-dark"
TICK_S = 0.5  # how often state changes reach the screen (keys redraw at once)
ROLLUP_S = 1.0  # ages, STALE, summary bar, event log, toasts
THREAD_ROLLUP_ABOVE = 500  # servers; smaller fleets roll up in well under 10 ms
QUIT_AGAIN_S = 5.0  # a second q within this time quits although a batch runs
CUSTODY_CONFIRM_ABOVE = 5  # servers; a larger custody change is asked about first


class ControlRoomApp(App[int]):
    """Live fleet grid, detail pane, summary bar, event log, filter and commands."""

    CSS_PATH = "control_room.tcss"
    TITLE = "pacs-tui control room"
    COMMANDS = App.COMMANDS | {ControlRoomCommands}

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "filter", "Filter", id="app.filter"),
        Binding("colon", "command_line", "Command", id="app.command"),
        Binding("question_mark", "help", "Help", id="app.help"),
        Binding("escape", "clear", "Clear", id="app.clear"),
        Binding("ctrl+p", "command_palette", "Palette", show=False, id="app.palette"),
        Binding("L", "audit", "Show/hide the audit log", show=False, id="app.audit"),
        Binding("q", "quit", "Quit", id="app.quit"),
    ]

    def __init__(
        self,
        inventory: Inventory,
        *,
        read_only: bool = False,
        probes: Sequence[Probe] | None = None,
        settings: Mapping[str, Any] | None = None,
        keymap: KeymapConfig | None = None,
        session: Session | None = None,
        runner: BatchRunner | None = None,
        clock: Callable[[], float] | None = None,
        theme_dir: Path | None = None,
        custody: CustodyBoard | None = None,
        runbook: Runbook | None = None,
        wall_time: Callable[[], datetime] | None = None,
        live_phases: Callable[[], Sequence[tuple[str, str]]] | None = None,
        baseline_compare: tuple[Path, Path] | None = None,
    ) -> None:
        """Build the control room.

        ``probes``/``settings`` go to the ``FleetMonitor`` (None: the installed
        probe plugins) and ``settings`` to the session. ``keymap`` None reads the
        user's config file. ``session`` None builds ``Session(inventory,
        read_only=read_only, settings=settings)``; a given session must be
        read-only when ``read_only`` is asked. The app opens it (a writable one
        loads the action plugins) and closes it on exit. ``runner`` is a batch
        runner built elsewhere to follow in the batch pane; refused when
        read-only. ``clock`` replaces the state's clock (tests use a fixed one);
        ``theme_dir`` the user theme folder.

        ``custody`` adds the CUSTODY column and, in a writable room, the
        custody key and ``:custody`` (a read-only room only reads the board,
        and follows its file as others change it). ``runbook`` puts the
        current phase and the clock against plan in the move line;
        ``wall_time`` replaces the clock the runbook is read against.
        ``live_phases()`` is drained every second: ``(phase, log line)`` pairs
        of a rehearsal playing in this room (``pacs-tui demo --scenario
        move-weekend``).

        ``baseline_compare`` ``(BEFORE, AFTER)`` opens the baseline view at start
        (as ``:baseline BEFORE AFTER``; it only reads the files, read-only or not).
        """
        super().__init__()
        if session is None:
            session = Session(inventory, read_only=read_only, settings=settings)
        elif session.inventory is not inventory:
            raise ValueError("the session must be over the same inventory as the control room")
        elif read_only and not session.read_only:
            raise ValueError("a read-only control room needs a read-only session")
        if session.read_only and runner is not None:
            raise ValueError("a read-only session cannot hold an action runner")
        self.inventory = inventory
        self.session = session
        self.read_only = session.read_only
        # The batch being run or shown; None in a read-only session, always.
        self.runner: BatchRunner | None = runner
        self.readings: MonitorReadings | None = None
        self.batch_active = False
        self.confirm_rule = ConfirmationRule(
            int(session.settings.get("confirm_threshold", DEFAULT_THRESHOLD))
        )
        self._session_open = False
        self._quit_asked_at: float | None = None
        self.monitor = FleetMonitor(inventory, probes=probes, settings=settings)
        if clock is not None:
            self.monitor.state.clock = clock
        self.state = self.monitor.state
        self.servers = {s.name: s for s in self.monitor.servers}
        self.applicable: dict[str, frozenset[str]] = {
            s.name: frozenset(p.name for p in self.monitor.probes if p.applies_to(s))
            for s in self.monitor.servers
        }
        self.health = FleetHealth(self.servers)
        self.keymap_config = keymap
        self.theme_dir = theme_dir
        self.theme_names: list[str] = []
        self.feed: ChangeFeed | None = None
        self.down_notices = DownNotices()
        self.rollup: FleetRollup | None = None
        self._monitor_open = False
        self._rollup_running = False
        # Only a writable room holds the board as something it may change.
        self.custody: CustodyBoard | None = None if self.read_only else custody
        self.move = MoveStatus(board=custody, runbook=runbook, now=wall_time or wall_clock)
        self.live_phases = live_phases
        self.columns = CUSTODY_COLUMNS if custody is not None else COLUMNS
        # The files of the last baseline view: ``:baseline`` alone re-reads them.
        self.baseline_files: tuple[Path, Path] | None = baseline_compare

    # -- layout ------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        kinds = {name: site.kind for name, site in self.inventory.sites.items()}
        yield Header(show_clock=False, icon="▣")
        yield SummaryBar(id="summary")
        if self.move.active or self.live_phases is not None:
            yield MoveBar(id="move")  # only in a move weekend: other rooms look as before
        # The batch keys exist only on BatchDesk (the custody key on CustodyDesk):
        # a read-only room never binds them.
        main: Horizontal
        if self.read_only:
            main = Horizontal(id="main")
        elif self.custody is not None:
            main = CustodyDesk(id="main")
        else:
            main = BatchDesk(id="main")
        with main:
            yield FleetGrid(
                list(self.servers.values()),
                self.state,
                self.health,
                self.applicable,
                kinds,
                custody=self.move.state if self.move.has_board else None,
                id="grid",
            )
            yield DetailPane(
                self.state,
                [p.name for p in self.monitor.probes],
                self.applicable,
                self.servers,
                id="detail",
            )
        if not self.read_only:
            yield BatchPane(id="batch")
        yield AuditPane(self._audit_log, id="audit")
        yield EventLog(id="events")
        yield FilterBar(id="filter")
        yield CommandLine(id="command")
        yield Footer()

    @property
    def main_screen(self) -> Screen[Any]:
        """The control room's own screen, also while a plan, help or prompt is on top.

        ``App.query_one`` searches the screen on top; the timers that feed the
        grid and the summary keep running under a modal and must find them.
        """
        return self.screen_stack[0]

    @property
    def grid(self) -> FleetGrid:
        """The fleet grid."""
        return self.main_screen.query_one("#grid", FleetGrid)

    @property
    def detail(self) -> DetailPane:
        """The detail pane."""
        return self.main_screen.query_one("#detail", DetailPane)

    @property
    def events(self) -> EventLog:
        """The event log."""
        return self.main_screen.query_one("#events", EventLog)

    @property
    def batch_pane(self) -> BatchPane:
        """The live batch pane (writable sessions only)."""
        return self.main_screen.query_one("#batch", BatchPane)

    @property
    def audit_pane(self) -> AuditPane:
        """The audit pane."""
        return self.main_screen.query_one("#audit", AuditPane)

    def get_theme_variable_defaults(self) -> dict[str, str]:
        return {**super().get_theme_variable_defaults(), **STATE_VARIABLE_DEFAULTS}

    def action_command_palette(self) -> None:
        """Open the command palette (one that runs a command once, however often Enter comes)."""
        if self.use_command_palette and not isinstance(self.screen, Palette):
            self.push_screen(Palette(id="--command-palette"))

    def _handle_exception(self, error: Exception) -> None:
        # Logged with its traceback, shown as one line, exit status non-zero.
        super()._handle_exception(crash_report("the control room", error))

    # -- start and stop ----------------------------------------------------------

    async def on_mount(self) -> None:
        self.sub_title = f"{self.inventory.path.name} · {len(self.servers)} servers" + (
            " · READ-ONLY" if self.read_only else ""
        )
        self.set_class(self.read_only, "-read-only")
        self._load_themes()
        self._apply_keymap()
        self.grid.focus()
        self.feed = self.state.subscribe()
        self.set_interval(TICK_S, self._tick, name="changes")
        self.set_interval(ROLLUP_S, self._second, name="rollup")
        self.call_later(self._second)
        self.run_worker(self._start_monitor(), name="monitor")
        if self.runner is not None:
            self._follow(self.runner)
        if self.baseline_files is not None:
            try:
                self.open_baseline(*self.baseline_files)
            except BaselineError as exc:  # the file changed since the CLI checked it
                self.notify(f"baseline not shown: {exc}", severity="error", timeout=15)

    async def _start_monitor(self) -> None:
        await self.monitor.open()
        self._monitor_open = True
        self.readings = MonitorReadings(self.monitor)
        if not self.read_only:
            await self._open_session()
        now = self.state.clock()
        opened = {p.name for p in self.monitor.probes}
        for name in self.applicable:  # a probe that failed to open reads nothing
            self.applicable[name] = self.applicable[name] & opened
        for plugin, reason in self.monitor.failed_plugins.items():
            self.events.note(now, f"probe plugin {plugin} failed: {reason}", Health.UNKNOWN)
            self.notify(f"probe plugin {plugin} failed: {reason}", severity="warning")
        self.events.note(
            now,
            f"monitoring {len(self.servers)} servers with "
            f"{', '.join(sorted(opened)) or 'no probes'}"
            + (" (read-only session)" if self.read_only else ""),
        )
        self.monitor.start()

    async def _open_session(self) -> None:
        """Load and open the action plugins; a broken one is reported, not fatal."""
        now = self.state.clock()
        try:
            await self.session.open()
        except Exception as exc:  # the room still monitors; batches will say why not
            self.events.note(now, f"power actions unavailable: {exc}", Health.UNKNOWN)
            self.notify(f"power actions unavailable: {exc}", severity="error", timeout=10)
            return
        self._session_open = True
        for action, reason in self.session.failed_actions.items():
            self.events.note(now, f"action plugin {action} failed: {reason}", Health.UNKNOWN)
            self.notify(f"action plugin {action} failed: {reason}", severity="warning")

    async def on_unmount(self) -> None:
        if self.runner is not None and self.batch_active:
            self.runner.abort("the control room was closed")
        if self.feed is not None:
            self.state.unsubscribe(self.feed)
        await self.session.close()
        if self._monitor_open:
            await self.monitor.close()

    def _load_themes(self) -> None:
        try:
            module = importlib.import_module("pacs_tui_themes")
            load = (
                getattr(module, "load_themes", None)
                or importlib.import_module("pacs_tui_themes.loader").load_themes
            )
            themes = load(self.theme_dir)
        except Exception as exc:  # the room still works in Textual's own colours
            log.warning("themes not loaded: %s", exc)
            self.theme = FALLBACK_THEME
            return
        for theme in themes:
            self.register_theme(theme)
        self.theme_names = list(themes.names)
        for problem in themes.problems:
            self.notify(f"theme skipped: {problem}", severity="warning", timeout=8)
        self.theme = DEFAULT_THEME if DEFAULT_THEME in themes else FALLBACK_THEME

    def _apply_keymap(self) -> None:
        config = self.keymap_config if self.keymap_config is not None else load_keymap()
        # Batch and custody ids are known even where they are not bound: not a typo.
        known = (
            {row.binding_id for row in self.binding_rows({})}
            | set(BATCH_BINDING_IDS)
            | set(CUSTODY_BINDING_IDS)
            | {"custody.yes", "custody.no"}
        )
        checked = config.checked(known)
        self.keymap_config = checked
        for problem in checked.problems:
            self.notify(problem, severity="warning", timeout=8)
        if checked.keymap:
            self.set_keymap(checked.keymap)

    # -- the change feed ---------------------------------------------------------

    def _tick(self) -> None:
        """Apply every change since the last tick: one redraw, whatever the count."""
        if self.feed is None or not self.main_screen.query("#grid"):
            return  # not composed yet, or being torn down
        keys = self.feed.drain()
        if not keys:
            return
        servers = {server for server, _ in keys}
        self.grid.servers_changed(servers)
        if self.detail.display and self.detail.server in servers:
            self.detail.refresh_content()

    def _health_changed(self, changes: Mapping[str, tuple[Health, Health]]) -> None:
        now = self.state.clock()
        self.events.health_changes(now, changes)
        for server, (before, after) in changes.items():
            if after is Health.DOWN and before is not Health.DOWN:
                self.down_notices.add(server)

    async def _second(self) -> None:
        try:
            await self._each_second()
        except NoMatches:
            return  # a timer that fires while the app tears its screens down

    async def _each_second(self) -> None:
        if self._rollup_running:
            return  # the last one is still being computed: skip, never pile up
        self._rollup_running = True
        try:
            await self._refresh_rollup()
        finally:
            self._rollup_running = False
        if self.live_phases is not None:
            for phase, line in self.live_phases():
                self.note_live_phase(phase, line)
        self._refresh_move()
        self.grid.refresh()  # ages move on every second
        if self.detail.display:
            self.detail.refresh_content()
        message = self.down_notices.flush()
        if message:
            self.notify(message, title="DOWN", severity="error", timeout=10)

    async def _refresh_rollup(self) -> None:
        """Roll the fleet up, then update the summary, the health map, the log."""
        applicable = self.applicable

        def compute() -> FleetRollup:
            return fleet_rollup(
                self.inventory, self.state, lambda server: applicable.get(server.name, ())
            )

        if len(self.servers) > THREAD_ROLLUP_ABOVE:
            # ~0.1 s of pure reading at 3 000 servers: in a thread the GIL is handed
            # back every few ms, so a keypress never waits for the whole roll-up.
            rollup = await asyncio.to_thread(compute)
        else:
            rollup = compute()
        self.rollup = rollup
        self.main_screen.query_one(SummaryBar).show_rollup(rollup)
        changes = self.health.absorb(rollup.health)
        if changes:
            self._health_changed(changes)
            self.grid.refresh()

    def _refresh_move(self) -> None:
        """Follow the custody board and runbook files; redraw the move line."""
        try:
            changed = self.move.reload()
        except (OSError, ValueError, CustodyError) as exc:  # a half-written foreign file
            log.warning("custody/runbook not re-read: %s", exc)
            changed = False
        if changed and self.move.has_board:
            self.grid.custody_changed()
        for bar in self.main_screen.query(MoveBar):
            bar.show(self.move)

    def note_live_phase(self, phase: str, line: str = "") -> None:
        """A rehearsal playing in this room started ``phase``: log it, show it."""
        self.move.live_phase = phase
        self.events.note(self.state.clock(), line or f"rehearsal phase: {phase}")
        self._refresh_move()

    # -- grid messages -----------------------------------------------------------

    def on_fleet_grid_server_opened(self, message: FleetGrid.ServerOpened) -> None:
        self.detail.display = True
        self.detail.show(message.server)

    def on_fleet_grid_cursor_moved(self, message: FleetGrid.CursorMoved) -> None:
        if self.detail.display and message.server is not None:
            self.detail.show(message.server)

    # -- bindings ----------------------------------------------------------------

    def action_filter(self) -> None:
        """Open the filter input."""
        self.main_screen.query_one(FilterBar).open(self.grid.view.filter_text)

    def action_command_line(self) -> None:
        """Open the ``:`` command line."""
        self.main_screen.query_one(CommandLine).open()

    def action_help(self) -> None:
        """Show every binding."""
        self.push_screen(HelpScreen(self.binding_rows(self._keymap), self.read_only))

    def action_clear(self) -> None:
        """Close the detail pane; if it was closed, clear the filter and the marks."""
        if self.detail.display:
            self.detail.display = False
            self.grid.focus()
            return
        self._set_filter("")
        self.grid.set_marks(())

    async def action_quit(self) -> None:
        """Quit; while a batch runs, only when asked twice (the batch is then aborted)."""
        now = time.monotonic()
        if self.batch_active and (
            self._quit_asked_at is None or now - self._quit_asked_at > QUIT_AGAIN_S
        ):
            self._quit_asked_at = now
            self.notify(
                "a batch is running: press q again to abort it and quit (A aborts only)",
                severity="warning",
            )
            return
        self.exit()

    # -- batches -----------------------------------------------------------------

    def action_batch_power(self, verb: str) -> None:
        """Plan ``verb`` on the marked servers (or the cursor's) and show the plan."""
        self.start_power(verb)

    def start_power(self, verb: str, selector: str | None = None) -> bool:
        """Plan ``verb`` on the selector's servers, else the marked ones, else the cursor's.

        Returns False (with a toast saying why) when nothing was planned.
        """
        if verb not in VERBS:
            raise ValueError(f"unknown verb {verb!r}")
        if self.read_only:
            self.notify(f"refused: {self.session.read_only_reason}", severity="error")
            return False
        if self.batch_active:
            self.notify("a batch is running: wait for it or abort it (A)", severity="warning")
            return False
        if self.readings is None or not self._session_open:
            self.notify("power actions are not ready yet", severity="warning")
            return False
        names, selection = self._chosen_servers(selector)
        if not names:
            self.notify("nothing to act on: mark servers (space) or put the cursor on one")
            return False
        servers = [self.servers[name] for name in names]
        self.run_worker(self._plan_and_ask(verb, servers, selection), group="plan", exclusive=True)
        return True

    def _chosen_servers(self, selector: str | None) -> tuple[list[str], str]:
        if selector:
            kinds = {name: site.kind for name, site in self.inventory.sites.items()}
            predicate = compile_selector(selector, kinds)
            return [n for n, s in self.servers.items() if predicate(s)], selector
        if self.grid.marks:
            names = sorted(self.grid.marks)
            shown = ", ".join(names[:6]) + (f", … ({len(names)})" if len(names) > 6 else "")
            return names, f"marked: {shown}"
        cursor = self.grid.cursor_server
        return ([cursor], f"cursor: {cursor}") if cursor is not None else ([], "")

    def plan_options(self) -> PlanOptions:
        """The options a new plan starts from (escalation off; the screen changes it)."""
        gate_poll = float(self.session.settings.get("batch_poll_s", 1.0))
        return PlanOptions(gate=GatePolicy(poll_s=gate_poll))

    async def _plan_and_ask(self, verb: str, servers: list[Server], selection: str) -> None:
        readings = self.readings
        assert readings is not None
        self.notify(f"planning {verb} on {len(servers)} server(s): reading power states…")
        try:
            plan, batch = await self.session.plan(
                servers, verb, readings, self.plan_options(), selection=selection
            )
        except (PlanError, ReadOnlySession) as exc:
            self.notify(f"cannot plan {verb}: {exc}", severity="error", timeout=10)
            return

        async def replan(options: PlanOptions) -> tuple[BatchPlan, str]:
            return await self.session.plan(
                servers, verb, readings, options, selection=selection, batch_id=batch
            )

        screen = PlanScreen(
            plan, batch, rule=self.confirm_rule, replan=replan,
            record=self.session.record_confirmation,
        )  # fmt: skip
        self.push_screen(screen, self._plan_decided)

    def _plan_decided(self, decision: PlanDecision | None) -> None:
        now = self.state.clock()
        if decision is None:
            self.events.note(now, "batch plan cancelled: nothing was sent")
            return
        plan, batch = decision.plan, decision.batch
        if decision.dry_run:
            self.session.audit.record(
                batch, "dry-run", verb=plan.verb, outcome="dry-run",
                detail=f"{plan.summary()}; shown in the control room, nothing sent",
            )  # fmt: skip
            self.batch_pane.show_dry_run(plan, batch)
            self.events.note(now, f"dry run of batch {batch} ({plan.summary()}): nothing sent")
            return
        readings = self.readings
        assert readings is not None
        settings = self.session.settings
        try:
            runner = self.session.runner(
                plan, readings, batch_id=batch, confirmation=decision.confirmation,
                confirm_rule=self.confirm_rule,
                concurrency=int(settings.get("batch_concurrency", 32)),
                poll_s=float(settings.get("batch_poll_s", 1.0)),
            )  # fmt: skip
        except (PlanRefused, ConfirmationRequired, ReadOnlySession, ValueError) as exc:
            self.notify(f"not run: {exc}", severity="error", timeout=10)
            return
        self._follow(runner)
        self.events.note(now, f"batch {batch} started: {plan.summary()}")
        self.run_worker(self._run_batch(runner), name="batch", group="batch")

    def _follow(self, runner: BatchRunner) -> None:
        """Make ``runner`` the batch the keys and the pane act on until it ends."""
        self.runner = runner
        self.batch_active = True
        self.batch_pane.follow(runner)

        def ended(event: BatchProgress) -> None:
            if event.kind == "batch-end":
                self.batch_active = False
                self._quit_asked_at = None

        runner.subscribe(ended)

    async def _run_batch(self, runner: BatchRunner) -> None:
        try:
            result = await runner.run()
        except Exception as exc:  # an engine bug must not take the control room down
            log.exception("batch %s crashed", runner.batch_id)
            self.notify(f"batch {runner.batch_id} crashed: {exc}", severity="error", timeout=15)
            return
        finally:
            self.batch_active = False  # also when no batch-end event came
            self._quit_asked_at = None
        self.batch_pane.drain()
        text = batch_result_text(result)
        self.events.note(self.state.clock(), text, Health.OK if result.ok else Health.DOWN)
        self.notify(
            text, title="batch done" if result.ok else "batch INCOMPLETE",
            severity="information" if result.ok else "error", timeout=15,
        )  # fmt: skip

    def action_batch_view(self) -> None:
        """Show or hide the live batch pane."""
        pane = self.batch_pane
        if pane.plan is None:
            self.notify("no batch yet: mark servers, then O, N, R or F")
            return
        pane.display = not pane.display

    def action_batch_abort(self) -> None:
        """Ask, then abort the running batch (in-flight calls finish)."""
        runner = self.runner
        if runner is None or not self.batch_active:
            self.notify("no batch is running")
            return

        def answered(abort: bool | None) -> None:
            if abort and self.batch_active:
                runner.abort("operator abort (control room)")

        what = f"batch {runner.batch_id} ({runner.plan.verb}, {len(runner.plan.servers)} servers)"
        self.push_screen(AbortPrompt(what), answered)

    def action_batch_pause(self) -> None:
        """Pause the running batch (no new step starts), or resume it."""
        runner = self.runner
        if runner is None or not self.batch_active:
            self.notify("no batch is running")
            return
        if runner.paused:
            runner.resume()
        else:
            runner.pause()

    def action_audit(self) -> None:
        """Show or hide the audit pane."""
        self.audit_pane.toggle()

    def _audit_log(self) -> AuditLog | None:
        # A read-only room shows the log if there is one, never creates one.
        if self.read_only and not default_audit_path().exists():
            return None
        return self.session.audit

    # -- custody -----------------------------------------------------------------

    def action_custody_advance(self) -> None:
        """Advance the marked servers (or the cursor's) one custody step."""
        self.change_custody("advance")

    def change_custody(
        self, how: str, to: str | None = None, reason: str = "", *, confirmed: bool = False
    ) -> bool:
        """``advance`` (to the next state, or ``to``) or ``correct`` (to ``to``, with a
        reason) the marked servers, else the cursor's; more than
        ``CUSTODY_CONFIRM_ABOVE`` are asked about first. False (with a toast) when
        nothing changed or a question is pending.
        """
        board = self.custody
        if board is None:
            why = self.session.read_only_reason if self.read_only else "no custody board"
            self.notify(f"refused: {why}", severity="error")
            return False
        names, selection = self._chosen_servers(None)
        if not names:
            self.notify("nothing to change: mark servers (space) or put the cursor on one")
            return False
        if len(names) > CUSTODY_CONFIRM_ABOVE and not confirmed:
            target = to or "its next state"
            question = f"{how.capitalize()} custody of {len(names)} servers to {target}?"

            def answered(yes: bool | None) -> None:
                if yes:
                    self.change_custody(how, to, reason, confirmed=True)
                else:
                    self.events.note(self.state.clock(), f"custody {how} declined: nothing changed")

            self.push_screen(CustodyPrompt(question, selection), answered)
            return False
        try:
            if how == "correct":
                assert to is not None
                changes = board.correct(names, to, reason=reason)
            else:
                changes = board.advance(names, to, reason=reason)
        except (CustodyError, KeyError) as exc:
            self.notify(f"custody not changed: {exc}", severity="error", timeout=10)
            return False
        self.move.noted_own_change()
        self._custody_changed(changes)
        return True

    def _custody_changed(self, changes: Sequence[CustodyChange]) -> None:
        now = self.state.clock()
        if not changes:
            self.notify("custody unchanged: every server is already there")
            return
        moves = sorted({f"{c.before} → {c.after}" for c in changes})
        text = f"custody: {len(changes)} server(s) {', '.join(moves)}" + (
            f" (correction: {changes[0].reason})" if changes[0].correction else ""
        )
        self.events.note(now, text)
        self.notify(text)
        self.grid.custody_changed()
        for bar in self.main_screen.query(MoveBar):
            bar.show(self.move)

    def _custody_command(self, text: str, arg: str, offset: int) -> None:
        how, _, rest = arg.partition(" ")
        if how not in ("advance", "correct"):
            raise CommandError(
                "try :custody advance [STATE] or :custody correct STATE REASON", text, offset
            )
        if self.read_only:
            raise CommandError(
                f"refused: {self.session.read_only_reason}; custody cannot change here", text
            )
        if self.custody is None:
            raise CommandError("no custody board: start with pacs-tui run --custody", text)
        state, _, reason = rest.strip().partition(" ")
        where = offset + len(how) + 1
        if state:
            try:
                parse_state(state)
            except CustodyError as exc:
                raise CommandError(str(exc), text, where) from exc
        if how == "correct":
            if not state or not reason.strip():
                raise CommandError("a correction needs a state and a reason", text, where)
            self.change_custody("correct", state, reason.strip())
        else:
            if reason.strip():
                raise CommandError("advance takes at most a state", text, where)
            self.change_custody("advance", state or None)

    # -- filter and command line -------------------------------------------------

    def _set_filter(self, text: str) -> None:
        self.grid.set_filter(text)
        self.main_screen.query_one(FilterBar).clear_error()

    def on_filter_bar_changed(self, message: FilterBar.Changed) -> None:
        bar = self.main_screen.query_one(FilterBar)
        try:
            self._set_filter(message.text)
        except SelectorError as exc:
            bar.show_error(exc.expression, exc.position, exc.reason)
            return
        if message.final:
            bar.close()
            self.grid.focus()

    def on_filter_bar_cancelled(self, message: FilterBar.Cancelled) -> None:
        self._set_filter("")
        self.grid.focus()

    def on_command_line_submitted(self, message: CommandLine.Submitted) -> None:
        line = self.main_screen.query_one(CommandLine)
        try:
            self.execute_command(message.text)
        except CommandError as exc:
            line.show_error(exc)
            return
        if line.has_class("-open"):
            line.action_close()

    def on_command_line_closed(self, message: CommandLine.Closed) -> None:
        self.grid.focus()

    def run_command_text(self, text: str) -> None:
        """Run a command from the palette; errors become a toast."""
        try:
            self.execute_command(text)
        except CommandError as exc:
            self.notify(exc.message, severity="error")

    def execute_command(self, text: str) -> None:
        """Carry out one ``:`` command; ``CommandError`` says what was wrong."""
        command = parse_command(text)
        arg = command.argument
        now = self.state.clock()
        if command.name == "select":
            if not arg:
                raise CommandError("select needs a selector, e.g. :select role=archive", text)
            kinds = {name: site.kind for name, site in self.inventory.sites.items()}
            try:
                predicate = compile_selector(arg, kinds)
            except SelectorError as exc:
                raise CommandError(exc.reason, text, command.offset + exc.position) from exc
            chosen = [name for name, server in self.servers.items() if predicate(server)]
            self.grid.set_marks(chosen)
            self.events.note(now, f":select {arg} marked {len(chosen)} servers")
        elif command.name == "filter":
            try:
                self._set_filter(arg)
            except SelectorError as exc:
                raise CommandError(exc.reason, text, command.offset + exc.position) from exc
        elif command.name == "group":
            if arg not in (*GROUP_KEYS, "none"):
                raise CommandError(
                    f"group by {' | '.join(GROUP_KEYS)} | none", text, command.offset
                )
            self.grid.set_group(None if arg == "none" else arg)
        elif command.name == "sort":
            column, _, order = arg.partition(" ")
            reverse = column.startswith("-") or order.strip() in ("desc", "reverse")
            column = column.lstrip("-")
            if column not in self.columns:
                columns = ", ".join(self.columns)
                raise CommandError(f"sort by one of {columns}", text, command.offset)
            self.grid.set_sort(column, reverse)
        elif command.name == "theme":
            if arg not in self.available_themes:
                names = ", ".join(sorted(self.theme_names or self.available_themes))
                raise CommandError(f"no theme {arg!r}; themes: {names}", text, command.offset)
            self.theme = arg
        elif command.name == "marks":
            if arg == "clear":
                self.grid.set_marks(())
            elif arg == "down":
                down = [n for n, h in self.health.by_server.items() if h is Health.DOWN]
                self.grid.set_marks(down)
                self.events.note(now, f":marks down marked {len(down)} servers")
            else:
                raise CommandError("try :marks clear or :marks down", text, command.offset)
        elif command.name == "power":
            self._power_command(text, arg, command.offset)
        elif command.name == "custody":
            self._custody_command(text, arg, command.offset)
        elif command.name == "baseline":
            self._baseline_command(text, arg, command.offset)
        elif command.name == "audit":
            self.action_audit()
        elif command.name == "help":
            self.action_help()
        elif command.name == "quit":
            self.exit(0)

    def _power_command(self, text: str, arg: str, offset: int) -> None:
        verb, _, rest = arg.partition(" ")
        if verb not in VERBS:
            raise CommandError("try :power off|on|restart|force-off [SELECTOR]", text, offset)
        if self.read_only:
            raise CommandError(
                f"refused: {self.session.read_only_reason}; power commands are disabled", text
            )
        selector = rest.strip()
        if selector:
            kinds = {name: site.kind for name, site in self.inventory.sites.items()}
            try:
                compile_selector(selector, kinds)
            except SelectorError as exc:
                where = offset + len(verb) + 1 + (len(rest) - len(rest.lstrip())) + exc.position
                raise CommandError(exc.reason, text, where) from exc
        self.start_power(verb, selector or None)

    def open_baseline(self, before: Path, after: Path) -> BaselineScreen:
        """Load, compare and show two baseline files; ``BaselineError`` when one is bad."""
        view = load_view(before, after)
        self.baseline_files = (before, after)
        screen = BaselineScreen(view)
        self.push_screen(screen)
        verdict = "same or better" if view.comparison.ok else "NOT PROVEN"
        self.events.note(
            self.state.clock(),
            f"baseline {before.name} → {after.name}: {verdict} "
            f"({len(view.comparison.problems())} problem(s))",
            Health.OK if view.comparison.ok else Health.DEGRADED,
        )
        return screen

    def _baseline_command(self, text: str, arg: str, offset: int) -> None:
        usage = "try :baseline BEFORE.json AFTER.json"
        if not arg:
            if self.baseline_files is None:
                raise CommandError(f"no baseline compared yet; {usage}", text, offset)
            words, starts = [str(p) for p in self.baseline_files], [offset, offset]
        else:
            try:
                words = shlex.split(arg)
            except ValueError as exc:  # an unclosed quote
                raise CommandError(f"{exc}; {usage}", text, offset) from exc
            if len(words) != 2:
                raise CommandError(f"two files are needed, got {len(words)}; {usage}", text, offset)
            # Where each file was typed, so the caret points at the bad one.
            second = arg.rfind(words[1])
            starts = [offset, offset + second if second > 0 else offset]
        paths = [Path(w).expanduser() for w in words]
        try:
            self.open_baseline(paths[0], paths[1])
        except BaselineError as exc:
            where = starts[1] if exc.path == paths[1] and exc.path != paths[0] else starts[0]
            raise CommandError(str(exc), text, where) from exc

    def palette_commands(self) -> list[PaletteCommand]:
        """The commands the palette offers (each is a ``:`` command)."""
        entries = [
            PaletteCommand(f"Group by {key}", f"group rows by {key}", f"group {key}")
            for key in GROUP_KEYS
        ]
        entries.append(PaletteCommand("Ungroup", "a flat list", "group none"))
        entries += [
            PaletteCommand(f"Sort by {column}", f"sort rows by {column}", f"sort {column}")
            for column in self.columns
        ]
        entries += [
            PaletteCommand(f"Theme: {name}", f"switch to the {name} theme", f"theme {name}")
            for name in self.theme_names
        ]
        entries += [
            PaletteCommand("Clear filter", "show every server", "filter"),
            PaletteCommand("Clear marks", "unmark every server", "marks clear"),
            PaletteCommand("Mark DOWN servers", "mark every server that is down now", "marks down"),
            PaletteCommand("Key bindings", "list every binding and command", "help"),
            PaletteCommand("Audit log", "show/hide the audit pane", "audit"),
            PaletteCommand(
                "Baseline comparison",
                "re-read and show the last :baseline BEFORE AFTER"
                if self.baseline_files is not None
                else "type :baseline BEFORE.json AFTER.json to compare two captures",
                "baseline",
            ),
        ]
        if not self.read_only:
            entries += [
                PaletteCommand(title, f"plan {verb} on the marked servers", f"power {verb}")
                for title, verb in (
                    ("Power off marked servers", "off"),
                    ("Power on marked servers", "on"),
                    ("Restart marked servers", "restart"),
                    ("FORCE off marked servers", "force-off"),
                )
            ]
        if self.custody is not None:
            entries.append(
                PaletteCommand(
                    "Advance custody", "one custody step for the marked servers", "custody advance"
                )
            )
        return entries

    # -- help --------------------------------------------------------------------

    def binding_rows(self, keymap: Mapping[str, str]) -> list[BindingRow]:
        """Every binding of the control room with its id and current keys."""
        scoped: list[tuple[str, Sequence[BindingType]]] = [
            ("app", self.BINDINGS),
            ("grid", FleetGrid.BINDINGS),
            ("filter", FilterBar.BINDINGS),
            ("command line", CommandLine.BINDINGS),
            ("help", HelpScreen.BINDINGS),
            ("baseline", BaselineScreen.BINDINGS),
        ]
        if not self.read_only:  # a read-only room has none of these bound
            scoped += [
                ("batch", BatchDesk.BINDINGS),
                ("plan", PlanScreen.BINDINGS),
                ("abort", AbortPrompt.BINDINGS),
            ]
        if self.custody is not None:
            scoped += [("custody", CUSTODY_BINDINGS), ("custody prompt", CustodyPrompt.BINDINGS)]
        return binding_rows(scoped, keymap)


def batch_result_text(result: BatchResult) -> str:
    """One line for the toast and the event log: verb, OK or not, counts, time."""
    counts = ", ".join(f"{count} {status}" for status, count in sorted(result.counts().items()))
    state = "OK" if result.ok else ("ABORTED" if result.aborted else "INCOMPLETE")
    return (
        f"batch {result.batch} {result.verb}: {state} — {counts or 'no servers'} "
        f"in {result.elapsed_s:.1f} s"
    )
