"""ServiceCustody: a service's custody board, as an attached screen reads and changes it.

It reads as ``CustodyBoard`` does (``CustodyReading``), from the snapshot and ``custody`` events
the mirror receives; ``version`` grows with every change, so a screen redraws
only when something moved. Changes go to the service (``POST
/api/v1/custody``), which checks them under its lock, writes its file and
audits them under the caller's token; the screen learns the result from the
answer and, like every other screen, from the event.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pacs_tui.custody import CustodyReading, CustodyState
from pacs_tui.remote.client import ServiceError, ServiceUnavailable
from pacs_tui.remote.mirror import ServiceMirror


class ServiceCustodyError(Exception):
    """The service refused a custody change or did not answer; the message says why."""


class ServiceCustody(CustodyReading):
    """The custody board of the service a mirror follows, or the boards of several.

    With several mirrors (``run --connect A --connect B``) each server's state
    comes from its own service's board, and a change goes to the service that
    owns the servers; a change spanning services is refused, as a batch is.
    """

    def __init__(self, mirror: ServiceMirror, *more: ServiceMirror) -> None:
        self.mirror = mirror
        self.mirrors = (mirror, *more)
        self._owner: dict[str, ServiceMirror] = {}
        self._states: dict[str, CustodyState] = {}
        for each in self.mirrors:
            for name in each.inventory.names():
                self._owner[name] = each
                self._states[name] = CustodyState.RUNNING
        self._since: dict[str, str] = {}
        self.version = 0
        for each in self.mirrors:
            self.apply(each.custody, each)
            each.listeners.append(self._listener(each))

    def apply(self, data: Any, mirror: ServiceMirror | None = None) -> None:
        """Take a ``custody`` object (``states`` and ``since``) from ``mirror``'s service.

        Only that service's servers are taken (all of them for the first mirror
        when ``mirror`` is None).
        """
        if not isinstance(data, dict):
            return
        source = mirror if mirror is not None else self.mirror
        for name, word in (data.get("states") or {}).items():
            if self._owner.get(name) is source:
                try:
                    self._states[name] = CustodyState(word)
                except ValueError:
                    continue  # a state word of a newer service: keep the last known
        since = {str(k): str(v) for k, v in (data.get("since") or {}).items()}
        self._since = {n: w for n, w in self._since.items() if self._owner.get(n) is not source}
        self._since.update({n: w for n, w in since.items() if self._owner.get(n) is source})
        self.version += 1

    def _listener(self, mirror: ServiceMirror) -> Callable[[str, dict[str, Any]], None]:
        def heard(kind: str, data: dict[str, Any]) -> None:
            if kind == "custody":
                self.apply(data.get("custody"), mirror)
            elif kind == "snapshot":
                self.apply(mirror.custody, mirror)

        return heard

    # -- changing (in the service) -------------------------------------------------------

    async def change(
        self, how: str, names: list[str], to: str | None, reason: str
    ) -> list[dict[str, Any]]:
        """``advance`` or ``correct`` in the service; the changes it made (JSON)."""
        owners = {id(self._owner[n]): self._owner[n] for n in names if n in self._owner}
        if len(owners) > 1:
            split = "; ".join(
                f"{m.label}: {', '.join(n for n in names if self._owner.get(n) is m)}"
                for m in owners.values()
            )
            raise ServiceCustodyError(
                f"the servers belong to {len(owners)} services ({split}); change each "
                "service's servers on their own"
            )
        mirror = next(iter(owners.values()), self.mirror)
        body: dict[str, Any] = {"how": how, "servers": names, "reason": reason}
        if to is not None:
            body["to"] = to
        try:
            answer = await mirror.client.post("/api/v1/custody", body)
        except ServiceError as exc:
            raise ServiceCustodyError(exc.reason) from None
        except ServiceUnavailable as exc:
            raise ServiceCustodyError(f"the service did not answer: {exc}") from None
        changes = answer.get("changes") if isinstance(answer, dict) else None
        return list(changes or [])
