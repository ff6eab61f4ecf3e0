"""The move-weekend performance baseline: capture, compare, report.

``capture_baseline`` measures the fleet (DICOM, Redfish, SSH) and returns a
:class:`Baseline`; ``save_baseline``/``load_baseline`` keep it as a
documented JSON file; ``compare_baselines`` classifies every metric per
server, per role and for the fleet; ``write_report`` writes the Markdown and
HTML report.
"""

from pacs_tui.baseline.capture import capture_baseline, default_find_query, study_window
from pacs_tui.baseline.compare import (
    Comparison,
    Finding,
    PlannedFirmware,
    PlannedIdentity,
    Tolerances,
    compare_baselines,
    judge_latency,
)
from pacs_tui.baseline.model import (
    BASELINE_VERSION,
    Baseline,
    BaselineError,
    RoleBaseline,
    Samples,
    ServerBaseline,
    load_baseline,
    save_baseline,
)
from pacs_tui.baseline.report import write_report

__all__ = [
    "BASELINE_VERSION",
    "Baseline",
    "BaselineError",
    "Comparison",
    "Finding",
    "PlannedFirmware",
    "PlannedIdentity",
    "RoleBaseline",
    "Samples",
    "ServerBaseline",
    "Tolerances",
    "capture_baseline",
    "compare_baselines",
    "default_find_query",
    "judge_latency",
    "load_baseline",
    "save_baseline",
    "study_window",
    "write_report",
]
