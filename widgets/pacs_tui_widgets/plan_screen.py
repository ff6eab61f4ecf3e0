"""The plan screen: what a batch would do, and the operator's confirmation.

Shown before anything is sent: the verb and selection, the waves, every
call of the dry run, the refusals with their reasons, the dependents
override (audited) and the escalation setting. ``enter`` runs, ``escape``
cancels (audited as declined), ``ctrl+t`` keeps it a dry run. A batch above
the confirmation threshold, and every force-off, needs the server count
typed; a wrong count is audited as declined and nothing is sent.

The screen never builds runners itself: it dismisses with a
``PlanDecision`` and the app asks the session for the runner, which checks
the confirmation once more.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import ClassVar

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Input, Static

from pacs_tui.batch.confirm import Confirmation, ConfirmationRule
from pacs_tui.batch.dry_run import dry_run_lines
from pacs_tui.batch.plan import FORCE_OFF, OFF, POWERING_OFF_VERBS, RESTART, BatchPlan, PlanOptions
from pacs_tui_widgets.modal import Modal

VERB_TITLES = {
    "off": "Power OFF (graceful shutdown)",
    "on": "Power ON",
    "restart": "RESTART",
    "force-off": "FORCE OFF (cut power, no OS shutdown)",
}

_SHOWN_ABOVE = ("selection:", "REFUSED:", "OVERRIDDEN:", "  hint:")

Replan = Callable[[PlanOptions], Awaitable[tuple[BatchPlan, str]]]
RecordConfirmation = Callable[[BatchPlan, str, Confirmation | None, bool], None]


@dataclass(frozen=True)
class PlanDecision:
    """What the operator chose: run the plan (with its confirmation) or a dry run."""

    plan: BatchPlan
    batch: str
    dry_run: bool = False
    confirmation: Confirmation | None = None


def wave_lines(plan: BatchPlan) -> list[str]:
    """``wave n: server, server`` for each wave (skipped servers marked)."""
    lines = []
    for wave in plan.waves:
        names = [
            f"{sp.server.name} (skip: {sp.skip_reason})" if sp.skipped else sp.server.name
            for sp in wave.servers
        ]
        lines.append(f"wave {wave.index}: {', '.join(names)}")
    return lines


class PlanScreen(Modal[PlanDecision | None]):
    """A batch plan, its dry-run calls, and the confirmation."""

    DEFAULT_CSS = """
    PlanScreen { align: center middle; }
    PlanScreen > Vertical {
        width: 110; max-width: 96%; height: 90%;
        background: $panel; border: thick $warning; padding: 0 1;
    }
    PlanScreen.-force-off > Vertical { border: thick $state-down; }
    PlanScreen #plan-title { text-style: bold; color: $warning; }
    PlanScreen.-force-off #plan-title { color: $state-down; }
    PlanScreen #plan-body { height: 1fr; border-top: solid $primary; }
    PlanScreen .plan-heading { text-style: bold; color: $accent; margin-top: 1; }
    PlanScreen #plan-refusals { color: $state-down; text-style: bold; }
    PlanScreen #plan-overridden { color: $warning; }
    PlanScreen #plan-calls { color: $foreground; }
    PlanScreen .plan-row { height: auto; }
    PlanScreen .plan-row Static { width: auto; padding: 1 1 0 0; }
    PlanScreen Input { width: 16; }
    PlanScreen #plan-message { color: $state-down; text-style: bold; height: auto; }
    PlanScreen #plan-buttons { height: 3; align-horizontal: right; }
    PlanScreen #plan-buttons Button { margin-left: 1; }
    """

    AUTO_FOCUS = None  # enter must reach the screen's binding, not a button

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "run", "Run the batch", id="plan.run"),
        Binding("escape", "cancel", "Cancel (audited as declined)", id="plan.cancel"),
        Binding("ctrl+t", "dry_run", "Dry run only: send nothing", id="plan.dry_run"),
        Binding(
            "ctrl+o", "override", "Override unselected dependents (audited)", id="plan.override"
        ),
    ]

    def __init__(
        self,
        plan: BatchPlan,
        batch: str,
        *,
        rule: ConfirmationRule,
        replan: Replan,
        record: RecordConfirmation,
    ) -> None:
        """``replan`` rebuilds (and audits) the plan with other options; ``record``
        audits a confirmation (``Session.record_confirmation``)."""
        super().__init__()
        self.plan = plan
        self.batch_id = batch
        self.rule = rule
        self._replan = replan
        self._record = record
        self.busy = False
        self.set_class(plan.verb == FORCE_OFF, "-force-off")

    # -- layout ------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(id="plan-title")
            with VerticalScroll(id="plan-body"):
                yield Static("Waves", classes="plan-heading")
                yield Static(id="plan-waves")
                yield Static(id="plan-refusals")
                yield Static(id="plan-overridden")
                yield Static("Calls (dry run: nothing has been sent)", classes="plan-heading")
                yield Static(id="plan-calls")
            yield Static(id="plan-override")
            with Horizontal(classes="plan-row", id="plan-escalation-row"):
                yield Static("ForceOff if not Off after (seconds; empty: never):")
                yield Input(
                    self._escalation_text(), placeholder="never", type="number",
                    id="plan-escalate", select_on_focus=False,
                )  # fmt: skip
            with Horizontal(classes="plan-row", id="plan-confirm-row"):
                yield Static(id="plan-prompt")
                yield Input(placeholder="count", id="plan-confirm", select_on_focus=False)
            yield Static(id="plan-message")
            with Horizontal(id="plan-buttons"):
                yield Button("Run (enter)", variant="error", id="plan-run")
                yield Button("Dry run only (ctrl+t)", id="plan-dry-run")
                yield Button("Cancel (escape)", id="plan-cancel")

    def on_mount(self) -> None:
        self.show_plan()
        if self.rule.required(self.plan):
            self.query_one("#plan-confirm", Input).focus()

    def _escalation_text(self) -> str:
        value = self.plan.options.escalate_after_s
        return "" if value is None else f"{value:g}"

    def show_plan(self) -> None:
        """Draw the current plan (after mounting and after every re-plan)."""
        plan = self.plan
        count = len(plan.touched)
        self.query_one("#plan-title", Static).update(
            f"{VERB_TITLES.get(plan.verb, plan.verb)} · {count} server(s) · "
            f"{len(plan.waves)} wave(s) · batch {self.batch_id}\n"
            f"selection: {escape(plan.selection or '-')}\n{escape(plan.summary())}"
        )
        self.query_one("#plan-waves", Static).update(escape("\n".join(wave_lines(plan))))
        refusals = self.query_one("#plan-refusals", Static)
        refusals.display = plan.refused
        refusals.update(
            escape(
                "REFUSED — nothing can run:\n"
                + "\n".join(f"  ✖ {reason}" for reason in plan.refusals)
                + "".join(f"\n  → {hint}" for hint in plan.hints)
            )
        )
        overridden = self.query_one("#plan-overridden", Static)
        overridden.display = bool(plan.overridden)
        overridden.update(
            escape(
                "Dependents overridden (audited):\n"
                + "\n".join(f"  ! {reason}" for reason in plan.overridden)
            )
        )
        # Summary, selection and refusals are shown above: keep only waves and calls.
        calls = [line for line in dry_run_lines(plan)[1:] if not line.startswith(_SHOWN_ABOVE)]
        self.query_one("#plan-calls", Static).update(escape("\n".join(calls)))
        override = self.query_one("#plan-override", Static)
        override.display = plan.verb in POWERING_OFF_VERBS
        state = "ON" if plan.options.override_dependents else "off"
        override.update(
            f"override unselected dependents: [b]{state}[/b]  (ctrl+o toggles; audited)"
        )
        self.query_one("#plan-escalation-row").display = plan.verb in (OFF, RESTART)
        required = self.rule.required(plan)
        self.query_one("#plan-confirm-row").display = required
        self.query_one("#plan-prompt", Static).update(escape(self.rule.prompt(plan)))
        self.query_one("#plan-run", Button).disabled = plan.refused

    def say(self, text: str) -> None:
        """Show a message (an error or what happened) above the buttons."""
        self.query_one("#plan-message", Static).update(escape(text))

    # -- choices -----------------------------------------------------------------

    def action_run(self) -> None:
        """Run the plan if it is allowed and confirmed."""
        if self.busy:
            self.say("re-reading power states… wait for the updated plan")
            return
        if self.plan.refused:
            self.say("refused: nothing was sent (select the dependents too, or ctrl+o)")
            return
        valid, escalation = self._escalation_input()
        if not valid:
            return
        if escalation != self.plan.options.escalate_after_s and self.plan.verb in (OFF, RESTART):
            # Never run a plan the operator has not seen: show the new one first.
            self._start_replan(replace(self.plan.options, escalate_after_s=escalation))
            return
        if self.rule.required(self.plan):
            answer = self.query_one("#plan-confirm", Input)
            confirmation = Confirmation(answer.value, "typed")
            if not confirmation.matches(self.plan):
                self._record(self.plan, self.batch_id, confirmation, False)
                self.say(
                    f"wrong count {answer.value.strip() or '(empty)'!r}: not confirmed, "
                    f"nothing was sent; type {self.rule.expected(self.plan)}"
                )
                answer.value = ""
                return
            self._record(self.plan, self.batch_id, confirmation, True)
            self.dismiss(PlanDecision(self.plan, self.batch_id, confirmation=confirmation))
            return
        self._record(self.plan, self.batch_id, Confirmation("", "enter"), True)
        self.dismiss(PlanDecision(self.plan, self.batch_id))

    def action_cancel(self) -> None:
        """Send nothing; the audit log records the plan as declined."""
        self._record(self.plan, self.batch_id, Confirmation("", "escape"), False)
        self.dismiss(None)

    def action_dry_run(self) -> None:
        """Close with the plan as a dry run: the calls are shown, nothing is sent."""
        if self.busy:
            return
        self.dismiss(PlanDecision(self.plan, self.batch_id, dry_run=True))

    def action_override(self) -> None:
        """Toggle the override of unselected dependents (a new, audited plan)."""
        if self.plan.verb not in POWERING_OFF_VERBS or self.busy:
            return
        options = self.plan.options
        self._start_replan(replace(options, override_dependents=not options.override_dependents))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        {"plan-run": self.action_run, "plan-dry-run": self.action_dry_run}.get(
            event.button.id or "", self.action_cancel
        )()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.input.id == "plan-escalate":
            valid, escalation = self._escalation_input()
            if valid and escalation != self.plan.options.escalate_after_s:
                self._start_replan(replace(self.plan.options, escalate_after_s=escalation))
            return
        self.action_run()

    # -- re-planning -------------------------------------------------------------

    def _escalation_input(self) -> tuple[bool, float | None]:
        """(valid, seconds typed or None for never); an invalid value is said on screen."""
        text = self.query_one("#plan-escalate", Input).value.strip()
        if not text:
            return True, None
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if value <= 0:
            self.say(f"escalation {text!r}: give seconds > 0, or leave it empty for never")
            return False, None
        return True, value

    def _start_replan(self, options: PlanOptions) -> None:
        self.busy = True
        self.say("re-reading power states and re-planning…")
        self.run_worker(self._replan_with(options), group="replan", exclusive=True)

    async def _replan_with(self, options: PlanOptions) -> None:
        try:
            self.plan, self.batch_id = await self._replan(options)
        except Exception as exc:  # a plan that cannot be built: say why, keep the old one
            self.say(f"cannot re-plan: {exc}")
            return
        finally:
            self.busy = False
        self.show_plan()
        self.say("plan updated: review it, then enter to run")
