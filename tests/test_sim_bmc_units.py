"""Pure logic behind the simulated BMCs: session table, strict-state rules, PKI."""

from __future__ import annotations

import contextlib
import ipaddress
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from pacs_tui.power import PowerState, ResetType
from pacs_tui.sim.pki import FleetPki
from pacs_tui.sim.redfish_flavour import BASE_FLAVOUR, PROFILES, BmcFlavour, state_conflict
from pacs_tui.sim.redfish_sessions import SessionTable


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_session_table_is_bounded_and_frees_on_close() -> None:
    table = SessionTable(limit=2, idle_timeout_s=60, clock=Clock())
    first, second = table.open("root"), table.open("root")
    assert first is not None and second is not None
    assert first.token != second.token and first.session_id != second.session_id
    assert table.open("root") is None
    assert table.close(first.session_id) and not table.close(first.session_id)
    assert table.open("root") is not None
    assert len(table) == 2


def test_session_idle_timer_restarts_on_use() -> None:
    clock = Clock()
    table = SessionTable(limit=8, idle_timeout_s=10, clock=clock)
    busy, idle = table.open("root"), table.open("root")
    assert busy is not None and idle is not None
    clock.now += 8
    assert table.authenticate(busy.token) is busy
    clock.now += 8  # idle: 16 s without use; busy: 8 s since its last request
    assert table.authenticate(idle.token) is None
    assert [s.session_id for s in table.sessions()] == [busy.session_id]
    assert table.authenticate("not-a-token") is None


def test_session_repr_hides_the_token() -> None:
    session = SessionTable(limit=1, idle_timeout_s=1).open("root")
    assert session is not None and session.token not in repr(session)


@pytest.mark.parametrize(
    ("kind", "power", "refused"),
    [
        (ResetType.ON, PowerState.ON, True),
        (ResetType.ON, PowerState.OFF, False),
        (ResetType.ON, PowerState.POWERING_ON, True),
        (ResetType.FORCE_OFF, PowerState.OFF, True),
        (ResetType.FORCE_OFF, PowerState.ON, False),
        (ResetType.GRACEFUL_SHUTDOWN, PowerState.OFF, True),
        (ResetType.GRACEFUL_SHUTDOWN, PowerState.POWERING_OFF, True),
        (ResetType.FORCE_RESTART, PowerState.OFF, True),
        (ResetType.NMI, PowerState.ON, False),
        (ResetType.PUSH_POWER_BUTTON, PowerState.OFF, False),
        (ResetType.PUSH_POWER_BUTTON, PowerState.ON, False),
    ],
)
def test_strict_state_rules(kind: ResetType, power: PowerState, refused: bool) -> None:
    assert state_conflict(kind, power) is refused


def test_flavours_differ_where_clients_must_cope() -> None:
    assert ResetType.GRACEFUL_RESTART not in PROFILES[BmcFlavour.NO_GRACEFUL_RESTART].reset_types
    assert PROFILES[BmcFlavour.STRICT_STATE].strict_state
    assert PROFILES[BmcFlavour.TASK_MONITOR].reset_via_task
    plain = [f for f in PROFILES if BASE_FLAVOUR.get(f, f) is f]
    assert len({PROFILES[f].vendor for f in plain}) == len(plain)
    for flavour, base in BASE_FLAVOUR.items():  # a behaviour flavour keeps its base's vendor
        assert PROFILES[flavour].vendor == PROFILES[base].vendor


def _handshake(pki: FleetPki, served: str, expected: str) -> x509.Certificate:
    """TLS in memory: a server for ``served``, a client expecting ``expected``.

    Returns the certificate the server presented; raises when the client
    (trusting only the fleet CA) refuses it.
    """
    client_ctx = ssl.create_default_context(cadata=pki.ca_pem().decode())
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=expected)
    server = pki.server_ssl_context(served).wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        for side in (client, server):
            with contextlib.suppress(ssl.SSLWantReadError):
                side.do_handshake()
        s_in.write(c_out.read())
        c_in.write(s_out.read())
    der = client.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def test_leaf_certificate_names_the_address_and_chains_to_the_ca(tmp_path: Path) -> None:
    pki = FleetPki.create()
    ca = x509.load_pem_x509_certificate(pki.ca_pem())
    assert pki.server_ssl_context("127.201.0.7") is pki.server_ssl_context("127.201.0.7")
    leaf = _handshake(pki, "127.201.0.7", "127.201.0.7")
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.201.0.7")]
    cn = leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    assert cn == "127.201.0.7"
    assert isinstance(leaf.public_key(), ec.EllipticCurvePublicKey)
    leaf.verify_directly_issued_by(ca)
    pki.write_ca(tmp_path / "ca.pem")
    assert (tmp_path / "ca.pem").read_bytes() == pki.ca_pem()
    assert b"PRIVATE KEY" not in pki.ca_pem()


def test_a_leaf_for_another_address_fails_verification() -> None:
    pki = FleetPki.create()
    with pytest.raises(ssl.SSLCertVerificationError, match="IP address mismatch"):
        _handshake(pki, "127.201.0.7", "127.201.0.8")


def test_three_hundred_leaf_contexts_are_cheap(monkeypatch: pytest.MonkeyPatch) -> None:
    # Cheap by construction, not by a stopwatch (the start-up time is measured by
    # tests/benchmarks/sim_startup.py): one P-256 key per address (~0.1 ms), never an
    # RSA-2048 key (~50 ms, only for the legacy-TLS flavour), and each context made once.
    from pacs_tui.sim import pki as pki_module

    pki = FleetPki.create()
    made: list[object] = []
    real_ec = pki_module.ec.generate_private_key

    def no_rsa(*args: object, **kwargs: object) -> object:
        raise AssertionError("an RSA key was generated for an ordinary BMC certificate")

    def counted_ec(*args: object, **kwargs: object) -> object:
        made.append(args)
        return real_ec(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pki_module.rsa, "generate_private_key", no_rsa)
    monkeypatch.setattr(pki_module.ec, "generate_private_key", counted_ec)
    addresses = [f"127.202.{i // 200}.{1 + i % 200}" for i in range(300)]
    contexts = [pki.server_ssl_context(a) for a in addresses]
    assert len({id(c) for c in contexts}) == 300 and len(made) == 300
    assert [pki.server_ssl_context(a) for a in addresses] == contexts  # cached
    assert len(made) == 300
