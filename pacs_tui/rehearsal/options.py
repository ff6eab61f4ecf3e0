"""What a rehearsal is asked to do: fleet size, speed, plants, tolerances."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pacs_tui.baseline.compare import Tolerances

SLOW_STORAGE, SWAPPED_SERVER, MISSING_STUDIES = "slow-storage", "swapped-server", "missing-studies"
DEAD_ON_ARRIVAL = "dead-on-arrival"  # a server that does not come back after the truck
CLINIC_LINK_DOWN = "clinic-link-down"  # one clinic's WAN link down at the new site
PSU_UNPLUGGED = "psu-unplugged"  # one moved server's power supply without input after racking
RACK_OVER_BUDGET = "rack-over-budget"  # one rack's circuit too small for a wave booting at once
PLANTS = (
    SLOW_STORAGE,
    SWAPPED_SERVER,
    MISSING_STUDIES,
    DEAD_ON_ARRIVAL,
    CLINIC_LINK_DOWN,
    PSU_UNPLUGGED,
    RACK_OVER_BUDGET,
)
REMOTE_BACKUP_KIND = "remote-backup"
# The sampled C-FIND: one study by StudyInstanceUID, the indexed lookup a viewer makes.
# It measures how fast the archive answers, not how fast the simulator can invent
# thousands of identifiers (a day's query on a small simulated fleet returns ~1 000).
FIND_QUERY = {"StudyInstanceUID": "1.2.826.0.1.3680043.8.498.77.0.20000101.1.1"}


@dataclass(frozen=True)
class RehearsalOptions:
    """How to rehearse: fleet size, speed, what to plant, where to report."""

    report_dir: Path
    servers: int = 300
    plants: tuple[str, ...] = ()
    time_scale: float = 0.05  # the simulator's power/boot delays (1 = realistic)
    samples: int = 5  # latency samples per metric and server in each baseline
    seed: int = 7
    address_octet: int | None = None  # None: a random 127.X octet (no clash with a demo)
    transit_s: float = 1.0  # how long the BMCs stay unreachable
    replication_days: int = 7  # days compared between primary and replica (up to today)
    study_window_days: int = 2  # days whose studies each baseline counts per archive
    capture_concurrency: int = 1  # one server at a time: latency is service, not queueing
    concurrency: int = 64  # servers at once per wave
    poll_s: float = 0.25  # re-reads of PowerState and gates
    escalate_after_s: float = 30.0  # ForceOff a server that ignored the shutdown this long
    batch_timeout_s: float = 180.0  # per PowerState wait and per gate
    slow_storage_role: str = "archive"
    slow_storage_delay_s: float = 0.1  # what the planted slower tier adds to each C-FIND
    # The simulator shares the CPU with its client (and, on a laptop, with everything
    # else): latency changes below this are noise here, not a slower site.
    noise_floor_ms: float = 10.0
    sim_start_timeout_s: float = 180.0
    # The preflight before power-up: samples per WAN link (as ``pacs-tui preflight -n``),
    # links measured at once, and the supply bay the ``psu-unplugged`` plant unplugs.
    link_samples: int = 5
    link_parallel: int = 8
    psu_unplugged_bay: int = 2

    def __post_init__(self) -> None:
        unknown = set(self.plants) - set(PLANTS)
        if unknown:
            raise ValueError(
                f"unknown plant(s) {', '.join(sorted(unknown))} (known: {', '.join(PLANTS)})"
            )
        if self.servers < 12:
            raise ValueError("a rehearsal needs at least 12 servers (one has a remote backup)")
        if self.time_scale <= 0 or self.samples < 1 or self.transit_s < 0:
            raise ValueError("time scale must be > 0, samples >= 1, transit >= 0")
        if self.replication_days < 1 or self.study_window_days < 1:
            raise ValueError("replication and study windows need at least one day")
        if self.link_samples < 1 or self.link_parallel < 1 or self.psu_unplugged_bay not in (1, 2):
            raise ValueError("link samples and parallel must be >= 1, the PSU bay 1 or 2")


def tolerances(options: RehearsalOptions) -> Tolerances:
    """The comparison's tolerances: the defaults, with the rehearsal's noise floor."""
    floor = options.noise_floor_ms
    return Tolerances(latency_floor_ms=floor, p95_floor_ms=2.5 * floor)
