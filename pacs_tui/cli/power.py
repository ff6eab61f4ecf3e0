"""``pacs-tui power off|on|restart|force-off``: the batch engine for scripts.

Same engine as the control room: plan (waves, refusal of unsafe plans),
optional dry run, typed confirmation, gated run, audit log. Exit 0 only if
every selected server reached its target, 1 otherwise (including a declined
confirmation), 2 for bad input, a refused plan or a read-only session.

Before its plan it names every interrupted batch in the audit log (a batch
whose process was killed mid-run) and, for their servers this command reads
anyway, the PowerState just read from their BMCs. SIGINT and SIGTERM abort a
running batch (no new step; calls in flight finish; audited) and then log
out; before the run they stop the command with nothing sent (exit 128+N).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pacs_tui.cli import EXIT_OK, EXIT_UNHEALTHY, EXIT_USAGE, load_fleet, select_servers
from pacs_tui.cli.power_baseline import NO_DRAWS

if TYPE_CHECKING:
    from pacs_tui.cli.signals import SignalStop

GATE_PROBES = {"power", "ssh", "dicom"}
RACK_POWER_PROBE = "rack-power"


def register(subparsers: Any) -> None:
    """Add the ``power`` subcommand."""
    p = subparsers.add_parser(
        "power",
        help="power servers off/on/restart in dependency waves (gated, audited)",
        description=(
            "Power the selected servers off, on, restart them or force them off, in waves "
            "derived from depends_on; each power-on wave waits for its health gate. "
            "Exit 0 only if every server reached its target, 1 otherwise, 2 on bad input, "
            "a refused plan or a read-only session."
        ),
    )
    p.add_argument("verb", choices=("off", "on", "restart", "force-off"), help="what to do")
    p.add_argument("--inventory", "-i", type=Path, required=True, help="inventory YAML file")
    p.add_argument("--select", "-s", required=True, help="selector expression, e.g. 'site=dc-main'")
    p.add_argument("--dry-run", action="store_true", help="show every wave and call; send nothing")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for typed confirmation")
    p.add_argument(
        "--escalate-after",
        type=float,
        metavar="SECONDS",
        help="ForceOff a server whose OS has not powered off this long after the shutdown",
    )
    p.add_argument(
        "--override-dependents",
        action="store_true",
        help="power off even though unselected dependents are on (audited)",
    )
    p.add_argument(
        "--include-unknown", action="append", default=[], metavar="SERVER",
        help="act on SERVER although its PowerState is unknown (repeatable; 'all' for every "
        "such server; audited). Without it such servers are left out",
    )  # fmt: skip
    p.add_argument("--json", action="store_true", help="JSON lines: events, then the result")
    p.add_argument("--read-only", action="store_true", help="read-only session: refuse to act")
    p.add_argument(
        "--timeout", type=float, default=300.0, metavar="SECONDS",
        help="wait this long for a PowerState after a reset (default 300)",
    )  # fmt: skip
    p.add_argument(
        "--gate-timeout", type=float, default=600.0, metavar="SECONDS",
        help="wait this long for a powered-on server's health gate (default 600)",
    )  # fmt: skip
    p.add_argument(
        "--gate", default="", metavar="ROLE=CHECKS;...",
        help="gate checks per role, e.g. 'web-viewer=power+ssh;storage=power' "
        "(checks: power, ssh, services, dicom; default: all that apply)",
    )  # fmt: skip
    p.add_argument("--concurrency", type=int, default=32, help="servers at once per wave (32)")
    p.add_argument(
        "--on-failure", choices=("halt", "leave-out"), default="halt",
        help="a failed server halts the batch (default) or is left out with its dependents",
    )  # fmt: skip
    p.add_argument("--poll", type=float, default=1.0, help="seconds between re-reads (1)")
    p.add_argument(
        "--confirm-threshold", type=int, default=5,
        help="ask for the typed count above this many servers (default 5)",
    )  # fmt: skip
    p.add_argument(
        "--baseline", type=Path, metavar="FILE",
        help="a baseline (baseline capture) whose measured draw per server gives the expected "
        "boot peaks when racks have power budgets (else nameplate_w)",
    )  # fmt: skip
    p.add_argument(
        "--settle-timeout", type=float, default=300.0, metavar="SECONDS",
        help="racks with budgets: wait this long for a powered-on server's draw to settle "
        "before the next group of its rack (default 300)",
    )  # fmt: skip
    p.add_argument(
        "--settle-poll", type=float, default=5.0, metavar="SECONDS",
        help="racks with budgets: read a powering-on server's draw this often (default 5)",
    )  # fmt: skip
    p.add_argument(
        "--no-stop-units", action="store_true",
        help="do not stop the PACS units over SSH before an OS shutdown",
    )  # fmt: skip
    p.set_defaults(handler=run_power)


def _error(message: str) -> int:
    print(f"pacs-tui power: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def run_power(args: argparse.Namespace) -> int:
    """Check the input, then plan and run in an event loop."""
    from pacs_tui.batch.gates import GatePolicy, parse_gate_spec
    from pacs_tui.batch.plan import PlanOptions
    from pacs_tui.session import Session

    for name in ("timeout", "gate_timeout", "poll", "settle_timeout", "settle_poll"):
        if getattr(args, name) <= 0:
            return _error(f"--{name.replace('_', '-')} must be > 0")
    if args.escalate_after is not None and args.escalate_after <= 0:
        return _error("--escalate-after must be > 0")
    if args.concurrency < 1:
        return _error("--concurrency must be at least 1")
    if args.confirm_threshold < 0:
        return _error("--confirm-threshold must be >= 0")
    try:
        by_role = parse_gate_spec(args.gate)
    except ValueError as exc:
        return _error(f"--gate: {exc}")
    inventory = load_fleet(args.inventory)
    session = Session(inventory, read_only=args.read_only)
    if session.read_only:
        return _error(f"refused: {session.read_only_reason}; power commands are disabled")
    servers = select_servers(inventory, args.select)
    baseline_w: dict[str, float] = {}
    if args.baseline is not None:
        from pacs_tui.baseline.model import BaselineError, power_draws

        try:
            baseline_w = power_draws(args.baseline)
        except BaselineError as exc:
            return _error(f"--baseline: {exc}")
        if not baseline_w:
            print(NO_DRAWS.format(flag="--baseline", path=args.baseline), file=sys.stderr)
    options = PlanOptions(
        escalate_after_s=args.escalate_after,
        override_dependents=args.override_dependents,
        power_timeout_s=args.timeout,
        gate=GatePolicy(by_role=by_role, timeout_s=args.gate_timeout, poll_s=args.poll),
        stop_units=not args.no_stop_units,
        include_unknown=frozenset("*" if n == "all" else n for n in args.include_unknown),
        baseline_w=baseline_w,
        baseline_given=args.baseline is not None,
        settle_timeout_s=args.settle_timeout,
        settle_poll_s=args.settle_poll,
    )
    unknown_names = set(args.include_unknown) - {"all"} - {s.name for s in servers}
    if unknown_names:
        return _error(f"--include-unknown: not selected: {', '.join(sorted(unknown_names))}")
    from pacs_tui.cli.signals import run_until_signalled

    return asyncio.run(
        run_until_signalled(lambda stop: _power(args, session, servers, options, stop))
    )


async def _power(
    args: argparse.Namespace, session: Any, servers: list[Any], options: Any, stop: SignalStop
) -> int:
    from pacs_tui.batch.readings import MonitorReadings
    from pacs_tui.monitor import FleetMonitor
    from pacs_tui.plugin_catalog import load_probes

    inventory = session.inventory
    budgets = args.verb in ("on", "restart") and bool(inventory.racks)
    # Racks with power budgets: their servers' draw is read to plan and to settle.
    loaded = load_probes(GATE_PROBES | ({RACK_POWER_PROBE} if budgets else set()))
    for name, reason in loaded.failed.items():
        print(f"pacs-tui power: warning: probe {name} failed to load: {reason}", file=sys.stderr)
    if "power" not in loaded.plugins:
        return _error("the power probe plugin is not available: PowerState cannot be verified")
    wanted = {s.name for s in servers}
    wanted.update(d.name for s in servers for d in inventory.dependents(s.name))
    if budgets:
        racks = {s.rack for s in servers if s.rack in inventory.racks}
        wanted.update(s.name for s in inventory.servers if s.rack in racks)
    watched = [s for s in inventory.servers if s.name in wanted]
    monitor = FleetMonitor(inventory, probes=list(loaded.plugins.values()), servers=watched)
    async with monitor:
        readings = MonitorReadings(monitor)
        await session.open()
        try:
            return await _plan_and_run(args, session, servers, options, readings, stop)
        finally:
            await session.close()


async def _plan_and_run(
    args: argparse.Namespace,
    session: Any,
    servers: list[Any],
    options: Any,
    readings: Any,
    stop: SignalStop,
) -> int:
    from pacs_tui.batch.confirm import Confirmation, ConfirmationRule
    from pacs_tui.batch.dry_run import dry_run_lines
    from pacs_tui.batch.interrupted import interrupted_in
    from pacs_tui.batch.plan import PlanError
    from pacs_tui.batch.runner import FailurePolicy
    from pacs_tui.cli.signals import read_line

    for name, reason in session.failed_actions.items():
        print(f"pacs-tui power: warning: action {name} unavailable: {reason}", file=sys.stderr)
    interrupted = interrupted_in(session.audit)
    for item in interrupted:
        print(f"pacs-tui power: warning: {item.line()}", file=sys.stderr, flush=True)
    try:
        plan, batch = await session.plan(
            servers, args.verb, readings, options, selection=args.select, dry_run=args.dry_run
        )
    except PlanError as exc:
        return _error(str(exc))
    _print_states_now(interrupted, plan)
    if args.dry_run:
        if args.json:
            interrupted_json = [i.to_json() for i in interrupted]
            print(
                json.dumps(
                    {
                        "kind": "plan",
                        "batch": batch,
                        **plan.to_json(),
                        "interrupted": interrupted_json,
                    }
                )
            )
        else:
            print("\n".join(dry_run_lines(plan)))
        return EXIT_USAGE if plan.refused else EXIT_OK
    if plan.refused:
        if args.json:
            print(json.dumps({"kind": "refused", "batch": batch, "reasons": list(plan.refusals)}))
        for reason in plan.refusals:
            print(f"pacs-tui power: refused: {reason}", file=sys.stderr)
        for hint in plan.hints:
            print(f"pacs-tui power: hint: {hint}", file=sys.stderr)
        print("pacs-tui power: nothing was sent", file=sys.stderr)
        return EXIT_USAGE
    rule = ConfirmationRule(args.confirm_threshold)
    confirmation = None
    if rule.required(plan):
        if args.yes:
            confirmation = Confirmation.assumed(plan)
        else:
            if not args.json:
                print("\n".join(dry_run_lines(plan)[1:]), file=sys.stderr)
            print(rule.prompt(plan), end="", file=sys.stderr, flush=True)
            try:
                confirmation = Confirmation(await read_line())
            except asyncio.CancelledError:
                why = stop.received.name if stop.received is not None else "cancelled"
                session.audit.record(
                    batch, "abort", verb=plan.verb, outcome="stopped",
                    detail=f"{why} at the confirmation prompt; nothing was sent",
                )  # fmt: skip
                print(f"\npacs-tui power: {why}: stopped; nothing was sent", file=sys.stderr)
                raise
        accepted = confirmation.matches(plan)
        session.record_confirmation(plan, batch, confirmation, accepted)
        if not accepted:
            print("pacs-tui power: not confirmed; nothing was sent", file=sys.stderr)
            return EXIT_UNHEALTHY
    runner = session.runner(
        plan,
        readings,
        batch_id=batch,
        confirmation=confirmation,
        confirm_rule=rule,
        concurrency=args.concurrency,
        on_failure=FailurePolicy(args.on_failure),
        poll_s=args.poll,
    )
    runner.subscribe(_json_printer if args.json else _text_printer)

    def on_signal(sig: signal.Signals) -> None:
        print(f"pacs-tui power: {sig.name}: aborting (in-flight calls finish, then logout; "
              "the same signal again kills)", file=sys.stderr, flush=True)  # fmt: skip
        runner.abort(f"{sig.name}: stopped (no new step; in-flight calls finish)")

    with stop.divert(on_signal):
        result = await runner.run()
    if args.json:
        print(json.dumps(result.to_json()), flush=True)
    else:
        _print_result(result)
    return EXIT_OK if result.ok else EXIT_UNHEALTHY


def _print_states_now(interrupted: list[Any], plan: Any) -> None:
    """PowerState just read for the servers interrupted batches left not at target."""
    read = {sp.server.name: sp.power_state for sp in plan.servers}
    for item in interrupted:
        known = [n for n in item.not_reached if n in read]
        if known:
            states = ", ".join(f"{n} {read[n]}" for n in known)
            print(
                f"pacs-tui power: warning: batch {item.batch} servers now (read from their "
                f"BMCs): {states}",
                file=sys.stderr,
                flush=True,
            )


def _json_printer(event: Any) -> None:
    print(json.dumps(event.to_json()), flush=True)


def _text_printer(event: Any) -> None:
    eta = f", ETA {event.eta_s:.0f} s" if event.eta_s else ""
    if event.kind == "wave-start":
        line = f"wave {event.wave}/{event.waves}: {event.detail}"
    elif event.kind in ("step", "retry"):
        line = f"  {event.server}: {event.call} -> {event.outcome}"
        if event.detail:
            line += f" ({event.detail})"
    elif event.kind == "server":
        line = (
            f"  {event.server}: {event.outcome.upper()} {event.detail} "
            f"[{event.wave_done}/{event.wave_total} of wave {event.wave}, "
            f"{event.done}/{event.total} of all{eta}]"
        )
    elif event.kind == "group-start":
        line = f"  {event.outcome} of wave {event.wave}: {event.detail}"
    elif event.kind == "wave-end":
        line = f"wave {event.wave} done: {event.outcome} ({event.detail})"
    elif event.kind == "batch-start":
        line = f"batch {event.batch}: {event.detail}"
    elif event.kind == "batch-end":
        return
    else:
        line = f"{event.kind}: {event.outcome} {event.detail}".rstrip()
    print(line, flush=True)


def _print_result(result: Any) -> None:
    counts = ", ".join(f"{v} {k}" for k, v in sorted(result.counts().items()))
    state = "OK" if result.ok else "INCOMPLETE"
    print(f"{state}: {counts} in {result.elapsed_s:.1f} s (batch {result.batch})")
    for server in result.servers.values():
        if server.status not in ("reached", "skipped"):
            print(f"  {server.server}: {server.status}: {server.detail}")
    for line in result.stranded_lines():
        print(f"WARNING: {line}")
