"""The comparison report: Markdown for the ticket, a self-contained HTML page for the room.

Both say the same: the overall verdict, the tolerances used, every problem,
a verdict table per role and per server. The HTML page adds the latency
charts (inline SVG) and needs nothing but a browser: no scripts, no fetches.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from pathlib import Path
from typing import Any

from pacs_tui.baseline.chart import VERDICT_COLOURS, ChartRow, latency_chart
from pacs_tui.baseline.compare import METRIC_TITLES, Comparison, Finding
from pacs_tui.baseline.model import HARDWARE_KEYS, LATENCY_METRICS, Baseline, Samples

# Worst first: the cell of a server table shows the worst verdict of its metrics.
_SEVERITY = ("changed", "missing", "worse", "new", "replaced", "planned", "better", "same")
SERVER_COLUMNS = (
    ("echo", "C-ECHO"),
    ("find", "C-FIND"),
    ("redfish", "Redfish"),
    ("study_count", "studies"),
    ("hardware", "hardware"),
    ("services", "services"),
)


def _column(metric: str) -> str:
    if metric in HARDWARE_KEYS or metric == "hardware":
        return "hardware"
    if metric.startswith("unit:") or metric == "services":
        return "services"
    return metric


def _worst(verdicts: Iterable[str]) -> str:
    found = set(verdicts)
    return next((v for v in _SEVERITY if v in found), "")


def _figure(value: Any) -> str:
    if isinstance(value, Samples):
        return f"{value.median:.2f} / {value.p95:.2f} ms"
    if value is None:
        return "–"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "none"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return str(value)


def _headline(comparison: Comparison) -> str:
    if comparison.ok:
        return "SAME OR BETTER: every metric is within tolerance or improved."
    return f"NOT PROVEN: {len(comparison.problems())} problem(s) found."


def _captures(before: Baseline, after: Baseline) -> list[tuple[str, str, str]]:
    def window(b: Baseline) -> str:
        w = b.study_window
        return "–" if w is None else f"{w[0]} .. {w[1]}"

    return [
        ("label", before.label or "–", after.label or "–"),
        ("captured at", before.captured_at, after.captured_at),
        ("inventory", before.inventory, after.inventory),
        ("servers", str(len(before.servers)), str(len(after.servers))),
        ("samples per metric", str(before.samples), str(after.samples)),
        ("study-count window", window(before), window(after)),
        ("C-FIND query", _figure(dict(before.find_query)), _figure(dict(after.find_query))),
    ]


def _role_rows(comparison: Comparison) -> list[Finding]:
    return [f for f in comparison.findings if f.scope == "role"]


def _server_table(comparison: Comparison) -> list[tuple[str, dict[str, str]]]:
    cells: dict[str, dict[str, list[str]]] = {}
    for finding in comparison.findings:
        if finding.scope != "server":
            continue
        row = cells.setdefault(finding.name, {})
        column = "presence" if finding.metric == "presence" else _column(finding.metric)
        row.setdefault(column, []).append(finding.verdict)
    return [(name, {k: _worst(v) for k, v in row.items()}) for name, row in cells.items()]


def _chart_rows(
    comparison: Comparison, before: Baseline, after: Baseline, metric: str
) -> list[ChartRow]:
    verdicts = {
        f.name: f.verdict for f in comparison.findings if f.scope == "role" and f.metric == metric
    }
    old, new = before.roles(), after.roles()
    rows = []
    for role in sorted(set(old) | set(new)):
        b = old[role].latency(metric) if role in old else None
        a = new[role].latency(metric) if role in new else None
        if b is None and a is None:
            continue
        rows.append(ChartRow(role, b, a, verdicts.get(role)))
    return rows


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _markdown(comparison: Comparison, before: Baseline, after: Baseline) -> str:
    lines = ["# Move-weekend baseline comparison", "", f"**{_headline(comparison)}**", ""]
    lines += ["| | BEFORE | AFTER |", "|---|---|---|"]
    lines += [f"| {k} | {_md_cell(b)} | {_md_cell(a)} |" for k, b, a in _captures(before, after)]
    t = comparison.tolerances
    lines += [
        "",
        "## Tolerances",
        "",
        f"- latency is worse when the median rises above ×{t.latency_ratio:g} **and** by more "
        f"than {t.latency_floor_ms:g} ms, or the p95 above ×{t.p95_ratio:g} **and** by more "
        f"than {t.p95_floor_ms:g} ms (p95 judged with ≥ {t.p95_min_samples} samples per side); "
        "better when the median falls by the same margin",
        f"- study counts are worse when more than {t.study_count_loss} studies are missing",
        "- serial numbers, MAC addresses, model, manufacturer, BIOS and BMC firmware must not change",
        "",
        "## Problems",
        "",
    ]
    problems = comparison.problems()
    lines += [
        f"- **{f.verdict}** {f.scope} `{f.name}` {f.metric}: {_md_cell(f.detail)}" for f in problems
    ] or ["None."]
    lines += [
        "",
        "## Verdicts per role",
        "",
        "| role | metric | before (median / p95) | after (median / p95) | verdict |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {f.name} | {METRIC_TITLES.get(f.metric, f.metric)} | {_md_cell(_figure(f.before))} "
        f"| {_md_cell(_figure(f.after))} | {f.verdict} |"
        for f in _role_rows(comparison)
    ]
    lines += ["", "## Verdicts per server", ""]
    header = ["server", *(title for _, title in SERVER_COLUMNS)]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, row in _server_table(comparison):
        if "presence" in row:
            cells = [row["presence"]] * len(SERVER_COLUMNS)
        else:
            cells = [row.get(key, "–") for key, _ in SERVER_COLUMNS]
        lines.append("| " + " | ".join([name, *cells]) + " |")
    return "\n".join(lines) + "\n"


_CSS = """
body { font-family: sans-serif; margin: 2em; color: #222; max-width: 80em; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: left; font-size: 0.9em; }
th { background: #f0f0f0; }
.ok { color: #2e7d32; } .bad { color: #c62828; }
figure { margin: 0 0 1.5em; }
"""


def _verdict_html(verdict: str) -> str:
    colour = VERDICT_COLOURS.get(verdict, "#555555")
    return f'<span style="color:{colour};font-weight:bold">{escape(verdict)}</span>'


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _html(comparison: Comparison, before: Baseline, after: Baseline) -> str:
    state = "ok" if comparison.ok else "bad"
    t = comparison.tolerances
    charts = "".join(
        f"<figure>{latency_chart(METRIC_TITLES[m] + ' per role', rows)}</figure>"
        for m in LATENCY_METRICS
        if (rows := _chart_rows(comparison, before, after, m))
    )
    problems = comparison.problems()
    problem_list = (
        "<ul>"
        + "".join(
            f"<li>{_verdict_html(f.verdict)} {escape(f.scope)} <code>{escape(f.name)}</code> "
            f"{escape(f.metric)}: {escape(f.detail)}</li>"
            for f in problems
        )
        + "</ul>"
        if problems
        else "<p>None.</p>"
    )
    roles = _table(
        ["role", "metric", "before (median / p95)", "after (median / p95)", "verdict", "detail"],
        (
            [
                escape(f.name),
                escape(METRIC_TITLES.get(f.metric, f.metric)),
                escape(_figure(f.before)),
                escape(_figure(f.after)),
                _verdict_html(f.verdict),
                escape(f.detail),
            ]
            for f in _role_rows(comparison)
        ),
    )
    server_rows = []
    for name, row in _server_table(comparison):
        if "presence" in row:
            cells = [_verdict_html(row["presence"])] * len(SERVER_COLUMNS)
        else:
            cells = [_verdict_html(row[k]) if k in row else "–" for k, _ in SERVER_COLUMNS]
        server_rows.append([escape(name), *cells])
    servers = _table(["server", *(title for _, title in SERVER_COLUMNS)], server_rows)
    captures = _table(
        ["", "BEFORE", "AFTER"],
        ([escape(k), escape(b), escape(a)] for k, b, a in _captures(before, after)),
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>Move-weekend baseline comparison</title>"
        f"<style>{_CSS}</style></head><body>"
        "<h1>Move-weekend baseline comparison</h1>"
        f'<p class="{state}"><strong>{escape(_headline(comparison))}</strong></p>'
        f"{captures}"
        "<h2>Tolerances</h2>"
        f"<p>Latency is worse when the median rises above ×{t.latency_ratio:g} and by more than "
        f"{t.latency_floor_ms:g} ms, or the p95 above ×{t.p95_ratio:g} and by more than "
        f"{t.p95_floor_ms:g} ms (p95 judged with at least {t.p95_min_samples} samples per side). "
        f"Study counts are worse when more than {t.study_count_loss} studies are missing. "
        "Identity facts must not change.</p>"
        f"<h2>Problems</h2>{problem_list}"
        f"<h2>Latency per role</h2>{charts or '<p>No latency samples.</p>'}"
        f"<h2>Verdicts per role</h2>{roles}"
        f"<h2>Verdicts per server</h2>{servers}"
        "</body></html>\n"
    )


def write_report(
    comparison: Comparison, before: Baseline, after: Baseline, directory: Path
) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` into ``directory`` (created); return both paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    markdown = directory / "report.md"
    page = directory / "report.html"
    markdown.write_text(_markdown(comparison, before, after), encoding="utf-8")
    page.write_text(_html(comparison, before, after), encoding="utf-8")
    return markdown, page
