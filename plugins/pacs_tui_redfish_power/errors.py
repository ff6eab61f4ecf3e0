"""What can go wrong talking to a BMC, as exceptions whose text is safe to show.

Every message is written here from facts we chose (status, path, errno,
the BMC's own Redfish message); none is built from a library exception's
text, so no header, token or password can leak into a detail line.
"""

from __future__ import annotations


class BmcError(Exception):
    """A BMC exchange that did not give the answer asked for."""


class BmcUnreachable(BmcError):
    """No HTTP answer at all: connection refused, dropped, or no route."""


class BmcConnectFailed(BmcUnreachable):
    """No connection could be opened, so nothing was sent: safe to send again."""


class BmcTimeout(BmcError):
    """The BMC did not answer within the time allowed."""


class BmcOutcomeUnknown(BmcError):
    """A state-changing request was sent but no answer came back (timeout, dropped).

    The BMC may have carried it out: read the state back before anything
    else, and never send it again blindly.
    """


class BmcAmbiguousSystem(BmcError):
    """The BMC has several ComputerSystems and the inventory names none of them."""

    def __init__(self, where: str, members: tuple[str, ...]) -> None:
        self.members = members
        super().__init__(
            f"ambiguous: BMC {where} has {len(members)} systems ({', '.join(members)}); "
            "name this server's system with bmc.system in the inventory"
        )


class BmcSystemNotFound(BmcError):
    """The system named by the inventory is not in the BMC's Systems collection."""

    def __init__(self, where: str, system: str, members: tuple[str, ...]) -> None:
        self.members = members
        super().__init__(
            f"BMC {where} has no system {system!r} (its systems: {', '.join(members) or 'none'})"
        )


class BmcTlsError(BmcError):
    """The TLS handshake failed, e.g. a certificate the CA file does not vouch for."""


class BmcBadAnswer(BmcError):
    """The BMC answered, but not with what Redfish promises (bad JSON, missing links)."""


class BmcHttpError(BmcError):
    """An HTTP error status, with the BMC's Redfish message when it sent one."""

    def __init__(
        self,
        status: int,
        method: str,
        path: str,
        *,
        message_id: str = "",
        message: str = "",
        summary: str = "",
    ) -> None:
        self.status = status
        self.method = method
        self.path = path
        self.message_id = message_id
        self.message = message
        self.summary = summary or f"HTTP {status} from {method} {path}"
        text = self.summary
        if message:
            text = f"{text}: {message}"
        super().__init__(text)

    @property
    def session_limit(self) -> bool:
        """True when this refusal means the BMC's session table is full.

        Vendors answer a full table with 503, 403 or 400 and their own
        MessageIds, so the message words are checked as well as the id.
        """
        if self.message_id.endswith(("SessionLimitExceeded", "CreateLimitReachedForResource")):
            return True
        words = f"{self.message_id} {self.message}".lower()
        return "session" in words and ("limit" in words or "maximum" in words)


class BmcAuthError(BmcHttpError):
    """401: the BMC refused the credentials (or the session, after one re-login)."""


class BmcLoginHeld(BmcError):
    """Logins to this BMC are held back after repeated refusals (account lockout risk)."""

    def __init__(self, where: str, failures: int, until: str, record: str = "") -> None:
        self.until = until
        clear = f" (after fixing the password, delete {record} to retry at once)" if record else ""
        super().__init__(
            f"credentials refused by BMC {where} ({failures} failed logins) — "
            f"not retrying until {until}{clear}"
        )


class BmcBusy(BmcHttpError):
    """503 Service Unavailable; ``retry_after_s`` is the BMC's hint, when it gave one."""

    def __init__(
        self,
        method: str,
        path: str,
        retry_after_s: float | None,
        *,
        message_id: str = "",
        message: str = "",
    ) -> None:
        self.retry_after_s = retry_after_s
        hint = f" (retry after {retry_after_s:g} s)" if retry_after_s is not None else ""
        super().__init__(
            503,
            method,
            path,
            message_id=message_id,
            message=message,
            summary=f"503 Service Unavailable{hint}",
        )
