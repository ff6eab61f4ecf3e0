"""The replication check (is every study on the replica, with as many instances?) and repair."""

from pacs_tui.replication.check import DEFAULT_MODALITIES, Progress, check_replication
from pacs_tui.replication.proof import StudyFinding
from pacs_tui.replication.report import RangeDifference, ReplicationReport

__all__ = [
    "DEFAULT_MODALITIES",
    "Progress",
    "RangeDifference",
    "ReplicationReport",
    "StudyFinding",
    "check_replication",
]
