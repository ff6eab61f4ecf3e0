"""The rehearsal's summary file, ``rehearsal.md``."""

from __future__ import annotations

from pathlib import Path

from pacs_tui.custody import CustodyBoard
from pacs_tui.inventory import Inventory
from pacs_tui.rehearsal.options import tolerances
from pacs_tui.rehearsal.outcome import RehearsalResult

SUMMARY_FILE = "rehearsal.md"


def write_summary(
    result: RehearsalResult, board: CustodyBoard | None, inventory: Inventory | None
) -> Path:
    """Write ``rehearsal.md``: the verdict, each phase's timing and outcome, what was found."""
    o = result.options
    t = tolerances(o)
    path = o.report_dir / SUMMARY_FILE
    verdict = (
        "**PASSED**: the move is proven same-or-better."
        if result.ok
        else f"**FAILED**: {', '.join(result.faults) or 'a phase failed'}"
        + (f" (stopped at: {result.stopped_at})" if result.stopped_at else "")
    )
    lines = [
        "# Move-weekend rehearsal",
        "",
        f"- Fleet: {o.servers} simulated servers (seed {o.seed}), simulator time scale "
        f"{o.time_scale:g}, {o.samples} latency samples per metric and server",
        f"- Planted: {', '.join(o.plants) or 'nothing'}",
        f"- Latency tolerance: median ×{t.latency_ratio:g} and +{t.latency_floor_ms:g} ms, "
        f"p95 ×{t.p95_ratio:g} and +{t.p95_floor_ms:g} ms; C-FIND sampled as a "
        "StudyInstanceUID lookup",
        f"- Took: {result.elapsed_s:.1f} s",
        f"- Verdict: {verdict}",
    ]
    if result.not_proven:
        lines.append(
            "- Not proven same-or-better for: "
            + "; ".join(f"{site} ({why})" for site, why in result.not_proven.items())
        )
    if result.held:
        lines.append(
            "- Held Off at power-up (never powered on, never verified): "
            + "; ".join(f"{name} ({why})" for name, why in result.held.items())
        )
    lines += [
        "",
        "## Phases",
        "",
        "| # | phase | kind | start | took | outcome | sites without PACS | summary |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for i, p in enumerate(result.phases, 1):
        summary = p.summary.replace("|", "\\|")
        lines.append(
            f"| {i} | {p.name} | {p.kind} | +{p.started_s:.1f} s | {p.duration_s:.1f} s | "
            f"{'ok' if p.ok else 'FAILED'} | {p.no_service} | {summary} |"
        )
    if result.preflight:
        lines += ["", "## Preflight at the new site (before power-up)", ""]
        lines += [f"- {line}" for line in result.preflight]
    if result.rack_power:
        lines += ["", "## Rack power at power-up", ""]
        lines += [f"- {line}" for line in result.rack_power]
    lines += ["", "## Problems found", ""]
    lines += [f"- **{d.fault}**: {d.message}" for d in result.detections] or ["- none"]
    if board is not None:
        counts = ", ".join(f"{state}: {n}" for state, n in board.counts().items() if n)
        lines += ["", "## Custody at the end", "", f"- {counts}"]
        if inventory is not None:
            affected = board.affected_sites(inventory)
            lines.append(
                "- Hospitals/clinics without full PACS service: "
                + (", ".join(f"{a.site} ({a.level})" for a in affected) or "none")
            )
    lines += ["", "## Files", ""]
    for name in ("baseline-before.json", "baseline-after.json", "custody.json", "sim.log"):
        if (o.report_dir / name).exists():
            lines.append(f"- [{name}]({name})")
    lines += [f"- [{p.name}]({p.name})" for p in result.report_paths]
    path.write_text("\n".join(lines) + "\n")
    return path
