"""Which TLS certificates a BMC client trusts: one ``SSLContext`` per CA file.

Building a context and loading a CA costs milliseconds, and aiohttp keys its
pooled connections on the context object, so each CA file gets exactly one
context for the life of a probe. Skipping verification is an explicit
per-BMC inventory setting and is always reported as ``UNVERIFIED``.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Literal

from pacs_tui.inventory import BmcEndpoint

TlsMode = Literal["verified", "UNVERIFIED", "PLAINTEXT"]


class TlsTrust:
    """Caches the client TLS contexts of every BMC a probe or action talks to."""

    def __init__(self) -> None:
        self._by_ca: dict[Path | None, ssl.SSLContext] = {}
        self._unverified: ssl.SSLContext | None = None

    @staticmethod
    def mode(bmc: BmcEndpoint) -> TlsMode:
        """How the connection to ``bmc`` is protected, as the UI must show it."""
        if bmc.scheme != "https":
            return "PLAINTEXT"
        return "verified" if bmc.verify_tls else "UNVERIFIED"

    def context(self, bmc: BmcEndpoint) -> ssl.SSLContext | None:
        """The context for ``bmc``; None for plain HTTP.

        Raises ``OSError`` / ``ssl.SSLError`` when the CA file cannot be loaded.
        """
        if bmc.scheme != "https":
            return None
        if not bmc.verify_tls:
            if self._unverified is None:
                unverified = ssl.create_default_context()
                unverified.check_hostname = False
                unverified.verify_mode = ssl.CERT_NONE
                self._unverified = unverified
            return self._unverified
        context = self._by_ca.get(bmc.ca_file)
        if context is None:
            # No CA file: the system's trust store, as a browser would use.
            cafile = str(bmc.ca_file) if bmc.ca_file is not None else None
            context = ssl.create_default_context(cafile=cafile)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            self._by_ca[bmc.ca_file] = context
        return context
