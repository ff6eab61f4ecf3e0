"""Is the remote-backup copy complete? A study-level comparison, window by window.

Before the primary archive is shut down for the move, every study must be on
the replica. Counting studies is not enough (a swapped study keeps the count),
so for each day both archives list their studies with a study-level C-FIND
(PS3.4 C.4.1) returning StudyInstanceUID and NumberOfStudyRelatedInstances;
the sets are compared study by study (``proof.compare``). An answer that did
not end in Success (a result limit's 0xFE00, a failure, a timeout, an abort)
is never a listing: the window is asked again in parts (hours, then
modalities, then quarter hours) until each part completes, and a part that
cannot complete makes the check NOT SAFE with the reason.

Each archive is asked one query at a time (``ArchiveLink``), both archives at
the same time, one day after the other: memory holds one day of studies.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from pacs_tui.inventory import Server
from pacs_tui.replication.listing import ArchiveLink, Entry, Listing
from pacs_tui.replication.proof import compare
from pacs_tui.replication.report import IncompleteWindow, RangeDifference, ReplicationReport
from pacs_tui.replication.windows import Window

# The modalities a window is split by when an hour is still too big to answer.
DEFAULT_MODALITIES = ("CR", "CT", "DX", "MG", "MR", "NM", "PT", "US", "XA")
SPLIT_MODALITIES = (
    *DEFAULT_MODALITIES,
    "OT",
    "SR",
    "RF",
    "ES",
    "XC",
    "IO",
    "PX",
    "OP",
    "SM",
    "KO",
    "PR",
    "SC",
    "DOC",
)


@dataclass(frozen=True)
class Progress:
    """Where a running check is: days done of all, studies compared, seconds so far."""

    days_done: int
    days_total: int
    studies: int
    elapsed_s: float

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the pace so far (None before the first day)."""
        if self.days_done == 0:
            return None
        return self.elapsed_s / self.days_done * (self.days_total - self.days_done)


@dataclass
class _Proven:
    """One window's outcome: the primary's and replica's studies, or why not."""

    primary: dict[str, Entry]
    replica: dict[str, Entry]
    incomplete: list[IncompleteWindow]
    splits: int = 0


class _Checker:
    def __init__(
        self, primary: ArchiveLink, replica: ArchiveLink, modalities: Sequence[str]
    ) -> None:
        self.primary = primary
        self.replica = replica
        self.modalities = tuple(modalities)

    async def prove(self, window: Window) -> _Proven:
        """List ``window`` on both archives, splitting it until every part is complete."""
        mine, theirs = await asyncio.gather(self.primary.list(window), self.replica.list(window))
        if mine.complete and theirs.complete:
            return _Proven(mine.studies, theirs.studies, [])
        splittable = any(x.splittable for x in (mine, theirs) if not x.complete)
        parts = window.split(self.modalities) if splittable else None
        if parts is None:
            reasons = [x.reason for x in (mine, theirs) if not x.complete]
            return _Proven({}, {}, [IncompleteWindow(window.label(), "; ".join(reasons))])
        merged = _Proven({}, {}, [], 1)
        for part in parts:
            proven = await self.prove(part)
            merged.primary.update(proven.primary)
            merged.replica.update(proven.replica)
            merged.incomplete.extend(proven.incomplete)
            merged.splits += proven.splits
        if merged.incomplete:
            return merged  # a part is already unproven; its studies are in no part either
        # Parts by time or modality may miss studies (no StudyTime, another modality):
        # whatever the stopped answer already showed must be in some part.
        for listing, found, link in (
            (mine, merged.primary, self.primary),
            (theirs, merged.replica, self.replica),
        ):
            lost = _uncovered(listing, found)
            if lost:
                merged.incomplete.append(
                    IncompleteWindow(
                        window.label(),
                        f"{link.name}: {lost} studies of the stopped answer are in no part "
                        "(no StudyTime, or a modality not split by)",
                    )
                )
        return merged


def _uncovered(listing: Listing, found: dict[str, Entry]) -> int:
    if listing.complete:
        return 0
    return sum(1 for uid in listing.studies if uid not in found)


async def check_replication(
    primary: Server,
    replica: Server,
    *,
    date_from: date,
    date_to: date,
    modalities: Sequence[str] | None = None,
    timeout: float = 60.0,
    pause_s: float = 0.0,
    progress: Callable[[Progress], None] | None = None,
) -> ReplicationReport:
    """Prove, study by study, that ``replica`` holds every study ``primary`` holds.

    Day by day from ``date_from`` to ``date_to`` (inclusive): each archive is
    asked one C-FIND at a time (PS3.4 C.4.1), waiting ``pause_s`` seconds
    between its queries; ``timeout`` bounds each query. ``modalities`` are
    those a window is split by when an hour is still too big (default: a
    broad list). ``progress`` is called after each day. Never raises for
    network or protocol failures (they make windows incomplete); raises
    ``ValueError`` for a server without DICOM or a range that ends before it
    starts.
    """
    for server in (primary, replica):
        if server.dicom is None:
            raise ValueError(f"{server.name} has no DICOM endpoint in the inventory")
    if date_to < date_from:
        raise ValueError(f"the range ends ({date_to}) before it starts ({date_from})")
    split_by = [m.strip().upper() for m in modalities or SPLIT_MODALITIES if m.strip()]
    links = (
        ArchiveLink(primary, timeout_s=timeout, pause_s=pause_s),
        ArchiveLink(replica, timeout_s=timeout, pause_s=pause_s),
    )
    checker = _Checker(*links, split_by)
    assert primary.dicom is not None and replica.dicom is not None
    report = ReplicationReport(
        primary.name,
        replica.name,
        date_from,
        date_to,
        primary_ae=primary.dicom.ae_title,
        replica_ae=replica.dicom.ae_title,
    )
    days = (date_to - date_from).days + 1
    started = time.monotonic()
    compared = 0
    for offset in range(days):
        day = date_from + timedelta(days=offset)
        proven = await checker.prove(Window(day))
        report.windows += 1
        report.windows_split += proven.splits
        report.incomplete.extend(proven.incomplete)
        report.findings.extend(
            compare(
                proven.primary, proven.replica, primary_name=primary.name, replica_name=replica.name
            )
        )
        report.primary_total += len(proven.primary)
        report.replica_total += len(proven.replica)
        if not proven.incomplete and len(proven.primary) != len(proven.replica):
            report.differences.append(
                RangeDifference(day, None, len(proven.primary), len(proven.replica))
            )
        compared += len(proven.primary) + len(proven.replica)
        if progress is not None:
            progress(Progress(offset + 1, days, compared, time.monotonic() - started))
    report.queries = {primary.name: links[0].queries, replica.name: links[1].queries}
    return report
