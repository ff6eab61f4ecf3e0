"""The live batch pane: progress per wave and overall, current calls, results.

It sits under the grid, not over it, so the lead keeps navigating while a
batch runs. Runner events arrive as fast as steps complete (hundreds a
second in a big wave): the subscriber only queues them, and a 4 Hz timer
applies the queue and redraws once. Failed servers are drawn in the
theme's ``$state-down`` colour.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.color import Color
from textual.containers import Horizontal, Vertical
from textual.widgets import Label, ProgressBar, RichLog, Static

from pacs_tui.batch.dry_run import dry_run_lines
from pacs_tui.batch.plan import BatchPlan
from pacs_tui.batch.progress import BatchProgress
from pacs_tui.batch.runner import BatchRunner
from pacs_tui.remote.batches import RemoteRunner

DRAIN_S = 0.25  # at most 4 redraws a second, whatever the event rate
_STATUS_COLOUR = {
    "reached": "state-ok",
    "skipped": "state-ok",
    "failed": "state-down",
    "aborted": "state-degraded",
    "left-out": "state-degraded",
    "not-run": "state-degraded",
    "unknown": "state-unknown",  # its process stopped before saying: read it back
}
_LIVE = ("running", "paused", "aborting")
TICK_S = 1.0  # the title's elapsed time moves on between events at this pace


def format_seconds(seconds: float | None) -> str:
    """``42 s`` or ``3 min 05 s``; ``–`` when unknown."""
    if seconds is None:
        return "–"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    return f"{whole // 60} min {whole % 60:02d} s"


class BatchPane(Vertical):
    """Follows one ``BatchRunner`` (or shows a dry run)."""

    DEFAULT_CSS = """
    BatchPane {
        height: 14; display: none;
        border-top: heavy $warning; background: $surface; padding: 0 1;
    }
    BatchPane #batch-title { text-style: bold; height: 1; }
    BatchPane .batch-bar { height: 1; }
    BatchPane .batch-bar Label { width: 12; }
    BatchPane #batch-waves { height: auto; max-height: 4; overflow-y: auto; }
    BatchPane #batch-current { height: auto; max-height: 3; color: $text-muted; }
    BatchPane #batch-results { height: 1fr; scrollbar-size-vertical: 1; }
    BatchPane.-failed #batch-title { color: $state-down; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.runner: BatchRunner | RemoteRunner | None = None
        self.pending: deque[BatchProgress] = deque()
        self.status = "idle"
        self.results: dict[str, str] = {}  # server → status, for the ones that ended
        self.current: dict[str, str] = {}  # server → its latest call, while in flight
        self.wave_done: dict[int, int] = {}
        self.last: BatchProgress | None = None
        self.last_at = 0.0  # time.monotonic() when ``last`` was applied
        self.title_at = 0.0  # time.monotonic() of the last title drawn
        self.plan: BatchPlan | None = None
        self.batch_id = ""
        self.redraws = 0

    def compose(self) -> ComposeResult:
        yield Static("", id="batch-title")
        with Horizontal(classes="batch-bar"):
            yield Label("all", id="batch-overall-label")
            yield ProgressBar(id="batch-overall", show_eta=False)
        yield Vertical(id="batch-waves")
        yield Static("", id="batch-current")
        yield RichLog(id="batch-results", max_lines=2000, wrap=False, auto_scroll=True)

    def on_mount(self) -> None:
        self.set_interval(DRAIN_S, self.drain, name="batch-pane")

    @property
    def log_view(self) -> RichLog:
        """The per-server results (and dry-run lines)."""
        return self.query_one("#batch-results", RichLog)

    # -- what to show --------------------------------------------------------------

    def follow(self, runner: BatchRunner | RemoteRunner) -> None:
        """Show ``runner``'s progress from now on (and stop following the last one)."""
        if self.runner is not None:
            self.runner.unsubscribe(self.pending.append)
        self.runner = runner
        self._reset(runner.plan, runner.batch_id)
        self.status = "running"
        runner.subscribe(self.pending.append)
        self.display = True
        self._draw_title()

    def show_dry_run(self, plan: BatchPlan, batch: str) -> None:
        """Show a plan's calls as a dry run (nothing is sent)."""
        if self.runner is not None and self.status in ("running", "paused", "aborting"):
            return  # never hide a live batch behind a dry run
        self._reset(plan, batch)
        self.status = "dry run: nothing sent"
        for line in dry_run_lines(plan):
            self.log_view.write(Text(line))
        self.display = True
        self._draw_title()

    def _reset(self, plan: BatchPlan, batch: str) -> None:
        self.pending.clear()
        self.results.clear()
        self.current.clear()
        self.wave_done = {w.index: 0 for w in plan.waves}
        self.last = None
        self.plan = plan
        self.batch_id = batch
        self.remove_class("-failed")
        self.log_view.clear()
        self.query_one("#batch-overall", ProgressBar).update(total=len(plan.servers), progress=0)
        waves = self.query_one("#batch-waves", Vertical)
        waves.remove_children()
        for wave in plan.waves:
            waves.mount(
                Horizontal(
                    Label(f"wave {wave.index}"),
                    ProgressBar(
                        total=len(wave.servers), show_eta=False, id=f"batch-wave-{wave.index}"
                    ),
                    classes="batch-bar",
                )
            )
        self.query_one("#batch-current", Static).update("")

    # -- events --------------------------------------------------------------------

    def drain(self) -> None:
        """Apply every queued event, then redraw once (the title once a second anyway)."""
        if not self.pending:
            # Steps can be minutes apart (a BMC powering on): the clock must not stop.
            if self.status in _LIVE and time.monotonic() - self.title_at >= TICK_S:
                self._draw_title()
            return
        while self.pending:
            self._apply(self.pending.popleft())
        self._draw()

    def _apply(self, event: BatchProgress) -> None:
        self.last = event
        self.last_at = time.monotonic()
        kind = event.kind
        if kind in ("step", "retry") and event.server:
            self.current[event.server] = f"{event.call} → {event.outcome}"
        elif kind == "server":
            self.current.pop(event.server, None)
            self.results[event.server] = event.outcome
            if event.wave is not None:
                self.wave_done[event.wave] = self.wave_done.get(event.wave, 0) + 1
            self._write_result(event)
        elif kind == "pause":
            self.status = "paused"
        elif kind == "resume":
            self.status = "running"
        elif kind == "abort":
            self.status = "aborting"
        elif kind == "halt":
            self._write_line(f"HALTED: {event.detail}", "state-down")
        elif kind == "batch-end":
            self.status = f"done: {event.outcome}"
            self.current.clear()
            self.set_class(event.outcome != "ok", "-failed")
            self._write_line(f"batch {event.batch} {event.outcome}: {event.detail}", None)

    def _write_result(self, event: BatchProgress) -> None:
        wave = f"wave {event.wave} " if event.wave is not None else ""
        detail = f"  {event.detail}" if event.detail else ""
        self._write_line(
            f"{wave}{event.server}: {event.outcome.upper()}{detail}",
            _STATUS_COLOUR.get(event.outcome),
        )

    def _write_line(self, text: str, variable: str | None) -> None:
        self.log_view.write(Text(text, style=self._style(variable)))

    def _style(self, variable: str | None) -> Style:
        # RichLog holds Rich text, which cannot refer to theme variables: resolve now.
        if variable is None:
            return Style()
        value = self.app.get_css_variables().get(variable)
        try:
            return Style(color=Color.parse(value).rich_color, bold=variable == "state-down")
        except Exception:  # no such variable in an exotic theme: the words still say it
            return Style(bold=variable == "state-down")

    # -- drawing -------------------------------------------------------------------

    def _draw(self) -> None:
        self.redraws += 1
        overall = self.query_one("#batch-overall", ProgressBar)
        overall.update(progress=len(self.results))
        for index, done in self.wave_done.items():
            for bar in self.query(f"#batch-wave-{index}").results(ProgressBar):
                bar.update(progress=done)
        shown = list(self.current.items())[:3]
        more = len(self.current) - len(shown)
        lines = [f"▶ {server}: {call}" for server, call in shown]
        if more > 0:
            lines.append(f"  … and {more} more in flight")
        self.query_one("#batch-current", Static).update(Text("\n".join(lines)))
        self._draw_title()

    def _draw_title(self) -> None:
        plan = self.plan
        if plan is None:
            return
        last = self.last
        self.title_at = now = time.monotonic()
        parts = [f"{plan.verb} · batch {self.batch_id} · {self.status.upper()}"]
        parts.append(f"{len(self.results)}/{len(plan.servers)} servers")
        if last is not None:
            live = self.status in _LIVE
            since = now - self.last_at if live else 0.0  # time since the batch last spoke
            if last.wave is not None and live:
                parts.append(f"wave {last.wave}/{last.waves}")
            parts.append(f"elapsed {format_seconds(last.elapsed_s + since)}")
            if self.status == "running":
                eta = None if last.eta_s is None else max(0.0, last.eta_s - since)
                parts.append(f"ETA {format_seconds(eta)}")
        failed = sum(1 for s in self.results.values() if s == "failed")
        if failed:
            parts.append(f"{failed} FAILED")
        self.query_one("#batch-title", Static).update(Text(" · ".join(parts)))

    def describe(self) -> dict[str, Any]:
        """Plain data for tests and the app: status, results, in-flight calls."""
        return {"status": self.status, "results": dict(self.results), "current": dict(self.current)}
