"""Batches whose process died mid-run, named from the audit log.

A batch writes ``batch-start`` before its first step and ``batch-end`` after
its last (an abort, a halt and a SIGTERM all end with ``batch-end``). A
start with no end means the batch is either still running or its process
was killed (``kill -9``, a crash, a power cut of the laptop). Every audit row
names its writer (host, pid, and a token of the pid's boot id and start
time), so the two can be told apart:

- ``running``: the writer of ``batch-start`` is alive on this host (same pid,
  same start time: a reused pid does not count);
- ``gone``: it is on this host and no longer alive (or a zombie);
- ``unknown``: another host wrote it, or the row is older than the process
  columns. Such a batch is reported as interrupted too: saying nothing
  about a batch that may have left servers half done would be optimistic.

An interrupted batch stays named (by ``pacs-tui audit``, before every
``pacs-tui power`` plan, and to any front-end through ``interrupted_batches``)
until one of:

- the operator acknowledges it (``acknowledge``; ``pacs-tui audit --ack ID``),
  which appends an ``ack`` row (the log is append-only, so nothing is marked);
- every server of its plan was in a later batch that ended (that batch's own
  result says where each server is now). Servers covered so far drop out of
  ``not_reached``; the batch stays named while any server is uncovered.

What the audit can tell about each server: ``reached`` (its ``server`` row
says reached or skipped), else not confirmed at target (``not_reached``:
failed, in flight, or not started when the process died). ``units_stopped``
lists, for those, the systemd units an SSH ``systemctl stop`` step stopped
(or may have: sent, no answer): on a server still On, its PACS is down.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from pacs_tui.batch.audit import (
    AuditEvent,
    AuditLog,
    default_audit_path,
    host_name,
    process_token,
)
from pacs_tui.batch.units import MAY_HAVE_STOPPED, stopped_units

ACK_KIND = "ack"
_REACHED = ("reached", "skipped")
_WAVES_MARK = "; waves "


class Liveness(StrEnum):
    """Whether the process that started a batch still runs."""

    RUNNING = "running"
    GONE = "gone"
    UNKNOWN = "unknown"  # another host, or not recorded


@dataclass(frozen=True)
class InterruptedBatch:
    """A batch that started and never ended, and whose process is not known to run.

    ``started``/``last_event`` are ``utc_stamp`` texts (UTC); ``last_event`` is
    the last row it wrote, about when it died. Server lists are in plan order.
    """

    batch: str
    verb: str
    operator: str
    started: str
    last_event: str
    host: str
    pid: int | None
    process: Liveness
    servers: tuple[str, ...]  # every server of its plan
    reached: tuple[str, ...]
    not_reached: tuple[str, ...]  # not confirmed at target, not covered by a later batch
    units_stopped: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def line(self) -> str:
        """One line for people: what, when, who, and which servers are not at target."""
        if self.process is Liveness.GONE:
            where = f"its process {self.pid} on {self.host} is gone"
        elif self.pid is not None:
            where = f"process {self.pid} on {self.host or 'an unknown host'}: cannot check it"
        else:
            where = "no process recorded: cannot check it"
        parts = [
            f"INTERRUPTED batch {self.batch}: {self.verb or '?'} started {self.started} "
            f"by {self.operator}, no end recorded ({where}; last row {self.last_event})",
            f"{len(self.reached)}/{len(self.servers)} reached target"
            + (f" ({', '.join(self.reached)})" if self.reached else ""),
        ]
        if self.not_reached:
            parts.append(
                f"{len(self.not_reached)} not confirmed at target: {', '.join(self.not_reached)}"
            )
        if self.units_stopped:
            stopped = ", ".join(f"{n} ({' '.join(u)})" for n, u in self.units_stopped.items())
            parts.append(f"PACS units stopped and not started again: {stopped}")
        parts.append(f"acknowledge with: pacs-tui audit --ack {self.batch}")
        return "; ".join(parts)

    @classmethod
    def from_json(cls, data: Any) -> InterruptedBatch:
        """The batch of ``to_json`` (``ValueError`` when ``data`` is not that shape)."""
        try:
            pid = data.get("pid")
            return cls(
                batch=str(data["batch"]), verb=str(data.get("verb", "")),
                operator=str(data.get("operator", "")), started=str(data.get("started", "")),
                last_event=str(data.get("last_event", "")), host=str(data.get("host", "")),
                pid=None if pid is None else int(pid),
                process=Liveness(data.get("process", "unknown")),
                servers=tuple(str(n) for n in data.get("servers", ())),
                reached=tuple(str(n) for n in data.get("reached", ())),
                not_reached=tuple(str(n) for n in data.get("not_reached", ())),
                units_stopped={
                    str(n): tuple(str(u) for u in units)
                    for n, units in (data.get("units_stopped") or {}).items()
                },
            )  # fmt: skip
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"bad interrupted batch: {exc}") from None

    def to_json(self) -> dict[str, Any]:
        """JSON-able data, ``kind`` ``interrupted``."""
        return {
            "kind": "interrupted",
            "batch": self.batch,
            "verb": self.verb,
            "operator": self.operator,
            "started": self.started,
            "last_event": self.last_event,
            "host": self.host,
            "pid": self.pid,
            "process": str(self.process),
            "servers": list(self.servers),
            "reached": list(self.reached),
            "not_reached": list(self.not_reached),
            "units_stopped": {n: list(u) for n, u in self.units_stopped.items()},
        }


def liveness(host: str, pid: int | None, proc: str) -> Liveness:
    """Whether process ``pid`` that wrote a row on ``host`` (with token ``proc``) still runs."""
    if pid is None or not host:
        return Liveness.UNKNOWN
    if host != host_name():
        return Liveness.UNKNOWN
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return Liveness.GONE
    except PermissionError:
        pass  # exists, another user's
    if _zombie(pid):
        return Liveness.GONE
    if proc:
        now = process_token(pid)
        if now and now != proc:
            return Liveness.GONE  # the pid was reused by another process
    return Liveness.RUNNING


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2 :].startswith("Z")


def find_interrupted(events: Iterable[AuditEvent]) -> list[InterruptedBatch]:
    """The interrupted batches named by ``events`` (the whole log, in id order)."""
    rows = list(events)
    starts: dict[str, AuditEvent] = {}
    ended: set[str] = set()
    acked: set[str] = set()
    plans: dict[str, tuple[str, ...]] = {}
    by_batch: dict[str, list[AuditEvent]] = {}
    for event in rows:
        by_batch.setdefault(event.batch, []).append(event)
        if event.kind == "batch-start":
            starts.setdefault(event.batch, event)
        elif event.kind == "batch-end":
            ended.add(event.batch)
        elif event.kind == ACK_KIND:
            acked.add(event.batch)
        elif event.kind == "plan" and event.batch not in plans:
            plans[event.batch] = _planned_servers(event.detail)
    found = []
    for batch, start in starts.items():
        if batch in ended or batch in acked:
            continue
        process = liveness(start.host, start.pid, start.proc)
        if process is Liveness.RUNNING:
            continue
        own = by_batch[batch]
        servers = plans.get(batch) or _servers_seen(own)
        # Servers a later, finished batch acted on: its own result reported them.
        covered = {
            name
            for other, other_start in starts.items()
            if other != batch and other in ended and other_start.id > start.id
            for name in plans.get(other, ())
        }
        if servers and set(servers) <= covered:
            continue
        found.append(_describe(start, own, servers, covered, process))
    return found


def _describe(
    start: AuditEvent,
    own: list[AuditEvent],
    servers: tuple[str, ...],
    covered: set[str],
    process: Liveness,
) -> InterruptedBatch:
    final: dict[str, str] = {}
    stops: dict[str, tuple[str, ...]] = {}
    for event in own:
        if event.kind == "server" and event.server:
            final[event.server] = event.outcome
        elif event.kind == "step" and event.outcome in MAY_HAVE_STOPPED:
            units = stopped_units(event.call)
            if units and event.server:
                stops[event.server] = units
    reached = tuple(n for n in servers if final.get(n) in _REACHED)
    not_reached = tuple(n for n in servers if n not in reached and n not in covered)
    return InterruptedBatch(
        batch=start.batch,
        verb=start.verb,
        operator=start.operator,
        started=start.ts,
        last_event=own[-1].ts,
        host=start.host,
        pid=start.pid,
        process=process,
        servers=servers,
        reached=reached,
        not_reached=not_reached,
        units_stopped={n: stops[n] for n in not_reached if n in stops},
    )


def _planned_servers(detail: str) -> tuple[str, ...]:
    """Server names from a ``plan`` row's ``...; waves [["a"], ["b", "c"]]``."""
    at = detail.rfind(_WAVES_MARK)
    if at < 0:
        return ()
    try:
        waves = json.loads(detail[at + len(_WAVES_MARK) :])
    except ValueError:
        return ()
    if not isinstance(waves, list):
        return ()
    return tuple(
        name for wave in waves if isinstance(wave, list) for name in wave if isinstance(name, str)
    )


def _servers_seen(events: list[AuditEvent]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for event in events:
        if event.server:
            seen[event.server] = None
    return tuple(seen)


def interrupted_in(log: AuditLog) -> list[InterruptedBatch]:
    """``find_interrupted`` over the rows that matter, without scanning the whole log.

    Only batches with a start and no end or ack can be interrupted; besides
    their own rows, only later batches' plans, starts and ends are needed (to
    know which servers a later, finished batch covered).
    """
    open_ids = [
        e.batch
        for e in log.select(
            "kind = 'batch-start' AND batch NOT IN "
            "(SELECT batch FROM events WHERE kind IN ('batch-end', ?))",
            (ACK_KIND,),
        )
    ]
    if not open_ids:
        return []
    marks = ", ".join("?" for _ in open_ids)
    first = min(
        e.id for e in log.select(f"kind = 'batch-start' AND batch IN ({marks})", tuple(open_ids))
    )
    rows = log.select(
        f"batch IN ({marks}) OR (id > ? AND kind IN ('plan', 'batch-start', 'batch-end'))",
        (*open_ids, first),
    )
    return find_interrupted(rows)


def interrupted_batches(audit_path: Path | None = None) -> list[InterruptedBatch]:
    """The interrupted batches in the audit log at ``audit_path`` (default: the user's).

    An absent log has none (and is not created). Raises ``sqlite3.Error`` for a
    file that is no SQLite database.
    """
    path = audit_path or default_audit_path()
    if not path.exists():
        return []
    with AuditLog(path) as log:
        return interrupted_in(log)


class NotInterrupted(ValueError):
    """``acknowledge`` was given a batch that is not (or no longer) interrupted."""


def acknowledge(log: AuditLog, batch: str) -> InterruptedBatch:
    """Record that the operator has seen interrupted ``batch``; return what was acknowledged.

    Raises ``NotInterrupted`` naming why: no such batch, still running, ended,
    already acknowledged.
    """
    for item in interrupted_in(log):
        if item.batch == batch:
            log.record(
                batch,
                ACK_KIND,
                verb=item.verb,
                outcome="acknowledged",
                detail=(
                    f"interrupted batch acknowledged; not confirmed at target: "
                    f"{', '.join(item.not_reached) or 'none'}"
                ),
            )
            return item
    own = log.events(batch=batch)
    if not own:
        raise NotInterrupted(f"no batch {batch!r} in the audit log {log.path}")
    kinds = {e.kind for e in own}
    if ACK_KIND in kinds:
        raise NotInterrupted(f"batch {batch} was already acknowledged")
    if "batch-end" in kinds:
        raise NotInterrupted(f"batch {batch} ended normally; nothing to acknowledge")
    start = next((e for e in own if e.kind == "batch-start"), None)
    if start is None:
        raise NotInterrupted(f"batch {batch} never started (only planned)")
    if liveness(start.host, start.pid, start.proc) is Liveness.RUNNING:
        raise NotInterrupted(f"batch {batch} is still running (process {start.pid})")
    raise NotInterrupted(f"batch {batch}: every server was in a later batch that ended")
