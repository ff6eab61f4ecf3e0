"""Batch power actions: selection → plan (waves) → dry run → confirmed, gated, audited run.

- ``plan``: ``build_plan`` turns servers + a verb (off, on, restart,
  force-off) into ``BatchPlan`` waves with each server's exact steps.
- ``dry_run``: the plan as text, every call listed, nothing sent.
- ``confirm``: when an operator must type the server count.
- ``gates``: the per-role health checks a power-on wave waits for.
- ``runner``: ``BatchRunner`` runs a plan (concurrency cap, verification by
  re-reading PowerState, retries, halt/leave-out, abort, pause/resume).
- ``result``: ``BatchResult``/``ServerStatus``, what a batch did to each server;
  ``policies``: ``FailurePolicy``, ``RetryPolicy``, ``WriteGuard``;
  ``verify``/``stranded``: the runner's PowerState read-backs.
- ``audit``: the append-only SQLite log of everything.
- ``interrupted``: batches whose process died mid-run (a start, no end),
  named from the audit log until acknowledged (``interrupted_batches``).
- ``units``: which systemd units a ``systemctl stop`` step stopped.

Runners are built through ``pacs_tui.session.Session``, which refuses in a
read-only session. This package never imports Textual.
"""

from pacs_tui.batch.audit import AuditEvent, AuditLog, default_audit_path
from pacs_tui.batch.confirm import Confirmation, ConfirmationRequired, ConfirmationRule
from pacs_tui.batch.dry_run import dry_run_lines
from pacs_tui.batch.gates import GATE_CHECKS, GatePolicy
from pacs_tui.batch.interrupted import (
    InterruptedBatch,
    NotInterrupted,
    acknowledge,
    interrupted_batches,
)
from pacs_tui.batch.plan import VERBS, BatchPlan, PlanError, PlanOptions, build_plan
from pacs_tui.batch.progress import BatchProgress
from pacs_tui.batch.readings import MonitorReadings, PowerFacts, Readings, power_facts
from pacs_tui.batch.runner import (
    BatchResult,
    BatchRunner,
    FailurePolicy,
    PlanRefused,
    RetryPolicy,
    ServerResult,
    ServerStatus,
    WriteGuard,
)

__all__ = [
    "GATE_CHECKS",
    "VERBS",
    "AuditEvent",
    "AuditLog",
    "BatchPlan",
    "BatchProgress",
    "BatchResult",
    "BatchRunner",
    "Confirmation",
    "ConfirmationRequired",
    "ConfirmationRule",
    "FailurePolicy",
    "GatePolicy",
    "InterruptedBatch",
    "MonitorReadings",
    "NotInterrupted",
    "PlanError",
    "PlanOptions",
    "PlanRefused",
    "PowerFacts",
    "Readings",
    "RetryPolicy",
    "ServerResult",
    "ServerStatus",
    "WriteGuard",
    "acknowledge",
    "build_plan",
    "default_audit_path",
    "dry_run_lines",
    "interrupted_batches",
    "power_facts",
]
