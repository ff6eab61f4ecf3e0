"""How a batch runner may run: its write guard, failure policy and retry policy.

Kept apart from the runner so the session (which builds runners) and the
CLI can name the policies without the engine, and so the runner needs only
a ``WriteGuard`` protocol, never the session: the dependency points one way.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class WriteGuard(Protocol):
    """What refuses to change the fleet in a read-only session (``Session`` is one)."""

    def require_writable(self, what: str) -> None:
        """Raise (``ReadOnlySession``) saying why ``what`` is not possible."""


class FailurePolicy(StrEnum):
    """What a failed server does to the rest of the batch."""

    HALT = "halt"  # finish the current wave's in-flight servers, start nothing more
    LEAVE_OUT = "leave-out"  # go on without it and without the servers that need it


class PlanRefused(ValueError):
    """The plan carries refusals and must not run."""


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of transient failures: ``attempts`` more tries, doubling from ``base_s``."""

    attempts: int = 4
    base_s: float = 0.5
    max_s: float = 30.0

    def delay(self, attempt: int, retry_after_s: float | None) -> float:
        """Seconds before retry number ``attempt`` (0-based), with a little jitter."""
        backoff = self.base_s * 2.0**attempt * random.uniform(0.9, 1.1)
        return min(self.max_s, max(backoff, retry_after_s or 0.0))
