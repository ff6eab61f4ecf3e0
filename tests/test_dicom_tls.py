"""DICOM over TLS (PS3.15 Annex B.1) against real peers: dcmtk storescp, Orthanc, the simulator.

Each peer gets certificates from a fresh fleet CA written to files; a second
CA plays the wrong one. Before TLS support every one of these peers was
reported "aborted: connection closed by peer during association".
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from dicom_peers import dcmtk_env, free_port, orthanc, wait_for_port
from pacs_tui.dicom import c_echo, c_find_studies
from pacs_tui.dicom.tls import client_context
from pacs_tui.inventory import DicomEndpoint, DicomTls, Inventory, Server
from pacs_tui.plugin_api import Health, ProbeContext
from pacs_tui.replication.listing import ArchiveLink
from pacs_tui.replication.windows import Window
from pacs_tui.sim.dicom_node import DicomNode
from pacs_tui.sim.pki import FleetPki
from pacs_tui_dicom_echo.probe import DicomProbe
from peers import require_dcmtk
from test_sim_dicom_node import STUDIES, _host

EMPTY_INVENTORY = Inventory(Path("/nonexistent/inventory.yaml"), {}, (), {})
NOT_TRUSTED = "TLS: server certificate not trusted"
CLIENT_CERT_REQUIRED = "requires a client certificate"


@dataclass(frozen=True)
class Pki:
    """The files of one test's PKI: a CA, a server identity, a client identity, a wrong CA."""

    ca: Path
    wrong_ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    fleet: FleetPki

    def tls(self, *, client: bool = False, ca: Path | None = None, verify: bool = True) -> DicomTls:
        return DicomTls(
            ca_file=ca or self.ca,
            cert_file=self.client_cert if client else None,
            key_file=self.client_key if client else None,
            verify=verify,
        )


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    fleet = FleetPki.create()
    files = Pki(
        ca=tmp_path / "ca.pem",
        wrong_ca=tmp_path / "wrong-ca.pem",
        server_cert=tmp_path / "server.pem",
        server_key=tmp_path / "server.key",
        client_cert=tmp_path / "client.pem",
        client_key=tmp_path / "client.key",
        fleet=fleet,
    )
    fleet.write_ca(files.ca)
    FleetPki.create().write_ca(files.wrong_ca)
    fleet.write_server_identity("127.0.0.1", files.server_cert, files.server_key)
    fleet.write_client_identity("PACSTUI", files.client_cert, files.client_key)
    return files


def archive(host: str, port: int, ae_title: str, tls: DicomTls | None) -> Server:
    return Server("arch-01", "dc", "archive", dicom=DicomEndpoint(host, port, ae_title, tls=tls))


async def probe_once(server: Server) -> tuple[str, Health, str, str]:
    probe = DicomProbe()
    await probe.open(ProbeContext(EMPTY_INVENTORY, {"dicom_find": False}))
    result = await probe.probe(server)
    return result.state, result.health, result.detail, str(result.facts["tls"])


@contextmanager
def storescp_tls(pki: Pki, *, require_client_cert: bool) -> Iterator[int]:
    """dcmtk ``storescp +tls`` on 127.0.0.1 (absolute path: the venv has pynetdicom's tools)."""
    binary = require_dcmtk("storescp")
    port = free_port()
    out = pki.ca.parent / f"storescp-{port}"
    out.mkdir()
    peer = "-rc" if require_client_cert else "-ic"  # require, or ignore, a client certificate
    args = [binary, "-aet", "STORESCP", "-od", str(out), "+tls", str(pki.server_key)]
    args += [str(pki.server_cert), "+cf", str(pki.ca), peer, str(port)]
    process = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dcmtk_env()
    )
    try:
        wait_for_port("127.0.0.1", port, process=process)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.peer("dcmtk")
async def test_storescp_tls_echo_ok_wrong_ca_and_missing_client_certificate(pki: Pki) -> None:
    with storescp_tls(pki, require_client_cert=False) as port:
        plain = await probe_once(archive("127.0.0.1", port, "STORESCP", None))
        verified = await probe_once(archive("127.0.0.1", port, "STORESCP", pki.tls()))
        wrong_ca = await probe_once(
            archive("127.0.0.1", port, "STORESCP", pki.tls(ca=pki.wrong_ca))
        )
        unverified = await probe_once(
            archive("127.0.0.1", port, "STORESCP", pki.tls(ca=pki.wrong_ca, verify=False))
        )
    # Plain DICOM to a TLS port: all we can know is that the peer hung up.
    assert plain[:2] == ("aborted", Health.DOWN) and plain[3] == "PLAINTEXT"
    assert verified[:2] == ("ok", Health.OK), verified[2]
    assert verified[3] == "verified" and "TLS NOT VERIFIED" not in verified[2]
    assert wrong_ca[:2] == ("error", Health.UNKNOWN)
    assert NOT_TRUSTED in wrong_ca[2], wrong_ca[2]
    assert unverified[:2] == ("ok", Health.OK), unverified[2]
    assert unverified[3] == "UNVERIFIED" and "TLS NOT VERIFIED" in unverified[2]


@pytest.mark.peer("dcmtk")
async def test_storescp_requiring_a_client_certificate(pki: Pki) -> None:
    with storescp_tls(pki, require_client_cert=True) as port:
        endpoint = DicomEndpoint("127.0.0.1", port, "STORESCP", tls=pki.tls())
        without = await c_echo(
            "127.0.0.1", port, called_ae="STORESCP", tls=client_context(endpoint)
        )
        endpoint = DicomEndpoint("127.0.0.1", port, "STORESCP", tls=pki.tls(client=True))
        with_cert = await c_echo(
            "127.0.0.1", port, called_ae="STORESCP", tls=client_context(endpoint)
        )
    assert without.state == "error"
    assert CLIENT_CERT_REQUIRED in without.detail, without.detail
    assert with_cert.state == "ok", with_cert.detail


def orthanc_tls(pki: Pki, *, require_client_cert: bool) -> dict[str, object]:
    return {
        "DicomTlsEnabled": True,
        "DicomTlsCertificate": str(pki.server_cert),
        "DicomTlsPrivateKey": str(pki.server_key),
        "DicomTlsTrustedCertificates": str(pki.ca),
        "DicomTlsRemoteCertificateRequired": require_client_cert,
    }


@pytest.mark.peer("orthanc")
async def test_orthanc_dicom_tls_echo_find_and_wrong_ca(tmp_path: Path, pki: Pki) -> None:
    extra = orthanc_tls(pki, require_client_cert=False)
    with orthanc(tmp_path, open_to_all=True, extra=extra) as peer:
        port = peer.dicom_port
        plain = await probe_once(archive("127.0.0.1", port, peer.aet, None))
        verified = await probe_once(archive("127.0.0.1", port, peer.aet, pki.tls()))
        wrong_ca = await probe_once(archive("127.0.0.1", port, peer.aet, pki.tls(ca=pki.wrong_ca)))
        endpoint = DicomEndpoint("127.0.0.1", port, peer.aet, tls=pki.tls())
        find = await c_find_studies(
            "127.0.0.1", port, called_ae=peer.aet, query={}, tls=client_context(endpoint)
        )
    assert plain[:2] == ("aborted", Health.DOWN), plain
    assert verified[:2] == ("ok", Health.OK), verified[2]
    assert verified[3] == "verified"
    assert wrong_ca[:2] == ("error", Health.UNKNOWN)
    assert NOT_TRUSTED in wrong_ca[2], wrong_ca[2]
    assert (find.state, find.count, find.complete) == ("ok", 0, True), find.detail


@pytest.mark.peer("orthanc")
async def test_orthanc_requiring_a_client_certificate(tmp_path: Path, pki: Pki) -> None:
    extra = orthanc_tls(pki, require_client_cert=True)
    with orthanc(tmp_path, open_to_all=True, extra=extra) as peer:
        port = peer.dicom_port
        without = await probe_once(archive("127.0.0.1", port, peer.aet, pki.tls()))
        with_cert = await probe_once(archive("127.0.0.1", port, peer.aet, pki.tls(client=True)))
    assert without[:2] == ("error", Health.UNKNOWN)
    assert CLIENT_CERT_REQUIRED in without[2], without[2]
    assert with_cert[:2] == ("ok", Health.OK), with_cert[2]


async def test_simulated_node_serves_tls_from_the_fleet_ca(pki: Pki) -> None:
    host = _host("pacs-tls-01")
    context = pki.fleet.dicom_server_ssl_context(host.address, require_client_cert=True)
    node = DicomNode(
        host, port=free_port(host.address), ae_title="TLSNODE", studies=STUDIES, tls=context
    )
    host.dicom_listener = node
    await node.start()
    try:
        with_cert = await probe_once(
            archive(host.address, node.port, "TLSNODE", pki.tls(client=True))
        )
        without = await probe_once(archive(host.address, node.port, "TLSNODE", pki.tls()))
        wrong_ca = await probe_once(
            archive(host.address, node.port, "TLSNODE", pki.tls(client=True, ca=pki.wrong_ca))
        )
        plain = await probe_once(archive(host.address, node.port, "TLSNODE", None))
        endpoint = DicomEndpoint(host.address, node.port, "TLSNODE", tls=pki.tls(client=True))
        find = await c_find_studies(
            host.address,
            node.port,
            called_ae="TLSNODE",
            query={"StudyDate": "20260105"},
            tls=client_context(endpoint),
        )
    finally:
        await host.stop()
        await node.stop()
    assert with_cert[:2] == ("ok", Health.OK), with_cert[2]
    assert without[:2] == ("error", Health.UNKNOWN)
    assert CLIENT_CERT_REQUIRED in without[2], without[2]
    assert NOT_TRUSTED in wrong_ca[2], wrong_ca[2]
    assert plain[:2] == ("aborted", Health.DOWN), plain
    assert find.state == "ok" and find.count == STUDIES.count(
        STUDIES.first_day.replace(day=5), STUDIES.first_day.replace(day=5)
    ), find.detail


async def test_tls_to_a_plain_dicom_port_names_the_cause(pki: Pki) -> None:
    host = _host("pacs-plain-01")
    node = DicomNode(host, port=free_port(host.address), ae_title="PLAIN")
    host.dicom_listener = node
    await node.start()
    try:
        state, health, detail, tls = await probe_once(
            archive(host.address, node.port, "PLAIN", pki.tls())
        )
    finally:
        await host.stop()
        await node.stop()
    assert (state, health, tls) == ("error", Health.UNKNOWN, "verified")
    assert detail.startswith("TLS: "), detail


async def test_a_client_key_readable_by_others_is_refused_when_the_context_is_built(
    pki: Pki,
) -> None:
    pki.client_key.chmod(0o644)
    state, health, detail, tls = await probe_once(
        archive("127.0.0.1", 9, "ANY", pki.tls(client=True))
    )
    assert (state, health, tls) == ("error", Health.UNKNOWN, "verified")
    assert "TLS setup failed" in detail and "must be 0600" in detail


async def test_replication_lists_and_baseline_counts_over_tls(pki: Pki) -> None:
    # The check and the repair speak to archives through the same TLS settings as the probe.
    host = _host("pacs-tls-02")
    context = pki.fleet.dicom_server_ssl_context(host.address, require_client_cert=False)
    node = DicomNode(
        host, port=free_port(host.address), ae_title="TLSARCH", studies=STUDIES, tls=context
    )
    host.dicom_listener = node
    await node.start()
    day = STUDIES.first_day.replace(day=5)
    try:
        good = ArchiveLink(archive(host.address, node.port, "TLSARCH", pki.tls()))
        listing = await good.list(Window(day))
        wrong = ArchiveLink(archive(host.address, node.port, "TLSARCH", pki.tls(ca=pki.wrong_ca)))
        refused = await wrong.list(Window(day))
        plain = await ArchiveLink(archive(host.address, node.port, "TLSARCH", None)).list(
            Window(day)
        )
    finally:
        await host.stop()
        await node.stop()
    assert listing.complete and len(listing.studies) == STUDIES.count(day, day)
    assert not refused.complete and NOT_TRUSTED in refused.reason, refused.reason
    assert not plain.complete
