"""The move-weekend runbook: phases with owners and planned times, and the clock against plan.

A runbook is a YAML file::

    version: 1
    name: dc-main move, May 2024
    start: 2024-05-17T20:00:00+02:00     # offsets below count from here
    phases:
      - name: Pre-checks
        kind: pre-checks
        owner: Anna (lead)
        planned_start: +00:00             # or an ISO time: 2024-05-17T20:00+02:00
        planned_end: +00:30
      - name: Shutdown waves
        kind: shutdown
        owner: Ben
        servers: "site=dc-main"           # optional selector: the servers this phase moves
        planned_start: +01:30
        planned_end: +03:00
      - name: BMC firmware on the databases
        kind: firmware
        owner: Ben
        servers: "role=database"
        firmware: {bmc_firmware: "2.15.0", bios_version: "2.3.1"}   # the versions after it
        planned_start: +03:00
        planned_end: +03:30

``load_runbook`` validates it and raises ``RunbookError`` listing every problem
as ``FILE:LINE: KEY: message``. What actually happened is a ``RunbookProgress``
(phase started / done times, persisted next to the audit log); ``Runbook.clock``
compares it with the plan and says which phase is current and how many minutes
the team is ahead or behind.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from pacs_tui.batch.audit import AuditLog, data_dir, utc_stamp
from pacs_tui.custody import write_json_atomic
from pacs_tui.input_file import RUNBOOK, InputFileError, read_text
from pacs_tui.inventory.problems import Problem
from pacs_tui.inventory.yaml_source import LocatedList, LocatedMap, _LocatedLoader, read_yaml
from pacs_tui.selector import SelectorError, compile_selector

PHASE_KINDS = (
    "pre-checks",
    "replication",
    "baseline",
    "shutdown",
    "transit",
    "rack",
    "power-up",
    "compare",
    "firmware",
)
# What a firmware phase may plan, by the baseline's hardware key (pacs_tui.baseline.model).
FIRMWARE_KEYS = ("bios_version", "bmc_firmware")
PROGRESS_FILE = "runbook-progress.json"
_TOP_KEYS = ("version", "name", "start", "phases")
_PHASE_KEYS = (
    "name",
    "kind",
    "owner",
    "planned_start",
    "planned_end",
    "servers",
    "notes",
    "firmware",
)
_OFFSET = re.compile(r"^\+(\d{1,3}):([0-5]\d)$")


class _RunbookLoader(_LocatedLoader):
    """The inventory's line-keeping loader, minus YAML 1.1's base-60 numbers.

    ``+10:30`` would otherwise load as the integer 630; values starting with
    ``+`` stay strings here, so an offset reads as written.
    """


_RunbookLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if first != "+"]
    for first, resolvers in _LocatedLoader.yaml_implicit_resolvers.items()
}


class RunbookError(Exception):
    """The runbook cannot be used; ``problems`` lists every mistake (file, line, key)."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass(frozen=True)
class Phase:
    """One phase of the weekend: who owns it and when it should run."""

    name: str
    owner: str
    planned_start: datetime  # timezone-aware
    planned_end: datetime
    kind: str | None = None  # one of PHASE_KINDS
    servers: str | None = None  # selector expression
    notes: str = ""
    line: int = 0
    # Planned firmware: FIRMWARE_KEYS -> the version the phase's servers run after it.
    firmware: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def planned_minutes(self) -> float:
        """Planned duration in minutes."""
        return (self.planned_end - self.planned_start).total_seconds() / 60

    def to_json(self) -> dict[str, Any]:
        """The phase as JSON-able data."""
        data: dict[str, Any] = {
            "name": self.name,
            "owner": self.owner,
            "planned_start": self.planned_start.isoformat(),
            "planned_end": self.planned_end.isoformat(),
        }
        for key in ("kind", "servers", "notes", "firmware"):
            if getattr(self, key):
                data[key] = getattr(self, key)
        return data


@dataclass(frozen=True)
class PhaseRecord:
    """When a phase actually started and finished (None: not yet)."""

    started: datetime | None = None
    finished: datetime | None = None


@dataclass(frozen=True)
class Clock:
    """Where the weekend stands at ``now``.

    ``slip_min`` is positive when behind plan and negative when ahead.
    ``current`` is the first phase not done (None when all are done);
    ``planned`` is the phase the plan says should be running now.
    """

    now: datetime
    current: Phase | None
    current_started: datetime | None
    planned: Phase | None
    slip_min: float
    done: int
    total: int

    @property
    def verdict(self) -> str:
        """``on plan``, ``behind by 12 min`` or ``ahead by 5 min``."""
        minutes = round(abs(self.slip_min))
        if minutes == 0:
            return "on plan"
        return f"{'behind' if self.slip_min > 0 else 'ahead'} by {minutes} min"

    def to_json(self) -> dict[str, Any]:
        """The clock as JSON-able data."""
        return {
            "now": self.now.isoformat(),
            "current": self.current.name if self.current else None,
            "current_started": self.current_started.isoformat() if self.current_started else None,
            "planned": self.planned.name if self.planned else None,
            "slip_min": round(self.slip_min, 1),
            "verdict": self.verdict,
            "done": self.done,
            "total": self.total,
        }


@dataclass(frozen=True)
class Runbook:
    """A validated runbook: its phases in planned order."""

    path: Path
    name: str
    start: datetime | None
    phases: tuple[Phase, ...]

    def phase(self, name: str) -> Phase:
        """The phase called ``name`` (case-insensitive); KeyError names it."""
        for phase in self.phases:
            if phase.name.casefold() == name.casefold():
                return phase
        raise KeyError(f"no phase named {name!r} in {self.path}")

    def planned_phase(self, now: datetime) -> Phase | None:
        """The phase the plan has running at ``now`` (the latest one started by then)."""
        running = [p for p in self.phases if p.planned_start <= now < p.planned_end]
        return running[-1] if running else None

    def clock(self, now: datetime, progress: RunbookProgress | None = None) -> Clock:
        """Current phase and minutes ahead/behind plan at ``now``.

        The slip is the largest of: how late the last finished phase ended,
        how late the current phase is starting (not started after its
        planned start), and how far it overruns its planned end. When the
        last phase finished early and nothing is late, the slip is negative.
        """
        now = _aware(now)
        records = progress.records if progress is not None else {}
        done = [p for p in self.phases if records.get(p.name, PhaseRecord()).finished]
        current = next(
            (p for p in self.phases if not records.get(p.name, PhaseRecord()).finished), None
        )
        slips: list[float] = []
        if done:
            last = max(done, key=lambda p: records[p.name].finished or now)
            finished = records[last.name].finished
            assert finished is not None
            slips.append(_minutes(finished - last.planned_end))
        started = records.get(current.name, PhaseRecord()).started if current else None
        if current is not None:
            if started is None and now > current.planned_start:
                slips.append(_minutes(now - current.planned_start))
            if now > current.planned_end:
                slips.append(_minutes(now - current.planned_end))
        return Clock(
            now=now,
            current=current,
            current_started=started,
            planned=self.planned_phase(now),
            slip_min=max(slips) if slips else 0.0,
            done=len(done),
            total=len(self.phases),
        )

    def to_json(self) -> dict[str, Any]:
        """The runbook as JSON-able data."""
        return {
            "path": str(self.path),
            "name": self.name,
            "start": self.start.isoformat() if self.start else None,
            "phases": [p.to_json() for p in self.phases],
        }


def _minutes(delta: timedelta) -> float:
    return delta.total_seconds() / 60


def _aware(moment: datetime) -> datetime:
    # A time without zone is local time, as an operator writes it.
    return moment if moment.tzinfo is not None else moment.astimezone()


# -- loading and validation ---------------------------------------------------------------


def load_runbook(path: Path | str) -> Runbook:
    """Load and validate the runbook at ``path``; raise ``RunbookError`` listing every problem."""
    path = Path(path)
    try:
        text = read_text(path, RUNBOOK)  # a regular file of at most 4 MiB, UTF-8
    except InputFileError as exc:
        raise RunbookError([Problem.of_file(exc)]) from None
    return parse_runbook(text, path)


def parse_runbook(text: str, path: Path | str = Path("<runbook>")) -> Runbook:
    """Validate runbook ``text`` as if read from ``path``."""
    path = Path(path)
    data, problems = read_yaml(text, path, _RunbookLoader)
    if data is None and problems:
        raise RunbookError(problems)
    checker = _Checker(path, problems)
    runbook = checker.runbook(data)
    if checker.problems or runbook is None:
        raise RunbookError(checker.problems)
    return runbook


@dataclass
class _Checker:
    path: Path
    problems: list[Problem] = field(default_factory=list)

    def add(self, line: int, key: str, message: str) -> None:
        self.problems.append(Problem(self.path, line, key, message))

    def runbook(self, data: Any) -> Runbook | None:
        if not isinstance(data, LocatedMap):
            self.add(getattr(data, "line", 1), "", "expected a mapping with a 'phases' list")
            return None
        for key in data:
            if key not in _TOP_KEYS:
                self.add(
                    data.line_of(key), str(key), f"unknown key (known: {', '.join(_TOP_KEYS)})"
                )
        version = data.get("version", 1)
        if version != 1:
            self.add(data.line_of("version"), "version", f"unsupported version {version!r} (1)")
        name = data.get("name", "")
        if not isinstance(name, str):
            self.add(data.line_of("name"), "name", "expected text")
            name = ""
        start = None
        if "start" in data:
            start = self.moment(data["start"], data.line_of("start"), "start", None)
        phases_data = data.get("phases")
        if not isinstance(phases_data, LocatedList) or not phases_data:
            self.add(data.line_of("phases"), "phases", "expected a non-empty list of phases")
            return None
        phases: list[Phase] = []
        seen: dict[str, int] = {}
        for index, item in enumerate(phases_data):
            phase = self.phase(item, phases_data.line_of(index), f"phases[{index}]", start)
            if phase is None:
                continue
            folded = phase.name.casefold()
            if folded in seen:
                self.add(
                    phase.line,
                    f"phases[{index}].name",
                    f"duplicate phase {phase.name!r} (first on line {seen[folded]})",
                )
            seen.setdefault(folded, phase.line)
            if phases and phase.planned_start < phases[-1].planned_start:
                self.add(
                    phase.line,
                    f"phases[{index}].planned_start",
                    f"starts before the previous phase {phases[-1].name!r}: "
                    "list phases in planned order",
                )
            phases.append(phase)
        return Runbook(self.path, name, start, tuple(phases))

    def phase(self, item: Any, line: int, where: str, start: datetime | None) -> Phase | None:
        if not isinstance(item, LocatedMap):
            self.add(line, where, "expected a mapping (name, owner, planned_start, planned_end)")
            return None
        ok = True
        for key in item:
            if key not in _PHASE_KEYS:
                self.add(
                    item.line_of(key),
                    f"{where}.{key}",
                    f"unknown key (known: {', '.join(_PHASE_KEYS)})",
                )
        texts: dict[str, str] = {}
        for key in ("name", "owner"):
            value = item.get(key)
            if not isinstance(value, str) or not value.strip():
                self.add(item.line_of(key), f"{where}.{key}", "required text is missing")
                ok = False
            else:
                texts[key] = value.strip()
        times: dict[str, datetime] = {}
        for key in ("planned_start", "planned_end"):
            if key not in item:
                self.add(item.line, f"{where}.{key}", "required (an ISO time or +HH:MM)")
                ok = False
                continue
            moment = self.moment(item[key], item.line_of(key), f"{where}.{key}", start)
            if moment is None:
                ok = False
            else:
                times[key] = moment
        if len(times) == 2 and times["planned_end"] <= times["planned_start"]:
            self.add(
                item.line_of("planned_end"),
                f"{where}.planned_end",
                "must be after planned_start",
            )
            ok = False
        kind = item.get("kind")
        if kind is not None and kind not in PHASE_KINDS:
            self.add(
                item.line_of("kind"),
                f"{where}.kind",
                f"unknown kind {kind!r} (known: {', '.join(PHASE_KINDS)})",
            )
            ok = False
        servers = item.get("servers")
        if servers is not None:
            if not isinstance(servers, str) or not servers.strip():
                self.add(item.line_of("servers"), f"{where}.servers", "expected a selector")
                ok = False
            else:
                try:
                    compile_selector(servers)
                except SelectorError as exc:
                    self.add(item.line_of("servers"), f"{where}.servers", f"selector: {exc}")
                    ok = False
        firmware = self.firmware(item, where)
        if firmware is None:
            ok = False
        notes = item.get("notes", "")
        if not isinstance(notes, str):
            self.add(item.line_of("notes"), f"{where}.notes", "expected text")
            ok = False
        if not ok:
            return None
        return Phase(
            name=texts["name"],
            owner=texts["owner"],
            planned_start=times["planned_start"],
            planned_end=times["planned_end"],
            kind=kind,
            servers=servers.strip() if isinstance(servers, str) else None,
            notes=notes if isinstance(notes, str) else "",
            line=line,
            firmware=firmware or {},
        )

    def firmware(self, item: LocatedMap, where: str) -> dict[str, str] | None:
        """A phase's ``firmware:`` plan ({} when absent), or None after reporting it."""
        raw = item.get("firmware")
        if raw is None:
            return {}
        here = f"{where}.firmware"
        if not isinstance(raw, LocatedMap) or not raw:
            self.add(item.line_of("firmware"), here, f"expected a mapping of {FIRMWARE_KEYS}")
            return None
        plan: dict[str, str] = {}
        for key, value in raw.items():
            if key not in FIRMWARE_KEYS:
                self.add(
                    raw.line_of(key),
                    f"{here}.{key}",
                    f"unknown key (known: {', '.join(FIRMWARE_KEYS)})",
                )
            elif not isinstance(value, str) or not value.strip():
                # YAML reads 2.15 as a number: a version is text.
                self.add(raw.line_of(key), f"{here}.{key}", "expected a version as text (quote it)")
            else:
                plan[str(key)] = value.strip()
        if len(plan) != len(raw):
            return None
        if item.get("kind") != "firmware":
            self.add(
                item.line_of("firmware"), here, "only a phase of kind 'firmware' plans firmware"
            )
            return None
        return plan

    def moment(self, value: Any, line: int, key: str, start: datetime | None) -> datetime | None:
        """An ISO time (a YAML timestamp or text) or a ``+HH:MM`` offset from ``start``."""
        if isinstance(value, datetime):
            return _aware(value)
        if isinstance(value, date):
            self.add(line, key, "a date alone is not a time: add the time, e.g. 2024-05-17T20:00")
            return None
        if not isinstance(value, str):
            self.add(line, key, f"expected an ISO time or +HH:MM, got {value!r}")
            return None
        text = value.strip()
        offset = _OFFSET.match(text)
        if offset:
            if start is None:
                self.add(line, key, f"offset {text!r} needs a 'start:' time at the top")
                return None
            return start + timedelta(hours=int(offset.group(1)), minutes=int(offset.group(2)))
        try:
            return _aware(datetime.fromisoformat(text.replace("Z", "+00:00")))
        except ValueError:
            self.add(line, key, f"{text!r} is neither an ISO time nor an offset like +01:30")
            return None


# -- progress -----------------------------------------------------------------------------


def default_progress_path() -> Path:
    """Where phase progress is kept: next to the audit database."""
    return data_dir() / PROGRESS_FILE


class RunbookProgress:
    """When each phase actually started and finished; persisted as JSON, changes audited."""

    def __init__(self, path: Path | None = None, *, audit: AuditLog | None = None) -> None:
        """Load ``path`` (default: the data directory) if it exists."""
        self.path = path or default_progress_path()
        self._audit = audit
        self.records: dict[str, PhaseRecord] = {}
        if self.path.exists():
            raw = json.loads(self.path.read_text())
            for name, entry in raw.get("phases", {}).items():
                self.records[name] = PhaseRecord(
                    _parse_time(entry.get("started")), _parse_time(entry.get("finished"))
                )

    def start(self, phase: Phase, now: datetime | None = None) -> None:
        """Record that ``phase`` started (now)."""
        moment = _aware(now or datetime.now(UTC))
        before = self.records.get(phase.name, PhaseRecord())
        self.records[phase.name] = PhaseRecord(moment, before.finished)
        self._changed(phase, "started", moment)

    def finish(self, phase: Phase, now: datetime | None = None) -> None:
        """Record that ``phase`` is done (now); a phase never started starts now too."""
        moment = _aware(now or datetime.now(UTC))
        before = self.records.get(phase.name, PhaseRecord())
        self.records[phase.name] = PhaseRecord(before.started or moment, moment)
        self._changed(phase, "done", moment)

    def _changed(self, phase: Phase, what: str, moment: datetime) -> None:
        self.save()
        if self._audit is not None:
            self._audit.record(
                "runbook",
                "phase",
                verb=what,
                outcome=what,
                detail=f"{phase.name} at {utc_stamp(moment)}",
            )

    def save(self) -> None:
        """Write the file atomically."""
        data = {
            "version": 1,
            "phases": {
                name: {
                    "started": r.started.isoformat() if r.started else None,
                    "finished": r.finished.isoformat() if r.finished else None,
                }
                for name, r in self.records.items()
            },
        }
        write_json_atomic(self.path, data)


def _parse_time(text: object) -> datetime | None:
    return datetime.fromisoformat(text) if isinstance(text, str) else None
