"""The latest link state of each site: what the screens read and the rehearsal asks.

``LinkState`` keeps the last ``LinkReport`` per (site, link) with when it
was taken, and answers per site in the screens' words: ``ok``,
``degraded``, ``down`` (every link of the site unreachable), ``unknown``
(not measured yet, too old, or not proven). ``down_sites()`` is the hook a
move step uses to hold a site back ("which sites' links are down").
``LinkWatch`` measures every link periodically into a ``LinkState``,
scheduling the next round when the last one finished (rounds never pile up).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from pacs_tui.inventory.model import Inventory
from pacs_tui.links.measure import Sampling, measure_links, site_links
from pacs_tui.links.verdict import DEFAULT_THRESHOLDS, LinkReport, Thresholds

SiteLinkState = Literal["ok", "degraded", "down", "unknown"]
DEFAULT_WATCH_INTERVAL_S = 60.0


@dataclass(frozen=True)
class SiteLinks:
    """One site's link state and the reports behind it (``age_s``: of the oldest)."""

    site: str
    state: SiteLinkState
    reports: tuple[LinkReport, ...]
    age_s: float | None
    said: str = ""  # the detail as a service sent it (a screen's copy has no reports)

    @property
    def detail(self) -> str:
        """The first reason of the worst link, or ``""``."""
        if self.said:
            return self.said
        for report in self.reports:
            if report.reasons and report.verdict != "ok":
                return f"{report.link.name}: {report.reasons[0]}"
        return ""


def site_state(reports: Iterable[LinkReport]) -> SiteLinkState:
    """A site's state from its links' reports: down only when every link is unreachable."""
    verdicts = [r.verdict for r in reports]
    if not verdicts:
        return "unknown"
    if all(v == "unreachable" for v in verdicts):
        return "down"
    if any(v in ("unreachable", "degraded") for v in verdicts):
        return "degraded"
    if any(v == "unknown" for v in verdicts):
        return "unknown"
    return "ok"


class LinkState:
    """The latest reports of an inventory's links; ``max_age_s`` older ones read ``unknown``."""

    def __init__(
        self,
        inventory: Inventory,
        *,
        max_age_s: float = 3 * DEFAULT_WATCH_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """An empty state for ``inventory``'s sites that declare links."""
        self.inventory = inventory
        self.max_age_s = max_age_s
        self._clock = clock
        self._reports: dict[str, tuple[LinkReport, float]] = {}
        self.version = 0  # bumped on every update, so a screen redraws only on news

    @property
    def sites(self) -> list[str]:
        """Sites that declare at least one link, in file order."""
        return [s.name for s in self.inventory.sites.values() if s.links]

    def update(self, reports: Iterable[LinkReport]) -> None:
        """Take new reports (any subset of the links)."""
        now = self._clock()
        for report in reports:
            self._reports[report.key] = (report, now)
        self.version += 1

    def site(self, name: str) -> SiteLinks:
        """The state of site ``name`` (``unknown`` with no links, or any link unmeasured/old)."""
        site = self.inventory.sites.get(name)
        links = site.links if site is not None else ()
        now = self._clock()
        reports: list[LinkReport] = []
        oldest: float | None = None
        unmeasured = stale = False
        for link in links:
            taken = self._reports.get(f"{name}/{link.name}")
            if taken is None:
                unmeasured = True
                continue
            report, at = taken
            reports.append(report)
            age = now - at
            oldest = age if oldest is None else max(oldest, age)
            stale = stale or age > self.max_age_s
        state = site_state(reports)
        if not links or stale:
            state = "unknown"  # old news proves nothing either way
        elif unmeasured and state == "down":
            state = "degraded"  # some links not measured yet: one dead link is no outage …
        elif unmeasured and state == "ok":
            state = "unknown"  # … and one good link no proof
        return SiteLinks(name, state, tuple(reports), oldest)

    def all(self) -> list[SiteLinks]:
        """Every site with links, in file order."""
        return [self.site(name) for name in self.sites]

    def down_sites(self) -> list[str]:
        """Sites whose every link is unreachable now (fresh reports only), in file order."""
        return [s.site for s in self.all() if s.state == "down"]


class LinkWatch:
    """Measures every link of ``state.inventory`` every ``interval_s`` into ``state``."""

    def __init__(
        self,
        state: LinkState,
        *,
        interval_s: float = DEFAULT_WATCH_INTERVAL_S,
        sampling: Sampling | None = None,
        thresholds: Thresholds = DEFAULT_THRESHOLDS,
        on_update: Callable[[LinkState], None] | None = None,
    ) -> None:
        """A watch that is not running yet; ``on_update`` is called after each round."""
        self.state = state
        self.interval_s = interval_s
        # Fewer samples and links at once than preflight: this runs beside the monitor.
        self.sampling = sampling or Sampling(samples=5, parallel=2)
        self.thresholds = thresholds
        self.on_update = on_update

    async def round(self) -> list[LinkReport]:
        """Measure every link once and record the reports."""
        reports = await measure_links(
            site_links(self.state.inventory), self.sampling, self.thresholds
        )
        self.state.update(reports)
        if self.on_update is not None:
            self.on_update(self.state)
        return reports

    async def run(self) -> None:
        """Rounds until cancelled; the next one starts ``interval_s`` after the last ended."""
        while True:
            await self.round()
            await asyncio.sleep(self.interval_s)

    async def run_beside(self, on_failure: Callable[[Exception], None]) -> None:
        """``run`` as a task beside a screen or service: a failure is handed to
        ``on_failure`` (to log and say) and ends the watch; the sites then read
        ``unknown`` as their reports age out. Cancellation passes through."""
        try:
            await self.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            on_failure(exc)
