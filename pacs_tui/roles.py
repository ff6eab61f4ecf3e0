"""Server roles of a PACS data center and what each one runs.

One source of truth for the role vocabulary: the simulator builds its fleet
from it, probes ask it which systemd units to check and whether a role speaks
DICOM, and inventories may name other roles (then ``services`` must be given).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Role:
    """What a server of one role runs."""

    name: str
    units: tuple[str, ...]
    speaks_dicom: bool
    description: str


ROLES: dict[str, Role] = {
    r.name: r
    for r in (
        Role("storage", ("nfs-server",), False, "storage array / file service"),
        Role("database", ("postgresql",), False, "PACS and RIS databases"),
        Role("archive", ("pacs", "pacs-archive"), True, "long-term archive (VNA)"),
        Role("image-manager", ("pacs",), True, "image manager / PACS core"),
        Role("dicom-router", ("pacs", "dicom-router"), True, "DICOM router"),
        Role("web-viewer", ("nginx", "viewer"), False, "web viewer"),
        Role("ris-integration", ("hl7-engine",), False, "RIS / HL7 integration engine"),
        Role(
            "edge-gateway",
            ("pacs", "dicom-router"),
            True,
            "DICOM edge gateway at a hospital or clinic",
        ),
    )
}

# The unit whose state gates the DICOM listener of a simulated server.
DICOM_UNIT = "pacs"


def default_units(role: str) -> tuple[str, ...]:
    """Units checked for ``role``; empty for a role the vocabulary does not know."""
    known = ROLES.get(role)
    return known.units if known else ()
