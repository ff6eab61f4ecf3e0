"""Naming what the before/after comparison found by what it looks like, not what was planted."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from pacs_tui.baseline.model import HARDWARE_KEYS
from pacs_tui.rehearsal.options import MISSING_STUDIES, SLOW_STORAGE, SWAPPED_SERVER
from pacs_tui.rehearsal.outcome import Detection


def _median_ms(value: Any) -> str:
    median = getattr(value, "median", None)
    return f"{median:.1f} ms" if isinstance(median, int | float) else str(value)


def name_problems(
    comparison: Any, before: Any, after: Any, held: Collection[str] = ()
) -> list[Detection]:
    """Name the comparison's problems by what they look like.

    ``held``: servers the preflight kept Off; their server findings are left out
    (the preflight's finding already names them, and they were never compared).

    - a role whose C-FIND latency got worse: ``slow-storage``;
    - servers reporting another server's serial number or MACs, or a changed
      one: ``swapped-server`` (their model, vendor and firmware differences are
      part of the same finding);
    - fewer studies in an archive: ``missing-studies``;
    - a server that did not answer after the move: ``missing-server``;
    - any other worse latency, changed fact or missing unit: ``regression``.
    """
    found: list[Detection] = []
    problems = [f for f in comparison.problems() if not (f.scope == "server" and f.name in held)]
    slow_roles = {f.name for f in problems if f.scope == "role" and f.metric == "find"}
    swapped: dict[str, set[str]] = {}
    serial_owner = {
        s.hardware.get("serial_number"): name
        for name, s in before.servers.items()
        if s.hardware.get("serial_number")
    }
    for f in problems:
        if f.scope == "role" and f.metric == "find":
            found.append(
                Detection(
                    SLOW_STORAGE,
                    f"{f.name} find latency worse: median {_median_ms(f.before)} → "
                    f"{_median_ms(f.after)}",
                )
            )
        elif f.metric in HARDWARE_KEYS or f.metric == "hardware":
            swapped.setdefault(f.name, set()).add(f.metric)
        elif f.metric == "study_count":
            found.append(
                Detection(MISSING_STUDIES, f"{f.scope} {f.name}: {f.before} → {f.after} studies")
            )
        elif f.metric == "presence" or (f.scope == "fleet" and f.metric == "servers"):
            found.append(Detection("missing-server", f.detail))
        elif f.scope == "server" and f.metric == "find":
            role = before.servers[f.name].role if f.name in before.servers else ""
            if role not in slow_roles:
                found.append(Detection("regression", f"{f.name} find latency: {f.detail}"))
        elif f.scope != "server" or f.metric not in ("echo", "redfish"):
            found.append(Detection("regression", f"{f.scope} {f.name} {f.metric}: {f.detail}"))
        elif f.scope == "server":
            found.append(Detection("regression", f"{f.name} {f.metric}: {f.detail}"))
    done: set[str] = set()
    for name in swapped:
        if name in done:
            continue
        now_serial = after.servers[name].hardware.get("serial_number")
        other = serial_owner.get(now_serial)
        if other and other != name:
            done.update((name, other))
            found.append(
                Detection(
                    SWAPPED_SERVER,
                    f"{name} and {other} are racked in each other's place: {name} reports "
                    f"{other}'s serial {now_serial} and MACs",
                )
            )
        elif swapped[name] & {"serial_number", "mac_addresses"}:
            done.add(name)
            changed = ", ".join(sorted(swapped[name]))
            found.append(Detection(SWAPPED_SERVER, f"{name}: {changed} changed (another box?)"))
        else:  # same box, other firmware or BIOS: not a swap, still not the same
            done.add(name)
            changed = ", ".join(sorted(swapped[name]))
            found.append(Detection("regression", f"{name}: {changed} changed"))
    return found
