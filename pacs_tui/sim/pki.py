"""The simulated data center's certificate authority.

Every simulated BMC answers HTTPS with its own leaf certificate for its own
IP address, signed by one fleet CA, so clients can verify TLS the way they
would against a hospital's internal CA. DICOM nodes can serve TLS from the
same CA (PS3.15 Annex B.1), and tests write identities to files for real
peers (Orthanc, dcmtk) that only load certificates from disk. EC P-256 keys keep the cost of a few
hundred leaves to a few milliseconds each; a legacy-TLS BMC gets an RSA leaf,
since its only cipher (``AES256-SHA``) uses RSA key exchange.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

_CA_NAME = "pacs-tui simulated fleet CA"
_VALIDITY = datetime.timedelta(days=3650)
_BACKDATE = datetime.timedelta(days=1)  # tolerate clock skew between processes
LEGACY_CIPHER = "AES256-SHA"  # TLS_RSA_WITH_AES_256_CBC_SHA, as old BMC firmware offers


@dataclass
class FleetPki:
    """A self-signed CA that issues one server certificate per BMC address."""

    _ca_key: ec.EllipticCurvePrivateKey
    _ca_cert: x509.Certificate
    _contexts: dict[str, ssl.SSLContext] = field(default_factory=dict)
    _legacy_contexts: dict[str, ssl.SSLContext] = field(default_factory=dict)
    _dicom_contexts: dict[tuple[str, bool], ssl.SSLContext] = field(default_factory=dict)

    @classmethod
    def create(cls) -> FleetPki:
        """A fresh CA with a new key (nothing is written to disk)."""
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, _CA_NAME)])
        now = datetime.datetime.now(datetime.UTC)
        public = key.public_key()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(_ca_key=key, _ca_cert=cert)

    def ca_pem(self) -> bytes:
        """The CA certificate in PEM, for clients to trust."""
        return self._ca_cert.public_bytes(serialization.Encoding.PEM)

    def write_ca(self, path: Path) -> None:
        """Write the CA certificate (never the key) to ``path`` as PEM."""
        path.write_bytes(self.ca_pem())

    def server_ssl_context(self, address: str) -> ssl.SSLContext:
        """A server TLS context presenting a certificate for IP ``address``.

        The certificate carries the address as IP SAN and CN; contexts are
        cached, so each address gets one key and certificate per ``FleetPki``.
        """
        context = self._contexts.get(address)
        if context is None:
            context = self._new_context(address)
            self._contexts[address] = context
        return context

    def legacy_server_ssl_context(self, address: str) -> ssl.SSLContext:
        """A server context offering only TLS 1.2 with ``AES256-SHA`` (old BMC firmware).

        Python's default client context refuses it (no forward secrecy, SHA-1 MAC);
        ``openssl s_client -tls1_2 -cipher AES256-SHA`` connects.
        """
        context = self._legacy_contexts.get(address)
        if context is None:
            context = self._new_context(address, legacy=True)
            self._legacy_contexts[address] = context
        return context

    def dicom_server_ssl_context(
        self, address: str, *, require_client_cert: bool = False
    ) -> ssl.SSLContext:
        """A DICOM TLS server context (PS3.15 Annex B.1) for IP ``address``.

        With ``require_client_cert`` the handshake fails unless the client
        presents a certificate issued by this CA, as a PACS configured for
        mutual authentication does. Cached per (address, requirement).
        """
        key = (address, require_client_cert)
        context = self._dicom_contexts.get(key)
        if context is None:
            context = self._new_context(address)
            if require_client_cert:
                context.verify_mode = ssl.CERT_REQUIRED
                context.load_verify_locations(cadata=self.ca_pem().decode())
            self._dicom_contexts[key] = context
        return context

    def write_server_identity(self, address: str, cert_file: Path, key_file: Path) -> None:
        """Write a certificate for IP ``address`` and its RSA key (mode 0600) as PEM.

        For peers that read their identity from disk (Orthanc's
        ``DicomTlsCertificate``, dcmtk's ``+tls``); RSA, because some of them
        offer only ECDHE-RSA suites on TLS 1.2. The certificate allows both
        server and client authentication, as Orthanc uses one for both.
        """
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        ip = ipaddress.ip_address(address)
        usages = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
        cert = self._issue(key.public_key(), address, [x509.IPAddress(ip)], usages)
        _write_identity(cert, key, cert_file, key_file)

    def write_client_identity(self, name: str, cert_file: Path, key_file: Path) -> None:
        """Write a client certificate (CN ``name``) and its RSA key (mode 0600) as PEM."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        cert = self._issue(key.public_key(), name, [], [ExtendedKeyUsageOID.CLIENT_AUTH])
        _write_identity(cert, key, cert_file, key_file)

    def _new_context(self, address: str, *, legacy: bool = False) -> ssl.SSLContext:
        ip = ipaddress.ip_address(address)  # ValueError for a host name: BMCs are addressed by IP
        key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
        if legacy:
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        else:
            key = ec.generate_private_key(ec.SECP256R1())
        san = [x509.IPAddress(ip)]
        cert = self._issue(key.public_key(), address, san, [ExtendedKeyUsageOID.SERVER_AUTH])
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if legacy:
            context.maximum_version = ssl.TLSVersion.TLSv1_2
            context.set_ciphers(f"{LEGACY_CIPHER}:@SECLEVEL=0")
        # The ssl module loads keys only from files: write a private 0600 file
        # and remove it at once, so the key never lingers on disk.
        fd, name = tempfile.mkstemp(prefix="pacs-sim-bmc-", suffix=".pem")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(cert.public_bytes(serialization.Encoding.PEM))
                handle.write(
                    key.private_bytes(
                        serialization.Encoding.PEM,
                        serialization.PrivateFormat.PKCS8,
                        serialization.NoEncryption(),
                    )
                )
            context.load_cert_chain(name)
        finally:
            os.unlink(name)
        return context

    def _issue(
        self,
        public: ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
        common_name: str,
        san: Sequence[x509.GeneralName],
        usages: Sequence[ObjectIdentifier],
    ) -> x509.Certificate:
        now = datetime.datetime.now(datetime.UTC)
        ca_ski = self._ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self._ca_cert.subject)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    # RSA key exchange encrypts the premaster secret with this key.
                    key_encipherment=isinstance(public, rsa.RSAPublicKey),
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                critical=False,
            )
        )
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return builder.sign(self._ca_key, hashes.SHA256())


def _write_identity(
    cert: x509.Certificate, key: rsa.RSAPrivateKey, cert_file: Path, key_file: Path
) -> None:
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    # Created 0600 from the start, so the key is never readable by others.
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
    os.chmod(key_file, 0o600)  # an existing file keeps its mode through O_CREAT
