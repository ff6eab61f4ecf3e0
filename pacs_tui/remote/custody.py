"""ServiceCustody: a service's custody board, as an attached screen reads and changes it.

It reads as ``CustodyBoard`` does (``CustodyReading``), from the snapshot and ``custody`` events
the mirror receives; ``version`` grows with every change, so a screen redraws
only when something moved. Changes go to the service (``POST
/api/v1/custody``), which checks them under its lock, writes its file and
audits them under the caller's token; the screen learns the result from the
answer and, like every other screen, from the event.
"""

from __future__ import annotations

from typing import Any

from pacs_tui.custody import CustodyReading, CustodyState
from pacs_tui.remote.client import ServiceError, ServiceUnavailable
from pacs_tui.remote.mirror import ServiceMirror


class ServiceCustodyError(Exception):
    """The service refused a custody change or did not answer; the message says why."""


class ServiceCustody(CustodyReading):
    """The custody board of the service a mirror follows."""

    def __init__(self, mirror: ServiceMirror) -> None:
        self.mirror = mirror
        self._states: dict[str, CustodyState] = {n: CustodyState.RUNNING for n in
                                                 mirror.inventory.names()}  # fmt: skip
        self._since: dict[str, str] = {}
        self.version = 0
        self.apply(mirror.custody)
        mirror.listeners.append(self._event)

    def apply(self, data: Any) -> None:
        """Take a ``custody`` object (``states`` and ``since``) from the service."""
        if not isinstance(data, dict):
            return
        for name, word in (data.get("states") or {}).items():
            if name in self._states:
                try:
                    self._states[name] = CustodyState(word)
                except ValueError:
                    continue  # a state word of a newer service: keep the last known
        self._since = {str(k): str(v) for k, v in (data.get("since") or {}).items()}
        self.version += 1

    def _event(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "custody":
            self.apply(data.get("custody"))
        elif kind == "snapshot":
            self.apply(self.mirror.custody)

    # -- changing (in the service) -------------------------------------------------------

    async def change(
        self, how: str, names: list[str], to: str | None, reason: str
    ) -> list[dict[str, Any]]:
        """``advance`` or ``correct`` in the service; the changes it made (JSON)."""
        body: dict[str, Any] = {"how": how, "servers": names, "reason": reason}
        if to is not None:
            body["to"] = to
        try:
            answer = await self.mirror.client.post("/api/v1/custody", body)
        except ServiceError as exc:
            raise ServiceCustodyError(exc.reason) from None
        except ServiceUnavailable as exc:
            raise ServiceCustodyError(f"the service did not answer: {exc}") from None
        changes = answer.get("changes") if isinstance(answer, dict) else None
        return list(changes or [])
