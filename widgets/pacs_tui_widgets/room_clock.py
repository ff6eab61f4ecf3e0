"""The control room's clock: the two timers that carry the fleet's state to the screen.

- Every ``TICK_S`` (0.5 s) ``tick`` drains the state's coalesced change feed
  and hands the changed servers to the grid and the detail pane: one redraw
  per tick, whatever the count of changes.
- Every ``ROLLUP_S`` (1 s) ``second`` rolls the fleet up (a ``RollupTracker``:
  only servers with news are read again; in a thread above
  ``THREAD_ROLLUP_ABOVE`` servers) into the summary bar, the health map, the
  event log (DOWN, flaps) and the toasts, follows the custody board and the
  runbook into the move line, and redraws the ages.

A second that is still rolling up when the next comes is skipped, never piled up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from textual.css.query import NoMatches

from pacs_tui.custody import CustodyError
from pacs_tui.links import LinkReading
from pacs_tui.plugin_api import Health
from pacs_tui.rollup import FleetRollup
from pacs_tui.rollup_tracker import RollupTracker
from pacs_tui_widgets.move_bar import MoveBar
from pacs_tui_widgets.site_links import LINK_HEALTH, links_summary
from pacs_tui_widgets.summary_bar import SummaryBar

if TYPE_CHECKING:
    from pacs_tui_widgets.app import ControlRoomApp

# The app's logger, as before the split: log configs and filters name it.
log = logging.getLogger("pacs_tui_widgets.app")

TICK_S = 0.5  # how often state changes reach the screen (keys redraw at once)
ROLLUP_S = 1.0  # ages, STALE, summary bar, event log, toasts
THREAD_ROLLUP_ABOVE = 500  # servers; smaller fleets roll up in well under 10 ms


class RoomClock:
    """The tick and the each-second refresh of one ``ControlRoomApp``."""

    def __init__(self, app: ControlRoomApp) -> None:
        self.app = app
        self.rollup_running = False  # a roll-up is being computed
        self.links_version = -1  # the link state's version last looked at
        self.link_states: dict[str, str] = {}  # site → its WAN link state last seen
        self.board_error: str | None = None  # the custody board problem last logged
        self._tracker: RollupTracker | None = None  # made at the first roll-up

    def start(self) -> None:
        """Subscribe to the state's changes and start both timers (from ``on_mount``)."""
        app = self.app
        app.feed = app.state.subscribe()
        app.set_interval(TICK_S, self.tick, name="changes")
        app.set_interval(ROLLUP_S, self.second, name="rollup")
        app.call_later(self.second)

    def tick(self) -> None:
        """Apply every change since the last tick: one redraw, whatever the count."""
        app = self.app
        if app.feed is None or not app.main_screen.query("#grid"):
            return  # not composed yet, or being torn down
        keys = app.feed.drain()
        if not keys:
            return
        servers = {server for server, _ in keys}
        app.grid.servers_changed(servers)
        if app.detail.display and app.detail.server in servers:
            app.detail.refresh_content()

    def health_changed(self, changes: Mapping[str, tuple[Health, Health]]) -> None:
        """Log health changes; a server newly DOWN joins the next DOWN toast."""
        now = self.app.state.clock()
        self.app.events.health_changes(now, changes)
        for server, (before, after) in changes.items():
            if after is Health.DOWN and before is not Health.DOWN:
                self.app.down_notices.add(server)

    async def second(self) -> None:
        """The each-second refresh; quiet while the app tears its screens down."""
        try:
            await self.each_second()
        except NoMatches:
            return  # a timer that fires while the app tears its screens down

    async def each_second(self) -> None:
        """Roll up, drain a rehearsal's phases, follow the move, redraw ages, toast DOWNs."""
        app = self.app
        if self.rollup_running:
            return  # the last one is still being computed: skip, never pile up
        self.rollup_running = True
        try:
            await self.refresh_rollup()
        finally:
            self.rollup_running = False
        if app.live_phases is not None:
            for phase, line in app.live_phases():
                app.note_live_phase(phase, line)
        self.refresh_move()
        self.refresh_connection()
        links = app.links or getattr(app.monitor, "links", None)  # own, or the service's
        if links is not None:
            trouble = any(s.state in ("down", "degraded") for s in links.all())
            app.main_screen.query_one(SummaryBar).show_links(links_summary(links), trouble=trouble)
            self.note_link_changes(links)
        app.grid.refresh()  # ages move on every second
        if app.detail.display:
            app.detail.refresh_content()
        message = app.down_notices.flush()
        if message:
            app.notify(message, title="DOWN", severity="error", timeout=10)

    def note_link_changes(self, links: LinkReading) -> None:
        """A site's WAN link that changed state is news: one log line (a toast when down).

        The first states seen are not news (a room that opens says nothing), nor
        is a site going to ``unknown`` and back (not measured yet, or its reports aged).
        """
        if links.version == self.links_version:
            return
        self.links_version = links.version
        now = {s.site: s for s in links.all()}
        for site, links_now in now.items():
            before = self.link_states.get(site)
            self.link_states[site] = links_now.state
            if (
                before is None
                or before == links_now.state
                or "unknown" in (before, links_now.state)
            ):
                continue
            detail = f" — {links_now.detail}" if links_now.detail else ""
            line = f"{site} WAN link: {before} → {links_now.state}{detail}"
            self.app.events.note(self.app.state.clock(), line, LINK_HEALTH[links_now.state])
            if links_now.state == "down":
                self.app.notify(line, title="LINK DOWN", severity="error", timeout=15)

    def refresh_connection(self) -> None:
        """Say how old the data is while the service this room follows is gone."""
        app = self.app
        age = app.monitor.data_age_s()
        bar = app.main_screen.query_one(SummaryBar)
        if age is None:
            if bar.connection:
                app.events.note(app.state.clock(), f"{app.monitor.label}: data is live again")
            bar.show_connection("")
            return
        when = "no data yet" if age == float("inf") else f"data is {age:.0f} s old"
        text = f"SERVICE UNREACHABLE — {when}; reconnecting to {app.monitor.label}"
        if not bar.connection:
            app.events.note(app.state.clock(), text, Health.STALE)
        bar.show_connection(text)

    def tracker(self) -> RollupTracker:
        """The kept roll-up of the app's inventory and state (made anew if either is new)."""
        app = self.app
        tracker = self._tracker
        if (
            tracker is None
            or tracker.state is not app.state
            or tracker.inventory is not app.inventory
        ):
            if tracker is not None:
                tracker.close()
            # The app's mapping is read at each call: the room narrows it after a start.
            tracker = self._tracker = RollupTracker(
                app.inventory, app.state, lambda server: app.applicable.get(server.name, ())
            )
        return tracker

    async def refresh_rollup(self) -> None:
        """Roll the fleet up, then update the summary, the health map, the log."""
        app = self.app
        tracker = self.tracker()
        rollup_now = app.state.clock()
        # Taken here, on the loop that writes the state; only these servers (and
        # those that time alone changes) are read again.
        changed = tracker.pending()

        def compute() -> FleetRollup:
            return tracker.rollup(changed=changed)

        if len(app.servers) > THREAD_ROLLUP_ABOVE:
            # The first roll-up reads every server (~0.1 s at 3 000), later ones the
            # changed ones: in a thread the GIL is handed back every few ms, so a
            # keypress never waits for a whole roll-up.
            rollup = await asyncio.to_thread(compute)
        else:
            rollup = compute()
        last = app.rollup
        before = last.flapping if last is not None else {}
        app.rollup = rollup
        app.main_screen.query_one(SummaryBar).show_rollup(rollup)
        # A flap's health is steady (its worst phase), so only its start is news.
        for server, flaps in rollup.flapping.items():
            known = {probe for probe, _ in before.get(server, ())}
            for probe, flap in flaps:
                if probe not in known:
                    app.events.note(
                        rollup_now, f"{server} {probe} {flap.describe()}", Health.DEGRADED
                    )
        if last is not None and rollup.health is last.health:
            return  # the tracker kept the mapping: no server's health moved
        changes = app.health.absorb(rollup.health)
        if changes:
            self.health_changed(changes)
            app.grid.refresh()

    def refresh_move(self) -> None:
        """Follow the custody board and runbook files; redraw the move line."""
        app = self.app
        try:
            changed = app.move.reload()
        except (OSError, ValueError, CustodyError) as exc:  # a half-written foreign file
            log.warning("custody/runbook not re-read: %s", exc)
            changed = False
        if changed and app.move.has_board:
            app.grid.custody_changed()
        # The move line shows a bad board all along; the event log keeps when it broke/mended.
        if app.move.board_error != self.board_error:
            now = app.state.clock()
            if app.move.board_error is not None:
                app.events.note(now, app.move.board_problem_text(), Health.DEGRADED)
            elif self.board_error is not None:
                app.events.note(now, "custody board readable again", Health.OK)
            self.board_error = app.move.board_error
        for bar in app.main_screen.query(MoveBar):
            bar.show(app.move)
