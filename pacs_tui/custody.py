"""Custody of each server through the move: running → shut-down → in-transit → racked →
powered → verified.

A server moves forward one step at a time; anything else (a step back, a
skipped step) is a *correction*, which needs a reason. The ``CustodyBoard``
keeps every server's state in a JSON file next to the audit database (or at
a given path) and appends every change to the audit log with the operator
(the OS user). The control room and the wall read it::

    board = CustodyBoard.open(inventory)
    board.subscribe(lambda changes: ...)
    board.advance(["db-001", "db-002"])            # one step forward each
    board.advance(names, to=CustodyState.RACKED)   # each must be one step short of it
    board.affected_sites(inventory)                # hospitals/clinics without PACS service
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from pacs_tui.batch.audit import AuditLog, data_dir, operator_name, utc_stamp
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


class CustodyError(ValueError):
    """A custody change that is not allowed; nothing was changed."""


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


class CustodyBoard:
    """Every server's custody state; changes are validated, persisted and audited."""

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
        is opened on the first change and closed by ``close()``.
        """
        self.path = path or default_custody_path()
        self.operator = operator or (audit.operator if audit is not None else operator_name())
        self._audit = audit
        self._owns_audit = audit is None
        self._states: dict[str, CustodyState] = {n: CustodyState.RUNNING for n in names}
        self._since: dict[str, str] = {}
        self._subscribers: list[Subscriber] = []
        self._loaded_mtime: int | None = None
        self.unknown: list[str] = []  # names in the file that the inventory lacks
        self.reload()

    @classmethod
    def open(
        cls, inventory: Inventory, *, path: Path | None = None, audit: AuditLog | None = None
    ) -> CustodyBoard:
        """The board of every server of ``inventory``."""
        return cls(inventory.names(), path=path, audit=audit)

    # -- reading ----------------------------------------------------------------------

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
        health = {
            name: Health.OK if self._states.get(name, CustodyState.RUNNING).serving else Health.DOWN
            for name in inventory.names()
        }
        return affected_sites(inventory, health)

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
        server and nothing changes.
        """
        target = parse_state(to) if isinstance(to, str) else to
        self._refresh()
        moves: list[tuple[str, CustodyState, CustodyState]] = []
        refused: list[str] = []
        for name in dict.fromkeys(names):
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
        return self._apply(moves, correction=False, reason=reason)

    def correct(
        self, names: Iterable[str], to: CustodyState | str, *, reason: str
    ) -> list[CustodyChange]:
        """Set servers to ``to`` against the forward order (a step back or skipped steps).

        A correction needs a ``reason``; it is audited as a correction.
        """
        if not reason.strip():
            raise CustodyError("a custody correction needs a reason")
        target = parse_state(to) if isinstance(to, str) else to
        self._refresh()
        moves = []
        for name in dict.fromkeys(names):
            current = self.state(name)
            if current is not target:
                moves.append((name, current, target))
        return self._apply(moves, correction=True, reason=reason.strip())

    def _apply(
        self,
        moves: Sequence[tuple[str, CustodyState, CustodyState]],
        *,
        correction: bool,
        reason: str,
    ) -> list[CustodyChange]:
        if not moves:
            return []
        stamp = utc_stamp()
        changes = [
            CustodyChange(name, before, after, stamp, self.operator, correction, reason)
            for name, before, after in moves
        ]
        for change in changes:
            self._states[change.server] = change.after
            self._since[change.server] = stamp
        self.save()
        audit = self.audit
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
        """Read the file again (another process, e.g. the CLI, may have changed it)."""
        if not self.path.exists():
            return
        raw = json.loads(self.path.read_text())
        servers: Mapping[str, Any] = raw.get("servers", {})
        self.unknown = [n for n in servers if n not in self._states]
        for name, entry in servers.items():
            if name in self._states:
                self._states[name] = parse_state(str(entry.get("state", "running")))
                self._since[name] = str(entry.get("since", ""))
        self._loaded_mtime = self.path.stat().st_mtime_ns

    def _refresh(self) -> None:
        if self.path.exists() and self.path.stat().st_mtime_ns != self._loaded_mtime:
            self.reload()

    def save(self) -> None:
        """Write the board atomically."""
        data = {
            "version": 1,
            "updated": utc_stamp(),
            "servers": {
                name: {"state": str(state), "since": self._since.get(name, "")}
                for name, state in self._states.items()
            },
        }
        write_json_atomic(self.path, data)
        self._loaded_mtime = self.path.stat().st_mtime_ns


def write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` to ``path`` via a temporary file, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)
