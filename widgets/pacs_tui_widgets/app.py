"""The control room: the Textual app the on-site lead drives.

The app owns one ``FleetMonitor`` (the fleet's only poller) and reads its
``FleetState``; it never polls an endpoint itself. A 4 Hz timer drains the
state's coalesced change feed and hands the changed servers to the widgets,
which redraw at most once per tick; a 1 Hz timer refreshes ages, STALE
readings and the roll-up.

Read-only is a property of the session, not of the keys: with
``read_only=True`` the app refuses an action runner and holds none, so no
binding, command or palette entry can reach a BMC or a shell. (Batch
actions arrive with the batch issue; they will need ``self.runner``.)
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import Footer, Header

from pacs_tui.inventory import Inventory
from pacs_tui.monitor import FleetMonitor
from pacs_tui.plugin_api import Health, Probe
from pacs_tui.rollup import FleetRollup, fleet_rollup
from pacs_tui.selector import SelectorError, compile_selector
from pacs_tui.state import ChangeFeed
from pacs_tui_widgets.command_line import CommandError, CommandLine, parse_command
from pacs_tui_widgets.commands import ControlRoomCommands, PaletteCommand
from pacs_tui_widgets.detail_pane import DetailPane
from pacs_tui_widgets.event_log import DownNotices, EventLog
from pacs_tui_widgets.filter_bar import FilterBar
from pacs_tui_widgets.fleet_grid import FleetGrid
from pacs_tui_widgets.fleet_health import FleetHealth
from pacs_tui_widgets.fleet_rows import COLUMNS, GROUP_KEYS
from pacs_tui_widgets.health_style import STATE_VARIABLE_DEFAULTS
from pacs_tui_widgets.help_screen import BindingRow, HelpScreen, binding_rows
from pacs_tui_widgets.keymap import KeymapConfig, load_keymap
from pacs_tui_widgets.summary_bar import SummaryBar

log = logging.getLogger(__name__)

DEFAULT_THEME = "dark"
FALLBACK_THEME = "textual-dark"
TICK_S = 0.25  # how often changes reach the screen
ROLLUP_S = 1.0  # ages, STALE, summary bar, event log, toasts
THREAD_ROLLUP_ABOVE = 500  # servers; smaller fleets roll up in well under 10 ms


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
        runner: object | None = None,
        clock: Callable[[], float] | None = None,
        theme_dir: Path | None = None,
    ) -> None:
        """Build the session.

        ``probes``/``settings`` go to the ``FleetMonitor`` (None: the installed
        probe plugins). ``keymap`` None reads the
        user's config file. ``runner`` is the batch action runner: refused when
        ``read_only``, where the session holds none. ``clock`` replaces the
        state's clock (tests use a fixed one); ``theme_dir`` the user theme folder.
        """
        super().__init__()
        if read_only and runner is not None:
            raise ValueError("a read-only session cannot hold an action runner")
        self.inventory = inventory
        self.read_only = read_only
        self.runner: object | None = None if read_only else runner
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

    # -- layout ------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        kinds = {name: site.kind for name, site in self.inventory.sites.items()}
        yield Header(show_clock=False, icon="▣")
        yield SummaryBar(id="summary")
        with Horizontal(id="main"):
            yield FleetGrid(
                list(self.servers.values()),
                self.state,
                self.health,
                self.applicable,
                kinds,
                id="grid",
            )
            yield DetailPane(
                self.state,
                [p.name for p in self.monitor.probes],
                self.applicable,
                self.servers,
                id="detail",
            )
        yield EventLog(id="events")
        yield FilterBar(id="filter")
        yield CommandLine(id="command")
        yield Footer()

    @property
    def grid(self) -> FleetGrid:
        """The fleet grid."""
        return self.query_one("#grid", FleetGrid)

    @property
    def detail(self) -> DetailPane:
        """The detail pane."""
        return self.query_one("#detail", DetailPane)

    @property
    def events(self) -> EventLog:
        """The event log."""
        return self.query_one("#events", EventLog)

    def get_theme_variable_defaults(self) -> dict[str, str]:
        return {**super().get_theme_variable_defaults(), **STATE_VARIABLE_DEFAULTS}

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

    async def _start_monitor(self) -> None:
        await self.monitor.open()
        self._monitor_open = True
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

    async def on_unmount(self) -> None:
        if self.feed is not None:
            self.state.unsubscribe(self.feed)
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
        checked = config.checked(row.binding_id for row in self.binding_rows({}))
        self.keymap_config = checked
        for problem in checked.problems:
            self.notify(problem, severity="warning", timeout=8)
        if checked.keymap:
            self.set_keymap(checked.keymap)

    # -- the change feed ---------------------------------------------------------

    def _tick(self) -> None:
        """Apply every change since the last tick: one redraw, whatever the count."""
        if self.feed is None:
            return
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
        if self._rollup_running:
            return  # the last one is still being computed: skip, never pile up
        self._rollup_running = True
        try:
            await self._refresh_rollup()
        finally:
            self._rollup_running = False
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
        self.query_one(SummaryBar).show_rollup(rollup)
        changes = self.health.absorb(rollup.health)
        if changes:
            self._health_changed(changes)
            self.grid.refresh()

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
        self.query_one(FilterBar).open(self.grid.view.filter_text)

    def action_command_line(self) -> None:
        """Open the ``:`` command line."""
        self.query_one(CommandLine).open()

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

    # -- filter and command line -------------------------------------------------

    def _set_filter(self, text: str) -> None:
        self.grid.set_filter(text)
        self.query_one(FilterBar).clear_error()

    def on_filter_bar_changed(self, message: FilterBar.Changed) -> None:
        bar = self.query_one(FilterBar)
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
        line = self.query_one(CommandLine)
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
            if column not in COLUMNS:
                raise CommandError(f"sort by one of {', '.join(COLUMNS)}", text, command.offset)
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
        elif command.name == "help":
            self.action_help()
        elif command.name == "quit":
            self.exit(0)

    def palette_commands(self) -> list[PaletteCommand]:
        """The commands the palette offers (each is a ``:`` command)."""
        entries = [
            PaletteCommand(f"Group by {key}", f"group rows by {key}", f"group {key}")
            for key in GROUP_KEYS
        ]
        entries.append(PaletteCommand("Ungroup", "a flat list", "group none"))
        entries += [
            PaletteCommand(f"Sort by {column}", f"sort rows by {column}", f"sort {column}")
            for column in COLUMNS
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
        ]
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
        ]
        return binding_rows(scoped, keymap)
