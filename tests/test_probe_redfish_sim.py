"""The Redfish power probe against the simulator's BMCs, over real HTTPS on loopback."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest

from pacs_tui.plugin_api import Health, ProbeContext, ProbeResult
from pacs_tui.plugin_catalog import load_probes
from pacs_tui.power import PowerState
from pacs_tui.sim.bmc import BmcFlavour
from pacs_tui.sim.pki import FleetPki
from pacs_tui.sim.redfish_flavour import profile
from pacs_tui_redfish_power.client import ResetAccepted
from pacs_tui_redfish_power.errors import BmcError
from pacs_tui_redfish_power.probe import RedfishPowerProbe
from redfish_peers import PASSWORD, USER, BmcLab, bmc_lab, write_inventory

GENERIC = {"bmc-a": BmcFlavour.GENERIC}
# The vendor profiles; each misbehaviour flavour has its own test in test_redfish_quirks.
VENDOR_FLAVOURS = [
    BmcFlavour.GENERIC,
    BmcFlavour.NO_GRACEFUL_RESTART,
    BmcFlavour.STRICT_STATE,
    BmcFlavour.TASK_MONITOR,
]


async def wait_for(condition: Callable[[], bool | Awaitable[bool]], within_s: float = 5.0) -> None:
    """Poll ``condition`` until it holds; fail after ``within_s``."""
    deadline = time.monotonic() + within_s
    while True:
        result = condition()
        if await result if inspect.isawaitable(result) else result:
            return
        assert time.monotonic() < deadline, "condition not met before the deadline"
        await asyncio.sleep(0.02)


async def poll(lab: BmcLab, name: str = "bmc-a") -> ProbeResult:
    result = await lab.probe.probe(lab.server(name))
    assert PASSWORD not in repr(result)  # never a secret in detail or facts
    return result


async def test_reads_power_state_and_learns_the_bmc(tmp_path: Path) -> None:
    async with bmc_lab(tmp_path, GENERIC) as lab:
        result = await poll(lab)
        assert (result.state, result.health) == ("On", Health.OK)
        assert result.detail == "powered on"
        assert result.latency_ms is not None and 0 < result.latency_ms < 1000
        assert result.facts["system_path"] == "/redfish/v1/Systems/1"
        assert result.facts["reset_target"] == "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset"
        assert result.facts["reset_types"] == [
            str(t) for t in profile(BmcFlavour.GENERIC).reset_types
        ]
        assert result.facts["health"] == "OK"
        assert (result.facts["auth"], result.facts["tls"]) == ("session", "verified")

        lab.hosts["bmc-a"].reset("ForceOff")
        await lab.hosts["bmc-a"].wait_idle()
        off = await poll(lab)
        assert (off.state, off.health, off.detail) == ("Off", Health.DOWN, "powered off")


async def test_powering_on_is_degraded(tmp_path: Path) -> None:
    async with bmc_lab(tmp_path, GENERIC, power={"bmc-a": PowerState.OFF}) as lab:
        lab.hosts["bmc-a"].timings = lab.hosts["bmc-a"].timings.scaled(40)  # 2 s transition
        lab.hosts["bmc-a"].reset("On")
        result = await poll(lab)
        assert (result.state, result.health, result.detail) == (
            "PoweringOn",
            Health.DEGRADED,
            "powering on",
        )


@pytest.mark.parametrize("flavour", VENDOR_FLAVOURS)
async def test_each_flavours_reset_types_and_system_are_discovered(
    tmp_path: Path, flavour: BmcFlavour
) -> None:
    async with bmc_lab(tmp_path, {"bmc-a": flavour}) as lab:
        result = await poll(lab)
        expected = profile(flavour)
        assert result.state == "On"
        assert result.facts["reset_types"] == [str(t) for t in expected.reset_types]
        assert result.facts["system_path"] == f"/redfish/v1/Systems/{expected.system_id}"
        assert result.facts["reset_target"].startswith(result.facts["system_path"])
        info = await lab.probe.client(lab.server("bmc-a")).reset_info()
        assert list(info.allowed) == result.facts["reset_types"]
        if flavour is BmcFlavour.NO_GRACEFUL_RESTART:
            assert "GracefulRestart" not in info.allowed  # learned from the ActionInfo alone
            assert "PowerCycle" in info.allowed


async def test_one_session_serves_many_polls_and_close_logs_out(tmp_path: Path) -> None:
    async with bmc_lab(tmp_path, GENERIC) as lab:
        for _ in range(20):
            assert (await poll(lab)).state == "On"
        assert lab.sessions("bmc-a") == 1
        await lab.probe.close()
        assert lab.sessions("bmc-a") == 0


async def test_ten_concurrent_polls_share_one_session(tmp_path: Path) -> None:
    async with bmc_lab(tmp_path, GENERIC) as lab:
        results = await asyncio.gather(*(poll(lab) for _ in range(10)))
        assert {r.state for r in results} == {"On"}
        assert lab.sessions("bmc-a") == 1
        # A second client on the same BMC (as a power action would hold) adds one more.
        second = RedfishPowerProbe()
        await second.open(lab.probe._context)  # type: ignore[arg-type]
        try:
            both = await asyncio.gather(
                *(p.probe(lab.server("bmc-a")) for p in [lab.probe, second] * 10)
            )
            assert {r.state for r in both} == {"On"}
            assert lab.sessions("bmc-a") == 2
        finally:
            await second.close()
        assert lab.sessions("bmc-a") == 1


async def test_logs_in_again_after_the_session_was_deleted(tmp_path: Path) -> None:
    async with bmc_lab(tmp_path, GENERIC) as lab:
        assert (await poll(lab)).state == "On"
        base = lab.service.base_url("bmc-a")
        basic = {"Authorization": aiohttp.encode_basic_auth(USER, PASSWORD)}
        connector = aiohttp.TCPConnector(ssl=False)
        async with aiohttp.ClientSession(headers=basic, connector=connector) as admin:
            async with admin.get(f"{base}/redfish/v1/SessionService/Sessions") as answer:
                members = (await answer.json())["Members"]
            assert len(members) == 1
            async with admin.delete(f"{base}{members[0]['@odata.id']}") as answer:
                assert answer.status == 204
        assert lab.sessions("bmc-a") == 0
        again = await poll(lab)
        assert (again.state, again.facts["auth"]) == ("On", "session")
        assert lab.sessions("bmc-a") == 1


async def test_logs_in_again_after_the_session_expired(tmp_path: Path) -> None:
    async with bmc_lab(tmp_path, GENERIC, session_timeout_s=0.3) as lab:
        assert (await poll(lab)).state == "On"
        await wait_for(lambda: lab.sessions("bmc-a") == 0)
        assert (await poll(lab)).state == "On"
        assert lab.sessions("bmc-a") == 1


async def test_unreachable_bmc_is_down_and_recovers(tmp_path: Path) -> None:
    async with bmc_lab(tmp_path, GENERIC) as lab:
        assert (await poll(lab)).state == "On"  # a kept-alive connection now exists
        await lab.service.set_reachable("bmc-a", False)
        result = await poll(lab)
        assert (result.state, result.health) == ("Unknown", Health.DOWN)
        assert "BMC refused connection" in result.detail
        await lab.service.set_reachable("bmc-a", True)
        assert (await poll(lab)).health is Health.OK


async def test_a_slow_bmc_gives_a_timeout_result(tmp_path: Path) -> None:
    async with bmc_lab(tmp_path, GENERIC, bmc_options={"timeout_s": 0.4}) as lab:
        assert (await poll(lab)).state == "On"
        assert (await poll(lab)).facts["timeout_s"] == 0.4  # shown in the detail pane
        lab.hosts["bmc-a"].faults.bmc_delay_s = 2.0
        started = time.monotonic()
        result = await poll(lab)
        assert time.monotonic() - started < 1.5  # bounded by the BMC's timeout_s, not the delay
        assert (result.state, result.health) == ("Unknown", Health.DOWN)
        assert "no answer from BMC" in result.detail and "0.4 s" in result.detail
        lab.hosts["bmc-a"].faults.bmc_delay_s = 0.0
        assert (await poll(lab)).state == "On"


async def test_503_reports_the_retry_after_hint(tmp_path: Path) -> None:
    async with bmc_lab(tmp_path, GENERIC) as lab:
        lab.hosts["bmc-a"].faults.bmc_503 = True
        result = await poll(lab)
        assert (result.state, result.health) == ("Unknown", Health.UNKNOWN)
        assert result.detail.startswith("503 Service Unavailable (retry after 2 s)")
        assert result.facts["retry_after_s"] == 2
        lab.hosts["bmc-a"].faults.bmc_503 = False
        assert (await poll(lab)).state == "On"


async def test_401_after_re_login(tmp_path: Path) -> None:
    async with bmc_lab(tmp_path, GENERIC) as lab:
        assert (await poll(lab)).state == "On"
        lab.hosts["bmc-a"].faults.bmc_401 = True
        result = await poll(lab)
        assert (result.state, result.health) == ("Unknown", Health.UNKNOWN)
        assert result.detail.startswith("401 after re-login")
        lab.hosts["bmc-a"].faults.bmc_401 = False
        assert (await poll(lab)).state == "On"
        # The session refused during the fault is deleted after the next login.
        assert lab.sessions("bmc-a") == 1


async def test_wrong_password_is_a_refused_login(tmp_path: Path) -> None:
    async with bmc_lab(tmp_path, GENERIC) as lab:
        secrets = tmp_path / "credentials.yaml"
        secrets.write_text(f"bmc-admin: {{username: {USER}, password: wrong-password-1}}\n")
        result = await poll(lab)
        assert (result.state, result.health) == ("Unknown", Health.UNKNOWN)
        assert result.detail.startswith("login refused (401)")
        assert "wrong-password-1" not in repr(result)


async def test_malformed_json_is_reported(tmp_path: Path) -> None:
    async with bmc_lab(tmp_path, GENERIC) as lab:
        assert (await poll(lab)).state == "On"
        lab.hosts["bmc-a"].faults.bmc_malformed_json = True
        result = await poll(lab)
        assert (result.state, result.health) == ("Unknown", Health.UNKNOWN)
        assert result.detail == "malformed JSON from BMC (GET /redfish/v1/Systems/1)"


@pytest.mark.parametrize("flavour", VENDOR_FLAVOURS)
async def test_full_session_table_falls_back_to_basic_auth(
    tmp_path: Path, flavour: BmcFlavour
) -> None:
    # Each vendor answers a full table differently (503, 403, 400 with its own MessageId).
    async with bmc_lab(tmp_path, {"bmc-a": flavour}) as lab:
        lab.hosts["bmc-a"].faults.bmc_sessions_exhausted = True
        result = await poll(lab)
        assert (result.state, result.health, result.facts["auth"]) == ("On", Health.OK, "basic")
        assert "session limit reached: basic auth for 60 s" in result.detail
        assert lab.sessions("bmc-a") == 0
        lab.hosts["bmc-a"].faults.bmc_sessions_exhausted = False
        lab.probe.client(lab.server("bmc-a")).session_retry_s = 0.0  # end the hold now
        again = await poll(lab)
        assert (again.facts["auth"], again.detail) == ("session", "powered on")


async def test_basic_auth_setting_opens_no_session(tmp_path: Path) -> None:
    async with bmc_lab(tmp_path, GENERIC, settings={"redfish_auth": "basic"}) as lab:
        for _ in range(3):
            result = await poll(lab)
            assert (result.state, result.facts["auth"]) == ("On", "basic")
        assert lab.sessions("bmc-a") == 0


async def test_unverified_tls_is_reported(tmp_path: Path) -> None:
    async with bmc_lab(tmp_path, GENERIC, bmc_options={"verify_tls": False}) as lab:
        result = await poll(lab)
        assert (result.state, result.facts["tls"]) == ("On", "UNVERIFIED")
        assert "TLS NOT VERIFIED" in result.detail


async def test_a_certificate_from_another_ca_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other-ca.pem"
    FleetPki.create().write_ca(other)
    async with bmc_lab(tmp_path, GENERIC, bmc_options={"ca_file": other.name}) as lab:
        result = await poll(lab)
        assert (result.state, result.health) == ("Unknown", Health.UNKNOWN)
        assert "certificate rejected" in result.detail and "CA file" in result.detail
        assert "other-ca.pem" in result.detail
        assert lab.sessions("bmc-a") == 0


async def test_a_missing_credential_is_unknown_with_its_reason(tmp_path: Path) -> None:
    credentials = {"bmc-admin": {"username": USER, "password_env": "PACS_TUI_TEST_UNSET_PW"}}
    async with bmc_lab(tmp_path, GENERIC, credentials=credentials) as lab:
        result = await poll(lab)
        assert (result.state, result.health) == ("Unknown", Health.UNKNOWN)
        assert "PACS_TUI_TEST_UNSET_PW" in result.detail and "not set" in result.detail


async def test_client_resets_and_follows_the_task_monitor(tmp_path: Path) -> None:
    flavours = {"bmc-t": BmcFlavour.TASK_MONITOR, "bmc-n": BmcFlavour.NO_GRACEFUL_RESTART}
    async with bmc_lab(tmp_path, flavours) as lab:
        client = lab.probe.client(lab.server("bmc-t"))
        accepted = await client.reset("ForceOff")
        assert isinstance(accepted, ResetAccepted) and accepted.status == 202
        assert accepted.task_monitor is not None
        assert accepted.task_monitor.startswith("/redfish/v1/TaskService/TaskMonitors/")

        async def task_done() -> bool:
            assert accepted.task_monitor is not None
            status, body = await client.get(accepted.task_monitor)
            return status == 200 and body.get("TaskState") == "Completed"

        await wait_for(task_done)
        assert (await poll(lab, "bmc-t")).state == "Off"

        refusing = lab.probe.client(lab.server("bmc-n"))
        with pytest.raises(BmcError, match="GracefulRestart is not allowed"):
            await refusing.reset("GracefulRestart")


async def test_no_secret_or_token_reaches_the_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with bmc_lab(tmp_path, GENERIC) as lab:
        await poll(lab)
        token = lab.service._bmc("bmc-a").sessions.sessions()[0].token
        lab.hosts["bmc-a"].faults.bmc_401 = True
        await poll(lab)
    assert "logged in to" in caplog.text  # the client did log, at DEBUG
    assert PASSWORD not in caplog.text
    assert token not in caplog.text


def test_the_entry_point_loads_the_probe() -> None:
    loaded = load_probes({"power"})
    assert isinstance(loaded.plugins.get("power"), RedfishPowerProbe), loaded.failed


async def test_applies_to_servers_with_a_bmc_and_keys_them_per_bmc(tmp_path: Path) -> None:
    async with bmc_lab(tmp_path, GENERIC) as lab:
        server = lab.server("bmc-a")
        assert lab.probe.applies_to(server)
        assert server.bmc is not None
        assert lab.probe.endpoint(server) == f"bmc:{server.bmc.address}:{server.bmc.port}"
        assert not lab.probe.applies_to(replace(server, bmc=None))
        client = lab.probe.client(server)
        await poll(lab)
        assert client.has_session and PASSWORD not in repr(client) and "auth=auto" in repr(client)


async def test_an_unknown_auth_setting_is_refused(tmp_path: Path) -> None:
    probe = RedfishPowerProbe()
    inventory = write_inventory(tmp_path, {})
    with pytest.raises(ValueError, match="redfish_auth"):
        await probe.open(ProbeContext(inventory, {"redfish_auth": "digest"}))
