"""Small readers for Redfish property shapes that the power and thermal resources share.

A BMC is foreign firmware: every value is checked for its JSON type here, and
anything that is not what the schema promises reads as ``None`` (unknown),
never as 0 or ``OK``. Shapes (DSP8010, Redfish Schema Bundle):

- a ``SensorExcerpt`` / ``SensorPowerExcerpt`` (``Sensor.v1``): an object with
  a numeric ``Reading`` (``null`` when the sensor cannot read);
- ``Resource.Status``: ``State`` (``Enabled``, ``Absent``, ``UnavailableOffline``
  ...) and ``Health`` (``OK``, ``Warning``, ``Critical``);
- a link: ``{"@odata.id": URI}``, reduced to a path (``bounded_http.link``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Coroutine
from typing import Any

from pacs_tui_redfish_power.errors import BmcBadAnswer, BmcHttpError

__all__ = ["MAX_MEMBERS", "Getter", "excerpt", "get_optional", "number", "status", "text"]

# A chassis has a handful of supplies and a PDU a few dozen outlets; a longer
# collection is a faulty BMC, and reading it all would blow the poll's budget.
MAX_MEMBERS = 64

# ``BmcClient.get``: an authenticated GET of a path, (HTTP status, JSON object).
Getter = Callable[[str], Coroutine[Any, Any, tuple[int, dict[str, Any]]]]


def number(value: Any) -> float | None:
    """A finite JSON number as a float; None for null, strings, booleans, NaN."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    result = float(value)
    return result if math.isfinite(result) else None


def excerpt(value: Any) -> float | None:
    """The ``Reading`` of a sensor excerpt (``{"Reading": 374, ...}``), or None."""
    return number(value.get("Reading")) if isinstance(value, dict) else None


def text(value: Any) -> str | None:
    """A JSON string, or None."""
    return value if isinstance(value, str) and value else None


def status(body: dict[str, Any]) -> tuple[str | None, str | None]:
    """``(Status.State, Status.Health)`` of a resource or array member; None when absent."""
    found = body.get("Status")
    if not isinstance(found, dict):
        return None, None
    return text(found.get("State")), text(found.get("Health"))


async def get_optional(get: Getter, path: str) -> tuple[dict[str, Any] | None, str]:
    """GET ``path``; ``(None, why)`` for a 404 or a body that is not JSON, else ``(body, "")``.

    For resources whose loss makes one value unknown rather than the whole
    reading: a BMC that does not answer at all still raises (``BmcError``).
    """
    try:
        _, body = await get(path)
    except BmcHttpError as exc:
        if exc.status in (404, 405, 501):
            return None, f"{path} answered HTTP {exc.status}"
        raise
    except BmcBadAnswer as exc:
        return None, str(exc)
    return body, ""
