"""The probe's DICOM client: C-ECHO and study-level C-FIND over asyncio.

Each call opens one association, does one thing, releases, and returns an
outcome; network and protocol failures become outcome states, never
exceptions. One overall deadline bounds connect, association and DIMSE (so a
dropped SYN costs ``timeout`` seconds, not the kernel's two minutes); a
C-FIND also has an idle deadline per response, and the release has its own
short deadline, outside the measured latency.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, TypeVar

from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pynetdicom.dimse_messages import C_ECHO_RQ, C_ECHO_RSP, C_FIND_RQ, C_FIND_RSP, DIMSEMessage
from pynetdicom.dimse_primitives import C_ECHO, C_FIND

from pacs_tui.dicom.association import (
    STUDY_ROOT_FIND,
    VERIFICATION,
    Association,
    PeerAborted,
    decode_identifier,
    encode_identifier,
    encode_message,
)
from pacs_tui.dicom.charset import check_query_value, query_character_set
from pacs_tui.dicom.opening import AssociationRejected, open_association
from pacs_tui.dicom.pdu_stream import (
    PduError,
    PeerClosed,
)
from pacs_tui.dicom.tls import handshake_failure

DicomState = Literal["ok", "incomplete", "rejected", "aborted", "refused", "timeout", "error"]

# Return keys asked for in every study-level C-FIND (the query may add more).
STUDY_RETURN_KEYS = (
    "StudyInstanceUID",
    "StudyDate",
    "ModalitiesInStudy",
    "PatientID",
    "AccessionNumber",
)

_M = TypeVar("_M", bound=DIMSEMessage)

_PENDING = (0xFF00, 0xFF01)
# Each association carries one request, so its message id is always 1.
_MESSAGE_ID = 1
_CANCELLED = 0xFE00


@dataclass(frozen=True)
class DicomOutcome:
    """The result of one DICOM check.

    ``state``: ok, rejected (A-ASSOCIATE-RJ), aborted (A-ABORT or the peer
    closed), refused (TCP connection refused), timeout, or error (protocol
    error or a failure status). ``detail`` is human text for the operator.
    """

    state: DicomState
    latency_ms: float
    detail: str


@dataclass(frozen=True)
class FindOutcome(DicomOutcome):
    """A C-FIND result: how many studies matched and (up to ``limit``) which.

    ``complete`` is True only when the peer ended with Success (0x0000)
    after its pending answers (PS3.4 C.4.1.1.4). A final Cancel (0xFE00) that
    we never asked for — what an archive with a result limit sends — a
    failure status, a timeout or an abort leaves it False: ``count`` is then
    a lower bound, never a number to compare.
    """

    count: int = 0
    studies: tuple[dict[str, str], ...] = ()
    complete: bool = False


class _Failed(Exception):
    def __init__(self, state: DicomState, detail: str) -> None:
        super().__init__(detail)
        self.state = state
        self.detail = detail


# A release the peer never confirms must not hold up a status call (PS3.8 ARTIM).
DEFAULT_RELEASE_TIMEOUT_S = 1.0
# A C-FIND that keeps streaming is healthy; one that stalls this long is not.
DEFAULT_FIND_IDLE_TIMEOUT_S = 10.0
DEFAULT_FIND_TIMEOUT_S = 120.0


class _Session:
    """One association attempt: an overall deadline, an optional idle one, the current phase."""

    def __init__(
        self,
        timeout: float,
        *,
        idle_timeout: float | None = None,
        release_timeout: float = DEFAULT_RELEASE_TIMEOUT_S,
    ) -> None:
        self.timeout = timeout
        self.idle_timeout = timeout if idle_timeout is None else min(idle_timeout, timeout)
        self.release_timeout = release_timeout
        self.started = time.perf_counter()
        self.deadline = asyncio.get_running_loop().time() + timeout
        self.phase = "connect"
        self.tls: ssl.SSLContext | None = None  # set when the association runs over TLS
        self.idle_bound = False  # True when the current wait ends at the idle deadline

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000.0

    def bounded(self, phase: str) -> asyncio.Timeout:
        """A timeout for one wait: the idle deadline or the overall one, whichever is first."""
        self.phase = phase
        idle_end = asyncio.get_running_loop().time() + self.idle_timeout
        self.idle_bound = idle_end < self.deadline
        return asyncio.timeout_at(min(idle_end, self.deadline))

    def timed_out(self) -> str:
        """What a ``TimeoutError`` in the current phase means, as text."""
        if self.idle_bound:
            return f"no answer within {self.idle_timeout:g} s during {self.phase} (idle deadline)"
        return f"no answer within {self.timeout:g} s during {self.phase}"

    def find_timed_out(self, count: int) -> str:
        """A C-FIND cut short by a deadline: which one, and how many matches had arrived."""
        word = "match" if count == 1 else "matches"
        if self.idle_bound:
            why = f"no response for {self.idle_timeout:g} s (idle deadline)"
        else:
            why = f"not finished within {self.timeout:g} s (overall deadline)"
        return f"C-FIND incomplete after {count} {word}: {why}"

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
            raise _Failed("rejected", str(exc)) from None

    def _tls_started(self, context: ssl.SSLContext) -> None:
        self.tls = context

    async def release(self, association: Association) -> str:
        """Release politely under its own short deadline; a note when the peer did not confirm."""
        self.phase = "release"
        try:
            async with asyncio.timeout(self.release_timeout):
                await association.release()
            return ""
        except TimeoutError:
            await association.abort()
            return f" (release not confirmed within {self.release_timeout:g} s)"
        except (PeerClosed, PeerAborted, PduError, OSError) as exc:
            await association.abort()
            return f" (release not confirmed: {str(exc) or type(exc).__name__})"
        finally:
            await association.close()


def _failure_from(exc: BaseException, session: _Session) -> _Failed:
    """Map an exception raised during a check to an outcome state."""
    if isinstance(exc, _Failed):
        return exc
    tls_cause = handshake_failure(exc, session.phase, session.tls)
    if tls_cause is not None:
        return _Failed("error", tls_cause)
    if isinstance(exc, TimeoutError):
        return _Failed("timeout", session.timed_out())
    if isinstance(exc, ConnectionRefusedError):
        return _Failed("refused", "connection refused")
    if isinstance(exc, PeerAborted):
        return _Failed("aborted", f"{exc} during {session.phase}")
    if isinstance(exc, PeerClosed | ConnectionResetError | BrokenPipeError):
        return _Failed("aborted", f"connection closed by peer during {session.phase}")
    if isinstance(exc, PduError):
        return _Failed("error", f"protocol error during {session.phase}: {exc}")
    if isinstance(exc, OSError):
        return _Failed("error", f"network error during {session.phase}: {exc.strerror or exc}")
    return _Failed("error", f"{type(exc).__name__} during {session.phase}: {exc}")


async def _await_response(
    session: _Session, association: Association, phase: str, expected: type[_M]
) -> _M:
    """The next DIMSE message: an ``expected`` answering our request (PS3.7 §9.3.2.2, §9.3.5.2).

    Raises ``PduError`` for anything else, including a response to another
    message id (MessageIDBeingRespondedTo), which is a protocol error.
    """
    async with session.bounded(phase):
        message = await association.receive()
    if not isinstance(message, expected):
        raise PduError(f"unexpected {type(message).__name__} in answer to {phase}")
    answered = message.command_set.get("MessageIDBeingRespondedTo")
    if answered != _MESSAGE_ID:
        raise PduError(
            f"{phase} response answers message {answered}, we sent message {_MESSAGE_ID}"
        )
    return message


@functools.lru_cache(maxsize=64)
def _echo_request(context_id: int, peer_max_pdu: int) -> bytes:
    # Memoised: every echo sends message 1 on context 1.
    primitive = C_ECHO()
    primitive.MessageID = _MESSAGE_ID
    primitive.AffectedSOPClassUID = VERIFICATION
    request = C_ECHO_RQ()
    request.primitive_to_message(primitive)
    return encode_message(request, context_id, peer_max_pdu)


async def c_echo(
    host: str,
    port: int,
    *,
    called_ae: str,
    calling_ae: str = "PACSTUI",
    tls: ssl.SSLContext | None = None,
    timeout: float = 5.0,
    release_timeout: float = DEFAULT_RELEASE_TIMEOUT_S,
) -> DicomOutcome:
    """Associate, send one C-ECHO (PS3.7 §9.3.5), release; never raises for network failures.

    ``timeout`` (s) bounds connect, association and the C-ECHO; ``latency_ms``
    is the time from the start to the C-ECHO response. The release then gets
    its own ``release_timeout`` (s): a peer that never confirms it costs that
    long at most and adds ``(release not confirmed within N s)`` to ``detail``.
    """
    session = _Session(timeout, release_timeout=release_timeout)
    association: Association | None = None
    try:
        association = await session.associate(
            host,
            port,
            called_ae=called_ae,
            calling_ae=calling_ae,
            abstract_syntaxes=(VERIFICATION,),
            tls=tls,
        )
        context = association.context_for(VERIFICATION)
        if context is None:
            await association.abort()
            return DicomOutcome("error", session.elapsed_ms(), "Verification was not accepted")
        async with session.bounded("C-ECHO"):
            await association.send_encoded(
                _echo_request(context.context_id, association.peer_max_pdu)
            )
        response = await _await_response(session, association, "C-ECHO", C_ECHO_RSP)
        latency_ms = session.elapsed_ms()  # the release is not part of the echo's latency
        status = int(response.command_set.Status)
        note = await session.release(association)
        if status != 0:
            return DicomOutcome("error", latency_ms, f"C-ECHO status 0x{status:04X}{note}")
        return DicomOutcome("ok", latency_ms, f"echo ok{note}")
    except asyncio.CancelledError:
        if association is not None:
            association.writer.close()  # the caller gave up; do not leak the socket
        raise
    except Exception as exc:
        failure = _failure_from(exc, session)
        if association is not None:
            await association.abort()
        return DicomOutcome(failure.state, session.elapsed_ms(), failure.detail)


def study_query(query: Mapping[str, str]) -> Dataset:
    """The study-level identifier for ``query`` plus the standard return keys.

    A value outside ASCII makes the identifier UTF-8 with Specific Character
    Set ``ISO_IR 192`` (PS3.5 §6.1, PS3.3 C.12.1.1.2). Raises ``ValueError``
    for a key that is not a DICOM keyword, or a value that cannot be sent
    as it is (non-ASCII in a DA/CS/UI key, text UTF-8 cannot encode): a
    caller's bug, not a network failure, and never a value sent with ``?``.
    """
    identifier = Dataset()
    charset = query_character_set(query)
    if charset is not None:
        identifier.SpecificCharacterSet = charset
    identifier.QueryRetrieveLevel = "STUDY"
    for keyword in STUDY_RETURN_KEYS:
        setattr(identifier, keyword, "")
    for keyword, value in query.items():
        if tag_for_keyword(keyword) is None:
            raise ValueError(f"{keyword!r} is not a DICOM keyword")
        check_query_value(keyword, value)
        setattr(identifier, keyword, value)
    return identifier


def identifier_fields(identifier: Dataset) -> dict[str, str]:
    """A C-FIND identifier as ``{keyword: text}`` (multiple values joined by ``\\``)."""
    fields: dict[str, str] = {}
    for element in identifier:
        if not element.keyword or element.keyword == "QueryRetrieveLevel":
            continue
        value = element.value
        if value is None:
            text = ""
        elif isinstance(value, MultiValue | list | tuple):
            text = "\\".join(str(v) for v in value)
        else:
            text = str(value)
        fields[element.keyword] = text
    return fields


async def c_find_studies(
    host: str,
    port: int,
    *,
    called_ae: str,
    query: Mapping[str, str],
    calling_ae: str = "PACSTUI",
    tls: ssl.SSLContext | None = None,
    timeout: float = DEFAULT_FIND_TIMEOUT_S,
    idle_timeout: float = DEFAULT_FIND_IDLE_TIMEOUT_S,
    release_timeout: float = DEFAULT_RELEASE_TIMEOUT_S,
    limit: int | None = None,
) -> FindOutcome:
    """A Study Root C-FIND at STUDY level (PS3.4 C.4.1); ``count`` is every match the peer sent.

    ``query`` maps keywords to matching values, e.g. ``{"StudyDate":
    "20260101-20260131", "ModalitiesInStudy": "CT"}``. Only the first
    ``limit`` identifiers are decoded and kept (all are counted).

    Deadlines, in seconds: ``timeout`` bounds the whole query (connect to
    final response); ``idle_timeout`` bounds each wait (connect, association,
    every response), so an archive that keeps streaming matches is never cut
    short while one that stalls is. Either deadline gives state ``timeout``,
    ``complete=False`` and a detail naming the deadline and the matches so
    far. ``latency_ms`` ends at the final response; the release has its own
    ``release_timeout``. Never raises for network or protocol failures;
    raises ``ValueError`` for a bad keyword.
    """
    identifier = study_query(query)
    session = _Session(timeout, idle_timeout=idle_timeout, release_timeout=release_timeout)
    association: Association | None = None
    count = 0
    studies: list[dict[str, str]] = []
    try:
        association = await session.associate(
            host,
            port,
            called_ae=called_ae,
            calling_ae=calling_ae,
            abstract_syntaxes=(STUDY_ROOT_FIND,),
            tls=tls,
        )
        context = association.context_for(STUDY_ROOT_FIND)
        if context is None:
            await association.abort()
            return FindOutcome("error", session.elapsed_ms(), "Study Root FIND was not accepted")
        primitive = C_FIND()
        primitive.MessageID = _MESSAGE_ID
        primitive.AffectedSOPClassUID = STUDY_ROOT_FIND
        primitive.Priority = 2  # low: a probe must not compete with clinical queries
        primitive.Identifier = encode_identifier(identifier, context)
        request = C_FIND_RQ()
        request.primitive_to_message(primitive)
        async with session.bounded("C-FIND"):
            await association.send(request, context.context_id)
        while True:
            response = await _await_response(session, association, "C-FIND", C_FIND_RSP)
            status = int(response.command_set.Status)
            if status in _PENDING:
                count += 1
                if (limit is None or len(studies) < limit) and response.data_set is not None:
                    studies.append(identifier_fields(decode_identifier(response.data_set, context)))
                continue
            break
        latency_ms = session.elapsed_ms()  # the release is not part of the query's latency
        note = await session.release(association)
        word = "study" if count == 1 else "studies"
        if status == 0x0000:
            return FindOutcome(
                "ok", latency_ms, f"{count} {word}{note}", count, tuple(studies), True
            )
        if status == _CANCELLED:
            # We never send C-CANCEL: the peer stopped on its own (a result limit).
            detail = f"C-FIND incomplete: peer stopped after {count} {word} (status 0xFE00){note}"
            return FindOutcome("incomplete", latency_ms, detail, count, tuple(studies))
        comment = str(response.command_set.get("ErrorComment", "") or "").strip()
        detail = f"C-FIND failed: status 0x{status:04X}" + (f": {comment}" if comment else "")
        return FindOutcome("error", latency_ms, detail + note, count, tuple(studies))
    except asyncio.CancelledError:
        if association is not None:
            association.writer.close()  # the caller gave up; do not leak the socket
        raise
    except Exception as exc:
        failure = _failure_from(exc, session)
        detail = failure.detail
        if isinstance(exc, TimeoutError) and session.phase == "C-FIND":
            detail = session.find_timed_out(count)
        if association is not None:
            await association.abort()
        return FindOutcome(failure.state, session.elapsed_ms(), detail, count, tuple(studies))
