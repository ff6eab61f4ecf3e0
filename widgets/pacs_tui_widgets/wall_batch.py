"""The wall's batch line: the power batch the service runs, for the whole room to follow.

Only a wall attached to ``pacs-tui serve`` knows of batches (they run in the
service); the section is hidden when there is none to show.
"""

from __future__ import annotations

from typing import Any

from textual.markup import escape
from textual.widgets import Static

from pacs_tui.plugin_api import Health
from pacs_tui_widgets.wall_markup import state_markup


def batch_line(state: dict[str, Any] | None) -> str:
    """``BATCH 3f2a… off by lead · 12/40 servers · wave 2/6`` (or its end); "" for none."""
    if not state or not state.get("batch"):
        return ""
    progress = state.get("progress") or {}
    who = f" by {state['owner']}" if state.get("owner") else ""
    head = f"batch {state['batch']} {state.get('verb', '')}{who}"
    result = state.get("result")
    if result:
        counts = ", ".join(
            f"{n} {what}" for what, n in sorted((result.get("counts") or {}).items())
        )
        if result.get("interrupted"):  # the service died mid-batch: its end is not known
            why = "the service restarted mid-batch; servers' state to be read back"
            return state_markup(Health.DOWN, escape(f"{head}: INTERRUPTED — {why}"))
        word = "OK" if result.get("ok") else ("ABORTED" if result.get("aborted") else "INCOMPLETE")
        health = Health.OK if result.get("ok") else Health.DOWN
        return state_markup(health, escape(f"{head}: {word} — {counts or 'no servers'}"))
    done, total = progress.get("done", 0), progress.get("total", 0)
    wave, waves = progress.get("wave"), progress.get("waves", 0)
    parts = [head, f"{done}/{total} servers"]
    if wave:
        parts.append(f"wave {wave}/{waves}")
    if state.get("paused"):
        parts.append("PAUSED")
    eta = progress.get("eta_s")
    if isinstance(eta, int | float) and eta > 0:
        parts.append(f"about {eta:.0f} s left")
    return state_markup(Health.DEGRADED, escape(" · ".join(parts)))


class WallBatch(Static):
    """One line per the service's current (or last) batch."""

    DEFAULT_CSS = """
    WallBatch {
        width: 1fr;
        height: auto;
        padding: 0 1;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self.text = ""

    def show(self, state: dict[str, Any] | None) -> bool:
        """Redraw from the service's batch state; False when there is nothing to show."""
        text = batch_line(state)
        if text != self.text:
            self.text = text
            self.update(text)
        return bool(text)
