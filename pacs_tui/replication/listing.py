"""Listing one archive's studies in a window, one association at a time, paced.

An ``ArchiveLink`` is the only way the replication check and repair talk to
an archive: it holds one association at a time (the production archive
serves clinicians meanwhile), waits ``pause_s`` between requests and counts
the queries sent. A listing is complete only when the C-FIND ended with
Success (PS3.4 C.4.1.1.4); anything else is a reason, never a count.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from pacs_tui.dicom.bulk_find import find_rows
from pacs_tui.dicom.client import FindOutcome, c_find_studies
from pacs_tui.dicom.tls import TlsSetupError, setup_context
from pacs_tui.inventory import Server
from pacs_tui.replication.windows import Window

# What each study-level answer must carry for the proof (PS3.4 C.6.2.1.2).
PROOF_KEYS = {"StudyInstanceUID": "", "NumberOfStudyRelatedInstances": ""}
ROW_KEYS = (
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "ModalitiesInStudy",
    "NumberOfStudyRelatedInstances",
)


@dataclass(frozen=True)
class Entry:
    """One study as an archive reports it: instances None when the archive did not say."""

    study_date: str  # YYYYMMDD
    study_time: str  # HHMMSS or ""
    modalities: str  # "CT" or "CT\\SR"
    instances: int | None


@dataclass
class Listing:
    """The studies of one archive in one window; ``reason`` says why it is incomplete."""

    studies: dict[str, Entry] = field(default_factory=dict)
    complete: bool = True
    reason: str = ""
    # Asking in smaller parts can help: the answer was cut short (a limit, a timeout
    # while answering); an archive that refuses or aborts before any match will not
    # do better for a smaller question.
    splittable: bool = False


def _instances(text: str) -> int | None:
    try:
        value = int(text.strip())
    except ValueError:
        return None
    return value if value >= 0 else None


@dataclass
class ArchiveLink:
    """One archive as the check and the repair see it: paced, one association at a time."""

    server: Server
    timeout_s: float = 60.0
    pause_s: float = 0.0
    queries: int = 0
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _last: float = 0.0

    @property
    def name(self) -> str:
        """The server's inventory name."""
        return self.server.name

    @asynccontextmanager
    async def request(self) -> AsyncIterator[None]:
        """Hold the archive's one association slot, after the pause since the last request."""
        async with self._lock:
            wait = self._last + self.pause_s - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self.queries += 1
            try:
                yield
            finally:
                self._last = time.monotonic()

    async def find(self, query: dict[str, str]) -> FindOutcome:
        """One study-level C-FIND keeping every identifier (PS3.4 C.4.1)."""
        dicom = self.server.dicom
        assert dicom is not None
        try:
            tls = setup_context(dicom)
        except TlsSetupError as exc:
            return FindOutcome("error", 0.0, str(exc))
        async with self.request():
            return await c_find_studies(
                dicom.host,
                dicom.port,
                called_ae=dicom.ae_title,
                calling_ae=dicom.calling_ae_title,
                query=query,
                timeout=self.timeout_s,
                limit=None,
                tls=tls,
            )

    async def list(self, window: Window) -> Listing:
        """The archive's studies in ``window``; incomplete unless the answer ended in Success."""
        dicom = self.server.dicom
        assert dicom is not None
        try:
            tls = setup_context(dicom)
        except TlsSetupError as exc:
            return Listing(complete=False, reason=f"{self.name}: {exc}")
        async with self.request():
            rows = await find_rows(
                dicom.host,
                dicom.port,
                tls=tls,
                called_ae=dicom.ae_title,
                calling_ae=dicom.calling_ae_title,
                query={**window.query(), **PROOF_KEYS},
                return_keys=ROW_KEYS,
                timeout=self.timeout_s,
            )
        listing = Listing()
        for uid, day, clock, modalities, instances in rows.rows:
            if uid:
                listing.studies[uid] = Entry(day, clock[:6], modalities, _instances(instances))
        if not rows.complete:
            listing.complete = False
            listing.reason = _why(self.name, rows.state, rows.count, rows.detail)
            # A result limit, or an answer cut after some matches, may fit in smaller parts;
            # a stalled archive would only get more queries it cannot answer.
            listing.splittable = rows.state == "incomplete" or (
                rows.count > 0 and rows.state != "timeout"
            )
        return listing


def _why(name: str, state: str, count: int, detail: str) -> str:
    if state == "incomplete":
        return f"{name} stopped after {count} matches (status 0xFE00: a result limit)"
    return f"{name}: {detail}"


def describe_incomplete(name: str, outcome: FindOutcome) -> str:
    """Why an answer is not a listing, e.g. ``arch-001 stopped after 100 matches (...)``."""
    return _why(name, outcome.state, outcome.count, outcome.detail)
