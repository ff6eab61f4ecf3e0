"""The baseline view: did the fleet reach the same or better level after the move?

The same verdicts as ``pacs-tui baseline compare``: the overall verdict, a
role × metric table (better/same/worse with the medians before and after)
and every problem (worse, missing, changed — a swapped serial included)
with its detail. The screen only reads two files, so a read-only room shows
it too. Each verdict has its own glyph, so it reads without colour.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, VerticalScroll
from textual.widgets import Static

from pacs_tui.baseline.compare import (
    ROLE_METRICS,
    Comparison,
    Finding,
    compare_baselines,
    findings_by_role,
    problem_line,
    verdict_counts_text,
)
from pacs_tui.baseline.model import Baseline, Samples, load_baseline
from pacs_tui_widgets.modal import Modal

VERDICT_GLYPHS = {
    "better": "▲",
    "same": "●",
    "worse": "▼",
    "missing": "?",
    "changed": "≠",
    "new": "+",
}
COLUMN_TITLES = {"echo": "C-ECHO", "find": "C-FIND", "redfish": "Redfish", "study_count": "studies"}


@dataclass(frozen=True)
class BaselineView:
    """Two loaded baseline files and their comparison."""

    before_path: Path
    after_path: Path
    before: Baseline
    after: Baseline
    comparison: Comparison


def load_view(before_path: Path, after_path: Path) -> BaselineView:
    """Load both files and compare them; ``BaselineError`` names a bad file and field."""
    before = load_baseline(before_path)
    after = load_baseline(after_path)
    return BaselineView(before_path, after_path, before, after, compare_baselines(before, after))


def headline(comparison: Comparison) -> str:
    """``✔ SAME OR BETTER`` or ``✖ NOT PROVEN: n problem(s)``."""
    if comparison.ok:
        return "✔ SAME OR BETTER"
    return f"✖ NOT PROVEN: {len(comparison.problems())} problem(s)"


def _median(value: Any) -> str:
    if isinstance(value, Samples):
        return f"{value.median:.2f}"
    return "–" if value is None else str(value)


def cell_text(finding: Finding) -> str:
    """A table cell: glyph, verdict, and the medians (or counts) before → after."""
    mark = f"{VERDICT_GLYPHS.get(finding.verdict, '·')} {finding.verdict}"
    if finding.metric == "presence":
        return mark
    unit = " ms" if finding.metric in COLUMN_TITLES and finding.metric != "study_count" else ""
    return f"{mark}\n{_median(finding.before)} → {_median(finding.after)}{unit}"


class VerdictCell(Static):
    """One role × metric cell; ``finding`` is None where the metric was not measured."""

    def __init__(self, role: str, metric: str, finding: Finding | None) -> None:
        verdict = finding.verdict if finding is not None else "none"
        super().__init__(
            escape(cell_text(finding)) if finding is not None else "–",
            classes=f"cell -{verdict}",
        )
        self.role = role
        self.metric = metric
        self.finding = finding


class ProblemLine(Static):
    """One problem, worded as ``baseline compare`` prints it."""

    def __init__(self, finding: Finding) -> None:
        glyph = VERDICT_GLYPHS.get(finding.verdict, "·")
        super().__init__(
            escape(f"{glyph} {problem_line(finding)}"), classes=f"problem -{finding.verdict}"
        )
        self.finding = finding


class BaselineScreen(Modal[None]):
    """The comparison of two baseline files: verdict, role table, problems."""

    DEFAULT_CSS = """
    BaselineScreen { align: center middle; }
    BaselineScreen > VerticalScroll {
        width: 124; max-width: 96%; height: 90%;
        background: $panel; border: thick $primary; padding: 0 1;
    }
    BaselineScreen.-ok > VerticalScroll { border: thick $state-ok; }
    BaselineScreen.-not-proven > VerticalScroll { border: thick $state-down; }
    BaselineScreen #baseline-verdict { text-style: bold; height: auto; }
    BaselineScreen.-ok #baseline-verdict { color: $state-ok; }
    BaselineScreen.-not-proven #baseline-verdict { color: $state-down; }
    BaselineScreen .baseline-heading { text-style: bold; color: $accent; margin-top: 1; }
    BaselineScreen #baseline-files, BaselineScreen #baseline-counts { color: $text-muted; }
    BaselineScreen #baseline-roles {
        grid-size: 5; grid-columns: 18 1fr 1fr 1fr 1fr; grid-rows: auto;
        height: auto; grid-gutter: 0 1;
    }
    BaselineScreen .column-title { text-style: bold; }
    BaselineScreen .role { text-style: bold; }
    BaselineScreen .-better { color: $state-ok; }
    BaselineScreen .-same { color: $foreground; }
    BaselineScreen .-worse, BaselineScreen .-missing { color: $state-down; text-style: bold; }
    BaselineScreen .-changed { color: $state-degraded; text-style: bold; }
    BaselineScreen .-new { color: $state-unknown; }
    BaselineScreen .-none { color: $text-muted; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "close", "Close the baseline view", id="baseline.close"),
    ]

    def __init__(self, view: BaselineView) -> None:
        super().__init__()
        self.view = view
        self.comparison = view.comparison
        self.add_class("-ok" if self.comparison.ok else "-not-proven")

    def compose(self) -> ComposeResult:
        view, comparison = self.view, self.comparison
        problems = comparison.problems()

        def capture(path: Path, baseline: Baseline) -> str:
            label = f" “{baseline.label}”" if baseline.label else ""
            return f"{path}{label}, {baseline.captured_at}, {len(baseline.servers)} servers"

        with VerticalScroll():
            yield Static(headline(comparison), id="baseline-verdict")
            yield Static(
                escape(
                    f"BEFORE {capture(view.before_path, view.before)}\n"
                    f"AFTER  {capture(view.after_path, view.after)}"
                ),
                id="baseline-files",
            )
            yield Static(escape(verdict_counts_text(comparison)), id="baseline-counts")
            yield Static("Per role (median before → after)", classes="baseline-heading")
            with Grid(id="baseline-roles"):
                yield Static("role", classes="column-title")
                for metric in ROLE_METRICS:
                    yield Static(COLUMN_TITLES[metric], classes="column-title")
                for role, by_metric in findings_by_role(comparison).items():
                    yield Static(escape(role), classes="role")
                    presence = by_metric.get("presence")
                    for metric in ROLE_METRICS:
                        yield VerdictCell(role, metric, presence or by_metric.get(metric))
            yield Static(f"Problems ({len(problems)})", classes="baseline-heading")
            if not problems:
                yield Static("None: nothing is worse, missing or changed.", id="baseline-none")
            for finding in problems:
                yield ProblemLine(finding)
            t = comparison.tolerances
            yield Static(
                f"\nWorse: median above ×{t.latency_ratio:g} and +{t.latency_floor_ms:g} ms, "
                f"or p95 above ×{t.p95_ratio:g} and +{t.p95_floor_ms:g} ms "
                f"(p95 judged with ≥ {t.p95_min_samples} samples); studies when "
                f"more than {t.study_count_loss} are missing.\n"
                "Escape closes this view.",
                id="baseline-tolerances",
            )

    def action_close(self) -> None:
        """Close the view."""
        self.dismiss(None)
