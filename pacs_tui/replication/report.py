"""The replication check's report: findings per study, incomplete windows, the verdict.

``to_json`` is what ``replication check --json`` prints and what
``replication repair`` reads back (``load_report``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from pacs_tui.input_file import REPORT, InputFileError, read_text
from pacs_tui.replication.proof import FindingKind, StudyFinding

REPORT_FORMAT = "pacs-tui-replication-check"
REPORT_VERSION = 2


@dataclass(frozen=True)
class RangeDifference:
    """One day whose study totals differ (``modality`` None = all studies)."""

    day: date
    modality: str | None
    primary: int
    replica: int

    def to_json(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "day": self.day.isoformat(),
            "modality": self.modality,
            "primary": self.primary,
            "replica": self.replica,
        }


@dataclass(frozen=True)
class IncompleteWindow:
    """A window that could not be listed completely, even split: nothing is proven there."""

    window: str  # e.g. "2026-01-05 08:00–09:00 CT"
    reason: str

    def text(self) -> str:
        """``2026-01-05 08:00–09:00 CT: arch-001 stopped after 100 matches (...)``."""
        return f"{self.window}: {self.reason}"


@dataclass
class ReplicationReport:
    """The outcome of ``check_replication``: safe only when everything is proven."""

    primary: str
    replica: str
    date_from: date
    date_to: date
    primary_ae: str = ""
    replica_ae: str = ""
    findings: list[StudyFinding] = field(default_factory=list)
    incomplete: list[IncompleteWindow] = field(default_factory=list)
    differences: list[RangeDifference] = field(default_factory=list)
    primary_total: int = 0
    replica_total: int = 0
    windows: int = 0  # top-level windows (days) checked
    windows_split: int = 0  # windows that had to be asked again in parts
    queries: dict[str, int] = field(default_factory=dict)

    def of_kind(self, kind: FindingKind) -> list[StudyFinding]:
        """The findings of one kind, in check order."""
        return [f for f in self.findings if f.kind == kind]

    @property
    def errors(self) -> tuple[str, ...]:
        """The incomplete windows as text (one per window)."""
        return tuple(w.text() for w in self.incomplete)

    @property
    def safe_to_shutdown(self) -> bool:
        """True only when every window is complete and every primary study is on the
        replica with at least as many instances."""
        # No study at all proves nothing (a wrong date range, an empty or wrong AE).
        return (
            self.primary_total > 0
            and not self.incomplete
            and all(f.kind == "extra" for f in self.findings)
        )

    def days(self) -> list[date]:
        """Days with a missing, partial or unprovable study, sorted, each once."""
        return sorted(
            {_day(f.study_date) for f in self.findings if f.kind != "extra" and f.study_date}
        )

    def ranges(self) -> list[tuple[date, date]]:
        """Contiguous runs of ``days()``, as inclusive (first, last) pairs."""
        runs: list[tuple[date, date]] = []
        for day in self.days():
            if runs and day == runs[-1][1] + timedelta(days=1):
                runs[-1] = (runs[-1][0], day)
            else:
                runs.append((day, day))
        return runs

    def verdict(self) -> str:
        """One line for the operator."""
        if self.safe_to_shutdown:
            extra = len(self.of_kind("extra"))
            note = f" ({extra} more only on the replica)" if extra else ""
            return (
                f"SAFE to shut down {self.primary}: {self.replica} holds every one of the "
                f"{self.primary_total} studies from {self.date_from} to {self.date_to} with at "
                f"least as many instances{note}"
            )
        reasons = []
        for kind, word in (
            ("missing", "missing on the replica"),
            ("partial", "partial (fewer instances)"),
            ("not-provable", "not provable"),
        ):
            count = len(self.of_kind(kind))  # type: ignore[arg-type]
            if count:
                reasons.append(f"{count} stud{'y' if count == 1 else 'ies'} {word}")
        if self.incomplete:
            count = len(self.incomplete)
            reasons.append(f"{count} window{'' if count == 1 else 's'} incomplete")
        if self.primary_total == 0 and not reasons:
            reasons.append(
                f"{self.primary} holds no study from {self.date_from} to {self.date_to}: "
                "nothing was proven (check the dates and the archive)"
            )
        return f"NOT SAFE to shut down {self.primary}: " + "; ".join(reasons)

    def to_json(self) -> dict[str, Any]:
        """What ``replication check --json`` prints."""
        return {
            "format": REPORT_FORMAT,
            "version": REPORT_VERSION,
            "primary": self.primary,
            "replica": self.replica,
            "primary_ae": self.primary_ae,
            "replica_ae": self.replica_ae,
            "date_from": self.date_from.isoformat(),
            "date_to": self.date_to.isoformat(),
            "safe_to_shutdown": self.safe_to_shutdown,
            "verdict": self.verdict(),
            "primary_total": self.primary_total,
            "replica_total": self.replica_total,
            "missing": [f.to_json() for f in self.of_kind("missing")],
            "partial": [f.to_json() for f in self.of_kind("partial")],
            "not_provable": [f.to_json() for f in self.of_kind("not-provable")],
            "extra": [f.to_json() for f in self.of_kind("extra")],
            "incomplete": [{"window": w.window, "reason": w.reason} for w in self.incomplete],
            "ranges": [[a.isoformat(), b.isoformat()] for a, b in self.ranges()],
            "differences": [d.to_json() for d in self.differences],
            "windows": {"days": self.windows, "split": self.windows_split},
            "queries": dict(self.queries),
            "errors": list(self.errors),
        }


def _day(yyyymmdd: str) -> date:
    return date(int(yyyymmdd[0:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:8]))


class ReportError(ValueError):
    """A report file that cannot be used; the text names file and field."""


@dataclass(frozen=True)
class RepairInput:
    """What the repair needs from a check report: who, and which studies."""

    primary: str
    replica: str
    replica_ae: str
    studies: tuple[StudyFinding, ...]  # missing and partial, in report order


def load_report(path: Path) -> RepairInput:
    """Read ``replication check --json`` output; ``ReportError`` naming file and field."""
    try:
        text = read_text(path, REPORT)  # a regular file of at most 256 MiB, UTF-8
    except InputFileError as exc:
        raise ReportError(str(exc)) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReportError(f"{path}: line {exc.lineno}: not JSON: {exc.msg}") from None
    if not isinstance(data, dict) or data.get("format") != REPORT_FORMAT:
        raise ReportError(f"{path}: format: not a replication check report (--json output)")
    if data.get("version") != REPORT_VERSION:
        raise ReportError(f"{path}: version: version {data.get('version')!r} is not supported")
    names = {}
    for key in ("primary", "replica"):
        value = data.get(key)
        if not isinstance(value, str) or not value:
            raise ReportError(f"{path}: {key}: expected a server name")
        names[key] = value
    replica_ae = data.get("replica_ae", "")
    if not isinstance(replica_ae, str):
        raise ReportError(f"{path}: replica_ae: expected text")
    studies: list[StudyFinding] = []
    seen: set[str] = set()
    for kind in ("missing", "partial"):
        if kind not in data:
            raise ReportError(f"{path}: {kind}: missing (not a whole check report)")
        items = data[kind]
        if not isinstance(items, list):
            raise ReportError(f"{path}: {kind}: expected a list")
        for i, item in enumerate(items):
            study = _study(path, f"{kind}[{i}]", kind, item)
            if study.study_uid not in seen:  # a study listed twice is moved once
                seen.add(study.study_uid)
                studies.append(study)
    return RepairInput(names["primary"], names["replica"], replica_ae, tuple(studies))


_UID = re.compile(r"(?=.{1,64}\Z)[0-9]+(\.[0-9]+)*")


def _study(path: Path, where: str, kind: str, item: object) -> StudyFinding:
    if not isinstance(item, dict):
        raise ReportError(f"{path}: {where}: expected an object")
    uid = item.get("study_uid")
    if not isinstance(uid, str) or not _UID.fullmatch(uid):
        # PS3.5 §9.1: digits and dots, at most 64 characters; nothing else goes on the wire.
        raise ReportError(f"{path}: {where}.study_uid: expected a UID, got {uid!r}")
    counts: dict[str, int | None] = {}
    for key in ("primary_instances", "replica_instances"):
        value = item.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ReportError(f"{path}: {where}.{key}: expected a number or null, got {value!r}")
        counts[key] = value
    texts = {}
    for key in ("study_date", "study_time", "modalities"):
        value = item.get(key, "")
        if not isinstance(value, str):
            raise ReportError(f"{path}: {where}.{key}: expected text, got {value!r}")
        texts[key] = value
    return StudyFinding(
        "missing" if kind == "missing" else "partial",
        uid,
        texts["study_date"],
        texts["study_time"],
        texts["modalities"],
        counts["primary_instances"],
        counts["replica_instances"],
    )
