"""Comparing two baselines: is the fleet after the move the same or better?

Latency is judged on distributions, never on one sample: a metric is
``worse`` when its median rose beyond both a ratio and an absolute floor (the
noise margin), or when its p95 did so by its own, wider margin (judged only
with enough samples on both sides to make a p95 mean something). It is
``better`` when the median fell beyond the same margin and the p95 did not
get worse; anything in between is ``same``. Identity facts (serial number,
MACs, model, firmware) that differ are ``changed``: a server racked in
another's slot, or swapped. Fewer studies is ``worse``; a server, metric or
unit that answered before and not after is ``missing``.

A planned replacement (``pacs-tui replace``: a spare took the server's
place) is ``replaced``, informational: the server's identity facts differ
and AFTER reports the serial recorded for the spare. A serial that is not
the recorded one, or MACs other than the spare's, stay ``changed``. A
BIOS or BMC firmware version that a runbook phase of kind ``firmware``
planned for the server is ``planned``, informational too; another version
stays ``changed``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from pacs_tui.baseline.model import (
    HARDWARE_KEYS,
    LATENCY_METRICS,
    Baseline,
    RoleBaseline,
    Samples,
    ServerBaseline,
)

Scope = Literal["server", "role", "fleet"]
Verdict = Literal["better", "same", "worse", "missing", "changed", "new", "replaced", "planned"]
PROBLEM_VERDICTS = frozenset({"worse", "missing", "changed"})
METRIC_TITLES = {
    "echo": "C-ECHO latency",
    "find": "C-FIND latency",
    "redfish": "Redfish GET latency",
    "study_count": "study count",
}


@dataclass(frozen=True)
class PlannedIdentity:
    """A recorded replacement: the box AFTER should report for one server.

    ``serial`` and ``macs`` (lower case) are what the spare's BMC reported
    when ``pacs-tui replace`` recorded it; ``spare`` names the spare.
    """

    spare: str
    serial: str
    macs: tuple[str, ...] = ()
    note: str = ""  # when and by whom, for the detail


@dataclass(frozen=True)
class PlannedFirmware:
    """Firmware versions a runbook phase planned for one server: ``versions`` maps
    ``bios_version`` / ``bmc_firmware`` to the version it runs after the phase."""

    phase: str
    versions: Mapping[str, str]


@dataclass(frozen=True)
class Tolerances:
    """How much change is noise. Both the ratio and the absolute floor must be exceeded."""

    latency_ratio: float = 1.25  # median: after > before × ratio …
    # A floor of 5 ms: scheduling jitter on a busy 2-core host moved medians ~2–3 ms.
    latency_floor_ms: float = 5.0  # … and after − before > floor
    p95_ratio: float = 1.5
    p95_floor_ms: float = 10.0
    # Below 20 samples the nearest-rank p95 is the maximum, i.e. one sample: not judged.
    p95_min_samples: int = 20
    study_count_loss: int = 0  # studies that may go missing before it is "worse"

    def to_json(self) -> dict[str, Any]:
        """The tolerances as stated in reports."""
        return asdict(self)


@dataclass(frozen=True)
class Finding:
    """One verdict on one metric of a server, a role, or the fleet."""

    scope: Scope
    name: str
    metric: str
    verdict: Verdict
    before: Any
    after: Any
    detail: str

    @property
    def problem(self) -> bool:
        """True for worse, missing and changed."""
        return self.verdict in PROBLEM_VERDICTS

    def to_json(self) -> dict[str, Any]:
        """JSON-able form; ``Samples`` become their summary."""
        return {
            "scope": self.scope,
            "name": self.name,
            "metric": self.metric,
            "verdict": self.verdict,
            "before": _plain(self.before),
            "after": _plain(self.after),
            "detail": self.detail,
        }


@dataclass(frozen=True)
class Comparison:
    """Every finding of one BEFORE/AFTER comparison."""

    findings: tuple[Finding, ...]
    tolerances: Tolerances = field(default_factory=Tolerances)

    @property
    def ok(self) -> bool:
        """True when nothing is worse, missing or changed."""
        return not any(f.problem for f in self.findings)

    def problems(self) -> list[Finding]:
        """The worse, missing and changed findings: fleet first, then roles, then servers."""
        order = {"fleet": 0, "role": 1, "server": 2}
        return sorted(
            (f for f in self.findings if f.problem), key=lambda f: (order[f.scope], f.name)
        )

    def verdicts(self) -> dict[str, int]:
        """How many findings have each verdict."""
        counts: dict[str, int] = {}
        for finding in self.findings:
            counts[finding.verdict] = counts.get(finding.verdict, 0) + 1
        return counts

    def to_json(self) -> dict[str, Any]:
        """The comparison as printed by ``baseline compare --json``."""
        return {
            "ok": self.ok,
            "tolerances": self.tolerances.to_json(),
            "verdicts": self.verdicts(),
            "problems": [f.to_json() for f in self.problems()],
            "findings": [f.to_json() for f in self.findings],
        }


def judge_latency(before: Samples, after: Samples, tolerances: Tolerances) -> tuple[Verdict, str]:
    """Verdict and explanation for one latency metric."""
    t = tolerances
    median_worse = (
        after.median > before.median * t.latency_ratio
        and after.median - before.median > t.latency_floor_ms
    )
    median_better = (
        before.median > after.median * t.latency_ratio
        and before.median - after.median > t.latency_floor_ms
    )
    p95_judged = min(before.count, after.count) >= t.p95_min_samples
    p95_worse = (
        p95_judged
        and after.p95 > before.p95 * t.p95_ratio
        and after.p95 - before.p95 > t.p95_floor_ms
    )
    figures = (
        f"median {before.median:.2f} → {after.median:.2f} ms, "
        f"p95 {before.p95:.2f} → {after.p95:.2f} ms (n {before.count}/{after.count})"
    )
    if median_worse or p95_worse:
        which = " and ".join(w for w, hit in (("median", median_worse), ("p95", p95_worse)) if hit)
        return "worse", f"{which} slower beyond tolerance: {figures}"
    if median_better:
        return "better", f"median faster beyond tolerance: {figures}"
    note = "" if p95_judged else "; p95 not judged (too few samples)"
    return "same", f"within tolerance: {figures}{note}"


def compare_baselines(
    before: Baseline,
    after: Baseline,
    tolerances: Tolerances = Tolerances(),
    planned: Mapping[str, PlannedIdentity] | None = None,
    firmware: Mapping[str, PlannedFirmware] | None = None,
) -> Comparison:
    """Classify every metric per server, per role and for the fleet.

    ``planned``: server name -> the identity a recorded replacement gave it;
    its identity changes are ``replaced`` when AFTER reports that serial.
    ``firmware``: server name -> the firmware a runbook phase planned; a
    version AFTER reports as planned is ``planned``.
    """
    planned = planned or {}
    firmware = firmware or {}
    findings: list[Finding] = []
    counts_comparable = before.study_window == after.study_window
    find_comparable = dict(before.find_query) == dict(after.find_query)
    findings.extend(_fleet(before, after, counts_comparable, find_comparable))
    serial_owner = {
        s.hardware.get("serial_number"): s.name
        for s in before.servers.values()
        if s.hardware.get("serial_number")
    }
    for name, old in before.servers.items():
        new = after.servers.get(name)
        if new is None:
            findings.append(
                Finding(
                    "server",
                    name,
                    "presence",
                    "missing",
                    old.role,
                    None,
                    f"{name} ({old.role}, {old.site}) is not in AFTER",
                )
            )
            continue
        findings.extend(
            _server(
                old,
                new,
                tolerances,
                serial_owner,
                counts_comparable,
                find_comparable,
                planned.get(name),
                firmware.get(name),
            )
        )
    for name, new in after.servers.items():
        if name not in before.servers:
            findings.append(
                Finding(
                    "server",
                    name,
                    "presence",
                    "new",
                    None,
                    new.role,
                    f"{name} ({new.role}, {new.site}) is only in AFTER",
                )
            )
    before_roles, after_roles = before.roles(), after.roles()
    for role, old_role in before_roles.items():
        new_role = after_roles.get(role)
        if new_role is None:
            findings.append(
                Finding(
                    "role",
                    role,
                    "presence",
                    "missing",
                    len(old_role.servers),
                    0,
                    f"no server of role {role} in AFTER",
                )
            )
            continue
        findings.extend(_role(old_role, new_role, tolerances, counts_comparable, find_comparable))
    for role, new_role in after_roles.items():
        if role not in before_roles:
            findings.append(
                Finding(
                    "role",
                    role,
                    "presence",
                    "new",
                    0,
                    len(new_role.servers),
                    f"role {role} is only in AFTER",
                )
            )
    return Comparison(tuple(findings), tolerances)


def _fleet(
    before: Baseline, after: Baseline, counts_comparable: bool, find_comparable: bool
) -> list[Finding]:
    out: list[Finding] = []
    gone = sorted(set(before.servers) - set(after.servers))
    out.append(
        Finding(
            "fleet",
            "fleet",
            "servers",
            "missing" if gone else "same",
            len(before.servers),
            len(after.servers),
            f"missing in AFTER: {', '.join(gone)}"
            if gone
            else "every server of BEFORE is in AFTER",
        )
    )
    if not counts_comparable:
        out.append(
            Finding(
                "fleet",
                "fleet",
                "study_window",
                "changed",
                _window(before),
                _window(after),
                "study counts cover different days and were not compared; "
                "capture AFTER with the study window of BEFORE (baseline capture --like)",
            )
        )
    if not find_comparable:
        out.append(
            Finding(
                "fleet",
                "fleet",
                "find_query",
                "changed",
                dict(before.find_query),
                dict(after.find_query),
                "C-FIND latencies come from different queries and were not compared",
            )
        )
    return out


def _window(baseline: Baseline) -> str | None:
    window = baseline.study_window
    return None if window is None else f"{window[0]}..{window[1]}"


def _metrics(find_comparable: bool) -> tuple[str, ...]:
    return LATENCY_METRICS if find_comparable else tuple(m for m in LATENCY_METRICS if m != "find")


def _latency(
    scope: Scope,
    name: str,
    metric: str,
    old: Samples | None,
    new: Samples | None,
    tolerances: Tolerances,
    why_missing: str = "",
) -> Finding | None:
    if old is None and new is None:
        return None
    if old is None:
        assert new is not None
        return Finding(
            scope,
            name,
            metric,
            "new",
            None,
            new,
            f"measured only in AFTER (median {new.median:.2f} ms)",
        )
    if new is None:
        return Finding(
            scope,
            name,
            metric,
            "missing",
            old,
            None,
            f"no {METRIC_TITLES[metric]} in AFTER{why_missing}",
        )
    verdict, detail = judge_latency(old, new, tolerances)
    return Finding(scope, name, metric, verdict, old, new, detail)


def _study_count(
    scope: Scope, name: str, old: int | None, new: int | None, tolerances: Tolerances, why: str = ""
) -> Finding | None:
    if old is None and new is None:
        return None
    if old is None:
        return Finding(scope, name, "study_count", "new", None, new, "counted only in AFTER")
    if new is None:
        return Finding(
            scope, name, "study_count", "missing", old, None, f"no study count in AFTER{why}"
        )
    if new < old - tolerances.study_count_loss:
        return Finding(
            scope,
            name,
            "study_count",
            "worse",
            old,
            new,
            f"{old - new} studies fewer in AFTER ({old} → {new})",
        )
    extra = f" ({new - old} more in AFTER)" if new > old else ""
    return Finding(scope, name, "study_count", "same", old, new, f"{new} studies{extra}")


def _server(
    old: ServerBaseline,
    new: ServerBaseline,
    tolerances: Tolerances,
    serial_owner: Mapping[Any, str],
    counts_comparable: bool,
    find_comparable: bool,
    planned: PlannedIdentity | None = None,
    firmware: PlannedFirmware | None = None,
) -> list[Finding]:
    name = old.name
    why = f" ({'; '.join(new.errors)})" if new.errors else ""
    out: list[Finding] = []
    for metric in _metrics(find_comparable):
        finding = _latency(
            "server", name, metric, old.latency(metric), new.latency(metric), tolerances, why
        )
        if finding is not None:
            out.append(finding)
    if counts_comparable:
        count = _study_count("server", name, old.study_count, new.study_count, tolerances, why)
        if count is not None:
            out.append(count)
    out.extend(_hardware(old, new, serial_owner, why, planned, firmware))
    out.extend(_services(old, new, why))
    return out


def _hardware(
    old: ServerBaseline,
    new: ServerBaseline,
    serial_owner: Mapping[Any, str],
    why: str,
    planned: PlannedIdentity | None = None,
    firmware: PlannedFirmware | None = None,
) -> list[Finding]:
    if not old.hardware:
        return []
    name = old.name
    if not new.hardware:
        return [
            Finding(
                "server",
                name,
                "hardware",
                "missing",
                dict(old.hardware),
                None,
                f"no Redfish inventory facts in AFTER{why}",
            )
        ]
    out: list[Finding] = []
    # The box is the recorded spare only when AFTER reports the spare's serial.
    is_spare = planned is not None and new.hardware.get("serial_number") == planned.serial
    for key in HARDWARE_KEYS:
        was, now = old.hardware.get(key), new.hardware.get(key)
        if key == "mac_addresses":
            was, now = sorted(was or []), sorted(now or [])
        if was == now:
            out.append(Finding("server", name, key, "same", was, now, "unchanged"))
            continue
        detail = f"{key.replace('_', ' ')} was {_show(was)}, is {_show(now)}"
        if planned is not None and is_spare:
            if key != "mac_addresses" or not planned.macs or now == sorted(planned.macs):
                note = f"; {planned.note}" if planned.note else ""
                detail += f": replaced by spare {planned.spare} as planned{note}"
                out.append(Finding("server", name, key, "replaced", was, now, detail))
                continue
            detail += f"; spare {planned.spare} has {_show(sorted(planned.macs))}"
        elif firmware is not None and key in firmware.versions:
            target = firmware.versions[key]
            if now == target:
                detail += f": planned by the runbook's phase {firmware.phase!r}"
                out.append(Finding("server", name, key, "planned", was, now, detail))
            else:
                detail += f"; the runbook's phase {firmware.phase!r} plans {target}"
                out.append(Finding("server", name, key, "changed", was, now, detail))
            continue
        elif planned is not None and key == "serial_number":
            detail += (
                f"; the recorded replacement is spare {planned.spare} "
                f"(serial {planned.serial}): not that box"
            )
            out.append(Finding("server", name, key, "changed", was, now, detail))
            continue
        if key == "serial_number":
            owner = serial_owner.get(now)
            if owner and owner != name:
                detail += f"; {_show(now)} was {owner}'s serial in BEFORE (swapped with {owner}?)"
            else:
                detail += " (another box in this slot?)"
        out.append(Finding("server", name, key, "changed", was, now, detail))
    return out


def _services(old: ServerBaseline, new: ServerBaseline, why: str) -> list[Finding]:
    if not old.services:
        return []
    name = old.name
    if not new.services:
        return [
            Finding(
                "server",
                name,
                "services",
                "missing",
                dict(old.services),
                None,
                f"no unit states over SSH in AFTER{why}",
            )
        ]
    out: list[Finding] = []
    for unit, was in old.services.items():
        now = new.services.get(unit)
        metric = f"unit:{unit}"
        if now is None:
            out.append(
                Finding(
                    "server",
                    name,
                    metric,
                    "missing",
                    was,
                    None,
                    f"{unit} was {was}, not reported in AFTER",
                )
            )
        elif was == now:
            out.append(Finding("server", name, metric, "same", was, now, f"{unit} {now}"))
        elif now == "active":
            out.append(
                Finding("server", name, metric, "better", was, now, f"{unit} was {was}, is active")
            )
        else:
            out.append(
                Finding("server", name, metric, "worse", was, now, f"{unit} was {was}, is {now}")
            )
    return out


def _role(
    old: RoleBaseline,
    new: RoleBaseline,
    tolerances: Tolerances,
    counts_comparable: bool,
    find_comparable: bool,
) -> list[Finding]:
    out: list[Finding] = []
    for metric in _metrics(find_comparable):
        finding = _latency(
            "role", old.role, metric, old.latency(metric), new.latency(metric), tolerances
        )
        if finding is not None:
            out.append(finding)
    if counts_comparable:
        count = _study_count("role", old.role, old.study_count, new.study_count, tolerances)
        if count is not None:
            out.append(count)
    return out


def _show(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(str(v) for v in value) + "]" if value else "none"
    return "none" if value is None else str(value)


def _plain(value: Any) -> Any:
    if isinstance(value, Samples):
        return {
            "count": value.count,
            "median_ms": round(value.median, 3),
            "p95_ms": round(value.p95, 3),
        }
    return value


ROLE_METRICS = (*LATENCY_METRICS, "study_count")


def findings_by_role(comparison: Comparison) -> dict[str, dict[str, Finding]]:
    """Per role (sorted), its role-scope findings by metric (``presence`` for a role
    that is only in one file): the rows of a role × metric verdict table."""
    table: dict[str, dict[str, Finding]] = {}
    for finding in comparison.findings:
        if finding.scope == "role":
            table.setdefault(finding.name, {})[finding.metric] = finding
    return {role: table[role] for role in sorted(table)}


def problem_line(finding: Finding) -> str:
    """One problem as ``baseline compare`` prints it: verdict, scope, name, metric, detail."""
    return (
        f"{finding.verdict.upper():8} {finding.scope} {finding.name} {finding.metric}: "
        f"{finding.detail}"
    )


def verdict_counts_text(comparison: Comparison) -> str:
    """``2 better, 9 same, 1 worse``-style counts, as ``baseline compare`` prints them."""
    return ", ".join(f"{n} {v}" for v, n in sorted(comparison.verdicts().items()))
