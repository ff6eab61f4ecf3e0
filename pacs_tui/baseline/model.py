"""What a move-weekend baseline holds, and its file format.

A baseline is one capture of the fleet's performance and identity: latency
samples (C-ECHO, study-level C-FIND, Redfish GET), each archive's study count
over a fixed window, the BMCs' inventory facts and the unit states seen over
SSH. It is saved as indented JSON with a format marker and a version, so a
person can read it and a later pacs-tui can refuse a file it does not know.
"""

from __future__ import annotations

import json
import math
import os
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from pacs_tui.input_file import BASELINE, InputFileError, read_text

BASELINE_VERSION = 1
FORMAT_NAME = "pacs-tui-baseline"
HARDWARE_KEYS = (
    "serial_number",
    "model",
    "manufacturer",
    "bios_version",
    "bmc_firmware",
    "mac_addresses",
)
LATENCY_METRICS = ("echo", "find", "redfish")


class BaselineError(ValueError):
    """A baseline file that cannot be read; names the file and the field."""

    def __init__(self, path: Path | str, where: str, reason: str) -> None:
        self.path = Path(path)
        self.where = where
        self.reason = reason
        super().__init__(f"{self.path}: {where}: {reason}" if where else f"{self.path}: {reason}")


@dataclass(frozen=True)
class Samples:
    """Latency samples of one metric in milliseconds (never empty)."""

    values_ms: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.values_ms:
            raise ValueError("Samples needs at least one value")

    @property
    def count(self) -> int:
        """How many samples were taken."""
        return len(self.values_ms)

    @property
    def median(self) -> float:
        """The median latency (ms)."""
        return float(statistics.median(self.values_ms))

    @property
    def p95(self) -> float:
        """The 95th percentile (ms), nearest rank: with fewer than 20 samples, the maximum."""
        ordered = sorted(self.values_ms)
        return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]

    @classmethod
    def pooled(cls, parts: Iterable[Samples | None]) -> Samples | None:
        """All values of ``parts`` together; None when there are none."""
        values = tuple(v for p in parts if p is not None for v in p.values_ms)
        return cls(values) if values else None

    def to_json(self) -> dict[str, Any]:
        """The samples plus the derived figures a reader looks for first."""
        return {
            "count": self.count,
            "median_ms": round(self.median, 3),
            "p95_ms": round(self.p95, 3),
            "values_ms": list(self.values_ms),
        }


@dataclass(frozen=True)
class ServerBaseline:
    """Everything captured about one server; a metric is None when not measured or failed."""

    name: str
    site: str
    role: str
    echo: Samples | None
    find: Samples | None
    study_count: int | None
    redfish: Samples | None
    hardware: Mapping[str, Any]  # HARDWARE_KEYS; mac_addresses is a list of str
    services: Mapping[str, str]  # unit -> systemctl is-active word
    errors: tuple[str, ...] = ()
    # Its draw when captured (W; Redfish PowerConsumedWatts), the basis of its expected
    # boot peak when racks have power budgets; None: not read.
    power_watts: float | None = None

    def latency(self, metric: str) -> Samples | None:
        """The samples of ``metric`` (one of ``LATENCY_METRICS``)."""
        value: Samples | None = getattr(self, metric)
        return value

    def to_json(self) -> dict[str, Any]:
        """The server's part of the file."""
        return {
            "power_watts": self.power_watts,
            "site": self.site,
            "role": self.role,
            "echo": None if self.echo is None else self.echo.to_json(),
            "find": None if self.find is None else self.find.to_json(),
            "study_count": self.study_count,
            "redfish": None if self.redfish is None else self.redfish.to_json(),
            "hardware": dict(self.hardware),
            "services": dict(self.services),
            "errors": list(self.errors),
        }


@dataclass(frozen=True)
class RoleBaseline:
    """The samples of every server of one role, pooled; study counts summed."""

    role: str
    servers: tuple[str, ...]
    echo: Samples | None
    find: Samples | None
    redfish: Samples | None
    study_count: int | None

    def latency(self, metric: str) -> Samples | None:
        """The pooled samples of ``metric``."""
        value: Samples | None = getattr(self, metric)
        return value


@dataclass(frozen=True)
class Baseline:
    """One capture of the fleet. ``study_window`` is the inclusive date range counted."""

    version: int
    label: str
    captured_at: str  # ISO 8601, UTC
    inventory: str
    samples: int
    servers: Mapping[str, ServerBaseline]
    find_query: Mapping[str, str] = field(default_factory=dict)
    study_window: tuple[date, date] | None = None

    def power_draws(self) -> dict[str, float]:
        """Each server's draw when captured (W), for servers with one (rack power budgets)."""
        return {n: s.power_watts for n, s in self.servers.items() if s.power_watts}

    def roles(self) -> dict[str, RoleBaseline]:
        """Per role (sorted): pooled latency samples and the summed study count."""
        by_role: dict[str, list[ServerBaseline]] = {}
        for server in self.servers.values():
            by_role.setdefault(server.role, []).append(server)
        out: dict[str, RoleBaseline] = {}
        for role in sorted(by_role):
            members = by_role[role]
            counts = [s.study_count for s in members if s.study_count is not None]
            out[role] = RoleBaseline(
                role=role,
                servers=tuple(s.name for s in members),
                echo=Samples.pooled(s.echo for s in members),
                find=Samples.pooled(s.find for s in members),
                redfish=Samples.pooled(s.redfish for s in members),
                study_count=sum(counts) if counts else None,
            )
        return out

    def to_json(self) -> dict[str, Any]:
        """The whole file as JSON-able data."""
        window = self.study_window
        return {
            "format": FORMAT_NAME,
            "version": self.version,
            "label": self.label,
            "captured_at": self.captured_at,
            "inventory": self.inventory,
            "samples": self.samples,
            "find_query": dict(self.find_query),
            "study_window": None
            if window is None
            else {"from": window[0].isoformat(), "to": window[1].isoformat()},
            "servers": {name: s.to_json() for name, s in self.servers.items()},
        }


def save_baseline(baseline: Baseline, path: Path) -> None:
    """Write ``baseline`` as indented JSON (atomically: a reader never sees half a file)."""
    path = Path(path)
    text = json.dumps(baseline.to_json(), indent=2, ensure_ascii=False) + "\n"
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def load_baseline(path: Path) -> Baseline:
    """Read a baseline file; raise :class:`BaselineError` naming the file and the field."""
    path = Path(path)
    try:
        text = read_text(path, BASELINE)  # a regular file of at most 64 MiB, UTF-8
    except InputFileError as exc:
        where = f"line {exc.line}, column {exc.column}" if exc.line else ""
        raise BaselineError(path, where, exc.reason) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BaselineError(path, f"line {exc.lineno}", f"not JSON: {exc.msg}") from None
    return _Reader(path).baseline(data)


def power_draws(path: Path) -> dict[str, float]:
    """Each server's draw measured by the baseline at ``path`` (W), for rack power budgets.

    Raises ``BaselineError`` (file, field, reason) when the file is not a baseline.
    """
    return load_baseline(path).power_draws()


class _Reader:
    """Checks a parsed file field by field, so every error names its place."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, reason: str) -> BaselineError:
        return BaselineError(self.path, where, reason)

    def mapping(self, value: Any, where: str) -> Mapping[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, f"expected an object, got {_kind(value)}")
        return value

    def field(self, data: Mapping[str, Any], key: str, where: str) -> Any:
        if key not in data:
            raise self.fail(f"{where}{key}", "missing")
        return data[key]

    def text(self, value: Any, where: str) -> str:
        if not isinstance(value, str):
            raise self.fail(where, f"expected a string, got {_kind(value)}")
        return value

    def count(self, value: Any, where: str, *, minimum: int = 0) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(where, f"expected a whole number >= {minimum}, got {value!r}")
        return value

    def day(self, value: Any, where: str) -> date:
        try:
            return date.fromisoformat(self.text(value, where))
        except ValueError:
            raise self.fail(where, f"expected a date YYYY-MM-DD, got {value!r}") from None

    def baseline(self, data: Any) -> Baseline:
        top = self.mapping(data, "(top level)")
        if top.get("format") != FORMAT_NAME:
            raise self.fail("format", f"not a pacs-tui baseline (expected {FORMAT_NAME!r})")
        version = self.count(self.field(top, "version", ""), "version", minimum=1)
        if version != BASELINE_VERSION:
            raise self.fail(
                "version",
                f"version {version} is not supported (this pacs-tui reads {BASELINE_VERSION})",
            )
        captured_at = self.text(self.field(top, "captured_at", ""), "captured_at")
        servers_data = self.mapping(self.field(top, "servers", ""), "servers")
        query = self.mapping(top.get("find_query") or {}, "find_query")
        window_data = top.get("study_window")
        window = None
        if window_data is not None:
            bounds = self.mapping(window_data, "study_window")
            low = self.day(self.field(bounds, "from", "study_window."), "study_window.from")
            high = self.day(self.field(bounds, "to", "study_window."), "study_window.to")
            if high < low:
                raise self.fail("study_window", "'to' is before 'from'")
            window = (low, high)
        return Baseline(
            version=version,
            label=self.text(top.get("label", ""), "label"),
            captured_at=captured_at,
            inventory=self.text(top.get("inventory", ""), "inventory"),
            samples=self.count(self.field(top, "samples", ""), "samples"),
            servers={
                str(name): self.server(str(name), value) for name, value in servers_data.items()
            },
            find_query={str(k): self.text(v, f"find_query.{k}") for k, v in query.items()},
            study_window=window,
        )

    def server(self, name: str, value: Any) -> ServerBaseline:
        where = f"servers.{name}."
        data = self.mapping(value, where.rstrip("."))
        study_count = data.get("study_count")
        hardware = self.mapping(data.get("hardware") or {}, f"{where}hardware")
        macs = hardware.get("mac_addresses", [])
        if not isinstance(macs, list) or not all(isinstance(m, str) for m in macs):
            raise self.fail(f"{where}hardware.mac_addresses", "expected a list of strings")
        for key in HARDWARE_KEYS:
            if key != "mac_addresses" and hardware.get(key) is not None:
                self.text(hardware[key], f"{where}hardware.{key}")
        services = self.mapping(data.get("services") or {}, f"{where}services")
        errors = data.get("errors") or []
        if not isinstance(errors, list):
            raise self.fail(f"{where}errors", f"expected a list, got {_kind(errors)}")
        watts = data.get("power_watts")
        if watts is not None and (
            isinstance(watts, bool) or not isinstance(watts, int | float) or watts < 0
        ):
            raise self.fail(f"{where}power_watts", f"expected watts >= 0, got {_kind(watts)}")
        return ServerBaseline(
            name=name,
            site=self.text(self.field(data, "site", where), f"{where}site"),
            role=self.text(self.field(data, "role", where), f"{where}role"),
            echo=self.samples(data.get("echo"), f"{where}echo"),
            find=self.samples(data.get("find"), f"{where}find"),
            study_count=None
            if study_count is None
            else self.count(study_count, f"{where}study_count"),
            redfish=self.samples(data.get("redfish"), f"{where}redfish"),
            hardware=dict(hardware),
            services={str(k): self.text(v, f"{where}services.{k}") for k, v in services.items()},
            errors=tuple(self.text(e, f"{where}errors[{i}]") for i, e in enumerate(errors)),
            power_watts=None if watts is None else float(watts),
        )

    def samples(self, value: Any, where: str) -> Samples | None:
        if value is None:
            return None
        data = self.mapping(value, where)
        values = self.field(data, "values_ms", f"{where}.")
        if not isinstance(values, list) or not values:
            raise self.fail(f"{where}.values_ms", "expected a non-empty list of numbers")
        out = []
        for i, v in enumerate(values):
            if (
                isinstance(v, bool)
                or not isinstance(v, int | float)
                or not math.isfinite(v)
                or v < 0
            ):
                raise self.fail(f"{where}.values_ms[{i}]", f"expected a latency >= 0, got {v!r}")
            out.append(float(v))
        return Samples(tuple(out))


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )
