"""The simulated Redfish BMCs, exercised with a real HTTP client on loopback."""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import random
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from pacs_tui.power import PowerState
from pacs_tui.sim.bmc import BmcFlavour, BmcService
from pacs_tui.sim.host import HardwareFacts, HostTimings, SimulatedHost
from pacs_tui.sim.pki import FleetPki
from pacs_tui.sim.redfish_flavour import FlavourTimings
from peers import require_module
from redfish_peers import FAST, free_port, net

USER, PASSWORD = "root", "calvin-not-really"
# The slow flavours' delays, scaled down: these tests need their behaviour, not the wait.
QUICK = FlavourTimings(login_delay_s=0.05, answer_delay_s=0.05, html_401_session_timeout_s=3.0)


def make_host(
    name: str,
    address: str,
    *,
    power: PowerState = PowerState.ON,
    timings: HostTimings = FAST,
) -> SimulatedHost:
    hardware = HardwareFacts(
        manufacturer="Torvik Data",
        model="TD-740xd",
        serial_number=f"SN-{name}",
        mac_addresses=("b0:7b:25:00:00:01", "b0:7b:25:00:00:02"),
        bios_version="1.9.2",
        bmc_firmware="6.10.30.00",
    )
    return SimulatedHost(
        name=name,
        role="pacs",
        site="old",
        address=address,
        units=("pacs",),
        hardware=hardware,
        timings=timings,
        power_state=power,
        os_state="up" if power is PowerState.ON else "down",
    )


@asynccontextmanager
async def serving(hosts: Sequence[SimulatedHost], **options: Any) -> AsyncIterator[BmcService]:
    service = BmcService(
        hosts,
        port=free_port(hosts[0].address),
        username=USER,
        password=PASSWORD,
        **{"timings": QUICK, **options},
    )
    await service.start()
    try:
        yield service
    finally:
        await service.stop()
        for host in hosts:
            await host.stop()


BASIC = {"Authorization": aiohttp.encode_basic_auth(USER, PASSWORD)}


async def fetch(
    client: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    body: dict[str, Any] | None = None,
) -> tuple[int, dict[str, str], Any]:
    """(status, headers, JSON body or None) of one request."""
    async with client.request(method, url, headers=headers, json=body) as resp:
        raw = await resp.read()
        return resp.status, dict(resp.headers), json.loads(raw) if raw else None


async def wait_for(condition: Callable[[], bool | Awaitable[bool]], within_s: float = 5.0) -> None:
    """Poll ``condition`` (sync or async) until it holds; fail after ``within_s``."""
    deadline = time.monotonic() + within_s
    while True:
        result = condition()
        if await result if inspect.isawaitable(result) else result:
            return
        assert time.monotonic() < deadline, "condition not met before the deadline"
        await asyncio.sleep(0.02)


def message_of(body: dict[str, Any]) -> str:
    return str(body["error"]["@Message.ExtendedInfo"][0]["Message"])


def message_id(body: dict[str, Any]) -> str:
    return str(body["error"]["@Message.ExtendedInfo"][0]["MessageId"])


async def system_of(client: aiohttp.ClientSession, base: str) -> dict[str, Any]:
    """Follow the service root to the ComputerSystem, as a client must."""
    _, _, root = await fetch(client, "GET", f"{base}/redfish/v1/")
    _, _, systems = await fetch(client, "GET", base + root["Systems"]["@odata.id"], headers=BASIC)
    status, _, system = await fetch(
        client, "GET", base + systems["Members"][0]["@odata.id"], headers=BASIC
    )
    assert status == 200
    return dict(system)


# -- resources ------------------------------------------------------------------------


async def test_service_root_is_public_and_links_everything() -> None:
    host = make_host("pacs-a", f"{net()}.1")
    async with serving([host]) as service, aiohttp.ClientSession() as client:
        base = service.base_url("pacs-a")
        status, headers, root = await fetch(client, "GET", f"{base}/redfish/v1/")
        assert status == 200
        assert headers["OData-Version"] == "4.0"
        assert headers["Content-Type"].startswith("application/json")
        for link in ("Systems", "Managers", "Chassis", "SessionService"):
            assert root[link]["@odata.id"] == f"/redfish/v1/{link}"
        assert root["Tasks"]["@odata.id"] == "/redfish/v1/TaskService"
        assert root["Links"]["Sessions"]["@odata.id"] == "/redfish/v1/SessionService/Sessions"
        assert {"@odata.id", "@odata.type", "Id", "Name"} <= set(root)
        status, _, versions = await fetch(client, "GET", f"{base}/redfish")
        assert (status, versions) == (200, {"v1": "/redfish/v1/"})


async def test_system_manager_and_chassis_report_the_host() -> None:
    host = make_host("pacs-a", f"{net()}.1")
    async with serving([host]) as service, aiohttp.ClientSession() as client:
        base = service.base_url("pacs-a")
        system = await system_of(client, base)
        assert system["PowerState"] == "On"
        assert system["HostName"] == "pacs-a"
        assert system["SerialNumber"] == "SN-pacs-a"
        assert system["BiosVersion"] == "1.9.2"
        assert (system["Manufacturer"], system["Model"]) == ("Torvik Data", "TD-740xd")
        assert system["Status"] == {"State": "Enabled", "Health": "OK"}
        nics_uri = base + system["EthernetInterfaces"]["@odata.id"]
        _, _, nics = await fetch(client, "GET", nics_uri, headers=BASIC)
        macs = []
        for member in nics["Members"]:
            _, _, nic = await fetch(client, "GET", base + member["@odata.id"], headers=BASIC)
            macs.append(nic["MACAddress"])
        assert macs == list(host.hardware.mac_addresses)
        manager_uri = base + system["Links"]["ManagedBy"][0]["@odata.id"]
        _, _, manager = await fetch(client, "GET", manager_uri, headers=BASIC)
        assert (manager["ManagerType"], manager["FirmwareVersion"]) == ("BMC", "6.10.30.00")
        chassis_uri = base + system["Links"]["Chassis"][0]["@odata.id"]
        _, _, chassis = await fetch(client, "GET", chassis_uri, headers=BASIC)
        assert (chassis["SerialNumber"], chassis["PowerState"]) == ("SN-pacs-a", "On")
        status, _, missing = await fetch(
            client, "GET", f"{base}/redfish/v1/Systems/9", headers=BASIC
        )
        assert status == 404 and message_id(missing).endswith("ResourceMissingAtURI")
        status, headers, _ = await fetch(
            client, "DELETE", f"{base}/redfish/v1/Systems", headers=BASIC
        )
        assert status == 405 and headers["Allow"] == "GET, HEAD"


async def test_protocol_details_the_dmtf_protocol_validator_checks() -> None:
    host = make_host("pacs-a", f"{net()}.1")
    async with serving([host]) as service, aiohttp.ClientSession() as client:
        base = service.base_url("pacs-a")
        status, headers, root = await fetch(client, "GET", f"{base}/redfish/v1/")
        assert status == 200 and headers["Allow"] == "GET, HEAD"
        schema = "https://redfish.dmtf.org/schemas/v1/ServiceRoot.v1_15_0.json"
        assert headers["Link"] == f"<{schema}>; rel=describedby"
        assert root["@odata.type"] == "#ServiceRoot.v1_15_0.ServiceRoot"
        status, headers, body = await fetch(client, "HEAD", f"{base}/redfish/v1/Systems")
        assert (status, body) == (401, None)  # HEAD reads as GET, login included
        status, headers, body = await fetch(
            client, "HEAD", f"{base}/redfish/v1/Systems", headers=BASIC
        )
        assert (status, body, headers["Allow"]) == (200, None, "GET, HEAD")
        assert headers["Link"].endswith("/ComputerSystemCollection.json>; rel=describedby")
        status, _, refused = await fetch(
            client, "GET", f"{base}/redfish/v1/", headers={"OData-Version": "4.1"}
        )
        assert status == 412 and message_id(refused).endswith("HeaderInvalid")
        login = {"UserName": USER, "Password": PASSWORD}
        members = f"{base}/redfish/v1/SessionService/Sessions/Members"
        status, headers, session = await fetch(client, "POST", members, body=login)
        assert status == 201 and headers["Location"] == session["@odata.id"]
        assert service.active_sessions("pacs-a") == 1


async def test_two_hosts_on_two_addresses_answer_for_themselves() -> None:
    prefix = net()
    on = make_host("pacs-on", f"{prefix}.1")
    off = make_host("pacs-off", f"{prefix}.2", power=PowerState.OFF)
    async with serving([on, off]) as service, aiohttp.ClientSession() as client:
        assert service.base_url("pacs-on") != service.base_url("pacs-off")
        first = await system_of(client, service.base_url("pacs-on"))
        second = await system_of(client, service.base_url("pacs-off"))
        assert (first["HostName"], first["PowerState"]) == ("pacs-on", "On")
        assert (second["HostName"], second["PowerState"]) == ("pacs-off", "Off")


# -- authentication and sessions ------------------------------------------------------


async def test_requests_without_valid_credentials_get_401() -> None:
    host = make_host("pacs-a", f"{net()}.1")
    async with serving([host]) as service, aiohttp.ClientSession() as client:
        url = f"{service.base_url('pacs-a')}/redfish/v1/Systems"
        status, headers, body = await fetch(client, "GET", url)
        assert status == 401
        assert headers["WWW-Authenticate"].startswith("Basic")
        assert message_id(body).endswith("NoValidSession")
        wrong = {"Authorization": aiohttp.encode_basic_auth(USER, "wrong")}
        assert (await fetch(client, "GET", url, headers=wrong))[0] == 401
        assert (await fetch(client, "GET", url, headers={"X-Auth-Token": "forged"}))[0] == 401
        assert (await fetch(client, "GET", url, headers=BASIC))[0] == 200


async def test_login_with_wrong_password_is_refused() -> None:
    host = make_host("pacs-a", f"{net()}.1")
    async with serving([host]) as service, aiohttp.ClientSession() as client:
        url = f"{service.base_url('pacs-a')}/redfish/v1/SessionService/Sessions"
        status, headers, body = await fetch(
            client, "POST", url, body={"UserName": USER, "Password": "wrong"}
        )
        assert status == 401 and "X-Auth-Token" not in headers
        assert "Password" not in json.dumps(body) and "wrong" not in json.dumps(body)
        assert service.active_sessions("pacs-a") == 0


async def login(client: aiohttp.ClientSession, base: str) -> tuple[int, dict[str, str], Any]:
    return await fetch(
        client,
        "POST",
        f"{base}/redfish/v1/SessionService/Sessions",
        body={"UserName": USER, "Password": PASSWORD},
    )


async def test_session_login_use_and_logout() -> None:
    host = make_host("pacs-a", f"{net()}.1")
    async with serving([host]) as service, aiohttp.ClientSession() as client:
        base = service.base_url("pacs-a")
        status, headers, session = await login(client, base)
        assert status == 201
        token, location = headers["X-Auth-Token"], headers["Location"]
        assert location == session["@odata.id"] and session["UserName"] == USER
        assert token not in json.dumps(session)
        auth = {"X-Auth-Token": token}
        assert (await fetch(client, "GET", f"{base}/redfish/v1/Systems", headers=auth))[0] == 200
        _, _, members = await fetch(
            client, "GET", f"{base}/redfish/v1/SessionService/Sessions", headers=auth
        )
        assert members["Members"] == [{"@odata.id": location}]
        assert service.active_sessions("pacs-a") == 1
        assert (await fetch(client, "DELETE", base + location, headers=auth))[0] == 204
        assert service.active_sessions("pacs-a") == 0
        assert (await fetch(client, "GET", f"{base}/redfish/v1/Systems", headers=auth))[0] == 401


async def test_logs_never_carry_passwords_or_tokens(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    host = make_host("pacs-a", f"{net()}.1")
    async with serving([host]) as service, aiohttp.ClientSession() as client:
        base = service.base_url("pacs-a")
        _, headers, session = await login(client, base)
        token = headers["X-Auth-Token"]
        auth = {"X-Auth-Token": token}
        await fetch(client, "GET", f"{base}/redfish/v1/Systems", headers=auth)
        await fetch(
            client,
            "POST",
            f"{base}/redfish/v1/SessionService/Sessions",
            body={"UserName": USER, "Password": "typo-secret"},
        )
        await fetch(client, "DELETE", base + session["@odata.id"], headers=auth)
    assert "session" in caplog.text.lower()  # the service did log the logins
    for secret in (PASSWORD, "typo-secret", token):
        assert secret not in caplog.text


@pytest.mark.parametrize(
    ("flavour", "status"),
    [(BmcFlavour.GENERIC, 503), (BmcFlavour.STRICT_STATE, 403), (BmcFlavour.TASK_MONITOR, 400)],
)
async def test_ninth_session_fails_until_one_logs_out(flavour: BmcFlavour, status: int) -> None:
    host = make_host("pacs-a", f"{net()}.1")
    async with (
        serving([host], flavours={"pacs-a": flavour}) as service,
        aiohttp.ClientSession() as client,
    ):
        base = service.base_url("pacs-a")
        locations = []
        for _ in range(8):
            code, headers, _ = await login(client, base)
            assert code == 201
            locations.append((headers["Location"], headers["X-Auth-Token"]))
        code, headers, body = await login(client, base)
        assert code == status and "X-Auth-Token" not in headers
        text = message_of(body).lower()
        assert "session" in text and ("limit" in text or "maximum" in text)
        assert service.active_sessions("pacs-a") == 8
        location, token = locations[0]
        await fetch(client, "DELETE", base + location, headers={"X-Auth-Token": token})
        assert (await login(client, base))[0] == 201
        assert service.active_sessions("pacs-a") == 8


async def test_idle_sessions_expire() -> None:
    host = make_host("pacs-a", f"{net()}.1")
    async with (
        serving([host], session_timeout_s=0.3) as service,
        aiohttp.ClientSession() as client,
    ):
        base = service.base_url("pacs-a")
        _, headers, _ = await login(client, base)
        assert service.active_sessions("pacs-a") == 1

        await wait_for(lambda: service.active_sessions("pacs-a") == 0)
        auth = {"X-Auth-Token": headers["X-Auth-Token"]}
        assert (await fetch(client, "GET", f"{base}/redfish/v1/Systems", headers=auth))[0] == 401


# -- reset and flavours ---------------------------------------------------------------

ALL_RESETS = {
    "On",
    "ForceOff",
    "GracefulShutdown",
    "GracefulRestart",
    "ForceRestart",
    "PushPowerButton",
    "Nmi",
}


@pytest.mark.parametrize("flavour", list(BmcFlavour))
async def test_action_info_lists_the_flavours_reset_types(flavour: BmcFlavour) -> None:
    host = make_host("pacs-a", f"{net()}.1")
    async with (
        serving([host], flavours={"pacs-a": flavour}) as service,
        aiohttp.ClientSession() as client,
    ):
        base = service.base_url("pacs-a")
        assert service.flavour("pacs-a") is flavour
        system = await system_of(client, base)
        action = system["Actions"]["#ComputerSystem.Reset"]
        assert action["target"].startswith(system["@odata.id"] + "/Actions/")
        _, _, info = await fetch(client, "GET", base + action["@Redfish.ActionInfo"], headers=BASIC)
        (parameter,) = info["Parameters"]
        allowed = set(parameter["AllowableValues"])
        assert parameter["Name"] == "ResetType"
        if "ResetType@Redfish.AllowableValues" in action:
            assert set(action["ResetType@Redfish.AllowableValues"]) == allowed
        if flavour is BmcFlavour.NO_GRACEFUL_RESTART:
            assert "GracefulRestart" not in allowed
            assert "ResetType@Redfish.AllowableValues" not in action
        else:
            assert allowed >= ALL_RESETS
        if flavour is BmcFlavour.TASK_MONITOR:
            assert system["Id"] == "System.Embedded.1"


async def reset(
    client: aiohttp.ClientSession, base: str, reset_type: str
) -> tuple[int, dict[str, str], Any]:
    system = await system_of(client, base)
    target = base + system["Actions"]["#ComputerSystem.Reset"]["target"]
    return await fetch(client, "POST", target, headers=BASIC, body={"ResetType": reset_type})


def power_is(host: SimulatedHost, state: PowerState) -> Callable[[], bool]:
    return lambda: host.power_state is state


async def test_generic_accepts_noop_and_rejects_graceful_restart_when_off() -> None:
    host = make_host("pacs-a", f"{net()}.1")
    async with serving([host]) as service, aiohttp.ClientSession() as client:
        base = service.base_url("pacs-a")
        assert (await reset(client, base, "On"))[0] == 204
        assert (await reset(client, base, "ForceOff"))[0] == 204
        await wait_for(power_is(host, PowerState.OFF))
        status, _, body = await reset(client, base, "GracefulRestart")
        assert status == 409 and "powered off" in message_of(body)
        status, _, body = await reset(client, base, "Hibernate")
        assert status == 400 and message_id(body).endswith("ActionParameterValueNotInList")
        system = await system_of(client, base)
        target = base + system["Actions"]["#ComputerSystem.Reset"]["target"]
        status, _, body = await fetch(client, "POST", target, headers=BASIC, body={})
        assert status == 400 and message_id(body).endswith("ActionParameterMissing")
        assert host.power_state is PowerState.OFF


async def test_no_graceful_restart_flavour_refuses_it() -> None:
    host = make_host("pacs-a", f"{net()}.1")
    flavours = {"pacs-a": BmcFlavour.NO_GRACEFUL_RESTART}
    async with serving([host], flavours=flavours) as service, aiohttp.ClientSession() as client:
        base = service.base_url("pacs-a")
        status, _, body = await reset(client, base, "GracefulRestart")
        assert status == 400
        assert message_id(body).endswith("ActionParameterValueNotInList")
        assert "GracefulRestart" in message_of(body)
        assert host.power_state is PowerState.ON and host.os_state == "up"
        assert (await reset(client, base, "ForceRestart"))[0] == 204


async def test_strict_state_flavour_refuses_resets_that_make_no_sense() -> None:
    host = make_host("pacs-a", f"{net()}.1")
    flavours = {"pacs-a": BmcFlavour.STRICT_STATE}
    async with serving([host], flavours=flavours) as service, aiohttp.ClientSession() as client:
        base = service.base_url("pacs-a")
        status, _, body = await reset(client, base, "On")
        assert status == 409 and "PowerState is On" in message_of(body)
        assert (await reset(client, base, "ForceOff"))[0] == 204
        await wait_for(power_is(host, PowerState.OFF))
        for pointless in ("ForceOff", "GracefulShutdown", "ForceRestart"):
            status, _, body = await reset(client, base, pointless)
            assert status == 409 and "PowerState is Off" in message_of(body), pointless
        assert (await reset(client, base, "On"))[0] == 204
        await wait_for(host.is_up)


async def test_task_monitor_flavour_answers_202_until_the_transition_ends() -> None:
    slow = HostTimings(power_transition_s=0.6, boot_s=0.3, service_start_s=0.1, shutdown_s=0.1)
    host = make_host("pacs-a", f"{net()}.1", power=PowerState.OFF, timings=slow)
    flavours = {"pacs-a": BmcFlavour.TASK_MONITOR}
    async with serving([host], flavours=flavours) as service, aiohttp.ClientSession() as client:
        base = service.base_url("pacs-a")
        status, headers, task = await reset(client, base, "On")
        assert status == 202
        monitor = base + headers["Location"]
        assert task["TaskState"] == "Running" and task["TaskMonitor"] == headers["Location"]
        status, _, body = await fetch(client, "GET", monitor, headers=BASIC)
        assert status == 202 and body["TaskState"] == "Running"
        assert host.power_state is PowerState.POWERING_ON

        async def completed() -> bool:
            code, _, body = await fetch(client, "GET", monitor, headers=BASIC)
            return code == 200 and body["TaskState"] == "Completed"

        await wait_for(completed)
        assert host.power_state is PowerState.ON
        _, _, tasks = await fetch(
            client, "GET", f"{base}/redfish/v1/TaskService/Tasks", headers=BASIC
        )
        assert tasks["Members"] == [{"@odata.id": task["@odata.id"]}]
        _, _, stored = await fetch(client, "GET", base + task["@odata.id"], headers=BASIC)
        assert stored["TaskState"] == "Completed" and stored["PercentComplete"] == 100


# -- faults ---------------------------------------------------------------------------


async def test_fault_delay_slows_every_answer() -> None:
    host = make_host("pacs-a", f"{net()}.1")
    async with serving([host]) as service, aiohttp.ClientSession() as client:
        url = f"{service.base_url('pacs-a')}/redfish/v1/"
        host.faults.bmc_delay_s = 0.4
        started = time.monotonic()
        assert (await fetch(client, "GET", url))[0] == 200
        assert time.monotonic() - started >= 0.4
        host.faults.bmc_delay_s = 0.0
        started = time.monotonic()
        assert (await fetch(client, "GET", url))[0] == 200
        assert time.monotonic() - started < 0.4


async def test_fault_503_answers_with_retry_after() -> None:
    host = make_host("pacs-a", f"{net()}.1")
    async with serving([host]) as service, aiohttp.ClientSession() as client:
        url = f"{service.base_url('pacs-a')}/redfish/v1/Systems"
        host.faults.bmc_503 = True
        status, headers, body = await fetch(client, "GET", url, headers=BASIC)
        assert status == 503 and int(headers["Retry-After"]) > 0
        assert message_id(body).endswith("ServiceTemporarilyUnavailable")
        host.faults.bmc_503 = False
        assert (await fetch(client, "GET", url, headers=BASIC))[0] == 200


async def test_fault_401_refuses_every_login() -> None:
    host = make_host("pacs-a", f"{net()}.1")
    async with serving([host]) as service, aiohttp.ClientSession() as client:
        base = service.base_url("pacs-a")
        _, headers, _ = await login(client, base)
        token = {"X-Auth-Token": headers["X-Auth-Token"]}
        host.faults.bmc_401 = True
        assert (await fetch(client, "GET", f"{base}/redfish/v1/Systems", headers=BASIC))[0] == 401
        assert (await fetch(client, "GET", f"{base}/redfish/v1/Systems", headers=token))[0] == 401
        assert (await login(client, base))[0] == 401
        host.faults.bmc_401 = False
        assert (await fetch(client, "GET", f"{base}/redfish/v1/Systems", headers=token))[0] == 200


async def test_fault_malformed_json_truncates_bodies() -> None:
    host = make_host("pacs-a", f"{net()}.1")
    async with serving([host]) as service, aiohttp.ClientSession() as client:
        url = f"{service.base_url('pacs-a')}/redfish/v1/Systems/1"
        host.faults.bmc_malformed_json = True
        async with client.get(url, headers=BASIC) as resp:
            assert resp.status == 200
            assert resp.content_type == "application/json"
            raw = await resp.read()
        with pytest.raises(ValueError):
            json.loads(raw)
        assert raw.startswith(b"{")


async def test_fault_sessions_exhausted_refuses_new_sessions() -> None:
    host = make_host("pacs-a", f"{net()}.1")
    async with serving([host]) as service, aiohttp.ClientSession() as client:
        base = service.base_url("pacs-a")
        host.faults.bmc_sessions_exhausted = True
        status, _, body = await login(client, base)
        assert status == 503 and "session" in message_of(body).lower()
        assert service.active_sessions("pacs-a") == 0
        assert (await fetch(client, "GET", f"{base}/redfish/v1/Systems", headers=BASIC))[0] == 200
        host.faults.bmc_sessions_exhausted = False
        assert (await login(client, base))[0] == 201


async def test_unreachable_bmc_refuses_connections_until_reachable_again() -> None:
    prefix = net()
    host = make_host("pacs-a", f"{prefix}.1")
    other = make_host("pacs-b", f"{prefix}.2")
    async with serving([host, other]) as service, aiohttp.ClientSession() as client:
        url = f"{service.base_url('pacs-a')}/redfish/v1/"
        assert (await fetch(client, "GET", url))[0] == 200  # keep-alive connection now open
        host.faults.bmc_unreachable = True
        await service.set_reachable("pacs-a", False)
        with pytest.raises(aiohttp.ClientConnectionError):
            await fetch(client, "GET", url)
        async with aiohttp.ClientSession() as fresh:
            with pytest.raises(aiohttp.ClientConnectorError):
                await fetch(fresh, "GET", url)
        assert (await fetch(client, "GET", f"{service.base_url('pacs-b')}/redfish/v1/"))[0] == 200
        host.faults.bmc_unreachable = False
        await service.set_reachable("pacs-a", True)
        assert (await fetch(client, "GET", url))[0] == 200


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
async def test_going_unreachable_drops_idle_keepalive_connections(tls: bool) -> None:
    pki = FleetPki.create() if tls else None
    host = make_host("pacs-a", f"{net()}.1")
    async with serving([host], pki=pki) as service:
        context = ssl.create_default_context(cadata=pki.ca_pem().decode()) if pki else None
        reader, writer = await asyncio.open_connection(host.address, service.port, ssl=context)
        writer.write(f"GET /redfish/v1/ HTTP/1.1\r\nHost: {host.address}\r\n\r\n".encode())
        assert (await reader.readline()).startswith(b"HTTP/1.1 200")
        await service.set_reachable("pacs-a", False)
        async with asyncio.timeout(5):  # the idle connection is closed without any request
            while await reader.read(65536):
                pass
        writer.close()


async def test_unreachable_fault_alone_fails_requests_closed() -> None:
    host = make_host("pacs-a", f"{net()}.1")
    async with serving([host]) as service, aiohttp.ClientSession() as client:
        url = f"{service.base_url('pacs-a')}/redfish/v1/"
        host.faults.bmc_unreachable = True  # nobody called set_reachable yet
        with pytest.raises(aiohttp.ClientConnectionError):
            await fetch(client, "GET", url)


# -- TLS and scale --------------------------------------------------------------------


async def test_tls_is_verified_against_the_fleet_ca() -> None:
    pki = FleetPki.create()
    host = make_host("pacs-a", f"{net()}.1")
    async with serving([host], pki=pki) as service:
        url = f"{service.base_url('pacs-a')}/redfish/v1/"
        assert url.startswith("https://")
        stranger = ssl.create_default_context()  # trusts the system CAs, not ours
        async with aiohttp.ClientSession() as client:
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                async with client.get(url, ssl=stranger):
                    pass
        trusting = ssl.create_default_context(cadata=pki.ca_pem().decode())
        async with aiohttp.ClientSession() as client, client.get(url, ssl=trusting) as resp:
            assert resp.status == 200


async def test_three_hundred_bmcs_start_fast() -> None:
    prefix = f"127.{random.randint(100, 250)}"
    hosts = [
        make_host(f"srv{i:03d}", f"{prefix}.{200 + i // 200}.{1 + i % 200}") for i in range(300)
    ]
    pki = FleetPki.create()
    service = BmcService(
        hosts, port=free_port(hosts[0].address), username=USER, password=PASSWORD, pki=pki
    )
    started = time.monotonic()
    await service.start()
    try:
        assert time.monotonic() - started < 5.0
        trusting = ssl.create_default_context(cadata=pki.ca_pem().decode())
        async with aiohttp.ClientSession() as client:
            for name in ("srv000", "srv299"):
                url = f"{service.base_url(name)}/redfish/v1/Systems/1"
                async with client.get(url, ssl=trusting, headers=BASIC) as resp:
                    assert (await resp.json())["HostName"] == name
    finally:
        await service.stop()


# -- the DMTF reference client --------------------------------------------------------


def _poll_power(client: Any, uri: str, want: str, within_s: float = 5.0) -> None:
    """Poll PowerState through the synchronous client (runs in a worker thread)."""
    deadline = time.monotonic() + within_s
    while (state := client.get(uri).dict["PowerState"]) != want:
        assert time.monotonic() < deadline, f"PowerState stayed {state}, wanted {want}"
        time.sleep(0.02)


async def test_dmtf_client_session_auth_over_verified_https(tmp_path: Path) -> None:
    require_module("redfish")
    import redfish

    pki = FleetPki.create()
    ca = tmp_path / "fleet-ca.pem"
    pki.write_ca(ca)
    host = make_host("pacs-a", f"{net()}.1")
    async with serving([host], pki=pki) as service:
        base = service.base_url("pacs-a")

        def log_in() -> Any:
            client = redfish.redfish_client(
                base_url=base,
                username=USER,
                password=PASSWORD,
                cafile=str(ca),
                timeout=5,
                max_retry=1,
            )
            client.login(auth="session")
            return client

        client = await asyncio.to_thread(log_in)
        assert service.active_sessions("pacs-a") == 1

        def power_cycle() -> None:
            uri = client.get("/redfish/v1/Systems").dict["Members"][0]["@odata.id"]
            system = client.get(uri).dict
            assert system["PowerState"] == "On"
            target = system["Actions"]["#ComputerSystem.Reset"]["target"]
            assert client.post(target, body={"ResetType": "ForceOff"}).status == 204
            _poll_power(client, uri, "Off")
            assert client.post(target, body={"ResetType": "On"}).status == 204
            _poll_power(client, uri, "On")

        await asyncio.to_thread(power_cycle)
        assert host.power_state is PowerState.ON
        await asyncio.to_thread(client.logout)
        assert service.active_sessions("pacs-a") == 0


async def test_dmtf_client_basic_auth_opens_no_session(tmp_path: Path) -> None:
    require_module("redfish")
    import redfish

    pki = FleetPki.create()
    ca = tmp_path / "fleet-ca.pem"
    pki.write_ca(ca)
    host = make_host("pacs-a", f"{net()}.1")
    async with serving([host], pki=pki) as service:
        base = service.base_url("pacs-a")

        def basic_flow() -> None:
            client = redfish.redfish_client(
                base_url=base, username=USER, password=PASSWORD, cafile=str(ca), max_retry=1
            )
            client.login(auth="basic")
            system = client.get("/redfish/v1/Systems/1").dict
            target = system["Actions"]["#ComputerSystem.Reset"]["target"]
            assert client.post(target, body={"ResetType": "ForceOff"}).status == 204
            _poll_power(client, "/redfish/v1/Systems/1", "Off")
            client.logout()

        await asyncio.to_thread(basic_flow)
        assert host.power_state is PowerState.OFF
        assert service.active_sessions("pacs-a") == 0


async def test_dmtf_client_refuses_a_bmc_signed_by_another_ca(tmp_path: Path) -> None:
    require_module("redfish")
    import redfish

    stranger = tmp_path / "other-ca.pem"
    FleetPki.create().write_ca(stranger)
    host = make_host("pacs-a", f"{net()}.1")
    async with serving([host], pki=FleetPki.create()) as service:
        base = service.base_url("pacs-a")

        def connect() -> None:
            redfish.redfish_client(base_url=base, cafile=str(stranger), timeout=5, max_retry=0)

        with pytest.raises(redfish.rest.v1.RetriesExhaustedError) as failure:
            await asyncio.to_thread(connect)
        assert "CERTIFICATE_VERIFY_FAILED" in repr(failure.value.__cause__)
