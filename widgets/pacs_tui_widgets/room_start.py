"""Opening and closing what the control room holds: the poller, the session, a running batch.

Opening runs as a worker after mount, so the room is drawn before the
first probe connects: the monitor opens (a probe plugin that fails is
reported and reads nothing), a writable session loads its action plugins
(a broken one is reported, not fatal), then polling starts and the
interrupted batches of earlier runs are named. Closing aborts a batch still
running and waits (at most ``BATCH_END_WAIT_S``) for its end row before the
session closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from pacs_tui.batch.readings import MonitorReadings
from pacs_tui.links import LinkState, LinkWatch
from pacs_tui.monitor import FleetMonitor
from pacs_tui.plugin_api import Health

if TYPE_CHECKING:
    from pacs_tui_widgets.app import ControlRoomApp

# The app's logger, as before the split: log configs and filters name it.
log = logging.getLogger("pacs_tui_widgets.app")

# An aborted batch lets its in-flight calls finish (a BMC timeout is 10 s by default).
BATCH_END_WAIT_S = 20.0


async def start_monitor(app: ControlRoomApp) -> None:
    """Open the monitor (and a writable session), start polling, name interrupted batches."""
    try:
        await app.monitor.open()
    except ConnectionError as exc:  # a service that is not there yet: the mirror retries
        app.events.note(app.state.clock(), f"no data yet: {exc}", Health.STALE)
        app.notify(f"no data yet: {exc}", severity="error", timeout=15)
    app.monitor_open = True
    if isinstance(app.monitor, FleetMonitor):
        app.readings = MonitorReadings(app.monitor)
    if not app.read_only and app.remote is None:
        await open_session(app)
    now = app.state.clock()
    opened = set(app.monitor.probe_names)
    for name in app.applicable:  # a probe that failed to open reads nothing
        app.applicable[name] = app.applicable[name] & opened
    for plugin, reason in app.monitor.failed_plugins.items():
        app.events.note(now, f"probe plugin {plugin} failed: {reason}", Health.UNKNOWN)
        app.notify(f"probe plugin {plugin} failed: {reason}", severity="warning")
    source = "" if isinstance(app.monitor, FleetMonitor) else f" from {app.monitor.label}"
    app.events.note(
        now,
        f"monitoring {len(app.servers)} servers{source} with "
        f"{', '.join(sorted(opened)) or 'no probes'}"
        + (" (read-only session)" if app.read_only else ""),
    )
    if app.read_only:  # said once where the lead looks: why O/N/R/F do nothing here
        line = f"read-only: {app.read_only_reason}; the batch keys are not bound"
        app.events.note(now, line)
        app.notify(line, title="READ-ONLY", timeout=10)
    app.monitor.start()
    start_link_watch(app)
    if app.remote is not None:
        app.remote.listen(lambda kind, data: service_event(app, kind, data))
        app.batch.follow_service()  # a batch already running there shows at once
    await app.batch.name_interrupted()  # an attached room asks its service


def start_link_watch(app: ControlRoomApp) -> None:
    """Measure the sites' WAN links beside the room's own poller (when it has one and
    the inventory declares links); the summary shows them (``room_clock``)."""
    if not isinstance(app.monitor, FleetMonitor):
        return
    if not any(site.links for site in app.inventory.sites.values()):
        return
    app.links = LinkState(app.inventory)
    watch = app.link_watch = LinkWatch(app.links)
    app.link_task = asyncio.create_task(
        watch.run_beside(lambda exc: log.error("site links no longer measured: %r", exc)),
        name="link watch",
    )


def service_event(app: ControlRoomApp, kind: str, data: dict[str, Any]) -> None:
    """An attached room hears of another screen's batch and of the service's notices."""
    if kind in ("batch-started", "batch"):
        app.batch.follow_service()
    elif kind == "snapshot" and data.get("restarted"):
        # A new run of the service: what it had in flight was cut off; say so now,
        # not at the next plan (its audit log names what was left half done).
        app.events.note(app.state.clock(), f"{app.monitor.label} restarted", Health.STALE)
        app.run_worker(app.batch.name_interrupted(), group="interrupted", exclusive=True)
    elif kind == "notice":
        try:
            health = Health(str(data.get("health", "ok")))
        except ValueError:
            health = Health.UNKNOWN
        app.events.note(app.state.clock(), f"service: {data.get('text', '')}", health)


async def open_session(app: ControlRoomApp) -> None:
    """Load and open the action plugins; a broken one is reported, not fatal."""
    now = app.state.clock()
    try:
        await app.session.open()
    except Exception as exc:  # the room still monitors; batches will say why not
        app.events.note(now, f"power actions unavailable: {exc}", Health.UNKNOWN)
        app.notify(f"power actions unavailable: {exc}", severity="error", timeout=10)
        return
    app.session_open = True
    for action, reason in app.session.failed_actions.items():
        app.events.note(now, f"action plugin {action} failed: {reason}", Health.UNKNOWN)
        app.notify(f"action plugin {action} failed: {reason}", severity="warning")


async def close_room(app: ControlRoomApp) -> None:
    """Abort a running batch and wait for its end row; close the session and the monitor."""
    if app.runner is not None and app.batch_active and app.remote is None:
        # (An attached room's batch runs in the service: it goes on when the room closes.)
        app.runner.abort("the control room was closed")
        # Let the batch write its end row before the session closes: a batch cut
        # off here would be named "interrupted" by the next room and `power`.
        try:
            await asyncio.wait_for(app.batch.idle.wait(), BATCH_END_WAIT_S)
        except TimeoutError:
            log.warning(
                "batch %s did not end within %.0f s of closing the room",
                app.runner.batch_id, BATCH_END_WAIT_S,
            )  # fmt: skip
    if app.link_task is not None:
        app.link_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await app.link_task
    if app.feed is not None:
        app.state.unsubscribe(app.feed)
    await app.session.close()
    if app.monitor_open:
        await app.monitor.close()
