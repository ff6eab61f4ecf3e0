"""The move weekend as the control room and the wall show it: custody, phase, clock.

``MoveStatus`` reads a custody board and a runbook (either may be absent)
and says, in one place for both apps, how many servers are in each custody
state, which phase is current and how far the weekend is from its plan.
It only reads: the board file is loaded again when another process (the
CLI, the rehearsal, the lead's control room) changed it, and so is the
runbook progress file. Changing custody is the control room's business,
through the board it alone holds (``ControlRoomApp.custody``).

A board file that turns bad (hand-edited, truncated, replaced by something
that is not a board) never stops the wall or the room: the last good board
stays on show, marked as such, with the file's first problem beside it
(``board_error``) until the file is good again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

from rich.markup import escape

from pacs_tui.custody import CUSTODY_ORDER, CustodyBoard, CustodyFileError, CustodyState
from pacs_tui.custody_file import FileStamp, file_stamp
from pacs_tui.inventory import Inventory
from pacs_tui.plugin_api import Health
from pacs_tui.remote.custody import ServiceCustody
from pacs_tui.rollup import AffectedSite
from pacs_tui.runbook import Clock, Runbook, RunbookProgress, default_progress_path

# Planned outages are not failures: a server in transit is shown as "degraded",
# not "down", so that a real failure still stands out during the move.
CUSTODY_HEALTH_CLASS = {
    CustodyState.RUNNING: "ok",
    CustodyState.SHUT_DOWN: "degraded",
    CustodyState.IN_TRANSIT: "degraded",
    CustodyState.RACKED: "degraded",
    CustodyState.POWERED: "ok",
    CustodyState.VERIFIED: "ok",
}
CUSTODY_GLYPH = {
    CustodyState.RUNNING: "●",
    CustodyState.SHUT_DOWN: "○",
    CustodyState.IN_TRANSIT: "→",
    CustodyState.RACKED: "▣",
    CustodyState.POWERED: "◐",
    CustodyState.VERIFIED: "✔",
}


def wall_clock() -> datetime:
    """Now, timezone-aware (runbook times are)."""
    return datetime.now(UTC)


class MoveStatus:
    """Custody counts, the current phase and the clock against plan, read from files."""

    def __init__(
        self,
        *,
        board: CustodyBoard | ServiceCustody | None = None,
        runbook: Runbook | None = None,
        progress_path: Path | None = None,
        now: Callable[[], datetime] = wall_clock,
    ) -> None:
        """``progress_path`` None: the runbook progress in the data directory."""
        self._board = board
        self.runbook = runbook
        self.progress_path = progress_path
        self.now = now
        self.progress: RunbookProgress | None = None
        self._progress_mtime: int | None = None
        # The version of the board file last read (good or bad): a replace changes the
        # inode even within one mtime tick, so no change is missed.
        self._board_stamp: FileStamp | None = (
            board.stamp if isinstance(board, CustodyBoard) else None
        )
        self._board_version = -1  # a service's board: the version last drawn
        self.board_error: str | None = None  # why the file on disk is not the board shown
        self.board_good_at: datetime | None = None  # when the board shown was last read good
        self.live_phase: str | None = None  # a rehearsal's phase, when one is playing
        if board is not None:
            self.board_good_at = now()
        if runbook is not None:
            self._load_progress()

    @property
    def active(self) -> bool:
        """Whether there is anything to show (a board, a runbook or a live phase)."""
        return self._board is not None or self.runbook is not None or self.live_phase is not None

    @property
    def has_board(self) -> bool:
        """Whether a custody board is being read."""
        return self._board is not None

    # -- reading ------------------------------------------------------------------

    def reload(self) -> bool:
        """Read the board and the progress again if their files changed; True if any did."""
        changed = False
        board = self._board
        if isinstance(board, ServiceCustody):  # the service's events keep it current
            changed = board.version != self._board_version
            self._board_version = board.version
        elif board is not None:
            stamp = file_stamp(board.path)
            if stamp is not None and stamp != self._board_stamp:
                changed = self._reload_board(board, stamp)
        if self.runbook is not None:
            changed = self._load_progress() or changed
        return changed

    def _reload_board(self, board: CustodyBoard, stamp: FileStamp) -> bool:
        # Remember the stamp even when the file is bad: it is read again once it
        # changes, not every second (and not logged every second).
        self._board_stamp = stamp
        try:
            board.reload()
        except CustodyFileError as exc:
            first = exc.problems[0] if exc.problems else str(exc)
            more = len(exc.problems) - 1
            error = first + (f" (+{more} more)" if more > 0 else "")
            changed = error != self.board_error
            self.board_error = error
            return changed
        self.board_error = None
        self.board_good_at = self.now()
        self._board_stamp = board.stamp or stamp
        return True

    def noted_own_change(self) -> None:
        """The control room changed the board itself: its file is already current."""
        if isinstance(self._board, CustodyBoard):
            self._board_stamp = self._board.stamp
            self.board_error = None
            self.board_good_at = self.now()

    def _load_progress(self) -> bool:
        path = self.progress_path or default_progress_path()
        stamp = _mtime(path)
        if stamp == self._progress_mtime and self.progress is not None:
            return False
        try:
            self.progress = RunbookProgress(path)
        except (OSError, ValueError):  # unreadable for now: keep the last, try again later
            return False
        self._progress_mtime = stamp
        return True

    def state(self, name: str) -> CustodyState | None:
        """A server's custody state (None without a board or for an unknown server)."""
        if self._board is None:
            return None
        try:
            return self._board.state(name)
        except KeyError:
            return None

    def counts(self) -> dict[CustodyState, int]:
        """Servers per custody state (empty without a board)."""
        return self._board.counts() if self._board is not None else {}

    def affected_sites(self, inventory: Inventory) -> tuple[AffectedSite, ...]:
        """Hospitals and clinics cut off by custody alone (empty without a board)."""
        return self._board.affected_sites(inventory) if self._board is not None else ()

    def clock(self) -> Clock | None:
        """The runbook clock now (None without a runbook)."""
        if self.runbook is None:
            return None
        return self.runbook.clock(self.now(), self.progress)

    # -- text ---------------------------------------------------------------------

    def phase_text(self) -> str:
        """``Shutdown waves · behind by 12 min`` (or the rehearsal's live phase)."""
        clock = self.clock()
        parts: list[str] = []
        if self.live_phase is not None:
            parts.append(f"rehearsal: {self.live_phase}")
        if clock is not None:
            if clock.current is None:
                parts.append(f"all {clock.total} phases done · {clock.verdict}")
            else:
                parts.append(f"{clock.current.name} · {clock.verdict}")
        return " · ".join(parts)

    def counts_text(self) -> str:
        """``● 12 running · → 3 in-transit`` (zero counts left out)."""
        counts = self.counts()
        return " · ".join(
            f"{CUSTODY_GLYPH[s]} {counts[s]} {s}" for s in CUSTODY_ORDER if counts.get(s)
        )

    def board_problem_text(self) -> str:
        """``custody board unreadable, showing the last good read (20:42:05): WHY``.

        "" while the board file is good (or there is no board).
        """
        if self.board_error is None:
            return ""
        when = f" ({self.board_good_at:%H:%M:%S})" if self.board_good_at is not None else ""
        return f"custody board unreadable, showing the last good read{when}: {self.board_error}"

    def markup(self) -> str:
        """One line for the control room's summary bar ("" when there is nothing)."""
        parts = []
        phase = self.phase_text()
        if phase:
            clock = self.clock()
            colour = "$state-down" if clock is not None and clock.slip_min >= 1 else "$state-ok"
            parts.append(f"[b]PHASE[/b] [{colour}]{escape(phase)}[/]")
        if self._board is not None:
            parts.append(f"[b]CUSTODY[/b] {escape(self.counts_text())}")
            problem = self.board_problem_text()
            if problem:
                parts.append(f"[$state-down][b]⚠[/b] {escape(problem)}[/]")
        return "  │  ".join(parts)


def _mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


def service_health(
    health: Mapping[str, Health], custody: Callable[[str], CustodyState | None]
) -> dict[str, Health]:
    """Each server's health for PACS service: what the probes say, but DOWN while its
    custody says it cannot serve (shut down, in transit, racked)."""
    combined = dict(health)
    for name in combined:
        state = custody(name)
        if state is not None and not state.serving:
            combined[name] = Health.DOWN
    return combined
