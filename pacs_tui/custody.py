"""Custody of each server through the move: running → shut-down → in-transit → racked →
powered → verified.

A server moves forward one step at a time; anything else (a step back, a
skipped step) is a *correction*, which needs a reason. The ``CustodyBoard``
keeps every server's state in a JSON file next to the audit database (or at
a given path) and appends every change to the audit log with the operator
(the OS user). The control room and the wall read it; the file itself
(validation, the change lock, durable writes) is ``pacs_tui.custody_file``::

    board = CustodyBoard.open(inventory)
    board.subscribe(lambda changes: ...)
    board.advance(["db-001", "db-002"])            # one step forward each
    board.advance(names, to=CustodyState.RACKED)   # each must be one step short of it
    board.affected_sites(inventory)                # hospitals/clinics without PACS service
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from pacs_tui.batch.audit import AuditLog, data_dir, operator_name, utc_stamp
from pacs_tui.custody_file import (
    BOARD_VERSION,
    BoardEntry,
    CustodyError,
    CustodyFileError,
    FileStamp,
    board_lock,
    file_stamp,
    read_board,
    write_json_atomic,
)
from pacs_tui.inventory import Inventory
from pacs_tui.plugin_api import Health
from pacs_tui.rollup import AffectedSite, affected_sites

CUSTODY_FILE = "custody.json"


class CustodyState(StrEnum):
    """Where a server is in the move, in order."""

    RUNNING = "running"
    SHUT_DOWN = "shut-down"
    IN_TRANSIT = "in-transit"
    RACKED = "racked"
    POWERED = "powered"
    VERIFIED = "verified"

    @property
    def position(self) -> int:
        """Position in the move (0 = running)."""
        return CUSTODY_ORDER.index(self)

    @property
    def next(self) -> CustodyState | None:
        """The one state after this one (None after ``verified``)."""
        i = self.position + 1
        return CUSTODY_ORDER[i] if i < len(CUSTODY_ORDER) else None

    @property
    def serving(self) -> bool:
        """True when a server in this state gives PACS service."""
        return self in (CustodyState.RUNNING, CustodyState.POWERED, CustodyState.VERIFIED)


CUSTODY_ORDER: tuple[CustodyState, ...] = tuple(CustodyState)
_STATE_WORDS = tuple(str(s) for s in CUSTODY_ORDER)

__all__ = [
    "CUSTODY_ORDER",
    "CustodyBoard",
    "CustodyChange",
    "CustodyError",
    "CustodyFileError",
    "CustodyState",
    "parse_state",
    "write_json_atomic",
]


@dataclass(frozen=True)
class CustodyChange:
    """One server's custody change, as recorded in the audit log."""

    server: str
    before: CustodyState
    after: CustodyState
    at: str  # utc_stamp
    operator: str
    correction: bool = False
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        """The change as JSON-able data."""
        return {
            "server": self.server,
            "before": str(self.before),
            "after": str(self.after),
            "at": self.at,
            "operator": self.operator,
            "correction": self.correction,
            "reason": self.reason,
        }


Subscriber = Callable[[Sequence[CustodyChange]], None]


def default_custody_path() -> Path:
    """Where the custody board is kept: next to the audit database."""
    return data_dir() / CUSTODY_FILE


def parse_state(text: str) -> CustodyState:
    """A state from its word (``shut-down``, ``shut_down`` and ``SHUT-DOWN`` all work)."""
    word = text.strip().lower().replace("_", "-").replace(" ", "-")
    try:
        return CustodyState(word)
    except ValueError:
        known = ", ".join(CUSTODY_ORDER)
        raise CustodyError(f"unknown custody state {text!r} (known: {known})") from None


def custody_affected_sites(
    states: Mapping[str, CustodyState], inventory: Inventory
) -> tuple[AffectedSite, ...]:
    """Hospitals and clinics cut off by custody alone (a server not ``serving`` is down)."""
    health = {
        name: Health.OK if states.get(name, CustodyState.RUNNING).serving else Health.DOWN
        for name in inventory.names()
    }
    return affected_sites(inventory, health)


class CustodyReading:
    """The read side of a custody board: every server's state and since when.

    Shared by ``CustodyBoard`` (a file this process may change) and a screen's
    copy of a service's board (``pacs_tui.remote.custody.ServiceCustody``).
    """

    _states: dict[str, CustodyState]
    _since: dict[str, str]

    def state(self, name: str) -> CustodyState:
        """The custody state of ``name``; KeyError names an unknown server."""
        try:
            return self._states[name]
        except KeyError:
            raise KeyError(f"no server named {name!r} on the custody board") from None

    def since(self, name: str) -> str:
        """When ``name`` entered its state (a utc_stamp; "" when it never changed)."""
        return self._since.get(name, "")

    def states(self) -> dict[str, CustodyState]:
        """Every server's state, in board order."""
        return dict(self._states)

    def counts(self) -> dict[CustodyState, int]:
        """Servers per state, every state listed in move order."""
        tally = {state: 0 for state in CUSTODY_ORDER}
        for state in self._states.values():
            tally[state] += 1
        return tally

    def in_state(self, state: CustodyState) -> list[str]:
        """Servers currently in ``state``."""
        return [n for n, s in self._states.items() if s is state]

    def affected_sites(self, inventory: Inventory) -> tuple[AffectedSite, ...]:
        """Hospitals and clinics with no (or degraded) PACS service given custody.

        A server serves when it is running, powered or verified; one that is
        shut down, in transit or racked cuts off every server that depends on
        it (the inventory's ``depends_on``).
        """
        return custody_affected_sites(self._states, inventory)


class CustodyBoard(CustodyReading):
    """Every server's custody state; changes are validated, locked, persisted and audited."""

    def __init__(
        self,
        names: Iterable[str],
        *,
        path: Path | None = None,
        audit: AuditLog | None = None,
        operator: str | None = None,
    ) -> None:
        """A board for ``names`` (all ``running``), loading ``path`` when it exists.

        ``audit`` is the log to append to; without one, the default audit log
        is opened on the first change and closed by ``close()``. A board file
        that cannot be used raises ``CustodyFileError`` (file, server, field,
        reason).
        """
        self.path = path or default_custody_path()
        self.operator = operator or (audit.operator if audit is not None else operator_name())
        self._audit = audit
        self._owns_audit = audit is None
        self._names = tuple(dict.fromkeys(names))
        self._states: dict[str, CustodyState] = {n: CustodyState.RUNNING for n in self._names}
        self._since: dict[str, str] = {}
        self._foreign: dict[str, BoardEntry] = {}  # entries of servers this board lacks
        self._subscribers: list[Subscriber] = []
        self.stamp: FileStamp | None = None  # the file version last read or written
        self.unknown: list[str] = []  # names in the file that the inventory lacks
        self.reload()

    @classmethod
    def open(
        cls, inventory: Inventory, *, path: Path | None = None, audit: AuditLog | None = None
    ) -> CustodyBoard:
        """The board of every server of ``inventory``."""
        return cls(inventory.names(), path=path, audit=audit)

    # -- changing ---------------------------------------------------------------------

    def subscribe(self, subscriber: Subscriber) -> None:
        """Call ``subscriber(changes)`` after each saved change (not for empty ones)."""
        self._subscribers.append(subscriber)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        """Stop calling ``subscriber``."""
        if subscriber in self._subscribers:
            self._subscribers.remove(subscriber)

    def advance(
        self, names: Iterable[str], to: CustodyState | str | None = None, *, reason: str = ""
    ) -> list[CustodyChange]:
        """Move each server one step forward (to its next state, or to ``to``).

        With ``to``, every server must be exactly one step short of it; servers
        already in ``to`` are left alone (so a batch can be repeated). All or
        nothing: if one server cannot move, ``CustodyError`` names every such
        server and nothing changes. The check is made on the file as it is
        under the change lock, so a change made meanwhile by another process
        counts. ``CustodyFileError`` (a ``CustodyError``): the file is bad and
        is left alone.
        """
        target = parse_state(to) if isinstance(to, str) else to
        wanted = list(dict.fromkeys(names))

        def plan() -> list[tuple[str, CustodyState, CustodyState]]:
            moves: list[tuple[str, CustodyState, CustodyState]] = []
            refused: list[str] = []
            for name in wanted:
                current = self.state(name)
                after = current.next if target is None else target
                if target is not None and current is target:
                    continue
                if after is None:
                    refused.append(f"{name} is already {current} (the last state)")
                elif after.position != current.position + 1:
                    refused.append(
                        f"{name} is {current}: it can only go to {current.next or 'nowhere'}, "
                        f"not {after} (use a correction with a reason)"
                    )
                else:
                    moves.append((name, current, after))
            if refused:
                raise CustodyError("; ".join(refused))
            return moves

        return self._change(plan, correction=False, reason=reason)

    def correct(
        self, names: Iterable[str], to: CustodyState | str, *, reason: str
    ) -> list[CustodyChange]:
        """Set servers to ``to`` against the forward order (a step back or skipped steps).

        A correction needs a ``reason``; it is audited as a correction.
        """
        if not reason.strip():
            raise CustodyError("a custody correction needs a reason")
        target = parse_state(to) if isinstance(to, str) else to
        wanted = list(dict.fromkeys(names))

        def plan() -> list[tuple[str, CustodyState, CustodyState]]:
            return [(n, self.state(n), target) for n in wanted if self.state(n) is not target]

        return self._change(plan, correction=True, reason=reason.strip())

    def _change(
        self,
        plan: Callable[[], Sequence[tuple[str, CustodyState, CustodyState]]],
        *,
        correction: bool,
        reason: str,
    ) -> list[CustodyChange]:
        # Read-modify-write under the lock: the plan is made on the file as it is
        # now, so a change another process saved a moment ago is neither lost nor
        # judged against a stale state.
        with board_lock(self.path):
            self.reload()
            moves = plan()
            if not moves:
                return []
            stamp = utc_stamp()
            changes = [
                CustodyChange(name, before, after, stamp, self.operator, correction, reason)
                for name, before, after in moves
            ]
            states, since = dict(self._states), dict(self._since)
            for change in changes:
                self._states[change.server] = change.after
                self._since[change.server] = stamp
            try:
                self.save()
            except BaseException:
                self._states, self._since = states, since  # the file kept the old board
                raise
        # Recorded as whoever the board acts for (a service caller's token name).
        audit = self.audit.for_operator(self.operator)
        batch = f"custody-{secrets.token_hex(4)}"
        for change in changes:
            audit.record(
                batch,
                "custody-correction" if correction else "custody",
                verb="correct" if correction else "advance",
                server=change.server,
                call=f"{change.before} -> {change.after}",
                outcome=str(change.after),
                detail=reason,
            )
        for subscriber in list(self._subscribers):
            subscriber(changes)
        return changes

    # -- persistence ------------------------------------------------------------------

    @property
    def audit(self) -> AuditLog:
        """The audit log changes are appended to (opened on first use)."""
        if self._audit is None:
            self._audit = AuditLog()
        return self._audit

    def close(self) -> None:
        """Close the audit log if the board opened it."""
        if self._owns_audit and self._audit is not None:
            self._audit.close()
            self._audit = None

    def reload(self) -> None:
        """Read the file again (another process, e.g. the CLI, may have changed it).

        All or nothing: on ``CustodyFileError`` the board keeps what it had.
        A missing file changes nothing.
        """
        got = read_board(self.path, _STATE_WORDS)
        if got is None:
            return
        entries, stamp = got
        states = {n: CustodyState.RUNNING for n in self._names}
        since: dict[str, str] = {}
        foreign: dict[str, BoardEntry] = {}
        for name, entry in entries.items():
            if name in states:
                states[name] = CustodyState(entry.state)
                if entry.since:
                    since[name] = entry.since
            else:
                foreign[name] = entry
        self._states, self._since, self._foreign = states, since, foreign
        self.unknown = list(foreign)
        self.stamp = stamp

    def save(self) -> None:
        """Write the board atomically and durably (see ``write_json_atomic``).

        Entries of servers this board does not know (another inventory's) are
        written back unchanged. Callers that read first should hold
        ``board_lock`` (``advance`` and ``correct`` do).
        """
        servers: dict[str, dict[str, str]] = {
            name: {"state": str(state), "since": self._since.get(name, "")}
            for name, state in self._states.items()
        }
        for name, entry in self._foreign.items():
            servers.setdefault(name, {"state": entry.state, "since": entry.since})
        write_json_atomic(
            self.path, {"version": BOARD_VERSION, "updated": utc_stamp(), "servers": servers}
        )
        self.stamp = file_stamp(self.path)
