"""Is the remote-backup copy complete? Compare two archives by C-FIND counts.

Before the primary archive is shut down for the move, every study must be on
the replica. Both archives are asked, day by day over a date range, how many
studies they hold (and, when asked, how many per modality, by matching
``ModalitiesInStudy``); the days whose counts differ are listed and merged
into contiguous ranges. It is safe to shut down the primary only when every
count matches exactly and no query failed: a day that could not be counted
is a day nobody checked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from pacs_tui.dicom.client import c_find_studies
from pacs_tui.inventory import Server

DEFAULT_MODALITIES = ("CR", "CT", "DX", "MG", "MR", "NM", "PT", "US", "XA")


@dataclass(frozen=True)
class RangeDifference:
    """One day (and modality; None = all studies) whose counts differ."""

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
class ReplicationReport:
    """The outcome of :func:`check_replication`."""

    primary: str
    replica: str
    date_from: date
    date_to: date
    differences: tuple[RangeDifference, ...]
    primary_total: int
    replica_total: int
    errors: tuple[str, ...]

    @property
    def safe_to_shutdown(self) -> bool:
        """True only when every count matched and every query answered."""
        return not self.differences and not self.errors

    def days(self) -> list[date]:
        """The differing days, sorted, each once."""
        return sorted({d.day for d in self.differences})

    def ranges(self) -> list[tuple[date, date]]:
        """Contiguous runs of differing days, as inclusive (first, last) pairs."""
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
            return (
                f"SAFE to shut down {self.primary}: {self.replica} holds the same "
                f"{self.primary_total} studies from {self.date_from} to {self.date_to}"
            )
        reasons = []
        if self.differences:
            spans = ", ".join(a.isoformat() if a == b else f"{a}..{b}" for a, b in self.ranges())
            reasons.append(f"counts differ on {spans}")
        if self.errors:
            reasons.append(
                f"{len(self.errors)} quer{'y' if len(self.errors) == 1 else 'ies'} failed"
            )
        return f"NOT SAFE to shut down {self.primary}: " + "; ".join(reasons)

    def to_json(self) -> dict[str, Any]:
        """What ``replication check --json`` prints."""
        return {
            "primary": self.primary,
            "replica": self.replica,
            "date_from": self.date_from.isoformat(),
            "date_to": self.date_to.isoformat(),
            "safe_to_shutdown": self.safe_to_shutdown,
            "primary_total": self.primary_total,
            "replica_total": self.replica_total,
            "ranges": [[a.isoformat(), b.isoformat()] for a, b in self.ranges()],
            "differences": [d.to_json() for d in self.differences],
            "errors": list(self.errors),
            "verdict": self.verdict(),
        }


Key = tuple[date, str | None]


async def _counts(
    server: Server, keys: Sequence[Key], timeout: float, errors: list[str]
) -> dict[Key, int]:
    """Count studies for each (day, modality) on ``server``, one query at a time."""
    dicom = server.dicom
    assert dicom is not None
    counts: dict[Key, int] = {}
    for day, modality in keys:
        query = {"StudyDate": day.strftime("%Y%m%d")}
        if modality is not None:
            query["ModalitiesInStudy"] = modality
        outcome = await c_find_studies(
            dicom.host,
            dicom.port,
            called_ae=dicom.ae_title,
            calling_ae=dicom.calling_ae_title,
            query=query,
            timeout=timeout,
            limit=0,
        )
        if outcome.state == "ok":
            counts[(day, modality)] = outcome.count
        else:
            what = day.isoformat() + (f" {modality}" if modality else "")
            errors.append(f"{server.name} {what}: {outcome.detail}")
    return counts


async def check_replication(
    primary: Server,
    replica: Server,
    *,
    date_from: date,
    date_to: date,
    modalities: Sequence[str] | None = None,
    timeout: float = 30.0,
) -> ReplicationReport:
    """Compare study counts per day (and per modality) of ``primary`` and ``replica``.

    Both archives are queried at the same time, each one query at a time.
    Never raises for network or protocol failures: they become ``errors``
    (and make the report unsafe). Raises ``ValueError`` for a server without
    DICOM or a range that ends before it starts.
    """
    for server in (primary, replica):
        if server.dicom is None:
            raise ValueError(f"{server.name} has no DICOM endpoint in the inventory")
    if date_to < date_from:
        raise ValueError(f"the range ends ({date_to}) before it starts ({date_from})")
    days = [date_from + timedelta(days=i) for i in range((date_to - date_from).days + 1)]
    wanted: list[str | None] = [None, *dict.fromkeys(m.strip().upper() for m in modalities or ())]
    keys: list[Key] = [(day, m) for day in days for m in wanted]
    errors: list[str] = []
    primary_counts, replica_counts = await asyncio.gather(
        _counts(primary, keys, timeout, errors), _counts(replica, keys, timeout, errors)
    )
    differences = tuple(
        RangeDifference(day, modality, primary_counts[key], replica_counts[key])
        for key in keys
        for day, modality in (key,)
        if key in primary_counts
        and key in replica_counts
        and primary_counts[key] != replica_counts[key]
    )
    return ReplicationReport(
        primary=primary.name,
        replica=replica.name,
        date_from=date_from,
        date_to=date_to,
        differences=differences,
        primary_total=sum(primary_counts.get((d, None), 0) for d in days),
        replica_total=sum(replica_counts.get((d, None), 0) for d in days),
        errors=tuple(errors),
    )
