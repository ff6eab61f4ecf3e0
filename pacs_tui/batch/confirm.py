"""Typed confirmation: an operator types the number of servers before a big batch.

A batch that touches more than ``threshold`` servers (default 5) needs the
count typed back; ``force-off`` always does, whatever its size (it cuts power
without asking the OS). The runner refuses to start without a matching
``Confirmation``, so no front-end can forget to ask.
"""

from __future__ import annotations

from dataclasses import dataclass

from pacs_tui.batch.plan import FORCE_OFF, OFF, ON, RESTART, BatchPlan

# The prompt is a sentence the operator reads at 3 a.m.: "This will power off 2 server(s)".
_DOING = {
    OFF: "power off (graceful shutdown)",
    ON: "power on",
    RESTART: "restart",
    FORCE_OFF: "FORCE OFF (cut power, no OS shutdown)",
}

DEFAULT_THRESHOLD = 5


@dataclass(frozen=True)
class ConfirmationRule:
    """When a typed confirmation is required."""

    threshold: int = DEFAULT_THRESHOLD

    def required(self, plan: BatchPlan) -> bool:
        """True when ``plan`` needs the count typed back."""
        count = len(plan.touched)
        if count == 0:
            return False
        return plan.verb == FORCE_OFF or count > self.threshold

    def prompt(self, plan: BatchPlan) -> str:
        """The question to show; the answer is ``expected(plan)``."""
        count = len(plan.touched)
        what = _DOING.get(plan.verb, plan.verb)
        return f"This will {what} {count} server(s). Type {count} to confirm: "

    @staticmethod
    def expected(plan: BatchPlan) -> str:
        """The text that confirms ``plan``: its server count."""
        return str(len(plan.touched))


@dataclass(frozen=True)
class Confirmation:
    """What the operator answered, and how (``typed`` or ``--yes``)."""

    answer: str
    how: str = "typed"

    def matches(self, plan: BatchPlan) -> bool:
        """True when the answer is the plan's count (surrounding blanks ignored)."""
        return self.answer.strip() == ConfirmationRule.expected(plan)

    @classmethod
    def assumed(cls, plan: BatchPlan, how: str = "--yes") -> Confirmation:
        """A confirmation given up front (``--yes``); it is audited as such."""
        return cls(ConfirmationRule.expected(plan), how)


class ConfirmationRequired(PermissionError):
    """The plan needs a typed confirmation and none (or a wrong one) was given."""
