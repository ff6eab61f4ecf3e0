"""The power probe against BMCs that misbehave as real ones do (issue 9).

Each test starts the simulator's BMCs in-process (``bmc_lab``) with the
flavour or fault that reproduces one behaviour reported from the field, and
reads it through the real probe and client over HTTPS on loopback. The BMC
counts what it received, so "one login", "no login at poll pace" and "no
session leaked" are asserted on the peer's side.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest

from pacs_tui.plugin_api import Health, ProbeResult
from pacs_tui.sim.redfish_flavour import BmcFlavour, FlavourTimings
from pacs_tui_redfish_power.client import BmcClient
from pacs_tui_redfish_power.errors import BmcHttpError
from pacs_tui_redfish_power.login_guard import LOGIN_GUARD
from redfish_peers import PASSWORD, BmcLab, bmc_lab

SESSIONS = "/redfish/v1/SessionService/Sessions"
QUICK_401 = FlavourTimings(html_401_session_timeout_s=3.0)  # sessions idle out in 3 s


async def poll(lab: BmcLab, name: str = "bmc-a") -> ProbeResult:
    return await lab.probe.probe(lab.server(name))


def posts(lab: BmcLab, path: str, name: str = "bmc-a") -> int:
    return lab.service.requests(name)[("POST", path)]


@pytest.fixture(autouse=True)
def fresh_login_guard() -> None:
    # The guard is per process (probes and actions share it); tests must not share failures.
    LOGIN_GUARD.clear()


# -- login paths ---------------------------------------------------------------------


@pytest.mark.parametrize("flavour", [BmcFlavour.SESSION_REDIRECT, BmcFlavour.SESSION_REDIRECT_301])
async def test_a_same_host_redirect_of_the_login_is_followed(
    tmp_path: Path, flavour: BmcFlavour
) -> None:
    async with bmc_lab(tmp_path, {"bmc-a": flavour}) as lab:
        for _ in range(3):
            result = await poll(lab)
            assert (result.state, result.health, result.facts["auth"]) == (
                "On",
                Health.OK,
                "session",
            )
        assert lab.sessions("bmc-a") == 1
        assert posts(lab, SESSIONS) == 1 and posts(lab, SESSIONS + "/") == 1


async def test_a_405_login_falls_back_to_basic_and_says_so(tmp_path: Path) -> None:
    async with bmc_lab(tmp_path, {"bmc-a": BmcFlavour.NO_SESSION_POST}) as lab:
        for _ in range(3):
            result = await poll(lab)
            assert (result.state, result.facts["auth"]) == ("On", "basic")
            assert "session login refused (HTTP 405): basic auth for this BMC" in result.detail
        assert posts(lab, SESSIONS) == 1  # learned once, not tried at every poll
        assert lab.sessions("bmc-a") == 0


async def test_auth_session_never_falls_back(tmp_path: Path) -> None:
    flavours = {"bmc-a": BmcFlavour.NO_SESSION_POST}
    async with bmc_lab(tmp_path, flavours, bmc_options={"auth": "session"}) as lab:
        result = await poll(lab)
        assert (result.state, result.health) == ("Unknown", Health.UNKNOWN)
        assert "405" in result.detail
        assert lab.service.requests("bmc-a")[("GET", "/redfish/v1/Systems")] == 0


async def test_an_html_401_cut_before_its_body_means_one_new_login(tmp_path: Path) -> None:
    async with bmc_lab(tmp_path, {"bmc-a": BmcFlavour.HTML_401}, timings=QUICK_401) as lab:
        assert (await poll(lab)).state == "On"
        # The flavour's sessions idle out after 3 s: the next poll meets the broken 401.
        await asyncio.sleep(3.3)
        started = time.monotonic()
        result = await poll(lab)
        assert (result.state, result.health, result.facts["auth"]) == ("On", Health.OK, "session")
        assert time.monotonic() - started < 2
        assert posts(lab, SESSIONS) == 2
        assert lab.sessions("bmc-a") == 1


async def test_refused_logins_are_not_retried_at_poll_pace(tmp_path: Path) -> None:
    async with bmc_lab(tmp_path, {"bmc-a": BmcFlavour.GENERIC}) as lab:
        lab.hosts["bmc-a"].faults.bmc_401 = True
        details = [(await poll(lab)).detail for _ in range(6)]
        assert posts(lab, SESSIONS) == 3  # then held: a real BMC would lock the account
        assert "login refused (401)" in details[0]
        assert "credentials refused" in details[-1] and "not retrying until" in details[-1]
        assert PASSWORD not in "".join(details)


async def test_a_slow_login_is_waited_for_and_leaks_no_session(tmp_path: Path) -> None:
    async with bmc_lab(tmp_path, {"bmc-a": BmcFlavour.SLOW_LOGIN}) as lab:
        # A caller that gives up (a short poll deadline, an operator leaving) does not
        # abandon the login: the session the BMC creates is ours and is used.
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(1.0):
                await poll(lab)
        started = time.monotonic()
        result = await poll(lab)
        assert (result.state, result.facts["auth"]) == ("On", "session")
        assert time.monotonic() - started < 7
        for _ in range(3):
            assert (await poll(lab)).state == "On"
        assert posts(lab, SESSIONS) == 1 and lab.sessions("bmc-a") == 1
    assert lab.sessions("bmc-a") == 0  # logged out at close


@pytest.mark.slow
async def test_the_defaults_read_a_bmc_that_takes_3_s_per_answer(tmp_path: Path) -> None:
    async with bmc_lab(tmp_path, {"bmc-a": BmcFlavour.SLOW_ANSWERS}) as lab:
        result = await poll(lab)  # root, login, Systems, system, ActionInfo: ~15 s cold
        assert (result.state, result.health) == ("On", Health.OK), result.detail
        started = time.monotonic()
        assert (await poll(lab)).state == "On"
        assert 2.5 < time.monotonic() - started < 6  # warm: one GET
        assert lab.sessions("bmc-a") == 1


# -- messages ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "flavour", [BmcFlavour.EXTENDED_INFO_ONLY, BmcFlavour.EXTENDED_INFO_VENDOR]
)
async def test_extended_info_only_errors_show_their_message_id(
    tmp_path: Path, flavour: BmcFlavour
) -> None:
    async with bmc_lab(tmp_path, {"bmc-a": flavour}) as lab:
        assert (await poll(lab)).state == "On"
        client: BmcClient = lab.probe.client(lab.server("bmc-a"))
        with pytest.raises(BmcHttpError) as caught:
            await client.get("/redfish/v1/Systems/NoSuchSystem")
        text = str(caught.value)
        assert "ResourceMissingAtURI" in text and "/redfish/v1/Systems/NoSuchSystem" in text
        assert "See @Message.ExtendedInfo" not in text


# -- power states and TLS --------------------------------------------------------------


async def test_a_null_power_state_is_unknown_with_the_word(tmp_path: Path) -> None:
    async with bmc_lab(tmp_path, {"bmc-a": BmcFlavour.NULL_POWER_STATE}) as lab:
        result = await poll(lab)
        assert (result.state, result.health) == ("Unknown", Health.UNKNOWN)
        assert "PowerState null" in result.detail and result.facts["power_state_raw"] == "null"


async def test_a_vendor_power_word_is_unknown_with_the_word(tmp_path: Path) -> None:
    async with bmc_lab(tmp_path, {"bmc-a": BmcFlavour.GENERIC}) as lab:
        lab.hosts["bmc-a"].faults.bmc_power_state_word = "Starting"
        result = await poll(lab)
        assert (result.state, result.health) == ("Unknown", Health.UNKNOWN)
        assert "PowerState Starting (not a Redfish power state)" in result.detail


async def test_legacy_tls_fails_by_name_and_works_when_allowed(tmp_path: Path) -> None:
    flavours = {"bmc-a": BmcFlavour.LEGACY_TLS}
    async with bmc_lab(tmp_path, flavours, bmc_options={"tls_legacy": False}) as lab:
        result = await poll(lab)
        assert (result.state, result.health) == ("Unknown", Health.UNKNOWN)
        assert "protocol or cipher" in result.detail  # a mismatch alert or a reset, by name
        assert "tls_legacy: true" in result.detail
    async with bmc_lab(tmp_path, flavours, bmc_options={"tls_legacy": True}) as lab:
        result = await poll(lab)
        assert (result.state, result.facts["tls"]) == ("On", "LEGACY")
        assert "TLS LEGACY" in result.detail


async def test_refused_logins_are_held_across_processes(tmp_path: Path) -> None:
    # An operator re-running `pacs-tui status` must not lock the account either.
    async with bmc_lab(tmp_path, {"bmc-a": BmcFlavour.GENERIC}) as lab:
        lab.hosts["bmc-a"].faults.bmc_401 = True
        outputs = []
        for _ in range(5):
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "pacs_tui", "status", "--inventory",
                str(tmp_path / "inventory.yaml"), "--json",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, err = await process.communicate()
            outputs.append(out.decode() + err.decode())
        assert posts(lab, SESSIONS) == 3
        assert "not retrying until" in outputs[-1]
        assert PASSWORD not in "".join(outputs)
