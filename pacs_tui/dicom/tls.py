"""DICOM over TLS (PS3.15 Annex B.1, Basic TLS Secure Transport Connection Profile).

The inventory's ``dicom.tls`` block says how to secure an association;
``client_context`` turns it into one ``ssl.SSLContext`` for ``c_echo``,
``c_find_studies`` and any other requestor, and ``handshake_failure`` says
why a TLS connection failed in words that point at the fix. Skipping
verification is an explicit inventory setting and is always shown
(``UNVERIFIED``), as for the BMCs.
"""

from __future__ import annotations

import functools
import os
import ssl
import stat
import weakref
from typing import Literal

from pacs_tui.dicom.pdu_stream import PeerClosed
from pacs_tui.inventory import DicomEndpoint, DicomTls

TlsMode = Literal["verified", "UNVERIFIED", "PLAINTEXT"]

# OpenSSL reasons meaning the two sides share no protocol version or cipher.
_MISMATCH = (
    "HANDSHAKE_FAILURE",
    "NO_SHARED_CIPHER",
    "NO_CIPHERS_AVAILABLE",
    "UNSUPPORTED_PROTOCOL",
    "PROTOCOL_VERSION",
    "NO_PROTOCOLS_AVAILABLE",
    "VERSION_TOO_LOW",
    "INSUFFICIENT_SECURITY",
    "DH_KEY_TOO_SMALL",
)
# Alerts a peer sends when it does not accept the client certificate we presented.
_CLIENT_CERT_REFUSED = (
    "BAD_CERTIFICATE",
    "UNKNOWN_CA",
    "CERTIFICATE_UNKNOWN",
    "UNSUPPORTED_CERTIFICATE",
    "CERTIFICATE_EXPIRED",
    "CERTIFICATE_REVOKED",
    "ACCESS_DENIED",
)
# Reasons that mean the bytes from the peer were not TLS at all.
_NOT_TLS = ("WRONG_VERSION_NUMBER", "PACKET_LENGTH_TOO_LONG", "RECORD_LAYER_FAILURE")
# Contexts that present a client certificate, to word a hang-up after the handshake.
_WITH_CLIENT_CERT: weakref.WeakSet[ssl.SSLContext] = weakref.WeakSet()


def tls_mode(endpoint: DicomEndpoint) -> TlsMode:
    """How associations with ``endpoint`` are protected, as the UI must show it."""
    if endpoint.tls is None:
        return "PLAINTEXT"
    return "verified" if endpoint.tls.verify else "UNVERIFIED"


class TlsSetupError(ValueError):
    """The TLS context of an endpoint cannot be built (CA or key file unusable)."""


def setup_context(endpoint: DicomEndpoint) -> ssl.SSLContext | None:
    """``client_context`` with every failure as ``TlsSetupError("TLS setup failed: ...")``."""
    try:
        return client_context(endpoint)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        raise TlsSetupError(f"TLS setup failed: {exc}") from None


def client_context(endpoint: DicomEndpoint) -> ssl.SSLContext | None:
    """The TLS context for associations with ``endpoint``; None for plain TCP.

    One context per distinct ``tls`` block for the life of the process
    (loading a CA costs milliseconds). TLS 1.2 or newer, as the BCP 195
    profiles of PS3.15 B.9 require; with ``verify`` the certificate must
    chain to ``ca_file`` (or the system store) and name ``endpoint.host``.
    Raises ``ValueError`` when the client key file is readable by others,
    ``OSError``/``ssl.SSLError`` when a file cannot be loaded.
    """
    if endpoint.tls is None:
        return None
    return _context(endpoint.tls)


@functools.lru_cache(maxsize=256)
def _context(tls: DicomTls) -> ssl.SSLContext:
    cafile = str(tls.ca_file) if tls.ca_file is not None and tls.verify else None
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if not tls.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if tls.cert_file is not None and tls.key_file is not None:
        # Checked again here, not only at inventory load: the file may have changed since.
        mode = stat.S_IMODE(os.stat(tls.key_file).st_mode)
        if mode & 0o077:
            raise ValueError(
                f"key file {tls.key_file} has mode {mode:04o}; it must be 0600 "
                f"(chmod 600 {tls.key_file})"
            )
        context.load_cert_chain(tls.cert_file, tls.key_file)
        _WITH_CLIENT_CERT.add(context)
    return context


def handshake_failure(
    exc: BaseException, phase: str, context: ssl.SSLContext | None = None
) -> str | None:
    """Why a TLS connection failed, or None when ``exc`` is no TLS failure.

    ``phase`` is where it happened and ``context`` the TLS context once the
    handshake is done. A TLS 1.3 peer judges our client certificate after
    the handshake: its alert comes at our first read, or is lost when it
    resets the connection on our A-ASSOCIATE-RQ, so a hang-up in the
    ``association`` phase of a TLS connection is read as that verdict.
    """
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = exc.verify_message or "not trusted"
        return f"TLS: server certificate not trusted: {reason} (check dicom.tls.ca_file)"
    if isinstance(exc, ssl.SSLError) and not isinstance(exc, ssl.SSLEOFError):
        reason = (exc.reason or type(exc).__name__).upper()
        if "CERTIFICATE_REQUIRED" in reason:
            return (
                "TLS: the peer requires a client certificate "
                "(set dicom.tls.cert_file and key_file to one it trusts)"
            )
        if any(word in reason for word in _CLIENT_CERT_REFUSED):
            return f"TLS: the peer refused our client certificate ({reason})"
        if any(word in reason for word in _NOT_TLS):
            return f"TLS: the peer does not speak TLS on this port ({reason}); plain DICOM?"
        if any(word in reason for word in _MISMATCH):
            return f"TLS: protocol mismatch, no TLS version or cipher both sides accept ({reason})"
        return f"TLS error during {phase} ({reason})"
    hang_up = ssl.SSLEOFError | ConnectionResetError | BrokenPipeError | EOFError | PeerClosed
    if phase == "TLS handshake" and isinstance(exc, hang_up):
        return (
            "TLS: the peer closed the connection during the TLS handshake "
            "(a plain DICOM port, or it refused our protocol or certificate)"
        )
    if phase == "association" and context is not None and isinstance(exc, hang_up):
        if context in _WITH_CLIENT_CERT:
            return (
                "TLS: the peer closed the connection right after the TLS handshake; "
                "it probably refused our client certificate"
            )
        return (
            "TLS: the peer closed the connection right after the TLS handshake; it probably "
            "requires a client certificate (set dicom.tls.cert_file and key_file)"
        )
    return None
