"""The control room: the Textual app the on-site lead drives.

The app owns one ``FleetMonitor`` (the fleet's only poller) and reads its
``FleetState``; it never polls an endpoint itself. A 2 Hz timer drains the
state's coalesced change feed and hands the changed servers to the widgets,
which redraw at most once per tick; a 1 Hz timer refreshes ages, STALE
readings and the roll-up.

Read-only is a property of the engine, not of the keys: the app owns a
``pacs_tui.session.Session``; with ``read_only=True`` (or an inventory
marked ``read_only``) that session is read-only, refuses to load action
plugins or build a runner, the app holds no runner, and the batch keys are
not even bound (they live on ``BatchDesk``, which is then not mounted).

The app is the room's frame: layout, the grid's messages and the plain
keys. The rest sits beside it, one module each: ``RoomClock`` (the two
timers), ``room_start`` (opening and closing the monitor, the session, a
running batch), ``room_looks`` (themes, the keymap), ``BatchControl``
(plan, ask, run and follow power batches), ``CustodyControl`` (custody
changes), ``CommandDesk`` (``:`` commands), ``commands.palette_entries``
(the palette) and ``room_bindings`` (the help's and the keymap's list of
bindings).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer, Header

from pacs_tui.baseline.model import BaselineError
from pacs_tui.batch.audit import AuditLog, default_audit_path
from pacs_tui.batch.confirm import DEFAULT_THRESHOLD, ConfirmationRule
from pacs_tui.batch.plan import PlanOptions
from pacs_tui.batch.readings import MonitorReadings
from pacs_tui.batch.runner import BatchRunner
from pacs_tui.custody import CustodyBoard
from pacs_tui.fleet_source import FleetSource
from pacs_tui.inventory import Inventory
from pacs_tui.links import LinkReading, LinkWatch
from pacs_tui.monitor import FleetMonitor
from pacs_tui.plugin_api import Probe
from pacs_tui.remote.batches import RemoteBatches, RemoteRunner
from pacs_tui.remote.custody import ServiceCustody
from pacs_tui.remote.federation import FederatedBatches
from pacs_tui.rollup import FleetRollup
from pacs_tui.runbook import Runbook
from pacs_tui.selector import SelectorError, compile_selector
from pacs_tui.session import Session
from pacs_tui.state import ChangeFeed
from pacs_tui_widgets.audit_pane import AuditPane
from pacs_tui_widgets.baseline_screen import BaselineScreen
from pacs_tui_widgets.batch_control import BatchControl, batch_result_text
from pacs_tui_widgets.batch_desk import BatchDesk
from pacs_tui_widgets.batch_pane import BatchPane
from pacs_tui_widgets.command_desk import CommandDesk
from pacs_tui_widgets.command_line import CommandError, CommandLine
from pacs_tui_widgets.commands import ControlRoomCommands, PaletteCommand, palette_entries
from pacs_tui_widgets.crash import crash_report
from pacs_tui_widgets.custody_control import CUSTODY_CONFIRM_ABOVE, CustodyControl
from pacs_tui_widgets.custody_desk import CustodyDesk
from pacs_tui_widgets.detail_pane import DetailPane
from pacs_tui_widgets.event_log import DownNotices, EventLog
from pacs_tui_widgets.filter_bar import FilterBar
from pacs_tui_widgets.fleet_grid import FleetGrid
from pacs_tui_widgets.fleet_health import FleetHealth
from pacs_tui_widgets.fleet_rows import COLUMNS, CUSTODY_COLUMNS
from pacs_tui_widgets.health_style import STATE_VARIABLE_DEFAULTS
from pacs_tui_widgets.help_screen import BindingRow, HelpScreen
from pacs_tui_widgets.keymap import KeymapConfig
from pacs_tui_widgets.modal import Palette
from pacs_tui_widgets.move_bar import MoveBar
from pacs_tui_widgets.move_status import MoveStatus, wall_clock
from pacs_tui_widgets.room_bindings import room_binding_rows
from pacs_tui_widgets.room_clock import RoomClock
from pacs_tui_widgets.room_looks import apply_keymap, load_themes
from pacs_tui_widgets.room_start import close_room, start_monitor
from pacs_tui_widgets.summary_bar import SummaryBar

# Kept importable from here (older callers and tests name them through the app).
__all__ = ["CUSTODY_CONFIRM_ABOVE", "ControlRoomApp", "batch_result_text"]


QUIT_AGAIN_S = 5.0  # a second q within this time quits although a batch runs


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
        custody: CustodyBoard | ServiceCustody | None = None,
        runbook: Runbook | None = None,
        wall_time: Callable[[], datetime] | None = None,
        live_phases: Callable[[], Sequence[tuple[str, str]]] | None = None,
        baseline_compare: tuple[Path, Path] | None = None,
        source: FleetSource | None = None,
        remote: RemoteBatches | FederatedBatches | None = None,
    ) -> None:
        """Build the control room.

        ``source`` is where the fleet's state comes from: None builds this
        room's own ``FleetMonitor`` from ``probes``/``settings``; a
        ``ServiceMirror`` (``run --connect URL``) follows a ``pacs-tui serve``
        instead, and the room then polls nothing itself. With it, ``remote``
        carries batches out in that service (the room's own session stays
        read-only: it loads no action plugin); the room can change things
        only when the service is writable and its token an operator's.

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
        self.remote = remote
        if remote is not None:
            if session is not None or runner is not None:
                raise ValueError("an attached room acts through its service only")
            # No local engine at all: the service owns every device session.
            session = Session(inventory, read_only=True, settings=settings)
        elif session is None:
            session = Session(inventory, read_only=read_only, settings=settings)
        elif session.inventory is not inventory:
            raise ValueError("the session must be over the same inventory as the control room")
        elif read_only and not session.read_only:
            raise ValueError("a read-only control room needs a read-only session")
        if session.read_only and runner is not None:
            raise ValueError("a read-only session cannot hold an action runner")
        self.inventory = inventory
        self.session = session
        self._read_only_flag = read_only
        self.read_only = (
            session.read_only if remote is None else read_only or bool(remote.read_only_reason)
        )
        # The batch being run or shown (in an attached room: followed in the service).
        self.runner: BatchRunner | RemoteRunner | None = runner
        self.readings: MonitorReadings | None = None
        self.batch_active = False
        self.confirm_rule = ConfirmationRule(
            int(session.settings.get("confirm_threshold", DEFAULT_THRESHOLD))
        )
        self.session_open = False
        self.quit_asked_at: float | None = None
        self.monitor: FleetSource = (
            source
            if source is not None
            else FleetMonitor(inventory, probes=probes, settings=settings)
        )
        if clock is not None:
            self.monitor.state.clock = clock
        self.state = self.monitor.state
        self.servers = {s.name: s for s in self.monitor.servers}
        self.applicable: dict[str, frozenset[str]] = {
            s.name: frozenset(self.monitor.applicable(s)) for s in self.monitor.servers
        }
        self.health = FleetHealth(self.servers)
        self.keymap_config = keymap
        self.theme_dir = theme_dir
        self.theme_names: list[str] = []
        self.feed: ChangeFeed | None = None
        self.down_notices = DownNotices()
        self.rollup: FleetRollup | None = None
        self.monitor_open = False
        # The sites' WAN links, measured here when this room polls the fleet itself
        # (``room_start``); an attached room shows none yet.
        self.links: LinkReading | None = None
        self.link_task: asyncio.Task[None] | None = None
        self.link_watch: LinkWatch | None = None
        # Only a writable room holds the board as something it may change.
        self.custody: CustodyBoard | ServiceCustody | None = None if self.read_only else custody
        self.move = MoveStatus(board=custody, runbook=runbook, now=wall_time or wall_clock)
        self.live_phases = live_phases
        self.columns = CUSTODY_COLUMNS if custody is not None else COLUMNS
        # The files of the last baseline view: ``:baseline`` alone re-reads them.
        self.baseline_files: tuple[Path, Path] | None = baseline_compare
        # The desks behind the keys and commands (each its own module).
        self.batch = BatchControl(self)
        self.custody_control = CustodyControl(self)
        self.commands = CommandDesk(self)
        self.room_clock = RoomClock(self)

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
                self.monitor.probe_names,
                self.applicable,
                self.servers,
                id="detail",
            )
        if not self.read_only or self.remote is not None:
            yield BatchPane(id="batch")  # an attached viewer follows the service's batches
        yield AuditPane(self._audit_log, id="audit")
        yield EventLog(id="events")
        yield FilterBar(id="filter")
        yield CommandLine(id="command")
        yield Footer()

    @property
    def read_only_reason(self) -> str:
        """Why nothing can be changed from this room ("" when something can)."""
        if self.remote is not None:
            if self._read_only_flag:
                return "the room was opened read-only (--read-only)"
            return self.remote.read_only_reason
        return self.session.read_only_reason

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
        attached = "" if isinstance(self.monitor, FleetMonitor) else f" · {self.monitor.label}"
        self.sub_title = f"{self.inventory.path.name} · {len(self.servers)} servers{attached}" + (
            " · READ-ONLY" if self.read_only else ""
        )
        self.set_class(self.read_only, "-read-only")
        load_themes(self)
        apply_keymap(self)
        self.grid.focus()
        self.room_clock.start()
        self.run_worker(start_monitor(self), name="monitor")
        if self.runner is not None:
            self.batch.follow(self.runner)
        if self.baseline_files is not None:
            try:
                self.open_baseline(*self.baseline_files)
            except BaselineError as exc:  # the file changed since the CLI checked it
                self.notify(f"baseline not shown: {exc}", severity="error", timeout=15)

    async def on_unmount(self) -> None:
        await close_room(self)

    # -- the move line ------------------------------------------------------------

    def note_live_phase(self, phase: str, line: str = "") -> None:
        """A rehearsal playing in this room started ``phase``: log it, show it."""
        self.move.live_phase = phase
        self.events.note(self.state.clock(), line or f"rehearsal phase: {phase}")
        self.room_clock.refresh_move()

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
        reason = self.read_only_reason if self.read_only else ""
        self.push_screen(HelpScreen(self.binding_rows(self._keymap), self.read_only, reason))

    def action_clear(self) -> None:
        """Close the detail pane; if it was closed, clear the filter and the marks."""
        if self.detail.display:
            self.detail.display = False
            self.grid.focus()
            return
        self.set_filter("")
        self.grid.set_marks(())

    async def action_quit(self) -> None:
        """Quit; while a batch of this room runs, only when asked twice (it is then aborted).

        An attached room's batch runs in the service and goes on without the
        room, so quitting there needs no second key and aborts nothing.
        """
        now = time.monotonic()
        if (
            self.batch_active
            and self.remote is None
            and (self.quit_asked_at is None or now - self.quit_asked_at > QUIT_AGAIN_S)
        ):
            self.quit_asked_at = now
            self.notify(
                "a batch is running: press q again to abort it and quit (A aborts only)",
                severity="warning",
            )
            return
        self.exit()

    # -- batches (BatchControl does the work) --------------------------------------

    def action_batch_power(self, verb: str) -> None:
        """Plan ``verb`` on the marked servers (or the cursor's) and show the plan."""
        self.batch.start_power(verb)

    def start_power(self, verb: str, selector: str | None = None) -> bool:
        """Plan ``verb`` on the selector's servers, else the marked ones, else the cursor's.

        Returns False (with a toast saying why) when nothing was planned.
        """
        return self.batch.start_power(verb, selector)

    def plan_options(self) -> PlanOptions:
        """The options a new plan starts from (escalation off; the screen changes it)."""
        return self.batch.plan_options()

    def action_batch_view(self) -> None:
        """Show or hide the live batch pane."""
        self.batch.toggle_view()

    def action_batch_abort(self) -> None:
        """Ask, then abort the running batch (in-flight calls finish)."""
        self.batch.abort()

    def action_batch_pause(self) -> None:
        """Pause the running batch (no new step starts), or resume it."""
        self.batch.pause()

    def chosen_servers(self, selector: str | None) -> tuple[list[str], str]:
        """The servers an action is for and how they were chosen: the selector's, else
        the marked ones, else the cursor's (``([], "")`` when there is none)."""
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

    def action_audit(self) -> None:
        """Show or hide the audit pane."""
        self.audit_pane.toggle()

    def _audit_log(self) -> AuditLog | None:
        # A read-only room shows the log if there is one, never creates one.
        if self.read_only and not default_audit_path().exists():
            return None
        return self.session.audit

    # -- custody (CustodyControl does the work) ------------------------------------

    def action_custody_advance(self) -> None:
        """Advance the marked servers (or the cursor's) one custody step."""
        self.custody_control.change("advance")

    def change_custody(
        self, how: str, to: str | None = None, reason: str = "", *, confirmed: bool = False
    ) -> bool:
        """``advance`` or ``correct`` custody (see ``CustodyControl.change``)."""
        return self.custody_control.change(how, to, reason, confirmed=confirmed)

    # -- filter and command line -------------------------------------------------

    def set_filter(self, text: str) -> None:
        """Filter the grid by ``text`` (``SelectorError`` when a selector is bad)."""
        self.grid.set_filter(text)
        self.main_screen.query_one(FilterBar).clear_error()

    def on_filter_bar_changed(self, message: FilterBar.Changed) -> None:
        bar = self.main_screen.query_one(FilterBar)
        try:
            self.set_filter(message.text)
        except SelectorError as exc:
            bar.show_error(exc.expression, exc.position, exc.reason)
            return
        if message.final:
            bar.close()
            self.grid.focus()

    def on_filter_bar_cancelled(self, message: FilterBar.Cancelled) -> None:
        self.set_filter("")
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
        self.commands.execute(text)

    def open_baseline(self, before: Path, after: Path) -> BaselineScreen:
        """Load, compare and show two baseline files; ``BaselineError`` when one is bad."""
        return self.commands.open_baseline(before, after)

    def palette_commands(self) -> list[PaletteCommand]:
        """The commands the palette offers (each is a ``:`` command)."""
        return palette_entries(self)

    # -- help --------------------------------------------------------------------

    def binding_rows(self, keymap: Mapping[str, str]) -> list[BindingRow]:
        """Every binding of the control room with its id and current keys."""
        return room_binding_rows(
            self.BINDINGS, keymap, read_only=self.read_only, custody=self.custody is not None
        )
