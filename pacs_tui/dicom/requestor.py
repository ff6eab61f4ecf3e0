"""Opening an association as the requestor, for the SCUs beyond C-ECHO and C-FIND.

``client.py`` keeps its own session for the probe's hot path; C-MOVE and
C-STORE (PS3.4 C.4.2, B.2) use this one, which maps every network and
protocol failure to a ``RequestFailed`` carrying an outcome state.
"""

from __future__ import annotations

import asyncio
import ssl
import time

from pynetdicom.dimse_messages import DIMSEMessage
from pynetdicom.pdu import A_RELEASE_RP

from pacs_tui.dicom.association import (
    Association,
    PeerAborted,
)
from pacs_tui.dicom.opening import AssociationRejected, open_association
from pacs_tui.dicom.pdu_stream import (
    PduError,
    PeerClosed,
    release_rq_pdu,
    write_pdus,
)
from pacs_tui.dicom.tls import handshake_failure


class RequestFailed(Exception):
    """A request that did not complete: ``state`` is rejected, aborted, refused, timeout or error."""

    def __init__(self, state: str, detail: str) -> None:
        super().__init__(detail)
        self.state = state
        self.detail = detail


class Requestor:
    """One association attempt; ``deadline_s`` bounds each phase (connect, association,
    every single response, release), so a stalled peer costs at most that long per wait."""

    def __init__(self, deadline_s: float) -> None:
        self.deadline_s = deadline_s
        self.started = time.perf_counter()
        self.phase = "connect"
        self.tls: ssl.SSLContext | None = None  # set once the TLS handshake is done

    def elapsed_ms(self) -> float:
        """Milliseconds since the attempt started."""
        return (time.perf_counter() - self.started) * 1000.0

    def bounded(self, phase: str) -> asyncio.Timeout:
        """A timeout of ``deadline_s`` for one phase, remembered for the error text."""
        self.phase = phase
        return asyncio.timeout(self.deadline_s)

    async def associate(
        self,
        host: str,
        port: int,
        *,
        called_ae: str,
        calling_ae: str,
        abstract_syntaxes: tuple[str, ...],
        tls: ssl.SSLContext | None = None,
    ) -> Association:
        """Connect (over TLS when ``tls``) and negotiate; raises ``RequestFailed`` or a
        network error to map with ``failure``."""
        try:
            return await open_association(
                host,
                port,
                called_ae=called_ae,
                calling_ae=calling_ae,
                abstract_syntaxes=abstract_syntaxes,
                bounded=self.bounded,
                tls=tls,
                on_tls=self._tls_started,
            )
        except AssociationRejected as exc:
            raise RequestFailed("rejected", str(exc)) from None

    def _tls_started(self, context: ssl.SSLContext) -> None:
        self.tls = context

    async def response(self, association: Association, phase: str) -> DIMSEMessage:
        """The next DIMSE message within the deadline; ``PduError`` for anything else."""
        async with self.bounded(phase):
            message = await association.receive()
        if not isinstance(message, DIMSEMessage):
            raise PduError(f"unexpected {type(message).__name__} while waiting for {phase}")
        return message

    async def release(self, association: Association) -> str:
        """Release politely; return a note when the peer did not confirm."""
        try:
            async with self.bounded("release"):
                await write_pdus(association.writer, release_rq_pdu())
                while not isinstance(await association.receive(), A_RELEASE_RP):
                    pass
            return ""
        except (TimeoutError, PeerClosed, PeerAborted, PduError, OSError) as exc:
            await association.abort()
            return f" (release not confirmed: {self.failure(exc).detail})"
        finally:
            await association.close()

    def failure(self, exc: BaseException) -> RequestFailed:
        """Map an exception raised during the request to a state and text."""
        if isinstance(exc, RequestFailed):
            return exc
        tls_cause = handshake_failure(exc, self.phase, self.tls)
        if tls_cause is not None:
            return RequestFailed("error", tls_cause)
        if isinstance(exc, TimeoutError):
            return RequestFailed(
                "timeout", f"no answer within {self.deadline_s:g} s during {self.phase}"
            )
        if isinstance(exc, ConnectionRefusedError):
            return RequestFailed("refused", "connection refused")
        if isinstance(exc, PeerAborted):
            return RequestFailed("aborted", f"{exc} during {self.phase}")
        if isinstance(exc, PeerClosed | ConnectionResetError | BrokenPipeError):
            return RequestFailed("aborted", f"connection closed by peer during {self.phase}")
        if isinstance(exc, PduError):
            return RequestFailed("error", f"protocol error during {self.phase}: {exc}")
        if isinstance(exc, OSError):
            return RequestFailed(
                "error", f"network error during {self.phase}: {exc.strerror or exc}"
            )
        return RequestFailed("error", f"{type(exc).__name__} during {self.phase}: {exc}")
