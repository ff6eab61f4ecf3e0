"""Comparing one window's studies on the primary and the replica, study by study.

Counting is not proof: two archives can hold the same number of studies and
not the same studies. For each study of the primary, the replica must hold
the same StudyInstanceUID with at least as many instances
(NumberOfStudyRelatedInstances, PS3.4 C.6.2.1.2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pacs_tui.replication.listing import Entry

FindingKind = Literal["missing", "partial", "extra", "not-provable"]


@dataclass(frozen=True)
class StudyFinding:
    """One study that is not proven replicated (or, for ``extra``, only on the replica)."""

    kind: FindingKind
    study_uid: str
    study_date: str  # YYYYMMDD
    study_time: str  # HHMMSS or ""
    modalities: str
    primary_instances: int | None
    replica_instances: int | None
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        """JSON-able form (the repair reads it back)."""
        return {
            "study_uid": self.study_uid,
            "study_date": self.study_date,
            "study_time": self.study_time,
            "modalities": self.modalities,
            "primary_instances": self.primary_instances,
            "replica_instances": self.replica_instances,
            **({"reason": self.reason} if self.reason else {}),
        }

    def line(self) -> str:
        """One line for the operator."""
        when = f"{self.study_date} {self.study_time or '------'}"
        what = f"{self.kind:12} {when} {self.modalities or '?':6} {self.study_uid}"
        if self.kind == "missing":
            return f"{what}  ({self.primary_instances} instances on the primary)"
        if self.kind == "partial":
            return (
                f"{what}  (replica {self.replica_instances} of {self.primary_instances} instances)"
            )
        if self.kind == "extra":
            return f"{what}  (only on the replica, {self.replica_instances} instances)"
        return f"{what}  ({self.reason})"


def compare(
    primary: dict[str, Entry], replica: dict[str, Entry], *, primary_name: str, replica_name: str
) -> list[StudyFinding]:
    """Findings for one window whose listings are both complete, in primary order."""
    findings: list[StudyFinding] = []
    for uid, mine in primary.items():
        theirs = replica.get(uid)
        if theirs is None:
            findings.append(_finding("missing", uid, mine, mine.instances, None))
            continue
        if mine.instances is None or theirs.instances is None:
            silent = primary_name if mine.instances is None else replica_name
            findings.append(
                _finding(
                    "not-provable",
                    uid,
                    mine,
                    mine.instances,
                    theirs.instances,
                    f"{silent} did not return NumberOfStudyRelatedInstances",
                )
            )
        elif theirs.instances < mine.instances:
            findings.append(_finding("partial", uid, mine, mine.instances, theirs.instances))
    for uid, theirs in replica.items():
        if uid not in primary:
            findings.append(_finding("extra", uid, theirs, None, theirs.instances))
    return findings


def _finding(
    kind: FindingKind,
    uid: str,
    entry: Entry,
    primary: int | None,
    replica: int | None,
    reason: str = "",
) -> StudyFinding:
    return StudyFinding(
        kind, uid, entry.study_date, entry.study_time, entry.modalities, primary, replica, reason
    )
