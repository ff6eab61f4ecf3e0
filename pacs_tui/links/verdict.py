"""Judging one link's measurement: ok, degraded, unreachable or unknown.

Never optimistic: ``ok`` needs every check answered within its limit and
the C-FIND complete. Rules, worst first:

- ``unreachable``: every sample taken was lost (TCP and C-ECHO alike);
- ``degraded``: the loss of either kind is above ``loss_percent``, or a
  median latency is over its limit even net of our own event loop's lag;
- ``unknown``: the data is incomplete: the C-FIND did not end in Success
  (failed, truncated, timed out: PS3.4 C.4.1.1.4), a latency is over its
  limit only because our loop ran late, or no sample could be judged;
- ``ok`` otherwise.

Limits (ms), from the link's expected round-trip time E: a TCP connect
costs one round trip, so its median must stay within ``E × latency_factor
+ tcp_floor_ms``; a C-ECHO costs three (TCP handshake, A-ASSOCIATE,
C-ECHO: PS3.8 §7.1, PS3.7 §9.3.5) plus the AE's own work, so its median
must stay within ``3 × E × latency_factor + echo_floor_ms``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from pacs_tui.inventory.model import SiteLink
from pacs_tui.links.series import SampleSeries
from pacs_tui.loop_lag import judge_latency

LinkVerdict = Literal["ok", "degraded", "unreachable", "unknown"]
VERDICT_RANK: dict[LinkVerdict, int] = {"ok": 0, "unknown": 1, "degraded": 2, "unreachable": 3}
FindState = Literal["ok", "unknown", "skipped"]


@dataclass(frozen=True)
class Thresholds:
    """When a link stops being ``ok``; see the module's rules."""

    latency_factor: float = 2.0
    # A busy 2-core host moves a loopback connect by a few ms: under this, noise.
    tcp_floor_ms: float = 10.0
    echo_round_trips: int = 3
    # An AE's own work per association (Orthanc, a router): a few to tens of ms.
    echo_floor_ms: float = 50.0
    loss_percent: float = 5.0  # above it: degraded (with 10 samples, any lost one)

    def tcp_limit_ms(self, expected_ms: float) -> float:
        """The highest acceptable TCP connect median (ms)."""
        return expected_ms * self.latency_factor + self.tcp_floor_ms

    def echo_limit_ms(self, expected_ms: float) -> float:
        """The highest acceptable C-ECHO median (ms)."""
        return self.echo_round_trips * expected_ms * self.latency_factor + self.echo_floor_ms

    def to_json(self) -> dict[str, Any]:
        """The thresholds as reports state them."""
        return asdict(self)


DEFAULT_THRESHOLDS = Thresholds()


@dataclass(frozen=True)
class FindCheck:
    """The one C-FIND round trip: ``ok`` only on a complete answer."""

    state: FindState
    latency_ms: float | None = None
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        """JSON-able form."""
        latency = None if self.latency_ms is None else round(self.latency_ms, 3)
        return {"state": self.state, "latency_ms": latency, "detail": self.detail}


@dataclass(frozen=True)
class LinkReport:
    """One link of one site, measured and judged."""

    site: str
    site_kind: str
    link: SiteLink
    tcp: SampleSeries | None  # None: the link has no tcp endpoint
    echo: SampleSeries | None  # None: the link has no dicom endpoint
    find: FindCheck | None  # None: no dicom endpoint, or find: false
    verdict: LinkVerdict
    reasons: tuple[str, ...] = ()
    elapsed_s: float = 0.0
    thresholds: Thresholds = field(default_factory=Thresholds)

    @property
    def key(self) -> str:
        """``SITE/LINK``: how baselines and tables name the link."""
        return f"{self.site}/{self.link.name}"

    @property
    def loss_percent(self) -> float | None:
        """The higher loss (percent) of the TCP connects and the C-ECHOs: what the verdict used."""
        losses = [s.loss_percent for s in (self.tcp, self.echo) if s is not None]
        known = [loss for loss in losses if loss is not None]
        return max(known) if known else None

    @property
    def jitter_ms(self) -> float | None:
        """Jitter of the TCP connects, or of the C-ECHOs when there is no tcp endpoint."""
        first = self.tcp if self.tcp is not None else self.echo
        return None if first is None else first.jitter_ms

    def to_json(self) -> dict[str, Any]:
        """The report as ``preflight --json`` prints it."""
        loss = self.loss_percent
        jitter = self.jitter_ms
        link = self.link
        return {
            "site": self.site,
            "site_kind": self.site_kind,
            "link": link.name,
            "link_kind": link.kind,
            "expected_latency_ms": link.expected_latency_ms,
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "loss_percent": None if loss is None else round(loss, 3),
            "jitter_ms": None if jitter is None else round(jitter, 3),
            "tcp": None if self.tcp is None else self.tcp.to_json(),
            "echo": None if self.echo is None else self.echo.to_json(),
            "find": None if self.find is None else self.find.to_json(),
            "limits_ms": {
                "tcp": round(self.thresholds.tcp_limit_ms(link.expected_latency_ms), 3),
                "echo": round(self.thresholds.echo_limit_ms(link.expected_latency_ms), 3),
            },
            "elapsed_s": round(self.elapsed_s, 3),
        }


def judge_link(
    link: SiteLink,
    tcp: SampleSeries | None,
    echo: SampleSeries | None,
    find: FindCheck | None,
    thresholds: Thresholds,
) -> tuple[LinkVerdict, tuple[str, ...]]:
    """The verdict and its reasons (human text, worst first) for one measured link."""
    series = [(name, s) for name, s in (("TCP", tcp), ("C-ECHO", echo)) if s is not None]
    if series and all(s.answered == 0 and s.lost > 0 for _, s in series):
        why = "; ".join(f"{name}: {_failures(s)}" for name, s in series)
        return "unreachable", (f"every sample lost ({why})",)
    degraded: list[str] = []
    unknown: list[str] = []
    for name, s in series:
        loss = s.loss_percent
        if loss is None:
            unknown.append(f"{name}: no sample could be judged ({s.unreliable} unreliable)")
            continue
        if loss > thresholds.loss_percent:
            degraded.append(f"{name} loss {loss:.0f} % ({s.lost}/{s.judged}: {_failures(s)})")
        if s.unreliable:
            unknown.append(f"{name}: {s.unreliable} sample(s) unreliable (our event loop late)")
    expected = link.expected_latency_ms
    for name, timed, limit in (
        ("TCP connect", tcp, thresholds.tcp_limit_ms(expected)),
        ("C-ECHO", echo, thresholds.echo_limit_ms(expected)),
    ):
        if timed is None or timed.p50 is None:
            continue
        verdict = judge_latency(timed.p50, limit, timed.lag_ms)
        if verdict.verdict == "slow":
            degraded.append(verdict.describe(f"{name} median") + f", expected {expected:g} ms RTT")
        elif verdict.verdict == "unreliable":
            unknown.append(verdict.describe(f"{name} median"))
    if find is not None and find.state != "ok":
        unknown.append(f"C-FIND {find.state}: {find.detail}")
    if degraded:
        return "degraded", (*degraded, *unknown)
    if unknown:
        return "unknown", tuple(unknown)
    return "ok", ()


def _failures(series: SampleSeries) -> str:
    kinds = list(dict.fromkeys(series.failures))
    shown = ", ".join(kinds[:2]) + (f" (+{len(kinds) - 2} more)" if len(kinds) > 2 else "")
    return shown or "none"
