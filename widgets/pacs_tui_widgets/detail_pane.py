"""The detail pane: every probe of one server, with facts and a latency sparkline."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.markup import escape
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Sparkline, Static

from pacs_tui.inventory import Server
from pacs_tui.plugin_api import Health
from pacs_tui.rollup import BMC_ONLY, BMC_ONLY_DEGRADED, POWER_PROBE, bmc_only
from pacs_tui.state import FleetState, Reading
from pacs_tui_widgets.health_style import (
    NOT_APPLICABLE,
    format_age,
    format_latency,
    glyph,
    state_class,
)

# Fact keys that might carry a secret are never shown, whatever a plugin puts there.
_SECRET_WORDS = ("password", "secret", "token", "private", "credential", "passphrase")
TLS_UNVERIFIED = "TLS UNVERIFIED"
TLS_LEGACY = "TLS LEGACY"
# Probes whose results carry a ``tls`` fact, and what their peer is called in the banner.
_TLS_PEERS = {"power": "BMC", "dicom": "DICOM peer's"}


def _tls_warning(mode: str, peer: str = "BMC") -> str:
    """The banner for a BMC or DICOM peer whose TLS is weakened on purpose (inventory)."""
    parts = []
    if "UNVERIFIED" in mode:
        parts.append(f"⚠ {TLS_UNVERIFIED}: the {peer} certificate is not checked")
    if "LEGACY" in mode:
        parts.append(f"⚠ {TLS_LEGACY}: old TLS protocols and ciphers are allowed for this BMC")
    return "\n".join(parts)


def visible_facts(facts: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Facts fit to show: no key that smells of a secret, values shortened."""
    shown = []
    for key in sorted(facts):
        if any(word in key.lower() for word in _SECRET_WORDS):
            continue
        value = facts[key]
        if isinstance(value, (list, tuple, set, frozenset)):
            text = ", ".join(str(v) for v in value)
        else:
            text = str(value)
        shown.append((key, text if len(text) <= 60 else text[:59] + "…"))
    return shown


def _management_note(readings: Mapping[str, Reading]) -> str:
    """``BMC unreachable — service OK`` when only the BMC is silent, else ``""``."""
    if not bmc_only(readings):
        return ""
    serving = all(r.health is Health.OK for p, r in readings.items() if p != POWER_PROBE)
    return BMC_ONLY if serving else BMC_ONLY_DEGRADED


def sparkline_data(history: Sequence[float | None]) -> list[float]:
    """Latency history for a sparkline (a failed poll counts as 0 ms: a gap)."""
    return [0.0 if v is None else float(v) for v in history] or [0.0]


class DetailPane(VerticalScroll):
    """One server's probes: state, detail, latency, age, facts and a sparkline each."""

    DEFAULT_CSS = """
    DetailPane {
        width: 46;
        border-left: wide $primary;
        background: $panel;
        padding: 0 1;
    }
    DetailPane .detail-title { text-style: bold; color: $accent; margin-bottom: 1; }
    DetailPane .detail-probe { margin-top: 1; }
    DetailPane .detail-tls { background: $state-down; color: $text; text-style: bold; }
    DetailPane .state-ok { color: $state-ok; }
    DetailPane .state-degraded { color: $state-degraded; }
    DetailPane .state-down { color: $state-down; }
    DetailPane .state-unreachable { color: $state-unreachable; }
    DetailPane .state-stale { color: $state-stale; }
    DetailPane .state-unknown { color: $state-unknown; }
    DetailPane .state-na { color: $text-muted; }
    DetailPane Sparkline { height: 2; margin-bottom: 0; }
    DetailPane Sparkline > .sparkline--max-color { color: $state-ok; }
    DetailPane Sparkline > .sparkline--min-color { color: $state-ok 50%; }
    """

    def __init__(
        self,
        state: FleetState,
        probes: Sequence[str],
        applicable: Mapping[str, frozenset[str]],
        servers: Mapping[str, Server],
        *,
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self.state = state
        self.probes = list(probes)
        self.applicable = applicable
        self.servers = servers
        self.server: str | None = None

    def compose(self) -> ComposeResult:
        yield Static("", classes="detail-title", id="detail-title")
        yield Static("", classes="detail-tls", id="detail-tls")
        for probe in self.probes:
            yield Static("", classes="detail-probe", id=f"detail-{probe}")
            yield Sparkline([0.0], summary_function=max, id=f"spark-{probe}")

    def show(self, server: str | None) -> None:
        """Show ``server`` (None: nothing)."""
        self.server = server
        self.refresh_content()

    def refresh_content(self) -> None:
        """Redraw from the current state (called when the shown server changed)."""
        if not self.is_mounted:
            return
        server = self.server
        title = self.query_one("#detail-title", Static)
        tls = self.query_one("#detail-tls", Static)
        if server is None or server not in self.servers:
            title.update("no server selected")
            tls.display = False
            for probe in self.probes:
                self.query_one(f"#detail-{probe}", Static).update("")
                self.query_one(f"#spark-{probe}", Sparkline).display = False
            return
        info = self.servers[server]
        deps = f"\ndepends on: {', '.join(info.depends_on)}" if info.depends_on else ""
        title.update(
            escape(f"{info.name}  ·  {info.site} · {info.role} · rack {info.rack or '-'}{deps}")
        )
        now = self.state.clock()
        applicable = self.applicable.get(server, frozenset())
        unverified = False
        warning = ""
        readings: dict[str, Reading] = {
            p: self.state.reading(server, p, now) for p in self.probes if p in applicable
        }
        management = _management_note(readings)
        for probe in self.probes:
            body = self.query_one(f"#detail-{probe}", Static)
            spark = self.query_one(f"#spark-{probe}", Sparkline)
            if probe not in applicable:
                body.update(f"[b]{probe}[/b]  {glyph(NOT_APPLICABLE)} not applicable")
                body.set_classes(f"detail-probe state-{state_class(NOT_APPLICABLE)}")
                spark.display = False
                continue
            reading = readings[probe]
            result = reading.result
            health = reading.health
            lines = [
                f"[b]{probe}[/b]  {glyph(health)} {escape(reading.state)} ({health})"
                f"  {format_latency(result.latency_ms if result else None)}"
                f"  age {format_age(reading.age_s)}"
            ]
            if reading.flap is not None:
                lines.append(f"  [b]{escape(reading.flap.describe())}[/b]")
            if probe == POWER_PROBE and management:
                lines.append(f"  [b]{management}[/b] (management network, not a PACS outage)")
            if result is not None:
                if result.detail:
                    lines.append(f"  {escape(result.detail)}")
                for key, value in visible_facts(result.facts):
                    lines.append(f"  [dim]{escape(key)}:[/dim] {escape(value)}")
                if probe in _TLS_PEERS:
                    mode = str(result.facts.get("tls", ""))
                    if "UNVERIFIED" in mode or "LEGACY" in mode:
                        unverified = True
                        more = _tls_warning(mode, _TLS_PEERS[probe])
                        warning = f"{warning}\n{more}" if warning else more
            body.update("\n".join(lines))
            body.set_classes(f"detail-probe state-{state_class(health)}")
            spark.data = sparkline_data(self.state.history(server, probe))
            spark.display = True
        tls.update(warning)
        tls.display = unverified
