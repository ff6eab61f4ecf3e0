"""The whole move weekend, headless, on the simulated data center.

``Rehearsal.run()`` starts ``pacs-tui sim`` in its own process and drives it
the way the weekend goes, through the same engines the lead uses:

1. **pre-checks**: every server's PowerState read through the power probe;
2. **replication**: each primary archive against its remote-backup replica
   (C-FIND counts per day); a replica that lacks studies stops the rehearsal
   here: it is not safe to shut down;
3. **baseline**: a performance baseline of the whole fleet;
4. **shutdown**: the batch engine, ``off``, every server except the remote
   backup, in dependency waves with escalation to ForceOff;
5. **transit**: every moved BMC unreachable for a while (the trucks), custody
   in-transit → racked;
6. **preflight** at the new site, before anything is powered on: every site's
   WAN link measured as ``pacs-tui preflight`` does, every moved server's
   ``rack-power`` read while Off; a site whose link is down has its servers
   held Off, and what is not proven is named (``pacs_tui.rehearsal.preflight``);
7. **power-up**: ``on`` in dependency waves (held servers left out), each
   gated on power, SSH, units and DICOM;
8. **baseline** again, **compare**, and the report.

Problems found are named by what they look like (``slow-storage``,
``swapped-server``, ``missing-studies``, ...), never by what was planted, so a
planted fault is caught only if the checks really catch it. ``--plant``
plants a problem in the new site through the simulator's control API.
"""

from pacs_tui.rehearsal.control_client import SimControl
from pacs_tui.rehearsal.findings import name_problems
from pacs_tui.rehearsal.options import (
    CLINIC_LINK_DOWN,
    FIND_QUERY,
    MISSING_STUDIES,
    PLANTS,
    PSU_UNPLUGGED,
    REMOTE_BACKUP_KIND,
    SLOW_STORAGE,
    SWAPPED_SERVER,
    RehearsalOptions,
    tolerances,
)
from pacs_tui.rehearsal.outcome import Detection, PhaseOutcome, RehearsalResult, RehearsalStopped
from pacs_tui.rehearsal.phases import Inspect, Progress, Rehearsal
from pacs_tui.rehearsal.preflight import PreflightFindings
from pacs_tui.rehearsal.report import SUMMARY_FILE, write_summary
from pacs_tui.rehearsal.simulator_process import SimProcess, running_simulator

__all__ = [
    "CLINIC_LINK_DOWN",
    "FIND_QUERY",
    "MISSING_STUDIES",
    "PLANTS",
    "PSU_UNPLUGGED",
    "REMOTE_BACKUP_KIND",
    "SLOW_STORAGE",
    "SUMMARY_FILE",
    "SWAPPED_SERVER",
    "Detection",
    "Inspect",
    "PhaseOutcome",
    "PreflightFindings",
    "Progress",
    "Rehearsal",
    "RehearsalOptions",
    "RehearsalResult",
    "RehearsalStopped",
    "SimControl",
    "SimProcess",
    "name_problems",
    "running_simulator",
    "tolerances",
    "write_summary",
]
