"""What a simulated replica holds differently from its primary, study by study.

A replica's ``StudyIndex`` generates the same studies as its primary; these
plants bend that, so the replication proof has something to find: a study
removed (missing), a study holding fewer instances (partial), a study in
place of another (swapped: one removed, one extra on the same day), and the
instances received since by C-STORE (a repair), which make a study whole again.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # studies.py imports this module; the import is for the type only
    from pacs_tui.sim.studies import Study


@dataclass
class StudyPlants:
    """Mutable per-study differences of one archive; empty means "as generated"."""

    removed: set[str] = field(default_factory=set)  # study UIDs the archive lacks
    instances: dict[str, int] = field(default_factory=dict)  # study UID -> instances held
    extra: dict[date, list[Study]] = field(default_factory=dict)  # studies only this archive has
    received: dict[str, set[str]] = field(default_factory=dict)  # study UID -> SOP UIDs stored

    def __bool__(self) -> bool:
        return bool(self.removed or self.instances or self.extra or self.received)

    def held(self, study: Study, *, day_missing: bool = False) -> Study | None:
        """The study as this archive holds it, or None when it does not hold it."""
        got = self.received.get(study.study_uid)
        if day_missing or study.study_uid in self.removed:
            if not got:
                return None
            return replace(study, instances=len(got))
        partial = self.instances.get(study.study_uid)
        if partial is None:
            if got and len(got) > study.instances:  # an extra study filled by C-STORE
                return replace(study, instances=len(got))
            return study
        return replace(study, instances=max(partial, len(got or ())))

    def copy(self) -> StudyPlants:
        """An independent copy (a replica starts from its primary's state, then drifts)."""
        return StudyPlants(
            set(self.removed),
            dict(self.instances),
            {day: list(studies) for day, studies in self.extra.items()},
            {uid: set(sops) for uid, sops in self.received.items()},
        )

    def receive(self, study_uid: str, sop_uid: str) -> None:
        """Record one instance stored by C-STORE."""
        self.received.setdefault(study_uid, set()).add(sop_uid)

    def add_extra(self, study: Study) -> None:
        """A study only this archive holds (swapped in, or stored though unknown)."""
        day = self.extra.setdefault(study.study_date, [])
        if all(s.study_uid != study.study_uid for s in day):
            day.append(study)

    def extra_study(self, uid: str) -> Study | None:
        """The extra study with this UID, if any."""
        for studies in self.extra.values():
            for study in studies:
                if study.study_uid == uid:
                    return study
        return None
