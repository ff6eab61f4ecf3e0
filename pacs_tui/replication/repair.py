"""Repairing a replica: the primary C-MOVEs each missing or partial study to it, audited.

The primary is the move SCP (PS3.4 C.4.2): it opens its own association to
the replica's AE title, which it must know (its modality list). A primary
that answers 0xA801 "Move Destination unknown" will refuse every other study
too, so the repair stops there and says what to configure. Each move is
written to the audit log before and after. Each study is asked on both
archives first (an old or edited report must not re-send a whole study) and
again after its move (C-FIND, PS3.4 C.4.1): it is repaired only when the
replica then holds at least as many instances as the primary.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pacs_tui.batch.audit import AuditLog
from pacs_tui.dicom.move import MoveOutcome, c_move_study
from pacs_tui.dicom.tls import setup_context
from pacs_tui.inventory import Server
from pacs_tui.replication.listing import ArchiveLink, describe_incomplete
from pacs_tui.replication.proof import StudyFinding

VERB = "replication-repair"


@dataclass(frozen=True)
class Recheck:
    """A moved study asked again: ``state`` ok, partial, missing or unknown (a failed query)."""

    state: str
    primary_instances: int | None
    replica_instances: int | None
    detail: str


@dataclass(frozen=True)
class RepairStep:
    """One study: the C-MOVE's outcome and, when it was sent, the re-check."""

    study_uid: str
    move: MoveOutcome
    recheck: Recheck | None

    @property
    def repaired(self) -> bool:
        """True when the move succeeded and the replica now holds the whole study."""
        return self.move.ok and self.recheck is not None and self.recheck.state == "ok"

    def line(self) -> str:
        """One line for the operator."""
        text = f"{self.study_uid}: C-MOVE {self.move.state} ({self.move.detail})"
        if self.recheck is not None:
            text += f"; re-check {self.recheck.state}: {self.recheck.detail}"
        return text


@dataclass
class RepairResult:
    """Every step taken; ``stopped`` says why the repair ended early ("" when it did not)."""

    steps: list[RepairStep] = field(default_factory=list)
    stopped: str = ""
    skipped: list[str] = field(default_factory=list)  # already whole when asked first

    @property
    def ok(self) -> bool:
        """True when every study was moved and re-checked whole."""
        return not self.stopped and all(s.repaired for s in self.steps)


def plan_text(
    primary: str, replica: str, destination_ae: str, studies: Sequence[StudyFinding]
) -> str:
    """The plan in one line, e.g. ``C-MOVE 3 studies (2 missing, 1 partial) ...``."""
    missing = sum(1 for s in studies if s.kind == "missing")
    instances = sum(s.primary_instances or 0 for s in studies)
    return (
        f"C-MOVE {len(studies)} stud{'y' if len(studies) == 1 else 'ies'} ({missing} missing, "
        f"{len(studies) - missing} partial; {instances} instances) from {primary} to "
        f"{replica} (AE {destination_ae})"
    )


def _count(fields: dict[str, str]) -> int | None:
    try:
        return int(fields.get("NumberOfStudyRelatedInstances", "").strip())
    except ValueError:
        return None


async def _instances(link: ArchiveLink, uid: str) -> tuple[int | None, str]:
    """(instances the archive holds of ``uid`` (0 = not held), "" or why unknown)."""
    outcome = await link.find(
        {"StudyInstanceUID": uid, "StudyDate": "", "NumberOfStudyRelatedInstances": ""}
    )
    if not outcome.complete:
        return None, describe_incomplete(link.name, outcome)
    match = next((s for s in outcome.studies if s.get("StudyInstanceUID") == uid), None)
    if match is None:
        return 0, ""
    count = _count(match)
    return count, "" if count is not None else f"{link.name} did not return the instance count"


async def recheck_study(primary: ArchiveLink, replica: ArchiveLink, uid: str) -> Recheck:
    """Ask both archives about one study again (PS3.4 C.4.1)."""
    (mine, why_mine), (theirs, why_theirs) = await asyncio.gather(
        _instances(primary, uid), _instances(replica, uid)
    )
    if mine is None or theirs is None:
        return Recheck("unknown", mine, theirs, why_mine or why_theirs)
    if theirs == 0:
        return Recheck("missing", mine, theirs, f"{replica.name} does not hold it")
    if theirs < mine:
        return Recheck(
            "partial", mine, theirs, f"{replica.name} holds {theirs} of {mine} instances"
        )
    return Recheck("ok", mine, theirs, f"{replica.name} holds {theirs} of {mine} instances")


async def repair_studies(
    primary: Server,
    replica: Server,
    studies: Sequence[StudyFinding],
    *,
    destination_ae: str,
    audit: AuditLog,
    batch: str,
    pause_s: float = 1.0,
    timeout: float = 120.0,
    say: Callable[[str], None] = lambda _: None,
) -> RepairResult:
    """C-MOVE each study from ``primary`` to ``destination_ae``, one at a time, paced.

        Every move and re-check is recorded in ``audit`` under ``batch``. Stops at
        once when the primary does not know the destination (0xA801), or when the
    first moves fail with nothing sent (Orthanc's answer to an unknown AE). ``timeout``
        bounds each wait of a move (a big study keeps answering pending). Never
        raises for network or protocol failures.
    """
    dicom = primary.dicom
    assert dicom is not None
    links = (ArchiveLink(primary, pause_s=pause_s), ArchiveLink(replica, pause_s=pause_s))
    tls = setup_context(dicom)  # TlsSetupError (a ValueError) before any move
    result = RepairResult()
    for number, study in enumerate(studies, start=1):
        call = f"C-MOVE {study.study_uid} -> {destination_ae}"
        # The report may be old or edited: ask first, and never re-send a study already whole.
        before = await recheck_study(links[0], links[1], study.study_uid)
        if before.state == "ok":
            audit.record(
                batch, "skip", verb=VERB, server=replica.name, call=call,
                outcome="already whole", detail=before.detail,
            )  # fmt: skip
            result.skipped.append(study.study_uid)
            say(f"[{number}/{len(studies)}] {study.study_uid}: already whole ({before.detail})")
            continue
        audit.record(
            batch, "move-start", verb=VERB, server=primary.name, call=call, detail=study.kind
        )
        async with links[0].request():
            move = await c_move_study(
                tls=tls,
                host=dicom.host,
                port=dicom.port,
                called_ae=dicom.ae_title,
                calling_ae=dicom.calling_ae_title,
                destination_ae=destination_ae,
                study_uid=study.study_uid,
                timeout=timeout,
            )
        audit.record(
            batch,
            "move",
            verb=VERB,
            server=primary.name,
            call=call,
            outcome=move.state,
            detail=move.detail,
        )
        if move.state == "destination-unknown":
            result.steps.append(RepairStep(study.study_uid, move, None))
            result.stopped = (
                f"{primary.name} refused the move destination {destination_ae}: {move.detail}. "
                f"Add {destination_ae} ({replica.name}) to {primary.name}'s DICOM modalities "
                "and run the repair again."
            )
            audit.record(
                batch, "refused", verb=VERB, server=primary.name, call=call, detail=result.stopped
            )
            say(f"[{number}/{len(studies)}] {study.study_uid}: {move.detail}")
            return result
        if (
            move.state == "failed"
            and move.completed == 0
            and not any(s.move.ok for s in result.steps)
        ):
            # Nothing has ever reached the replica: the cause is the route, not this study.
            result.steps.append(RepairStep(study.study_uid, move, None))
            result.stopped = (
                f"{primary.name} sent nothing to {destination_ae}: {move.detail}. Check that "
                f"{primary.name} knows {destination_ae} ({replica.name}) as a DICOM destination "
                "(AE title, host, port); Orthanc answers an unknown destination with 0xC000."
            )
            audit.record(
                batch, "refused", verb=VERB, server=primary.name, call=call, detail=result.stopped
            )
            say(f"[{number}/{len(studies)}] {study.study_uid}: {move.detail}")
            return result
        recheck = None
        if move.state in ("ok", "warning"):
            recheck = await recheck_study(links[0], links[1], study.study_uid)
            audit.record(
                batch,
                "recheck",
                verb=VERB,
                server=replica.name,
                call=f"C-FIND {study.study_uid}",
                outcome=recheck.state,
                detail=recheck.detail,
            )
        step = RepairStep(study.study_uid, move, recheck)
        result.steps.append(step)
        say(f"[{number}/{len(studies)}] {step.line()}")
    return result
