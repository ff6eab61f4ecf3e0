"""A per-link baseline of the sites' WAN links: capture it, keep it as JSON, compare with it.

The file (``preflight --baseline-out``)::

    {"format": "pacs-tui link baseline", "version": 1,
     "captured_at": "2026-11-27T21:00:00+00:00", "samples": 10,
     "links": [{"site": "clinic-oakwood", "link": "wan-1",
                "tcp_ms": [0.41, ...], "echo_ms": [9.8, ...],
                "find_ms": 12.3, "loss_percent": 0.0}, ...]}

Comparing uses ``baseline compare``'s own rule and words
(``pacs_tui.baseline.compare.judge_latency``: a median beyond ratio and
floor, a p95 with enough samples): per metric ``better``, ``same`` or
``worse``; a metric measured before and not now is ``missing``; more loss
than before (beyond the loss threshold) is ``worse``. The C-FIND is one
sample on each side, so it gets a wider margin (``FIND_TOLERANCES``: twice
as slow and 20 ms more) than the sampled metrics. A link's verdict is
its worst metric's (worse, missing, then better over same); a link only
in the baseline is ``missing``, one only measured now is ``new``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pacs_tui.baseline.compare import PROBLEM_VERDICTS, Tolerances, Verdict, judge_latency
from pacs_tui.baseline.model import Samples
from pacs_tui.input_file import BASELINE, InputFileError, read_json
from pacs_tui.links.verdict import DEFAULT_THRESHOLDS, LinkReport, Thresholds

FORMAT = "pacs-tui link baseline"
# One C-FIND per run: a loaded host moved a loopback one by ~6 ms between runs.
FIND_TOLERANCES = Tolerances(latency_ratio=2.0, latency_floor_ms=20.0)
VERSION = 1


class LinkBaselineError(ValueError):
    """A link baseline file that cannot be used; the message names the file and why."""


@dataclass(frozen=True)
class LinkBaseline:
    """One link's figures as captured: samples in ms, loss in percent."""

    site: str
    link: str
    tcp_ms: tuple[float, ...] = ()
    echo_ms: tuple[float, ...] = ()
    find_ms: float | None = None
    loss_percent: float | None = None

    @property
    def key(self) -> str:
        """``SITE/LINK``."""
        return f"{self.site}/{self.link}"

    @classmethod
    def of(cls, report: LinkReport) -> LinkBaseline:
        """The baseline figures of a measured link (a C-FIND counts only when complete)."""
        find = report.find
        return cls(
            site=report.site,
            link=report.link.name,
            tcp_ms=() if report.tcp is None else report.tcp.values_ms,
            echo_ms=() if report.echo is None else report.echo.values_ms,
            find_ms=find.latency_ms if find is not None and find.state == "ok" else None,
            loss_percent=report.loss_percent,
        )

    def to_json(self) -> dict[str, Any]:
        """The JSON object of one link."""
        return {
            "site": self.site,
            "link": self.link,
            "tcp_ms": [round(v, 3) for v in self.tcp_ms],
            "echo_ms": [round(v, 3) for v in self.echo_ms],
            "find_ms": None if self.find_ms is None else round(self.find_ms, 3),
            "loss_percent": None if self.loss_percent is None else round(self.loss_percent, 3),
        }


@dataclass(frozen=True)
class LinkComparison:
    """One link against its baseline: the verdict and one line per metric that moved."""

    key: str
    verdict: Verdict
    details: tuple[str, ...]

    @property
    def problem(self) -> bool:
        """True for worse and missing (``baseline compare``'s problem words)."""
        return self.verdict in PROBLEM_VERDICTS

    def to_json(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"verdict": self.verdict, "details": list(self.details)}


def capture(reports: Iterable[LinkReport], samples: int) -> dict[str, Any]:
    """The baseline document of ``reports`` (what ``save`` writes)."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "captured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "samples": samples,
        "links": [LinkBaseline.of(r).to_json() for r in reports],
    }


def save(document: Mapping[str, Any], path: Path) -> None:
    """Write ``document`` to ``path`` atomically (a temporary file renamed); ``OSError``."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(document, indent=2) + "\n")
    os.replace(temporary, path)


def load(path: Path) -> dict[str, LinkBaseline]:
    """The links of the baseline file at ``path`` by ``SITE/LINK``; ``LinkBaselineError``."""
    try:
        data = read_json(path, BASELINE)
    except InputFileError as exc:
        raise LinkBaselineError(str(exc)) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise LinkBaselineError(f"{path}: not a link baseline (format {FORMAT!r} expected)")
    if data.get("version") != VERSION:
        raise LinkBaselineError(f"{path}: version {data.get('version')!r} is not {VERSION}")
    links = data.get("links")
    if not isinstance(links, list):
        raise LinkBaselineError(f"{path}: 'links' must be a list")
    out: dict[str, LinkBaseline] = {}
    for i, item in enumerate(links):
        try:
            entry = _entry(item)
        except (TypeError, ValueError) as exc:
            raise LinkBaselineError(f"{path}: links[{i}]: {exc}") from None
        out[entry.key] = entry
    return out


def _entry(item: Any) -> LinkBaseline:
    if not isinstance(item, dict):
        raise ValueError("expected an object")
    site, link = item.get("site"), item.get("link")
    if not isinstance(site, str) or not isinstance(link, str):
        raise ValueError("'site' and 'link' must be text")

    def values(key: str) -> tuple[float, ...]:
        raw = item.get(key, [])
        if not isinstance(raw, list) or not all(_number(v) and v >= 0 for v in raw):
            raise ValueError(f"{key!r} must be a list of milliseconds >= 0")
        return tuple(float(v) for v in raw)

    def number(key: str) -> float | None:
        raw = item.get(key)
        if raw is None:
            return None
        if not _number(raw) or raw < 0:
            raise ValueError(f"{key!r} must be a number >= 0 or null")
        return float(raw)

    return LinkBaseline(
        site, link, values("tcp_ms"), values("echo_ms"), number("find_ms"), number("loss_percent")
    )


def _number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float)


_ORDER: dict[Verdict, int] = {
    "worse": 0,
    "missing": 1,
    "changed": 2,
    "new": 3,
    "better": 4,
    "same": 5,
}


def compare_link(
    before: LinkBaseline,
    report: LinkReport,
    tolerances: Tolerances | None = None,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> LinkComparison:
    """``report`` against ``before`` (see the module for the words)."""
    now = LinkBaseline.of(report)
    verdicts: list[Verdict] = []
    details: list[str] = []
    sampled = tolerances or Tolerances()
    pairs = (
        ("TCP connect", before.tcp_ms, now.tcp_ms, sampled),
        ("C-ECHO", before.echo_ms, now.echo_ms, sampled),
        ("C-FIND", _one(before.find_ms), _one(now.find_ms), FIND_TOLERANCES),
    )
    for name, old, new, margin in pairs:
        if not old:
            continue
        if not new:
            verdicts.append("missing")
            details.append(f"{name}: measured before, no answer now")
            continue
        verdict, why = judge_latency(Samples(old), Samples(new), margin)
        verdicts.append(verdict)
        if verdict != "same":
            details.append(f"{name} {verdict}: {why}")
    old_loss, new_loss = before.loss_percent, now.loss_percent
    if (
        old_loss is not None
        and new_loss is not None
        and new_loss > old_loss + thresholds.loss_percent
    ):
        verdicts.append("worse")
        details.append(f"loss worse: {old_loss:.0f} % → {new_loss:.0f} %")
    if not verdicts:
        return LinkComparison(report.key, "same", ("nothing comparable was measured before",))
    worst = min(verdicts, key=lambda v: _ORDER[v])
    return LinkComparison(report.key, worst, tuple(details))


def _one(value: float | None) -> tuple[float, ...]:
    return () if value is None else (value,)


def compare_all(
    before: Mapping[str, LinkBaseline], reports: Iterable[LinkReport], thresholds: Thresholds
) -> tuple[dict[str, LinkComparison], list[LinkComparison]]:
    """Each measured link's comparison by key, and the baseline's links not measured now."""
    compared: dict[str, LinkComparison] = {}
    for report in reports:
        old = before.get(report.key)
        compared[report.key] = (
            LinkComparison(report.key, "new", ("not in the baseline",))
            if old is None
            else compare_link(old, report, thresholds=thresholds)
        )
    missing = [
        LinkComparison(key, "missing", ("in the baseline, not in this inventory",))
        for key in before
        if key not in compared
    ]
    return compared, missing
