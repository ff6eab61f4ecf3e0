"""The sites' WAN links: measure them from here, judge them, compare with a baseline.

``measure_links`` samples each link's TCP endpoint and DICOM gateway (C-ECHO,
PS3.7 §9.3.5; one C-FIND, PS3.4 C.4.1) and returns a judged ``LinkReport``
per link (ok, degraded, unreachable, unknown); ``pacs_tui.links.baseline``
keeps and compares per-link baselines with ``baseline compare``'s words;
``LinkState`` is the per-site source screens read and ``down_sites()`` the
hook a move step asks. No Textual here.
"""

from pacs_tui.links.copy import LinkReading, SiteLinksCopy, links_to_wire
from pacs_tui.links.measure import Sampling, measure_link, measure_links, site_links
from pacs_tui.links.series import SampleSeries
from pacs_tui.links.state import LinkState, LinkWatch, SiteLinks, SiteLinkState, site_state
from pacs_tui.links.verdict import FindCheck, LinkReport, LinkVerdict, Thresholds, judge_link

__all__ = [
    "FindCheck",
    "LinkReading",
    "LinkReport",
    "LinkState",
    "LinkVerdict",
    "LinkWatch",
    "SampleSeries",
    "Sampling",
    "SiteLinkState",
    "SiteLinks",
    "SiteLinksCopy",
    "Thresholds",
    "judge_link",
    "links_to_wire",
    "measure_link",
    "measure_links",
    "site_links",
    "site_state",
]
