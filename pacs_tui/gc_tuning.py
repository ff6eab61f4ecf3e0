"""Garbage-collector tuning for a long-running poller (``status --watch``, ``serve``, ``run``).

Why: a poller's heap is mostly long-lived fleet state (inventory, the state's
readings, probes' sessions and connections: ~120 000 objects at 300
servers, ~200 000 at 1 000) that Python's cyclic collector walks again at
every full collection, while the garbage of a poll is short-lived. Issue 14
measured the collector at 45-55 % of a 3 000-server sweep's CPU, so CPU per
reading grew with the fleet (≈N^1.2). ``gc.freeze()`` moves every
object alive at that moment to a permanent generation the collector no longer
walks; done once the poller is warm (every pair polled, sessions and
connections open) it takes the fleet state out of every later collection.
A higher gen-0 threshold makes young collections rarer; each one then finds
more of a poll's short-lived cycles (futures, exceptions, closed streams) at
once. Figures and method: docs/performance.md, tests/benchmarks/poller_cost.py.

The cost: a frozen object that later becomes part of an unreachable cycle is
never collected (reference counting still frees everything acyclic). A
connection replaced after a peer restart is such a case, so ``refreeze``
runs every ``REFREEZE_S``: unfreeze, one full collection, freeze again. The
leak is bounded by what becomes cyclic garbage in that time.

``PACS_TUI_GC=default`` leaves the collector as Python sets it (for
comparison, or should the tuning ever misbehave).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

ENV = "PACS_TUI_GC"
# gen-0 threshold once warm (Python's default 700): young collections ~1/14 as
# often. At 1 000 servers (in-process sweeps, load 2-3) frozen with 700, 5 000,
# 20 000 and 50 000 cost 1.56-1.82 s CPU per sweep, within the noise of each
# other, and 181-186 MB peak RSS; the freeze is what counts, the threshold
# only spares work the frozen state no longer causes. Older thresholds stay.
GEN0_THRESHOLD = 10_000
# A full unfreeze / collect / freeze this often frees cycles made of frozen
# objects (replaced connections); one full collection per 10 minutes.
REFREEZE_S = 600.0


def enabled() -> bool:
    """False when ``PACS_TUI_GC=default`` asks for Python's own collector settings."""
    return os.environ.get(ENV, "").strip().lower() != "default"


def freeze() -> float:
    """Collect once, then freeze everything alive and raise the gen-0 threshold.

    Returns the seconds the collection and freeze took (a full collection:
    a fraction of a second at 3 000 servers). Safe to call again: a later call
    also freezes what became long-lived since.
    """
    began = time.perf_counter()
    gc.unfreeze()  # frozen objects that became garbage are collected now
    gc.collect()
    gc.freeze()
    _gen0, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)
    return time.perf_counter() - began


async def tune_when_warm(
    warm: Callable[[], bool], *, check_s: float = 1.0, max_wait_s: float = 120.0
) -> None:
    """Freeze once ``warm()`` (or after ``max_wait_s``), then again every ``REFREEZE_S``.

    Runs until cancelled; does nothing when ``PACS_TUI_GC=default``.
    """
    if not enabled():
        return
    waited = 0.0
    while not warm() and waited < max_wait_s:
        await asyncio.sleep(check_s)
        waited += check_s
    seconds = freeze()
    log.info("gc: froze %d objects in %.3f s", gc.get_freeze_count(), seconds)
    while True:
        await asyncio.sleep(REFREEZE_S)
        freeze()
