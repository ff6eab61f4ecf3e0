"""Redfish tasks for BMCs that answer a reset with ``202 Accepted``.

Such a BMC returns a task monitor URI in ``Location``; the monitor answers
``202`` while the power transition runs and ``200`` with ``TaskState:
Completed`` afterwards (``204`` on task-204 BMCs). The task follows the host's
real transition.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from pacs_tui.sim.host import SimulatedHost

TASKS = "/redfish/v1/TaskService/Tasks"
MONITORS = "/redfish/v1/TaskService/TaskMonitors"
_KEEP = 32  # finished tasks a BMC remembers; real BMCs prune their job queue too


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


@dataclass
class ResetTask:
    """One reset running (or run) as a Redfish task."""

    task_id: str
    target: str
    reset_type: str
    start_time: str = field(default_factory=_now)
    end_time: str | None = None
    polls: int = 0  # monitor polls so far (task-503-once fails the first)
    watcher: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def done(self) -> bool:
        """True once the host's power transition has finished."""
        return self.end_time is not None

    @property
    def monitor_uri(self) -> str:
        """Where a client polls for completion."""
        return f"{MONITORS}/{self.task_id}"

    def body(self) -> dict[str, Any]:
        """The Task resource."""
        body: dict[str, Any] = {
            "@odata.id": f"{TASKS}/{self.task_id}",
            "@odata.type": "#Task.v1_4_3.Task",
            "Id": self.task_id,
            "Name": f"Task {self.task_id}",
            "TaskState": "Completed" if self.done else "Running",
            "TaskStatus": "OK",
            "PercentComplete": 100 if self.done else 0,
            "StartTime": self.start_time,
            "TaskMonitor": self.monitor_uri,
            "Payload": {
                "HttpOperation": "POST",
                "TargetUri": self.target,
                "JsonBody": json.dumps({"ResetType": self.reset_type}),
            },
            "Messages": [],
        }
        if self.end_time is not None:
            body["EndTime"] = self.end_time
            body["Messages"] = [
                {
                    "MessageId": "Base.1.12.Success",
                    "Message": "The request completed successfully.",
                    # Message v1_1_0 deprecated "Severity" for "MessageSeverity".
                    "MessageSeverity": "OK",
                }
            ]
        return body


class TaskList:
    """The tasks of one BMC."""

    def __init__(self, id_prefix: str) -> None:
        self._prefix = id_prefix
        self._tasks: dict[str, ResetTask] = {}
        self._ids = itertools.count(1)

    def start(self, host: SimulatedHost, target: str, reset_type: str) -> ResetTask:
        """Track the transition ``host.reset`` has just started."""
        task = ResetTask(
            task_id=f"{self._prefix}{next(self._ids)}", target=target, reset_type=reset_type
        )

        async def follow() -> None:
            await host.wait_idle()
            task.end_time = _now()

        task.watcher = asyncio.get_running_loop().create_task(follow(), name=f"task:{host.name}")
        self._tasks[task.task_id] = task
        self._prune()
        return task

    def get(self, task_id: str) -> ResetTask | None:
        """The task with ``task_id``, or None."""
        return self._tasks.get(task_id)

    def tasks(self) -> list[ResetTask]:
        """All remembered tasks, oldest first."""
        return list(self._tasks.values())

    async def stop(self) -> None:
        """Stop following transitions (service shutdown)."""
        watchers = [t.watcher for t in self._tasks.values() if t.watcher and not t.watcher.done()]
        for watcher in watchers:
            watcher.cancel()
        for watcher in watchers:
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    def _prune(self) -> None:
        finished = [tid for tid, t in self._tasks.items() if t.done]
        for tid in finished[: max(0, len(self._tasks) - _KEEP)]:
            del self._tasks[tid]
