"""Which TLS certificates and protocols a BMC client accepts, and why a handshake failed.

Building a context and loading a CA costs milliseconds, and aiohttp keys its
pooled connections on the context object, so each (CA file, verify, legacy)
combination gets exactly one context for the life of a probe. Skipping
verification and allowing legacy TLS are explicit per-BMC inventory
settings (``verify_tls: false``, ``tls_legacy: true``) and are always shown:
``UNVERIFIED``, ``LEGACY``.
"""

from __future__ import annotations

import errno
import ssl
import warnings
from pathlib import Path
from typing import Literal

from pacs_tui.inventory import BmcEndpoint

TlsMode = Literal["verified", "UNVERIFIED", "PLAINTEXT", "LEGACY", "LEGACY UNVERIFIED"]

# OpenSSL reasons that mean the two sides share no protocol version or cipher.
_MISMATCH = (
    "HANDSHAKE_FAILURE",
    "NO_SHARED_CIPHER",
    "NO_CIPHERS_AVAILABLE",
    "UNSUPPORTED_PROTOCOL",
    "PROTOCOL_VERSION",
    "WRONG_VERSION_NUMBER",
    "NO_PROTOCOLS_AVAILABLE",
    "DH_KEY_TOO_SMALL",
    "UNSAFE_LEGACY_RENEGOTIATION",
    "INSUFFICIENT_SECURITY",
    "VERSION_TOO_LOW",
)
_LEGACY_HINT = "if the BMC's firmware is old, allow it with bmc.tls_legacy: true"


class TlsTrust:
    """Caches the client TLS contexts of every BMC a probe or action talks to."""

    def __init__(self) -> None:
        self._contexts: dict[tuple[Path | None, bool, bool], ssl.SSLContext] = {}

    @staticmethod
    def mode(bmc: BmcEndpoint) -> TlsMode:
        """How the connection to ``bmc`` is protected, as the UI must show it."""
        if bmc.scheme != "https":
            return "PLAINTEXT"
        if bmc.tls_legacy:
            return "LEGACY" if bmc.verify_tls else "LEGACY UNVERIFIED"
        return "verified" if bmc.verify_tls else "UNVERIFIED"

    def context(self, bmc: BmcEndpoint) -> ssl.SSLContext | None:
        """The context for ``bmc``; None for plain HTTP.

        Raises ``OSError`` / ``ssl.SSLError`` when the CA file cannot be loaded.
        """
        if bmc.scheme != "https":
            return None
        ca_file = bmc.ca_file if bmc.verify_tls else None
        key = (ca_file, bmc.verify_tls, bmc.tls_legacy)
        context = self._contexts.get(key)
        if context is None:
            # No CA file: the system's trust store, as a browser would use.
            cafile = str(ca_file) if ca_file is not None else None
            context = ssl.create_default_context(cafile=cafile)
            if not bmc.verify_tls:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            if bmc.tls_legacy:
                # Old BMC firmware: TLS 1.0-1.2 with RSA key exchange and SHA-1 MACs.
                with warnings.catch_warnings():
                    # Deprecated on purpose: it is what the inventory asked for.
                    warnings.simplefilter("ignore", DeprecationWarning)
                    context.minimum_version = ssl.TLSVersion.TLSv1
                context.set_ciphers("DEFAULT:@SECLEVEL=0")
            else:
                context.minimum_version = ssl.TLSVersion.TLSv1_2
            self._contexts[key] = context
        return context


def handshake_failure(error: BaseException | None, bmc: BmcEndpoint) -> str:
    """Why a TLS handshake with ``bmc`` failed, in words that point the right way."""
    if isinstance(error, ssl.SSLCertVerificationError):
        reason = error.verify_message or "not trusted"
        return f"certificate rejected: {reason} (CA file {bmc.ca_file or 'system store'})"
    if isinstance(error, ssl.SSLError):
        reason = (error.reason or type(error).__name__).upper()
        if "CERTIFICATE" in reason:
            return f"certificate problem ({reason})"
        if any(word in reason for word in _MISMATCH):
            hint = "" if bmc.tls_legacy else f"; {_LEGACY_HINT}"
            return f"protocol or cipher mismatch ({reason}){hint}"
        return f"TLS error ({reason})"
    if isinstance(error, ConnectionResetError) or (
        isinstance(error, OSError) and error.errno == errno.ECONNRESET
    ):
        hint = "" if bmc.tls_legacy else f"; {_LEGACY_HINT}"
        return (
            "connection reset by the BMC during the TLS handshake "
            f"(usually a protocol or cipher it does not offer){hint}"
        )
    if isinstance(error, ssl.SSLEOFError | EOFError):
        return "the BMC closed the connection during the TLS handshake"
    return f"TLS handshake failed ({type(error).__name__ if error else 'unknown'})"
