"""The wall display: the fleet's state for the whole room, read-only, no keyboard needed.

``WallApp`` shows big numbers per state, the servers that are down, which
hospitals and clinics are affected, and a loud warning when the data is old;
it rotates through pages (whole fleet, each hospital, the clinics) on a timer.

It is read-only by construction: it holds a ``FleetMonitor`` (probes only)
and nothing that can run an action; its only key is ``q`` (and ctrl+c) to
quit, and it has no command palette.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import ClassVar

from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical

from pacs_tui.custody import CustodyBoard
from pacs_tui.fleet_source import FleetSource
from pacs_tui.inventory import Inventory
from pacs_tui.links import LinkReading, LinkState, LinkWatch
from pacs_tui.monitor import FleetMonitor
from pacs_tui.plugin_api import Health, Probe
from pacs_tui.remote.custody import ServiceCustody
from pacs_tui.remote.mirror import ServiceMirror
from pacs_tui.rollup import (
    HEALTH_ORDER,
    FleetRollup,
    HealthCounts,
    ServiceLevel,
    affected_sites,
    count_health,
)
from pacs_tui.rollup_tracker import RollupTracker
from pacs_tui.runbook import Runbook
from pacs_tui_themes import ThemeSet, load_themes
from pacs_tui_widgets.crash import crash_report
from pacs_tui_widgets.move_status import MoveStatus, service_health, wall_clock
from pacs_tui_widgets.wall_affected_sites import WallAffectedSites
from pacs_tui_widgets.wall_batch import WallBatch
from pacs_tui_widgets.wall_down_list import WallDownList
from pacs_tui_widgets.wall_management import WallManagement
from pacs_tui_widgets.wall_move import WallMove
from pacs_tui_widgets.wall_pages import CLINICS_TITLE, WallPage, wall_pages
from pacs_tui_widgets.wall_site_tiles import WallSiteTiles
from pacs_tui_widgets.wall_stale_banner import WallStaleBanner
from pacs_tui_widgets.wall_state_count import WallStateCount
from pacs_tui_widgets.wall_status_line import WallStatusLine
from pacs_tui_widgets.wall_title import WallTitle

WALL_THEME = "wall"


class WallApp(App[None]):
    """A read-only wall screen fed by one ``FleetSource``.

    ``monitor`` is a ``FleetMonitor`` or a ``ServiceMirror`` (``wall --connect``:
    the wall then follows a ``pacs-tui serve`` and says when it is gone).
    With ``monitor`` the caller owns it (opens, starts and closes it); without,
    the wall builds one from ``inventory`` and ``probes`` (``None``: the
    installed probe plugins), opens and starts it on mount, and closes it on
    exit. Either way the wall only reads ``monitor.state``, once every
    ``refresh_seconds``; it never polls an endpoint itself.

    With a ``custody`` board and/or a ``runbook`` it also shows the move
    weekend: the phase, the clock against plan (read at ``wall_time()``),
    custody counts, and counts a server that is shut down, in transit or
    racked as giving no service. It only reads the board: its file is read
    again when it changes. ``live_phases()`` is drained on every refresh:
    ``(phase, log line)`` pairs of a rehearsal playing live.
    """

    CSS_PATH = "wall.tcss"
    TITLE = "pacs-tui wall"
    ENABLE_COMMAND_PALETTE = False  # no palette: nothing to run, nothing to change
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit", show=False, id="wall.quit"),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True, id="wall.quit_ctrl_c"),
    ]

    def __init__(
        self,
        inventory: Inventory,
        *,
        monitor: FleetSource | None = None,
        owns_monitor: bool | None = None,
        probes: Sequence[Probe] | None = None,
        page_seconds: float = 15.0,
        stale_after_s: float = 10.0,
        refresh_seconds: float = 1.0,
        theme: str = WALL_THEME,
        themes: ThemeSet | None = None,
        custody: CustodyBoard | ServiceCustody | None = None,
        runbook: Runbook | None = None,
        wall_time: Callable[[], datetime] | None = None,
        live_phases: Callable[[], Sequence[tuple[str, str]]] | None = None,
        links: LinkReading | None = None,
    ) -> None:
        """``links``: the sites' WAN link state to show; None measures them here
        (a ``LinkWatch``) when the wall polls the fleet itself and the inventory
        declares links; attached to a service, the service's."""
        # Before App.__init__: it builds the stylesheet, which asks for the state defaults.
        self.themes = themes if themes is not None else load_themes()
        super().__init__()
        self.inventory = inventory
        # A mirror made before the app's loop runs must open on that loop: the wall owns it.
        self._owns_monitor = monitor is None if owns_monitor is None else owns_monitor
        self.monitor: FleetSource = (
            monitor if monitor is not None else FleetMonitor(inventory, probes=probes)
        )
        self.page_seconds = page_seconds
        self.stale_after_s = stale_after_s
        self.refresh_seconds = refresh_seconds
        self.themes.register(self)
        self.theme = theme if theme in self.available_themes else WALL_THEME
        self.pages: list[WallPage] = wall_pages(inventory)
        self.page_index = 0
        self.rollup: FleetRollup | None = None
        self._applicable = self.monitor.applicable
        # Each second reads again only the servers with news (``pacs_tui.rollup_tracker``).
        self._rollups: RollupTracker | None = None
        self._started_at = self.monitor.state.clock()
        # Held, not queried: a timer may still tick while the screen is torn down.
        self._link_task: asyncio.Task[None] | None = None
        self._link_watch: LinkWatch | None = None
        polls_here = isinstance(self.monitor, FleetMonitor) and self._owns_monitor
        if links is None and polls_here and any(s.links for s in inventory.sites.values()):
            links = LinkState(inventory)
            self._link_watch = LinkWatch(links)
        self.links = links
        self._title = WallTitle(id="wall-title")
        self._banner = WallStaleBanner(id="wall-stale")
        self._counts = {h: WallStateCount(h, id=f"count-{h.value}") for h in HEALTH_ORDER}
        self._sites = WallSiteTiles(id="wall-sites")
        self._affected = WallAffectedSites(id="wall-affected")
        self._sites.links = self._affected.links = self.links
        self._down = WallDownList(id="wall-down")
        self._management = WallManagement(id="wall-management")
        self._management_section = _section(self._management, "NOT A PACS OUTAGE: BMC · FLAPPING")
        self._management_section.display = False  # shown only when there is something
        self._status = WallStatusLine(id="wall-status")
        self.move = MoveStatus(board=custody, runbook=runbook, now=wall_time or wall_clock)
        self._move = WallMove(id="wall-move")
        self._batch = WallBatch(id="wall-batch")
        self._batch_section = _section(self._batch, "POWER BATCH")
        self._batch_section.display = False  # only a wall attached to a service knows batches
        self.live_phases = live_phases  # (phase, line) of a rehearsal playing live
        if live_phases is not None:
            self.move.live_phase = "starting"

    # -- life cycle ---------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield self._title
        with Vertical(id="wall-body"):
            yield self._banner
            with Horizontal(id="wall-counts"):
                yield from self._counts.values()
            if self.move.active:
                yield _section(self._move, "MOVE WEEKEND")
            yield self._batch_section
            yield _section(self._sites, "SITES")
            yield _section(self._affected, "HOSPITALS & CLINICS")
            yield _section(self._down, "SERVERS DOWN")
            yield self._management_section
        yield self._status

    def get_theme_variable_defaults(self) -> dict[str, str]:
        # Textual's own themes have no state colours; borrow the built-in ones.
        return {**super().get_theme_variable_defaults(), **self.themes.state_defaults()}

    def _handle_exception(self, error: Exception) -> None:
        # Logged with its traceback, shown as one line, exit status non-zero.
        super()._handle_exception(crash_report("the wall display", error))

    async def on_mount(self) -> None:
        for path in self.themes.skipped:  # once per broken file, at start only
            reasons = "\n".join(str(p) for p in self.themes.problems_of(path))
            self.notify(reasons, title="Theme skipped", severity="warning", timeout=30)
        if self._owns_monitor:
            try:
                await self.monitor.open()
            except ConnectionError as exc:  # a service not there yet: the mirror retries
                self.log.warning(f"no data yet: {exc}")
            self.monitor.start()
        if self._link_watch is not None:
            self._link_task = asyncio.create_task(
                self._link_watch.run_beside(
                    lambda exc: self.log.error(f"site links no longer measured: {exc!r}")
                ),
                name="link watch",
            )
        self._started_at = self.monitor.state.clock()
        self.refresh_wall()
        self.set_interval(self.refresh_seconds, self.refresh_wall, name="wall-refresh")
        if len(self.pages) > 1:
            self.set_interval(self.page_seconds, self.next_page, name="wall-pages")

    async def on_unmount(self) -> None:
        if self._link_task is not None:
            self._link_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._link_task
        if self._owns_monitor:
            await self.monitor.close()

    # -- pages --------------------------------------------------------------------

    @property
    def page(self) -> WallPage:
        """The page on screen."""
        return self.pages[self.page_index]

    def next_page(self) -> None:
        """Rotate to the next page (after the last, back to the whole fleet)."""
        self.page_index = (self.page_index + 1) % len(self.pages)
        self.refresh_wall()

    # -- drawing ------------------------------------------------------------------

    def refresh_wall(self) -> None:
        """Read the state once and redraw the page on screen."""
        rollup = self._tracker().rollup()
        if self.live_phases is not None:
            for phase, _line in self.live_phases():
                self.move.live_phase = phase
        try:
            self.move.reload()
        except (OSError, ValueError) as exc:  # a foreign file caught mid-change: next second
            self.log.warning(f"custody/runbook not re-read: {exc}")
        if self.move.has_board:
            # No PACS service from custody too: a server in transit serves nobody.
            affected_now = affected_sites(
                self.inventory, service_health(rollup.health, self.move.state)
            )
            rollup = dataclasses.replace(rollup, affected=affected_now)
        self.rollup = rollup
        if self.move.active:
            self._move.show(self.move)
        if isinstance(self.monitor, ServiceMirror):
            self._batch_section.display = self._batch.show(self.monitor.batch)
            if self.monitor.links is not None:  # the service measures the sites' links
                self._sites.links = self._affected.links = self.links = self.monitor.links
        page = self.page
        counts = rollup.fleet if page.is_fleet else _sum(rollup.by_site[s] for s in page.sites)
        for health, widget in self._counts.items():
            widget.show(counts[health])
        self._title.update(_title(page, counts))
        self._banner.show_age(
            newest_age_s=rollup.newest_age_s,
            waiting_s=max(0.0, rollup.now - self._started_at),
            stale_readings=rollup.stale_readings,
            oldest_age_s=rollup.oldest_age_s,
            stale_after_s=self.stale_after_s,
        )
        source_age = self.monitor.data_age_s()
        if source_age is not None:  # the service this wall follows is gone: say so first
            when = (
                "NO DATA YET" if source_age == float("inf") else f"DATA IS {source_age:.0f} s OLD"
            )
            self._banner.show_unreachable(
                f"⚠ SERVICE UNREACHABLE — {when}; reconnecting to {self.monitor.label}"
            )
        self._sites.show(self._site_rows(page, rollup))
        if page.is_fleet:
            affected = list(rollup.affected)
            scope = "every hospital and clinic"
            down, unreachable = rollup.down, rollup.unreachable
            management, flapping = rollup.management, rollup.flapping
        else:
            affected = [a for a in rollup.affected if a.site in page.sites]
            scope = "every clinic" if page.title == CLINICS_TITLE else page.title
            relevant = page.relevant
            down = tuple(n for n in rollup.down if n in relevant)
            unreachable = tuple(n for n in rollup.unreachable if n in relevant)
            management = {n: h for n, h in rollup.management.items() if n in relevant}
            flapping = {n: f for n, f in rollup.flapping.items() if n in relevant}
        fresh = (
            source_age is None
            and rollup.newest_age_s is not None
            and rollup.newest_age_s <= self.stale_after_s
        )
        self._affected.show(
            affected, scope=scope, fresh=fresh, within=None if page.is_fleet else page.sites
        )
        self._down.show(down, unreachable, fresh=fresh)
        self._management_section.display = self._management.show(management, flapping)
        self._status.show(
            newest_age_s=rollup.newest_age_s,
            oldest_age_s=rollup.oldest_age_s,
            page=self.page_index,
            pages=len(self.pages),
        )

    def _tracker(self) -> RollupTracker:
        """The kept roll-up of the monitor's state (made anew if the state is another)."""
        tracker = self._rollups
        if tracker is None or tracker.state is not self.monitor.state:
            if tracker is not None:
                tracker.close()
            tracker = self._rollups = RollupTracker(
                self.inventory, self.monitor.state, self._applicable
            )
        return tracker

    def _site_rows(
        self, page: WallPage, rollup: FleetRollup
    ) -> list[tuple[str, HealthCounts, ServiceLevel | None]]:
        service = {a.site: a.level for a in rollup.affected}
        sites = [s for s, c in rollup.by_site.items() if c.total] if page.is_fleet else page.sites
        rows = [(site, rollup.by_site[site], service.get(site)) for site in sites]
        if page.relies_on:
            upstream = count_health(rollup.health[n] for n in page.relies_on)
            rows.append((f"upstream ({len(page.relies_on)} servers)", upstream, None))
        return rows


def _section(
    widget: WallSiteTiles
    | WallAffectedSites
    | WallDownList
    | WallMove
    | WallManagement
    | WallBatch,
    title: str,
) -> Vertical:
    section = Vertical(widget, classes="wall-section")
    section.border_title = title
    return section


def _sum(counts: Iterable[HealthCounts]) -> HealthCounts:
    tally: dict[Health, int] = {}
    for one in counts:
        for health, n in one.counts.items():
            tally[health] = tally.get(health, 0) + n
    return HealthCounts(tally)


def _title(page: WallPage, counts: HealthCounts) -> str:
    what = "whole fleet" if page.is_fleet else page.title
    return f"PACS · {what} · {counts.total} servers"
