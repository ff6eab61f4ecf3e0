"""Trouble that is not a PACS outage: silent BMCs of serving servers, and flapping probes.

A BMC that stopped answering while the server's OS, DICOM and SSH are fine
is a management-network fault: the room must see it (nobody can power-cycle
that server now), but not as lost hospital service. A flapping unit is one
standing problem, shown with its period rather than as endless changes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from textual.markup import escape
from textual.widgets import Static

from pacs_tui.flapping import Flap
from pacs_tui.plugin_api import Health
from pacs_tui.rollup import BMC_ONLY, BMC_ONLY_DEGRADED
from pacs_tui_widgets.wall_markup import state_markup

MAX_NAMES = 20


class WallManagement(Static):
    """``▲ BMC UNREACHABLE — SERVICE OK (1): rtr-003`` and ``▲ FLAPPING (1): gw-1 ssh every 4 s``.

    Empty (and its section hidden by the wall) when there is nothing to say.
    """

    DEFAULT_CSS = """
    WallManagement {
        width: 1fr;
        height: auto;
        padding: 0 1;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self.text = ""

    def show(
        self,
        management: Mapping[str, Health],
        flapping: Mapping[str, Sequence[tuple[str, Flap]]],
    ) -> bool:
        """Show these servers; return whether there is anything to show."""
        lines = []
        for service, word in ((Health.OK, BMC_ONLY), (Health.DEGRADED, BMC_ONLY_DEGRADED)):
            names = [n for n, h in management.items() if h is service]
            if names:
                lines.append(_names_line(word.upper(), names))
        if flapping:
            entries = [
                f"{escape(server)} {escape(probe)} every {_period(flap)}"
                for server, flaps in flapping.items()
                for probe, flap in flaps
            ]
            shown = "  ".join(entries[:MAX_NAMES])
            more = f"  +{len(entries) - MAX_NAMES} more" if len(entries) > MAX_NAMES else ""
            head = state_markup(Health.DEGRADED, f"FLAPPING ({len(entries)}):", bold=True)
            lines.append(f"{head} {shown}{more}")
        text = "\n".join(lines)
        if text != self.text:
            self.text = text
            self.update(text)
        return bool(lines)


def _names_line(word: str, names: Sequence[str]) -> str:
    shown = "  ".join(escape(n) for n in names[:MAX_NAMES])
    more = f"  +{len(names) - MAX_NAMES} more" if len(names) > MAX_NAMES else ""
    head = state_markup(Health.DEGRADED, f"{escape(word)} ({len(names)}):", bold=True)
    return f"{head} {shown}{more}"


def _period(flap: Flap) -> str:
    seconds = flap.period_s
    return f"~{seconds:.0f} s" if seconds < 120 else f"~{seconds / 60:.0f} min"
