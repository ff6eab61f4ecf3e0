"""The simulator's misbehaving BMC flavours, each proven with raw HTTP(S) on loopback."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from pacs_tui.power import PowerState
from pacs_tui.sim.bmc import BmcFlavour, BmcService
from pacs_tui.sim.host import HostTimings, SimulatedHost
from pacs_tui.sim.pki import FleetPki
from pacs_tui.sim.redfish_flavour import FlavourTimings
from peers import require_binary
from redfish_peers import bmc_lab, free_port, make_host, net

USER, PASSWORD = "root", "not-calvin-either"
BASIC = {"Authorization": aiohttp.encode_basic_auth(USER, PASSWORD)}
SESSIONS = "/redfish/v1/SessionService/Sessions"
CREDENTIALS = {"UserName": USER, "Password": PASSWORD}
QUICK = FlavourTimings(login_delay_s=0.6, answer_delay_s=0.4, html_401_session_timeout_s=0.3)
SLOW = HostTimings(power_transition_s=0.4, boot_s=0.1, service_start_s=0.05, shutdown_s=0.05)
F = BmcFlavour


@asynccontextmanager
async def serving(
    hosts: Sequence[SimulatedHost], flavour: BmcFlavour = F.GENERIC, **options: Any
) -> AsyncIterator[BmcService]:
    """One BMC per host (or one enclosure of them all) of ``flavour``, plain HTTP."""
    service = BmcService(
        hosts,
        port=free_port(hosts[0].address),
        username=USER,
        password=PASSWORD,
        **{"flavours": {h.name: flavour for h in hosts}, "timings": QUICK, **options},
    )
    await service.start()
    try:
        yield service
    finally:
        await service.stop()
        for host in hosts:
            await host.stop()


async def one_bmc(flavour: BmcFlavour, **options: Any) -> Any:
    host = make_host("srv-a", f"{net()}.1", **options.pop("host", {}))
    return host, serving([host], flavour, **options)


async def fetch(
    client: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    body: dict[str, Any] | None = None,
    **kwargs: Any,
) -> tuple[int, dict[str, str], Any]:
    """(status, headers, JSON body or None) of one request."""
    async with client.request(method, url, headers=headers, json=body, **kwargs) as resp:
        raw = await resp.read()
        return resp.status, dict(resp.headers), json.loads(raw) if raw else None


async def wait_for(condition: Any, within_s: float = 5.0) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met before the deadline"
        await asyncio.sleep(0.02)


async def reset_target(client: aiohttp.ClientSession, base: str, system: str) -> str:
    _, _, body = await fetch(client, "GET", f"{base}/redfish/v1/Systems/{system}", headers=BASIC)
    return base + str(body["Actions"]["#ComputerSystem.Reset"]["target"])


# -- blade enclosure ------------------------------------------------------------------


async def test_blade_enclosure_is_one_bmc_in_front_of_every_blade() -> None:
    prefix = net()
    blades = [make_host(f"blade-{i}", f"{prefix}.{i}") for i in range(1, 5)]
    loner = make_host("loner", f"{prefix}.9")
    async with (
        serving(
            [*blades, loner],
            F.BLADE_ENCLOSURE,
            enclosures=[[b.name for b in blades]],
            flavours={**{b.name: F.BLADE_ENCLOSURE for b in blades}, "loner": F.GENERIC},
        ) as service,
        aiohttp.ClientSession() as client,
    ):
        base = service.base_url("blade-1")
        assert {service.base_url(b.name) for b in blades} == {base}
        assert service.base_url("loner") != base
        assert [service.flavour(b.name) for b in blades] == [F.BLADE_ENCLOSURE] * 4
        assert service.enclosure("blade-3") == [b.name for b in blades]
        assert service.system_id("blade-3") == "Blade3"
        _, _, systems = await fetch(client, "GET", f"{base}/redfish/v1/Systems", headers=BASIC)
        ids = [m["@odata.id"].rsplit("/", 1)[1] for m in systems["Members"]]
        assert ids == ["Blade1", "Blade2", "Blade3", "Blade4"]
        for i, blade in enumerate(blades, 1):
            _, _, body = await fetch(
                client, "GET", f"{base}/redfish/v1/Systems/Blade{i}", headers=BASIC
            )
            assert (body["Id"], body["HostName"]) == (f"Blade{i}", blade.name)
            assert body["SerialNumber"] == f"SN-{blade.name}"
            assert body["Links"]["Chassis"] == [{"@odata.id": f"/redfish/v1/Chassis/Blade{i}"}]
        _, _, chassis = await fetch(client, "GET", f"{base}/redfish/v1/Chassis", headers=BASIC)
        members = [m["@odata.id"].rsplit("/", 1)[1] for m in chassis["Members"]]
        assert members == ["Enclosure", "Blade1", "Blade2", "Blade3", "Blade4"]
        _, _, enclosure = await fetch(
            client, "GET", f"{base}/redfish/v1/Chassis/Enclosure", headers=BASIC
        )
        assert enclosure["ChassisType"] == "Enclosure"
        assert len(enclosure["Links"]["Contains"]) == 4
        _, _, blade = await fetch(client, "GET", f"{base}/redfish/v1/Chassis/Blade2", headers=BASIC)
        assert blade["ChassisType"] == "Blade"
        assert blade["Links"]["ContainedBy"] == {"@odata.id": "/redfish/v1/Chassis/Enclosure"}
        manager_uri = base + enclosure["Links"]["ManagedBy"][0]["@odata.id"]
        _, _, manager = await fetch(client, "GET", manager_uri, headers=BASIC)
        assert len(manager["Links"]["ManagerForServers"]) == 4

        # A reset of Blade3 powers off blade-3 only.
        target = await reset_target(client, base, "Blade3")
        assert target.endswith("/Systems/Blade3/Actions/ComputerSystem.Reset")
        status, _, _ = await fetch(
            client, "POST", target, headers=BASIC, body={"ResetType": "ForceOff"}
        )
        assert status == 204
        await wait_for(lambda: blades[2].power_state is PowerState.OFF)
        assert [b.power_state for b in blades] == [PowerState.ON] * 2 + [
            PowerState.OFF,
            PowerState.ON,
        ]
        assert service.resets("blade-3") == ["ForceOff"]
        assert [service.resets(b.name) for b in (blades[0], blades[1], blades[3])] == [[]] * 3
        _, _, off = await fetch(client, "GET", f"{base}/redfish/v1/Systems/Blade3", headers=BASIC)
        _, _, on = await fetch(client, "GET", f"{base}/redfish/v1/Systems/Blade4", headers=BASIC)
        assert (off["PowerState"], on["PowerState"]) == ("Off", "On")

        # One session table and one listener for the whole enclosure.
        assert (await fetch(client, "POST", base + SESSIONS, body=CREDENTIALS))[0] == 201
        assert [service.active_sessions(b.name) for b in blades] == [1] * 4
        assert service.active_sessions("loner") == 0
        await service.set_reachable("blade-4", False)
        async with aiohttp.ClientSession() as fresh:
            with pytest.raises(aiohttp.ClientConnectionError):
                await fetch(fresh, "GET", f"{base}/redfish/v1/")
        await service.set_reachable("blade-4", True)
        assert (await fetch(client, "GET", f"{base}/redfish/v1/"))[0] == 200


async def test_a_fault_on_any_blade_hits_the_shared_bmc() -> None:
    prefix = net()
    blades = [make_host(f"blade-{i}", f"{prefix}.{i}") for i in range(1, 3)]
    async with (
        serving(blades, F.BLADE_ENCLOSURE, enclosures=[["blade-1", "blade-2"]]) as service,
        aiohttp.ClientSession() as client,
    ):
        url = f"{service.base_url('blade-1')}/redfish/v1/Systems"
        blades[1].faults.bmc_503 = True
        assert (await fetch(client, "GET", url, headers=BASIC))[0] == 503
        blades[1].faults.bmc_503 = False
        assert (await fetch(client, "GET", url, headers=BASIC))[0] == 200


def test_an_enclosure_of_mixed_flavours_is_refused() -> None:
    prefix = net()
    hosts = [make_host("a", f"{prefix}.1"), make_host("b", f"{prefix}.2")]
    with pytest.raises(ValueError, match="every blade is blade-enclosure"):
        BmcService(
            hosts,
            port=1,
            username=USER,
            password=PASSWORD,
            flavours={"a": F.BLADE_ENCLOSURE, "b": F.GENERIC},
            enclosures=[["a", "b"]],
        )


# -- every flavour: acting on arrival, counting what arrived -------------------------


async def test_a_reset_is_carried_out_when_the_client_gives_up_before_the_answer() -> None:
    host, bmc = await one_bmc(F.GENERIC)
    async with bmc as service, aiohttp.ClientSession() as client:
        base = service.base_url("srv-a")
        target = await reset_target(client, base, "1")
        host.faults.update({"bmc_answer_delay_s": 2})
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await fetch(
                client,
                "POST",
                target,
                headers=BASIC,
                body={"ResetType": "ForceOff"},
                timeout=aiohttp.ClientTimeout(total=0.5),
            )
        assert time.monotonic() - started < 1.5
        await wait_for(lambda: host.power_state is PowerState.OFF, within_s=1.0)
        assert service.resets("srv-a") == ["ForceOff"]
        path = "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset"
        assert service.requests("srv-a")[("POST", path)] == 1


async def test_a_reset_delayed_before_acting_still_acts_after_the_client_left() -> None:
    host, bmc = await one_bmc(F.GENERIC)
    async with bmc as service, aiohttp.ClientSession() as client:
        target = await reset_target(client, service.base_url("srv-a"), "1")
        host.faults.bmc_delay_s = 0.6
        with pytest.raises(TimeoutError):
            await fetch(
                client,
                "POST",
                target,
                headers=BASIC,
                body={"ResetType": "ForceOff"},
                timeout=aiohttp.ClientTimeout(total=0.2),
            )
        assert str(host.power_state) == "On"  # not yet: the BMC is still "busy"
        await wait_for(lambda: host.power_state is PowerState.OFF, within_s=2.0)
        assert service.resets("srv-a") == ["ForceOff"]


async def test_requests_and_resets_are_counted_per_bmc_and_per_host() -> None:
    _, bmc = await one_bmc(F.STRICT_STATE)
    async with bmc as service, aiohttp.ClientSession() as client:
        base = service.base_url("srv-a")
        target = await reset_target(client, base, "1")
        for kind in ("On", "ForceOff"):  # On is refused (409) but was received
            await fetch(client, "POST", target, headers=BASIC, body={"ResetType": kind})
        assert service.resets("srv-a") == ["On", "ForceOff"]
        counts = service.requests("srv-a")
        assert counts[("GET", "/redfish/v1/Systems/1")] == 1
        assert counts[("POST", "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset")] == 2
        service.requests("srv-a").clear()  # a copy: the BMC's own count is untouched
        assert sum(service.requests("srv-a").values()) == 3


# -- sessions -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flavour", "status"), [(F.SESSION_REDIRECT, 308), (F.SESSION_REDIRECT_301, 301)]
)
async def test_session_post_redirects_to_the_trailing_slash(
    flavour: BmcFlavour, status: int
) -> None:
    _, bmc = await one_bmc(flavour)
    async with bmc as service, aiohttp.ClientSession() as client:
        base = service.base_url("srv-a")
        code, headers, _ = await fetch(
            client, "POST", base + SESSIONS, body=CREDENTIALS, allow_redirects=False
        )
        assert code == status
        assert headers["Location"] == f"{SESSIONS}/"
        assert "X-Auth-Token" not in headers
        assert service.active_sessions("srv-a") == 0
        code, headers, _ = await fetch(client, "POST", f"{base}{SESSIONS}/", body=CREDENTIALS)
        assert code == 201 and headers["X-Auth-Token"]
        assert service.active_sessions("srv-a") == 1
        # A client that follows the redirect: 308 keeps the POST, 301 turns it into a GET.
        code, _, _ = await fetch(client, "POST", base + SESSIONS, body=CREDENTIALS)
        assert code == (201 if status == 308 else 401)


async def test_no_session_post_refuses_sessions_and_takes_basic_auth() -> None:
    host, bmc = await one_bmc(F.NO_SESSION_POST)
    async with bmc as service, aiohttp.ClientSession() as client:
        base = service.base_url("srv-a")
        _, _, root = await fetch(client, "GET", f"{base}/redfish/v1/")
        assert root["SessionService"] == {"@odata.id": "/redfish/v1/SessionService"}
        # The schema requires Links.Sessions; the misbehaviour is the refused POST.
        assert root["Links"]["Sessions"] == {"@odata.id": SESSIONS}
        status, headers, body = await fetch(client, "POST", base + SESSIONS, body=CREDENTIALS)
        assert status == 405 and headers["Allow"] == "GET"
        assert body["error"]["@Message.ExtendedInfo"][0]["MessageId"].endswith(
            "OperationNotAllowed"
        )
        assert service.active_sessions("srv-a") == 0
        target = await reset_target(client, base, "1")
        status, _, _ = await fetch(
            client, "POST", target, headers=BASIC, body={"ResetType": "ForceOff"}
        )
        assert status == 204
        await wait_for(lambda: host.power_state is PowerState.OFF)


async def raw_get(address: str, port: int, path: str, token: str) -> tuple[bytes, bytes]:
    """(head, everything after it) of one HTTP/1.1 GET, read until the server closes."""
    reader, writer = await asyncio.open_connection(address, port)
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: {address}\r\nX-Auth-Token: {token}\r\n\r\n".encode()
    )
    async with asyncio.timeout(5):
        raw = await reader.read(-1)  # returns only once the server has closed
    writer.close()
    head, _, rest = raw.partition(b"\r\n\r\n")
    return head, rest


async def test_html_401_cuts_off_a_stale_token_before_the_first_chunk() -> None:
    host, bmc = await one_bmc(F.HTML_401)
    async with bmc as service, aiohttp.ClientSession() as client:
        base = service.base_url("srv-a")
        status, headers, _ = await fetch(client, "POST", base + SESSIONS, body=CREDENTIALS)
        token = headers["X-Auth-Token"]
        url = f"{base}/redfish/v1/Systems"
        assert (await fetch(client, "GET", url, headers={"X-Auth-Token": token}))[0] == 200
        await asyncio.sleep(0.45)  # past the 0.3 s idle timeout
        assert service.active_sessions("srv-a") == 0
        for stale in (token, "never-issued"):
            head, rest = await raw_get(host.address, service.port, "/redfish/v1/Systems", stale)
            lines = head.decode().lower().split("\r\n")
            assert lines[0] == "http/1.1 401 unauthorized"
            assert "content-type: text/html" in lines
            assert "transfer-encoding: chunked" in lines
            assert rest == b""  # closed before any chunk, not even the last one
        with pytest.raises(aiohttp.ClientPayloadError):
            await fetch(client, "GET", url, headers={"X-Auth-Token": token})
        status, headers, _ = await fetch(client, "POST", base + SESSIONS, body=CREDENTIALS)
        assert status == 201
        fresh = {"X-Auth-Token": headers["X-Auth-Token"]}
        assert (await fetch(client, "GET", url, headers=fresh))[0] == 200
        assert (await fetch(client, "GET", url))[0] == 401  # no token: the JSON 401


async def test_slow_login_creates_the_session_on_arrival() -> None:
    _, bmc = await one_bmc(F.SLOW_LOGIN)
    async with bmc as service, aiohttp.ClientSession() as client:
        url = service.base_url("srv-a") + SESSIONS
        with pytest.raises(TimeoutError):
            await fetch(
                client, "POST", url, body=CREDENTIALS, timeout=aiohttp.ClientTimeout(total=0.2)
            )
        assert service.active_sessions("srv-a") == 1  # left behind, as on a real BMC
        started = time.monotonic()
        status, _, _ = await fetch(client, "POST", url, body=CREDENTIALS)
        assert status == 201
        assert 0.6 <= time.monotonic() - started < 2.0
        assert service.active_sessions("srv-a") == 2
        started = time.monotonic()
        assert (await fetch(client, "GET", service.base_url("srv-a") + "/redfish/v1/"))[0] == 200
        assert time.monotonic() - started < 0.3  # only the login is slow


def test_slow_flavours_default_to_the_field_delays() -> None:
    defaults = FlavourTimings()
    assert (defaults.login_delay_s, defaults.answer_delay_s) == (6.0, 3.0)
    assert defaults.html_401_session_timeout_s == 30.0  # the schema's minimum SessionTimeout


async def test_slow_answers_act_at_once_and_answer_late() -> None:
    host, bmc = await one_bmc(F.SLOW_ANSWERS)
    async with bmc as service, aiohttp.ClientSession() as client:
        base = service.base_url("srv-a")
        started = time.monotonic()
        assert (await fetch(client, "GET", f"{base}/redfish/v1/"))[0] == 200
        assert 0.4 <= time.monotonic() - started < 1.5
        with pytest.raises(TimeoutError):
            await fetch(
                client,
                "POST",
                f"{base}/redfish/v1/Systems/1/Actions/ComputerSystem.Reset",
                headers=BASIC,
                body={"ResetType": "ForceOff"},
                timeout=aiohttp.ClientTimeout(total=0.2),
            )
        await wait_for(lambda: host.power_state is PowerState.OFF, within_s=0.3)
        assert service.resets("srv-a") == ["ForceOff"]


# -- error bodies ---------------------------------------------------------------------


async def bad_reset(client: aiohttp.ClientSession, base: str) -> tuple[int, Any]:
    url = f"{base}/redfish/v1/Systems/1/Actions/ComputerSystem.Reset"
    status, _, body = await fetch(client, "POST", url, headers=BASIC, body={"ResetType": "Warp"})
    return status, body


async def test_extended_info_only_errors_carry_no_message() -> None:
    _, bmc = await one_bmc(F.EXTENDED_INFO_ONLY)
    async with bmc as service, aiohttp.ClientSession() as client:
        base = service.base_url("srv-a")
        status, body = await bad_reset(client, base)
        assert status == 400
        assert set(body) == {"error"}
        error = body["error"]
        assert error["message"] == "See @Message.ExtendedInfo for more information."
        assert error["code"] == "Base.1.12.GeneralError"
        (info,) = error["@Message.ExtendedInfo"]
        assert "Message" not in info
        assert info["MessageId"] == "Base.1.12.ActionParameterValueNotInList"
        assert info["MessageArgs"] == ["Warp", "ResetType", "ComputerSystem.Reset"]
        status, _, body = await fetch(client, "GET", f"{base}/redfish/v1/Systems")
        assert status == 401
        assert body["error"]["@Message.ExtendedInfo"][0]["MessageId"].endswith("NoValidSession")


async def test_extended_info_vendor_errors_use_vendor_spellings() -> None:
    _, bmc = await one_bmc(F.EXTENDED_INFO_VENDOR)
    async with bmc as service, aiohttp.ClientSession() as client:
        status, body = await bad_reset(client, service.base_url("srv-a"))
        assert status == 400
        assert body["error"] == {
            "code": "Base.1.12.GeneralError",
            "message": "See @Message.ExtendedInfo for more information.",
        }
        (info,) = body["@Message.ExtendedInfo"]
        assert info["MessageID"] == "Base.1.12.ActionParameterValueNotInList"
        assert info["MessageArguments"] == ["Warp", "ResetType", "ComputerSystem.Reset"]
        assert not {"MessageId", "MessageArgs", "Message"} & set(info)


# -- task monitors --------------------------------------------------------------------


async def start_task(
    client: aiohttp.ClientSession, base: str, kind: str
) -> tuple[int, dict[str, str]]:
    url = f"{base}/redfish/v1/Systems/System.Embedded.1/Actions/ComputerSystem.Reset"
    status, headers, _ = await fetch(client, "POST", url, headers=BASIC, body={"ResetType": kind})
    return status, headers


async def test_task_204_monitor_ends_with_no_content() -> None:
    host, bmc = await one_bmc(F.TASK_204, host={"power": PowerState.OFF, "timings": SLOW})
    async with bmc as service, aiohttp.ClientSession() as client:
        base = service.base_url("srv-a")
        status, headers = await start_task(client, base, "On")
        assert status == 202
        monitor = base + headers["Location"]
        status, _, body = await fetch(client, "GET", monitor, headers=BASIC)
        assert status == 202 and body["TaskState"] == "Running"
        seen = []
        while True:
            async with client.get(monitor, headers=BASIC) as resp:
                seen.append(resp.status)
                raw = await resp.read()
                if resp.status != 202:
                    break
            await asyncio.sleep(0.05)
        assert seen[-1] == 204 and raw == b""
        assert set(seen[:-1]) <= {202}
        assert host.power_state is PowerState.ON


async def test_task_503_once_fails_the_first_poll_of_each_task() -> None:
    host, bmc = await one_bmc(F.TASK_503_ONCE, host={"timings": SLOW})
    async with bmc as service, aiohttp.ClientSession() as client:
        base = service.base_url("srv-a")
        for kind in ("ForceOff", "On"):
            status, headers = await start_task(client, base, kind)
            assert status == 202
            monitor = base + headers["Location"]
            status, answer, body = await fetch(client, "GET", monitor, headers=BASIC)
            assert status == 503 and answer["Retry-After"] == "1"
            assert body["error"]["@Message.ExtendedInfo"][0]["MessageId"].endswith(
                "ServiceTemporarilyUnavailable"
            )
            while (await fetch(client, "GET", monitor, headers=BASIC))[0] == 202:
                await asyncio.sleep(0.05)
            status, _, body = await fetch(client, "GET", monitor, headers=BASIC)
            assert status == 200 and body["TaskState"] == "Completed"
        assert host.power_state is PowerState.ON
        assert service.resets("srv-a") == ["ForceOff", "On"]


# -- power state words ----------------------------------------------------------------


async def test_null_power_state_flavour_and_the_power_state_word_fault() -> None:
    prefix = net()
    odd = make_host("odd", f"{prefix}.1")
    plain = make_host("plain", f"{prefix}.2")
    async with (
        serving([odd, plain], flavours={"odd": F.NULL_POWER_STATE, "plain": F.GENERIC}) as service,
        aiohttp.ClientSession() as client,
    ):

        async def power_state(name: str) -> Any:
            url = f"{service.base_url(name)}/redfish/v1/Systems/1"
            _, _, body = await fetch(client, "GET", url, headers=BASIC)
            assert "PowerState" in body
            return body["PowerState"]

        assert await power_state("odd") is None
        assert await power_state("plain") == "On"
        plain.faults.update({"bmc_power_state_word": "Starting"})
        assert await power_state("plain") == "Starting"
        plain.faults.update({"bmc_power_state_word": "null"})
        assert await power_state("plain") is None
        plain.faults.update({"bmc_power_state_word": ""})
        assert await power_state("plain") == "On"


# -- a flavour planted at run time ----------------------------------------------------


async def test_the_bmc_flavour_fault_switches_a_server_at_run_time() -> None:
    host, bmc = await one_bmc(F.GENERIC)
    async with bmc as service, aiohttp.ClientSession() as client:
        url = service.base_url("srv-a") + SESSIONS
        host.faults.update({"bmc_flavour": "no-session-post"})
        assert service.flavour("srv-a") is F.NO_SESSION_POST
        assert (await fetch(client, "POST", url, body=CREDENTIALS))[0] == 405
        host.faults.update({"bmc_flavour": ""})
        assert (await fetch(client, "POST", url, body=CREDENTIALS))[0] == 201
    with pytest.raises(ValueError, match="bmc_flavour"):
        host.faults.update({"bmc_flavour": "blade-enclosure"})
    with pytest.raises(ValueError, match="bmc_flavour"):
        host.faults.update({"bmc_flavour": "wobbly"})


# -- legacy TLS -----------------------------------------------------------------------


async def test_legacy_tls_offers_only_tls12_with_aes256_sha(tmp_path: Path) -> None:
    openssl = require_binary("openssl", "/usr/bin/openssl")  # CI installs it (.ci/run)
    pki = FleetPki.create()
    ca = tmp_path / "ca.pem"
    pki.write_ca(ca)
    host = make_host("old", f"{net()}.1")
    async with serving([host], F.LEGACY_TLS, pki=pki) as service:
        address, port = host.address, service.port

        async def s_client(*options: str) -> tuple[int, str]:
            process = await asyncio.create_subprocess_exec(
                openssl,
                "s_client",
                "-connect",
                f"{address}:{port}",
                "-CAfile",
                str(ca),
                *options,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            out, _ = await asyncio.wait_for(process.communicate(), 10)
            return process.returncode or 0, out.decode(errors="replace")

        code, out = await s_client("-tls1_2", "-cipher", "AES256-SHA")
        assert code == 0, out
        assert "Cipher is AES256-SHA" in out and "TLSv1.2" in out
        code, out = await s_client("-tls1_3")
        assert code != 0  # no TLS 1.3 at all

        # Python's default client context shares no cipher with it: no handshake.
        modern = ssl.create_default_context(cafile=str(ca))
        with pytest.raises((ssl.SSLError, ConnectionResetError)):
            await asyncio.open_connection(address, port, ssl=modern)
        url = f"{service.base_url('old')}/redfish/v1/"
        async with aiohttp.ClientSession() as client:
            legacy = ssl.create_default_context(cafile=str(ca))
            legacy.maximum_version = ssl.TLSVersion.TLSv1_2
            legacy.set_ciphers("AES256-SHA:@SECLEVEL=0")
            assert (await fetch(client, "GET", url, ssl=legacy))[0] == 200


# -- the lab other tests start ---------------------------------------------------------


async def test_bmc_lab_starts_blade_enclosures_and_slow_flavours(tmp_path: Path) -> None:
    flavours = {
        "b1": F.BLADE_ENCLOSURE,
        "b2": F.BLADE_ENCLOSURE,
        "b3": F.BLADE_ENCLOSURE,
        "old": F.LEGACY_TLS,
    }
    async with bmc_lab(tmp_path, flavours, enclosure_size=2, timings=QUICK) as lab:
        bmcs = {name: lab.server(name).bmc for name in flavours}
        assert all(b is not None for b in bmcs.values())
        b1, b2, b3, old = (bmcs[n] for n in ("b1", "b2", "b3", "old"))
        assert b1 and b2 and b3 and old
        assert (b1.address, b1.system) == (lab.hosts["b1"].address, "Blade1")
        assert (b2.address, b2.system) == (lab.hosts["b1"].address, "Blade2")
        assert (b3.address, b3.system) == (lab.hosts["b3"].address, "Blade1")
        assert old.system is None and old.tls_legacy
        assert lab.service.enclosure("b2") == ["b1", "b2"]
