"""The DICOM probe: a C-ECHO per poll and, on archives, a staggered study-level C-FIND.

C-ECHO answers "does the application entity accept us?"; the occasional
C-FIND answers "can it still reach its database?", which an echo alone never
shows (a PACS whose database is down still echoes). DICOM nodes are
production PACS, so the probe is gentle: one association at a time, the
query runs at low priority, and only every Nth poll.

Settings (``ProbeContext.settings``), all optional:

- ``dicom_interval_s``: seconds between polls (10).
- ``dicom_timeout_s``: the deadline of one C-ECHO and of one C-FIND (5).
- ``dicom_slow_ms``: an echo slower than this is DEGRADED (1000), judged net of
  our own event loop's lag during the echo (``pacs_tui.loop_lag``): an echo
  over the limit only because our loop ran late is UNKNOWN, "measurement
  unreliable", never DEGRADED; so is a timeout during which our loop was late
  for half the deadline or more.
- ``dicom_find``: true, C-FIND on every DICOM node; false, on none; unset,
  on the roles in ``dicom_find_roles`` (archive, image-manager).
- ``dicom_find_query``: the C-FIND keys (``{StudyDate: today}``); the value
  ``today`` becomes today's date.
- ``dicom_find_every``: C-FIND on every Nth poll (30: every ~5 min at the 10 s
  interval; a study-level C-FIND over a busy day costs ~0.25 ms CPU per match, so it
  is the most expensive check pacs-tui makes). It is kept off the scheduler's
  first poll of a server (``first_poll()``: the first sweep's rush): that
  reading is UNKNOWN "C-FIND not run yet" and the scheduler polls again soon
  (a one-off sweep at its end), when the C-FIND runs.
"""

from __future__ import annotations

import logging
import math
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from pacs_tui.dicom.client import DicomOutcome, FindOutcome, c_echo, c_find_studies, study_query
from pacs_tui.dicom.tls import client_context, tls_mode
from pacs_tui.inventory import Server
from pacs_tui.plugin_api import (
    LAG_FACT,
    Health,
    Probe,
    ProbeContext,
    ProbeResult,
    first_poll,
    judge_latency,
    lag_explains_timeout,
    measure_loop_lag,
    unreliable_detail,
)

log = logging.getLogger(__name__)

DEFAULT_FIND_ROLES = ("archive", "image-manager")
TODAY = "today"  # placeholder in dicom_find_query values

# Health of each C-ECHO state other than ok (ok is OK or DEGRADED by latency).
_ECHO_HEALTH = {
    "rejected": Health.DOWN,
    "aborted": Health.DOWN,
    "refused": Health.DOWN,
    "timeout": Health.DOWN,
    "error": Health.UNKNOWN,
}


@dataclass(frozen=True)
class DicomSettings:
    """The probe's settings, checked once when the probe opens."""

    interval_s: float = 10.0
    timeout_s: float = 5.0
    slow_ms: float = 1000.0
    find: bool | None = None  # None: decided by role
    find_roles: frozenset[str] = frozenset(DEFAULT_FIND_ROLES)
    find_query: Mapping[str, str] = field(default_factory=lambda: {"StudyDate": TODAY})
    find_every: int = 30

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> DicomSettings:
        """Read the ``dicom_*`` keys; raise ``ValueError`` naming a bad one."""
        default = cls()
        find = settings.get("dicom_find")
        if find is not None and not isinstance(find, bool):
            raise ValueError(f"dicom_find must be true or false, got {find!r}")
        roles = settings.get("dicom_find_roles", default.find_roles)
        if not isinstance(roles, list | tuple | set | frozenset) or not all(
            isinstance(r, str) for r in roles
        ):
            raise ValueError(f"dicom_find_roles must be a list of role names, got {roles!r}")
        query = settings.get("dicom_find_query", default.find_query)
        if not isinstance(query, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in query.items()
        ):
            raise ValueError(f"dicom_find_query must map DICOM keywords to text, got {query!r}")
        read = cls(
            interval_s=_positive(settings, "dicom_interval_s", default.interval_s),
            timeout_s=_positive(settings, "dicom_timeout_s", default.timeout_s),
            slow_ms=_positive(settings, "dicom_slow_ms", default.slow_ms),
            find=find,
            find_roles=frozenset(roles),
            find_query=dict(query),
            find_every=_whole(settings, "dicom_find_every", default.find_every),
        )
        try:
            study_query(read.query_for(date.today()))  # a key that is no DICOM keyword
        except ValueError as exc:
            raise ValueError(f"dicom_find_query: {exc}") from None
        return read

    def finds_on(self, server: Server) -> bool:
        """Whether ``server`` gets the C-FIND check."""
        return self.find if self.find is not None else server.role in self.find_roles

    def query_for(self, today: date) -> dict[str, str]:
        """The C-FIND keys with ``today`` replaced by the date (YYYYMMDD)."""
        day = today.strftime("%Y%m%d")
        return {k: day if v == TODAY else v for k, v in self.find_query.items()}


def _positive(settings: Mapping[str, Any], key: str, default: float) -> float:
    value = settings.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{key} must be a number > 0, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{key} must be finite, got {value!r}")
    return float(value)


def _whole(settings: Mapping[str, Any], key: str, default: int) -> int:
    value = settings.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{key} must be a whole number >= 1, got {value!r}")
    return value


@dataclass
class _FindTrack:
    """The C-FIND cadence and last figures of one server."""

    countdown: int = 1  # polls until the next C-FIND is due; the first poll queries
    runs: int = 0
    last: FindOutcome | None = None
    last_at: float = 0.0  # time.monotonic() of the last C-FIND

    def tick(self) -> bool:
        """Count one poll; True when a C-FIND is due (it stays due until it runs)."""
        self.countdown -= 1
        return self.countdown <= 0

    def ran(self, outcome: FindOutcome, every: int, phase: int) -> None:
        """Remember a C-FIND and when the next one is due."""
        # After the first C-FIND, start the cycle at a per-server phase, so
        # archives that were first polled together do not all query together.
        self.countdown = every if self.runs else every - phase
        self.runs += 1
        self.last = outcome
        self.last_at = time.monotonic()

    def facts(self) -> dict[str, Any]:
        """The last C-FIND's figures and age, or nothing before the first one."""
        if self.last is None:
            return {}
        return {
            "find_state": self.last.state,
            "find_count": self.last.count,
            "find_latency_ms": round(self.last.latency_ms, 1),
            "find_age_s": round(time.monotonic() - self.last_at, 1),
        }


class DicomProbe(Probe):
    """C-ECHO of a server's DICOM endpoint, with an optional staggered C-FIND.

    State is the C-ECHO outcome: ``ok``, ``rejected``, ``aborted``,
    ``refused``, ``timeout`` or ``error``. A slow echo or a failing C-FIND
    makes an ``ok`` DEGRADED. Facts carry ``tls`` (verified, UNVERIFIED or
    PLAINTEXT, as for the BMCs) and ``find_count``, ``find_latency_ms``,
    ``find_state`` and ``find_age_s`` of the last C-FIND. A TLS handshake
    that fails is an ``error`` naming its cause (PS3.15 Annex B.1).
    """

    name = "dicom"
    interval_s = 10.0
    timeout_s = 5.0

    def __init__(self) -> None:
        self.settings = DicomSettings()
        self._tracks: dict[str, _FindTrack] = {}

    async def open(self, context: ProbeContext) -> None:
        """Read the ``dicom_*`` settings; ``ValueError`` names a bad one."""
        self.settings = DicomSettings.from_settings(context.settings)
        self.interval_s = self.settings.interval_s
        self.timeout_s = self.settings.timeout_s
        self._tracks.clear()

    async def close(self) -> None:
        """Forget per-server C-FIND figures (no connection outlives a poll)."""
        self._tracks.clear()

    def applies_to(self, server: Server) -> bool:
        """Servers with a DICOM endpoint."""
        return server.dicom is not None

    def endpoint(self, server: Server) -> str:
        """The DICOM host: AEs sharing one machine share its concurrency cap."""
        return f"host:{server.dicom.host}" if server.dicom is not None else super().endpoint(server)

    async def probe(self, server: Server) -> ProbeResult:
        """C-ECHO now, plus C-FIND when due; never raises for a failing node."""
        try:
            return await self._probe(server)
        except Exception as exc:  # a bug here must still give a reading, not a crash
            log.exception("DICOM probe failed on %s", server.name)
            return ProbeResult.make(
                "error", Health.UNKNOWN, detail=f"probe error: {type(exc).__name__}: {exc}"
            )

    async def _probe(self, server: Server) -> ProbeResult:
        dicom = server.dicom
        if dicom is None:
            return ProbeResult.make("error", Health.UNKNOWN, detail="no DICOM endpoint")
        settings = self.settings
        mode = tls_mode(dicom)
        try:
            tls = client_context(dicom)
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            detail = f"TLS setup failed: {exc}"
            return ProbeResult.make("error", Health.UNKNOWN, detail=detail, tls=mode)
        # Our loop's lag over the echo alone (not the C-FIND after it): the part
        # of its latency that is ours.
        with measure_loop_lag() as lag:
            echo = await c_echo(
                dicom.host,
                dicom.port,
                called_ae=dicom.ae_title,
                calling_ae=dicom.calling_ae_title,
                tls=tls,
                timeout=settings.timeout_s,
            )
        lag_ms = lag.late_ms
        track = self._tracks.setdefault(server.name, _FindTrack())
        due = track.tick() if settings.finds_on(server) else False
        if echo.state == "timeout" and lag_explains_timeout(lag_ms, settings.timeout_s):
            detail = unreliable_detail(lag_ms, f"the C-ECHO ({echo.detail})")
            return ProbeResult.unreliable(
                echo.state, _with_tls_note(detail, mode), lag_ms, latency_ms=echo.latency_ms,
                tls=mode, **track.facts(),
            )  # fmt: skip
        if echo.state != "ok":
            # No C-FIND: the node does not even echo. It stays due for the next poll.
            return ProbeResult.make(
                echo.state,
                _ECHO_HEALTH[echo.state],
                latency_ms=echo.latency_ms,
                detail=_with_tls_note(echo.detail, mode),
                tls=mode,
                **track.facts(),
            )
        if due and first_poll():
            # The first sweep opens every connection of the fleet: the C-FIND, the
            # most expensive check, waits for the next poll (soon after the ramp).
            return self._first_echo(echo, track, tls=mode, lag_ms=lag_ms)
        if due:
            with measure_loop_lag() as find_lag:
                find = await c_find_studies(
                    dicom.host,
                    dicom.port,
                    called_ae=dicom.ae_title,
                    calling_ae=dicom.calling_ae_title,
                    tls=tls,
                    query=settings.query_for(date.today()),
                    timeout=settings.timeout_s,
                    limit=0,  # only the count is wanted; identifiers are not decoded
                )
            if find.state == "timeout" and lag_explains_timeout(
                find_lag.late_ms, settings.timeout_s
            ):
                # Our loop, not the archive's database: not remembered, still due.
                detail = unreliable_detail(find_lag.late_ms, f"the C-FIND ({find.detail})")
                return ProbeResult.unreliable(
                    "ok", _with_tls_note(detail, mode), find_lag.late_ms,
                    latency_ms=echo.latency_ms, tls=mode, **track.facts(),
                )  # fmt: skip
            phase = zlib.crc32(server.name.encode()) % settings.find_every
            track.ran(find, settings.find_every, phase)
        return self._ok_result(echo, track, fresh=due, tls=mode, lag_ms=lag_ms)

    def _first_echo(
        self, echo: DicomOutcome, track: _FindTrack, *, tls: str, lag_ms: float
    ) -> ProbeResult:
        """The first poll's reading of a C-FIND server: UNKNOWN until its C-FIND, unless worse."""
        result = self._ok_result(echo, track, fresh=False, tls=tls, lag_ms=lag_ms)
        if result.health is not Health.OK:
            return result  # slow even net of our lag, or unreliable: said as such
        detail = f"{result.detail}; C-FIND not run yet (kept off the first sweep)"
        return ProbeResult.follow_up("ok", detail, latency_ms=echo.latency_ms, **result.facts)

    def _ok_result(
        self, echo: DicomOutcome, track: _FindTrack, *, fresh: bool, tls: str, lag_ms: float
    ) -> ProbeResult:
        health = Health.OK
        notes = [f"echo ok in {echo.latency_ms:.1f} ms"]
        if echo.detail != "echo ok":  # e.g. "echo ok (release not confirmed within 1 s)"
            notes.append(
                echo.detail.removeprefix("echo ok").strip().removeprefix("(").removesuffix(")")
            )
        verdict = judge_latency(echo.latency_ms, self.settings.slow_ms, lag_ms)
        unreliable = ""
        if verdict.verdict == "slow":
            health = Health.DEGRADED
            notes.append(verdict.describe("echo"))
        elif verdict.verdict == "unreliable":
            # Not the peer's slowness, and no proof it is fast: UNKNOWN, taken again.
            health = Health.UNKNOWN
            unreliable = verdict.describe("echo")
            notes.append(unreliable)
        facts: dict[str, Any] = {**track.facts(), LAG_FACT: round(lag_ms, 1)}
        find = track.last
        if find is not None:
            age = "" if fresh else f" ({facts['find_age_s']:.0f} s ago)"
            if find.state == "ok":
                notes.append(f"C-FIND {find.detail} in {find.latency_ms:.0f} ms{age}")
            else:
                health = Health.DEGRADED  # a real fault, whatever our lag did to the echo
                notes.append(f"{_find_failure(find)}{age}")
        detail = _with_tls_note("; ".join(notes), tls)
        if health is Health.UNKNOWN:
            return ProbeResult.unreliable(
                "ok", detail, lag_ms, latency_ms=echo.latency_ms, tls=tls, **facts
            )
        return ProbeResult.make(
            "ok", health, latency_ms=echo.latency_ms, detail=detail, tls=tls, **facts
        )


def _with_tls_note(detail: str, tls: str) -> str:
    """``detail`` plus "TLS NOT VERIFIED" when verification is off, as the BMCs show it."""
    return f"{detail}; TLS NOT VERIFIED" if tls == "UNVERIFIED" else detail


def _find_failure(find: FindOutcome) -> str:
    """A failed C-FIND as one phrase that starts with "C-FIND"."""
    if find.detail.startswith("C-FIND"):
        return find.detail  # "C-FIND failed: status 0xC001: archive database unavailable"
    if find.detail.startswith(find.state):
        return f"C-FIND {find.detail}"  # "C-FIND rejected: calling AE title not recognized ..."
    return f"C-FIND {find.state}: {find.detail}"
