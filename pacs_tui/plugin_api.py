"""The plugin contracts: probes that read a server's state, actions that change it.

A plugin is a class registered under the entry-point group ``pacs_tui.probes``
or ``pacs_tui.actions``. The built-in plugins in ``plugins/`` register exactly
like a third-party package would. The core only talks to these classes, so a
new probe needs no change anywhere else.

Writing a probe::

    class UptimeProbe(Probe):
        name = "uptime"
        interval_s = 30.0

        def applies_to(self, server: Server) -> bool:
            return server.ssh is not None

        async def probe(self, server: Server) -> ProbeResult:
            ...
            return ProbeResult.make("ok", Health.OK, latency_ms=3.2, detail="up 4 days")

and in the plugin's ``pyproject.toml``::

    [project.entry-points."pacs_tui.probes"]
    uptime = "my_package.probe:UptimeProbe"

A probe that judges a latency against a limit judges it net of our own event
loop's lag (``pacs_tui.loop_lag``): a peer is never slow or failed because this
process was busy::

    with measure_loop_lag() as lag:
        answer = await exchange()
    verdict = judge_latency(answer.latency_ms, limit_ms, lag.late_ms)
    if verdict.verdict == "unreliable":
        return ProbeResult.unreliable("ok", verdict.describe("echo"), lag.late_ms)
"""

from __future__ import annotations

import abc
import time
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar

# Our own lag, for probes that time an exchange (re-exported: plugins import only this module).
from pacs_tui.loop_lag import LAG_FACT as LAG_FACT
from pacs_tui.loop_lag import UNRELIABLE_FACT as UNRELIABLE_FACT
from pacs_tui.loop_lag import LagWindow as LagWindow
from pacs_tui.loop_lag import LatencyVerdict as LatencyVerdict
from pacs_tui.loop_lag import judge_latency as judge_latency
from pacs_tui.loop_lag import lag_explains_timeout as lag_explains_timeout
from pacs_tui.loop_lag import measure_loop_lag as measure_loop_lag
from pacs_tui.loop_lag import unreliable_detail as unreliable_detail

if TYPE_CHECKING:
    from pacs_tui.inventory import Inventory, Server

# True while the scheduler runs a (server, probe) pair's first poll (set by the
# core's scheduler only; plugins read it through ``first_poll()``).
FIRST_POLL: ContextVar[bool] = ContextVar("pacs_tui_first_poll", default=False)
# A reading that left an expensive check for the next poll carries this fact (why).
FOLLOW_UP_FACT = "follow_up"


def first_poll() -> bool:
    """True while the scheduler runs this (server, probe) pair's first poll.

    The first polls of a fleet are its first sweep's rush (handshakes, logins);
    a probe may keep an expensive check (a C-FIND) off it and return
    ``ProbeResult.follow_up``: the scheduler polls it again soon, and a one-off
    sweep does so at its end. False outside the scheduler (direct calls, tests).
    """
    return FIRST_POLL.get()


PROBE_GROUP = "pacs_tui.probes"
ACTION_GROUP = "pacs_tui.actions"


class Health(StrEnum):
    """How healthy one reading is, across every probe; drives colours and counts."""

    OK = "ok"
    DEGRADED = "degraded"  # answers, but something is wrong (slow, a unit failed)
    DOWN = "down"  # the endpoint itself does not answer or refuses
    UNREACHABLE = "unreachable"  # cannot tell: a parent it depends on is down
    STALE = "stale"  # the last reading is older than 3 intervals
    UNKNOWN = "unknown"  # not read yet, or the probe failed to run

    @property
    def rank(self) -> int:
        """Severity for sorting and roll-ups (higher is worse)."""
        return _RANK[self]


_RANK = {
    Health.OK: 0,
    Health.UNKNOWN: 1,
    Health.STALE: 2,
    Health.DEGRADED: 3,
    Health.UNREACHABLE: 4,
    Health.DOWN: 5,
}


@dataclass(frozen=True)
class ProbeResult:
    """One reading of one probe on one server.

    ``state`` is the probe's own word (the power probe uses Redfish
    ``PowerState`` words, others use ``ok``/``rejected``/``refused``/...);
    ``health`` is the shared scale. ``facts`` carries what other parts need
    (e.g. a BMC's allowed reset types); it must never hold a secret.
    """

    state: str
    health: Health
    latency_ms: float | None = None
    detail: str = ""
    observed_at: float = field(default_factory=time.time)
    facts: Mapping[str, Any] = field(default_factory=dict)

    @property
    def endpoint_failed(self) -> bool:
        """The endpoint did not give a usable answer (what backoff is for).

        A BMC that answers "Off" is working fine: the probe marks such results
        with ``facts["endpoint_answered"] = True`` so they are not backed off.
        Nor is a reading our own lag spoiled (``measurement_unreliable``).
        """
        if self.facts.get("endpoint_answered") or self.measurement_unreliable:
            return False  # an answer, or our own lag: no reason to back off
        if self.wants_follow_up:
            return False  # it answered; a check was left for the next poll
        return self.health in (Health.DOWN, Health.UNREACHABLE, Health.UNKNOWN)

    @property
    def measurement_unreliable(self) -> bool:
        """The reading could not be taken fairly because of us (our loop, our queue).

        Such a reading is UNKNOWN, never DEGRADED or DOWN; a one-off sweep takes it again.
        """
        return bool(self.facts.get(UNRELIABLE_FACT))

    @property
    def wants_follow_up(self) -> bool:
        """A check was kept off this (first) poll: the reading is UNKNOWN until the next."""
        return bool(self.facts.get(FOLLOW_UP_FACT))

    @classmethod
    def follow_up(
        cls, state: str, detail: str, *, latency_ms: float | None = None, **facts: Any
    ) -> ProbeResult:
        """An UNKNOWN reading whose expensive check waits for the next poll (``detail``: which).

        ``facts["follow_up"]`` is the detail; the scheduler polls such a reading
        again soon, and a one-off sweep at its end.
        """
        return cls(
            state,
            Health.UNKNOWN,
            latency_ms,
            detail,
            time.time(),
            {**facts, FOLLOW_UP_FACT: detail},
        )

    @classmethod
    def unreliable(
        cls,
        state: str,
        detail: str,
        lag_ms: float | None = None,
        *,
        latency_ms: float | None = None,
        **facts: Any,
    ) -> ProbeResult:
        """An UNKNOWN reading that our own lag or queue spoiled (``detail`` says how).

        ``lag_ms``: how late our event loop ran during the measurement (ms), kept
        in ``facts["loop_lag_ms"]``; ``facts["measurement_unreliable"]`` is the detail.
        """
        extra: dict[str, Any] = {UNRELIABLE_FACT: detail}
        if lag_ms is not None:
            extra[LAG_FACT] = round(lag_ms, 1)
        return cls(state, Health.UNKNOWN, latency_ms, detail, time.time(), {**facts, **extra})

    @classmethod
    def make(
        cls,
        state: str,
        health: Health,
        *,
        latency_ms: float | None = None,
        detail: str = "",
        **facts: Any,
    ) -> ProbeResult:
        """Shorthand used by plugins: extra keyword arguments become ``facts``."""
        return cls(state, health, latency_ms, detail, time.time(), facts)


@dataclass(frozen=True)
class ProbeContext:
    """What the core hands a plugin when it opens: the inventory and settings.

    Secrets are resolved by the plugin when it needs them, through
    ``pacs_tui.credentials.resolve(context.inventory, reference)``.
    """

    inventory: Inventory
    settings: Mapping[str, Any] = field(default_factory=dict)


class Probe(abc.ABC):
    """Reads one aspect of a server's state. One instance serves the whole fleet.

    The scheduler calls ``open`` once, then ``probe`` for each applicable
    server at ``interval_s`` (never two at a time for the same server), and
    ``close`` at exit. ``probe`` must not raise for an unhealthy endpoint:
    return a result that says what is wrong. An exception is caught by the
    scheduler and shown as UNKNOWN with the error, never crashing the app.
    """

    name: ClassVar[str]
    # Plain attributes (not ClassVar): ``open`` may set them from settings.
    interval_s: float = 5.0
    timeout_s: float = 5.0

    async def open(self, context: ProbeContext) -> None:  # noqa: B027 - optional hook
        """Prepare shared resources (HTTP sessions, connection pools)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release what ``open`` prepared (log out of BMCs, close connections)."""

    @abc.abstractmethod
    def applies_to(self, server: Server) -> bool:
        """Whether this server has what the probe reads (e.g. a DICOM endpoint)."""

    def endpoint(self, server: Server) -> str:
        """The key of the device the probe talks to; the per-endpoint cap counts it."""
        return f"host:{server.name}"

    @abc.abstractmethod
    async def probe(self, server: Server) -> ProbeResult:
        """Read the state now."""


@dataclass(frozen=True)
class ActionStep:
    """One call an action will make, shown in dry runs and written to the audit log.

    ``verb`` is the action's own operation word (a Redfish ResetType such as
    ``ForceOff``, or ``stop-units`` / ``shutdown`` for SSH). ``call`` is the
    exact call for people (method and URL, or the SSH command line and login);
    ``params`` is what ``run`` needs to make it. Neither may hold a secret.
    """

    server: str
    verb: str
    call: str  # e.g. "POST https://.../Actions/ComputerSystem.Reset ResetType=ForceOff"
    target: str  # what the step waits for, e.g. "PowerState=Off"
    action: str = ""  # name of the action plugin that runs the step
    params: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ActionOutcome:
    """What happened when a step ran.

    ``transient`` marks a failure that certainly did nothing and is worth
    retrying (503, a connection that could not be opened); the batch runner
    retries it with backoff, waiting at least ``retry_after_s`` when the
    device named a delay (``Retry-After``). ``unknown`` marks a call that was
    sent but not answered (timeout, dropped connection): the device may have
    carried it out, so the runner never sends it again blindly and reads the
    state back instead. A rejection (409, 400, a refused host key) is neither.
    """

    ok: bool
    detail: str
    facts: Mapping[str, Any] = field(default_factory=dict)
    transient: bool = False
    retry_after_s: float | None = None
    unknown: bool = False


class Action(abc.ABC):
    """Changes a server's state (power, services). Only a batch runner calls actions.

    ``dangerous`` actions always need typed confirmation. A read-only session
    never builds a runner nor loads action plugins, so no action can be
    reached from it (see ``pacs_tui.session``).

    The batch planner asks ``steps`` for the calls of each operation, passing
    ``facts`` read by the probes (for Redfish: ``reset_types``,
    ``reset_target``, ``system_path``), so plans and dry runs show exact
    URLs. The runner calls ``run`` once per step (again only for a
    ``transient`` failure, never for an ``unknown`` outcome) and never trusts
    its answer alone: it re-reads the state the step aims at through the
    probes.

    Writing an action::

        class IpmiPowerAction(Action):
            name = "ipmi-power"
            verbs = frozenset({"On", "ForceOff"})

            def applies_to(self, server, verb):
                return verb in self.verbs and "ipmi" in server.tags

            def steps(self, server, verb, facts=None):
                return [ActionStep(server.name, verb, f"ipmitool chassis power {verb}",
                                   "PowerState", action=self.name)]

            async def run(self, step):
                ...
                return ActionOutcome(True, "accepted")
    """

    name: ClassVar[str]
    verbs: ClassVar[frozenset[str]]
    dangerous: ClassVar[bool] = False

    async def open(self, context: ProbeContext) -> None:  # noqa: B027 - optional hook
        """Prepare shared resources (HTTP sessions, connection pools)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release shared resources (log out, close connections)."""

    @abc.abstractmethod
    def applies_to(self, server: Server, verb: str) -> bool:
        """Whether this action can carry out ``verb`` on ``server``."""

    @abc.abstractmethod
    def steps(
        self, server: Server, verb: str, facts: Mapping[str, Any] | None = None
    ) -> list[ActionStep]:
        """The calls ``verb`` would make on ``server`` (for plans and dry runs); no I/O."""

    @abc.abstractmethod
    async def run(self, step: ActionStep) -> ActionOutcome:
        """Make one call; return its outcome (raise only for a bug)."""
