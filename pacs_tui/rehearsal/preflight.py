"""The preflight before power-up at the new site: what it found and what it holds back.

After the rack and before the power-up batch the rehearsal measures every
hospital's and clinic's WAN link with ``pacs-tui preflight``'s code
(``pacs_tui.links``) and reads every moved server's ``rack-power`` probe while
the server is still Off (its BMC has standby power: the supplies' input is
readable). This module turns those readings into findings, named by what
they look like:

- a site whose every link is ``unreachable``: ``clinic-link-down`` (or
  ``hospital-link-down``); its servers, and every server depending on them,
  are **held**: left out of the power-up batch, named in the report, never
  verified; the site is **not proven** same-or-better;
- a ``degraded`` or ``unknown`` link: ``link-degraded`` / ``link-unknown``;
  nothing held (the site's servers still serve the others), the site not
  proven;
- a present supply without input: ``psu-unplugged`` naming server, supply and
  bay; power redundancy is lost (DEGRADED). The server is **not** held: it
  runs on its other supply, as an operator would power it, but the report
  says so, and it is not proven (never custody ``verified``);
- any other ``psu-fault``: ``psu-fault``; ``inlet-hot``: held (the probe's
  "do not power on here"); ``inlet-warm``; a read that failed or was
  incomplete: ``rack-power-unknown`` (never read as fine). Each leaves its
  server not proven.

Each finding kind is one function below that fills ``PreflightFindings``;
another check (a rack's power budget, say) is one more such function.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pacs_tui.inventory import Inventory, Server
from pacs_tui.links import LinkReport
from pacs_tui.plugin_api import ProbeResult
from pacs_tui.rehearsal.options import PSU_UNPLUGGED
from pacs_tui.rehearsal.outcome import Detection

RACK_POWER_PROBE = "rack-power"
LINK_SITE_KINDS = ("hospital", "clinic")


@dataclass
class PreflightFindings:
    """What the preflight found: problems, servers held Off, sites not proven."""

    detections: list[Detection] = field(default_factory=list)
    held: dict[str, str] = field(default_factory=dict)  # server -> why it stays Off
    # site or server -> why it cannot be called same-or-better (a server here is never
    # advanced to custody ``verified``)
    not_proven: dict[str, str] = field(default_factory=dict)
    links: int = 0
    links_ok: int = 0
    racks_read: int = 0
    racks_off: int = 0  # of those read, the chassis said PowerState Off
    racks_ok: int = 0
    lines: list[str] = field(default_factory=list)  # for the report, one per reading not ok

    def hold(self, server: str, why: str) -> None:
        """Leave ``server`` out of the power-up (the first reason given stays)."""
        self.held.setdefault(server, why)

    def summary(self) -> str:
        """One line for the phase table."""
        parts = [
            f"{self.links_ok} of {self.links} WAN link(s) ok",
            f"rack power of {self.racks_read} server(s) read ({self.racks_off} Off), "
            f"{self.racks_ok} ok",
        ]
        if self.held:
            parts.append(f"held Off: {', '.join(self.held)}")
        if self.not_proven:
            parts.append(f"not proven: {', '.join(self.not_proven)}")
        return "; ".join(parts)


def _names(servers: Sequence[str]) -> str:
    return ", ".join(servers[:10]) + (f" (+{len(servers) - 10} more)" if len(servers) > 10 else "")


def link_findings(
    reports: Sequence[LinkReport], moved: Sequence[Server], found: PreflightFindings
) -> None:
    """Judge the sites by their links: a site with every link unreachable is down and its
    moved servers are held; a degraded or unknown link leaves its site not proven."""
    found.links += len(reports)
    found.links_ok += sum(1 for r in reports if r.verdict == "ok")
    by_site: dict[str, list[LinkReport]] = {}
    for report in reports:
        by_site.setdefault(report.site, []).append(report)
    for report in reports:
        if report.verdict != "ok":
            found.lines.append(f"link {report.key}: {report.verdict}: {'; '.join(report.reasons)}")
    for site, site_reports in by_site.items():
        bad = [r for r in site_reports if r.verdict != "ok"]
        if not bad:
            continue
        kind = site_reports[0].site_kind
        down = all(r.verdict == "unreachable" for r in site_reports)
        said = "; ".join(
            f"WAN link {r.link.name} ({r.link.kind}) {r.verdict}: {r.reasons[0] if r.reasons else '-'}"
            for r in bad
        )
        if down:
            fault = f"{kind}-link-down" if kind in LINK_SITE_KINDS else "link-down"
            there = [s.name for s in moved if s.site == site]
            for name in there:
                found.hold(name, f"{site}'s WAN link is down")
            held = (
                f"held Off, not powered on: {_names(there)}"
                if there
                else "no moved server there to hold"
            )
            found.not_proven[site] = f"WAN link down; {held}"
            found.detections.append(
                Detection(fault, f"{site}: {said}; {held}; NOT proven same-or-better for {site}")
            )
        else:
            worst = "degraded" if any(r.verdict == "degraded" for r in bad) else "unknown"
            found.not_proven[site] = f"WAN link {worst}"
            found.detections.append(
                Detection(f"link-{worst}", f"{site}: {said}; NOT proven same-or-better for {site}")
            )


def _supply_name(supply: Mapping[str, Any]) -> str:
    """``PSU 2 (Bay2)``: as the rack-power probe names a supply."""
    label, member = str(supply.get("label") or "?"), str(supply.get("member") or "?")
    return label if label == member else f"{label} ({member})"


def rack_power_findings(
    readings: Mapping[str, ProbeResult | None], found: PreflightFindings
) -> None:
    """Judge each server's rack-power reading taken while it was Off."""
    for name, result in readings.items():
        found.racks_read += 1
        if result is None:
            found.lines.append(f"rack-power {name}: not read")
            found.not_proven[name] = "rack power not read"
            found.detections.append(Detection("rack-power-unknown", f"{name}: not read"))
            continue
        state = result.state
        found.racks_off += result.facts.get("chassis_power_state") == "Off"
        if state == "ok":
            found.racks_ok += 1
            continue
        found.lines.append(f"rack-power {name}: {state}: {result.detail}")
        found.not_proven[name] = f"rack-power {state}"
        if state == "psu-fault":
            supplies = result.facts.get("supplies") or []
            dead = [s for s in supplies if isinstance(s, Mapping) and s.get("input_ok") is False]
            for supply in dead:
                found.not_proven[name] = (
                    f"power redundancy lost: {_supply_name(supply)} without input"
                )
                found.detections.append(
                    Detection(
                        PSU_UNPLUGGED,
                        f"{name}: power supply {_supply_name(supply)} has no input "
                        f"({supply.get('input') or 'no input'}): power redundancy lost, "
                        "DEGRADED (read while Off, before power-up); powered on anyway on "
                        "its other supply: plug it in before the weekend is signed off",
                    )
                )
            if not dead:
                found.detections.append(Detection("psu-fault", f"{name}: {result.detail}"))
        elif state == "inlet-hot":
            found.hold(name, f"inlet hot: {result.detail}")
            found.detections.append(
                Detection("inlet-hot", f"{name}: {result.detail}; held Off (not powered on)")
            )
        elif state == "inlet-warm":
            found.detections.append(Detection("inlet-warm", f"{name}: {result.detail}"))
        else:
            found.detections.append(
                Detection("rack-power-unknown", f"{name}: {state}: {result.detail}")
            )


def hold_dependents(
    inventory: Inventory, moved: Sequence[Server], found: PreflightFindings
) -> None:
    """Hold every moved server that depends, directly or not, on a held one: its power-up
    gate could not pass, and powering it would serve nobody."""
    moved_names = {s.name for s in moved}
    queue = list(found.held)
    while queue:
        name = queue.pop(0)
        for dependent in inventory.dependents(name):
            if dependent.name in moved_names and dependent.name not in found.held:
                found.hold(dependent.name, f"depends on {name}, held")
                queue.append(dependent.name)
