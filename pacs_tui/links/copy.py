"""Site link state as a service publishes it, and a screen's copy of it.

``pacs-tui serve`` measures the links (``LinkWatch``) and sends each site's
state, not the samples: ``links_to_wire`` gives::

    {"sites": [{"site": "clinic-harbour", "state": "down",
                "detail": "wan-1: every sample lost (5 of 5)", "age_s": 12.5}, ...]}

``age_s`` is the age of the site's oldest report when sent (null when never
measured). ``SiteLinksCopy`` keeps the last one a screen received and reads
like a ``LinkState`` (``LinkReading``): the screens' widgets take either. A
copy ages on its own clock; a site whose reports would now be older than
``max_age_s`` reads ``unknown``, as in the service.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol, get_args

from pacs_tui.links.state import DEFAULT_WATCH_INTERVAL_S, SiteLinks, SiteLinkState

_STATES: tuple[str, ...] = get_args(SiteLinkState)


class LinkReading(Protocol):
    """What the screens read of the sites' link state (``LinkState`` or a copy)."""

    version: int  # grows with every update: a screen redraws only on news

    @property
    def sites(self) -> list[str]:
        """Sites that declare links, in file order."""
        ...

    def site(self, name: str) -> SiteLinks:
        """One site's state (``unknown`` when not measured or too old)."""
        ...

    def all(self) -> list[SiteLinks]:
        """Every site with links, in file order."""
        ...

    def down_sites(self) -> list[str]:
        """Sites whose every link is unreachable now."""
        ...


def links_to_wire(state: LinkReading, max_age_s: float | None = None) -> dict[str, Any]:
    """Every site's state, detail and age (seconds) as JSON-safe data.

    ``max_age_s``: the age past which the sender calls a report too old (the copy
    ages its sites by the same rule).
    """
    data: dict[str, Any] = {
        "sites": [
            {"site": s.site, "state": s.state, "detail": s.detail, "age_s": s.age_s}
            for s in state.all()
        ]
    }
    if max_age_s is not None:
        data["max_age_s"] = max_age_s
    return data


class SiteLinksCopy:
    """A screen's copy of a service's site link state (``LinkReading``)."""

    def __init__(
        self,
        *,
        max_age_s: float = 3 * DEFAULT_WATCH_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_age_s = max_age_s
        self._clock = clock
        self._sites: dict[str, tuple[SiteLinkState, str, float | None, float]] = {}
        self.version = 0

    def apply(self, data: Any) -> None:
        """Take a ``links_to_wire`` object; ``ValueError`` names what is malformed."""
        if not isinstance(data, dict) or not isinstance(data.get("sites"), list):
            raise ValueError("links: expected an object with a list of sites")
        max_age = data.get("max_age_s")
        if isinstance(max_age, int | float) and max_age > 0:
            self.max_age_s = float(max_age)  # the sender's rule, whatever its interval
        now = self._clock()
        sites: dict[str, tuple[SiteLinkState, str, float | None, float]] = {}
        for entry in data["sites"]:
            try:
                name, word = str(entry["site"]), str(entry["state"])
                age = entry.get("age_s")
                age_s = None if age is None else float(age)
                detail = str(entry.get("detail") or "")
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise ValueError(f"links: bad site entry: {exc}") from None
            state: SiteLinkState = word if word in _STATES else "unknown"  # type: ignore[assignment]
            sites[name] = (state, detail, age_s, now)
        self._sites = sites
        self.version += 1

    @property
    def sites(self) -> list[str]:
        """Sites the service measures, in its order."""
        return list(self._sites)

    def site(self, name: str) -> SiteLinks:
        """The site's state as last received, aged on this clock."""
        got = self._sites.get(name)
        if got is None:
            return SiteLinks(name, "unknown", (), None)
        state, detail, age_s, received = got
        age = None if age_s is None else age_s + (self._clock() - received)
        if age is None or age > self.max_age_s:
            state = "unknown"  # old news proves nothing either way
        return SiteLinks(name, state, (), age, said=detail)

    def all(self) -> list[SiteLinks]:
        """Every site, in the service's order."""
        return [self.site(name) for name in self._sites]

    def down_sites(self) -> list[str]:
        """Sites whose every link is unreachable, by the last fresh news."""
        return [s.site for s in self.all() if s.state == "down"]
