"""The simulated BMCs checked by the DMTF's own tools, each run as a subprocess.

- Redfish Service Validator (``rf_service_validator``): every flavour's
  resources against the DMTF's CSDL schemas, offline from
  ``shared/redfish-csdl``; no FAIL and no WARN but those a flavour exists
  to produce (``deliberate_findings``).
- Redfish-Tacklebox (``rf_power_reset.py``): every flavour's reset from the
  DMTF's reference client, checked on the simulated host's power.
- Redfish Protocol Validator (``rf_protocol_validator``): DSP0266 protocol
  details of one BMC; at most the FAILs listed in ``PROTOCOL_FAILS_NOT_OURS``.

The tools skip on a laptop without them and fail under CI (``pip install -e
'.[dev]'`` installs them). Every request stays on loopback: the service
validator never downloads schemas (``--skipschema``) and the protocol
validator's SSDP multicast is switched off (see ``PROTOCOL_VALIDATOR``).
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import re
import shutil
import ssl
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from pacs_tui.power import PowerState
from pacs_tui.sim.bmc import BmcFlavour, BmcService
from pacs_tui.sim.host import SimulatedHost
from pacs_tui.sim.pki import FleetPki
from pacs_tui.sim.redfish_flavour import FlavourProfile, FlavourTimings, profile
from peers import IN_CI, require_module
from redfish_mockups import SHARED
from redfish_peers import PASSWORD, USER, free_port, make_host, net

CSDL = SHARED / "redfish-csdl"
# The slow flavours' delays scaled down (the behaviour is the point, not the wait);
# html-401's idle timeout goes up to 30 s, SessionService.SessionTimeout's schema minimum.
TIMINGS = FlavourTimings(login_delay_s=0.3, answer_delay_s=0.05, html_401_session_timeout_s=30.0)
TOOL_TIMEOUT_S = 120.0
_PROXIES = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}


def require_tool(name: str) -> str:
    """A DMTF tool's command (the venv's own first); skip on a laptop without it, fail under CI."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found:
        return found
    reason = f"DMTF tool {name!r} is not installed (pip install -e '.[dev]')"
    if IN_CI:
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


def require_csdl() -> Path:
    """The DMTF's CSDL schemas beside the repository (``shared/redfish-csdl``)."""
    if (CSDL / "ServiceRoot_v1.xml").is_file():
        return CSDL
    reason = f"DMTF CSDL schemas not found in {CSDL} (a copy of shared/ beside the repository)"
    if IN_CI:
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


def tool_env(**extra: str) -> dict[str, str]:
    """The environment for a tool: no proxy (loopback only), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in _PROXIES}
    return {**env, **extra}


async def run_tool(
    argv: Sequence[str], cwd: Path, env: dict[str, str] | None = None
) -> tuple[int, str]:
    """Run a tool without blocking the event loop that serves the BMCs: (exit code, output)."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=env or tool_env(),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), TOOL_TIMEOUT_S)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


# -- one flavour's BMC ----------------------------------------------------------


@dataclass
class Served:
    """A flavour's BMC: the service, its hosts (blades in slot order) and how to reach it."""

    service: BmcService
    hosts: list[SimulatedHost]
    url: str
    ca_file: Path | None

    def system_uri(self, host: SimulatedHost) -> str:
        return f"/redfish/v1/Systems/{self.service.system_id(host.name)}"


@asynccontextmanager
async def serving(folder: Path, flavour: BmcFlavour) -> AsyncIterator[Served]:
    """One BMC of ``flavour`` (an enclosure of two blades for blade flavours).

    HTTPS from a fresh ``FleetPki``, except where TLS itself is the flavour's
    point and the tools cannot speak it: legacy-tls offers only ``AES256-SHA``,
    which the default client context of Python (the tools' ``requests``) refuses
    by design, so its resources are checked over plain HTTP.
    """
    p = profile(flavour)
    prefix = net()
    names = [f"{flavour}-1", f"{flavour}-2"] if p.enclosure else [f"{flavour}-1"]
    hosts = [make_host(name, f"{prefix}.{i + 1}") for i, name in enumerate(names)]
    pki = None if p.legacy_tls else FleetPki.create()
    ca_file = None
    if pki is not None:
        ca_file = folder / "fleet-ca.pem"
        pki.write_ca(ca_file)
    service = BmcService(
        hosts,
        port=free_port(hosts[0].address),
        username=USER,
        password=PASSWORD,
        pki=pki,
        flavours=dict.fromkeys(names, flavour),
        enclosures=[names] if p.enclosure else [],
        timings=TIMINGS,
    )
    await service.start()
    try:
        yield Served(service, hosts, service.base_url(names[0]), ca_file)
    finally:
        await service.stop()
        for host in hosts:
            await host.stop()


def session_login_refused(p: FlavourProfile) -> bool:
    """True when the flavour refuses what the DMTF tools' login does.

    The tools' ``redfish`` library creates a session by one POST to the
    Sessions URI and follows no redirect; these flavours exist to refuse that.
    """
    return bool(p.session_redirect) or not p.session_post


async def start_a_reset(bmc: Served) -> None:
    """A ForceRestart over Basic auth, so a task flavour has a Task for the validator to read."""
    host = bmc.hosts[0]
    target = f"{bmc.url}{bmc.system_uri(host)}/Actions/ComputerSystem.Reset"
    context = ssl.create_default_context(cafile=bmc.ca_file) if bmc.ca_file else None
    basic = {"Authorization": aiohttp.encode_basic_auth(USER, PASSWORD)}
    body = {"ResetType": "ForceRestart"}
    async with (
        aiohttp.ClientSession() as client,
        client.post(target, json=body, headers=basic, ssl=context or False) as answer,
    ):
        assert answer.status == 202, await answer.text()
    await host.wait_idle()


# -- Redfish Service Validator -----------------------------------------------------

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_SUMMARY = re.compile(
    r"\|\s*PASS\s*\|\s*WARN\s*\|\s*FAIL\s*\|\s*NOT TESTED\s*\|\s*\n\+[-+]+\+\s*\n"
    r"\|\s*(\d+)\s*\|\s*(\d+)\s*\|\s*(\d+)\s*\|\s*(\d+)\s*\|"
)


def validator_summary(output: str) -> dict[str, int] | None:
    """PASS / WARN / FAIL / NOT TESTED from the validator's closing table, or None."""
    found = _SUMMARY.search(_ANSI.sub("", output))
    if found is None:
        return None
    return dict(zip(("PASS", "WARN", "FAIL", "NOT TESTED"), map(int, found.groups()), strict=True))


def deliberate_findings(p: FlavourProfile) -> list[str]:
    """The validator's findings a flavour exists to produce (a misbehaving BMC's real shape)."""
    # No FAIL since no-session-post keeps the schema's required Links.Sessions (only
    # its POST is refused); a flavour that must break the schema would list it here.
    if p.power_schemas in ("subsystem", "none"):
        return []
    # legacy-power and dual-power serve Chassis Power and Thermal, deprecated since
    # Redfish 2020.4 but what most fielded BMCs serve: one WARN per link and per URI.
    chassis = f"/redfish/v1/Chassis/{p.chassis_id}"
    return [
        *(f"WARN - /{name} ([Link to: {chassis}/{name}]): Deprecated" for name in _LEGACY),
        *(f"WARN - /@odata.id ({chassis}/{name}): Deprecated" for name in _LEGACY),
    ]


_LEGACY = ("Power", "Thermal")


def validator_findings(logdir: Path) -> list[str]:
    """Every FAIL and WARN line of the validator's debug log."""
    lines = []
    for log in sorted(logdir.rglob("RedfishServiceValidatorDebug_*.log")):
        for line in log.read_text(errors="replace").splitlines():
            if " - FAIL - " in line or " - WARN - " in line:
                lines.append(line.split(" - ", 3)[-1])
    return lines


@pytest.mark.parametrize("flavour", list(BmcFlavour), ids=str)
async def test_service_validator_finds_no_fail_and_no_warn(
    flavour: BmcFlavour, tmp_path: Path
) -> None:
    validator = require_tool("rf_service_validator")
    schemas = require_csdl()
    p = profile(flavour)
    logdir = tmp_path / "logs"
    async with serving(tmp_path, flavour) as bmc:
        if p.reset_via_task:
            await start_a_reset(bmc)
        argv = [
            validator,
            *("--user", USER, "--password", PASSWORD, "--rhost", bmc.url),
            *("--authtype", "Basic" if session_login_refused(p) else "Session"),
            # Offline: the DMTF's CSDL beside the repository, never a download.
            *("--schema_directory", str(schemas), "--skipschema"),
            *("--logdir", str(logdir), "--timeout", "30"),
        ]
        code, output = await run_tool(argv, tmp_path)
        walked = [bmc.system_uri(host) for host in bmc.hosts]
        if p.reset_via_task:
            walked.append("/redfish/v1/TaskService/Tasks/")
    summary = validator_summary(output)
    assert summary is not None, f"the validator gave no summary (exit {code}):\n{output[-3000:]}"
    expected = deliberate_findings(p)
    findings = validator_findings(logdir)
    unexpected = [f for f in findings if not any(f.startswith(e) for e in expected)]
    listing = "\n".join(findings)
    assert unexpected == [], f"{flavour}: {summary}\n{listing}"
    fails = sum(e.startswith("FAIL") for e in expected)
    warns = len(expected) - fails
    assert (summary["FAIL"], summary["WARN"]) == (fails, warns), f"{summary}\n{listing}"
    assert code == int(bool(fails)), output[-3000:]
    for uri in walked:  # it really read every system (and task), not just the service root
        assert f"Validating {uri}" in output, output[-3000:]


# -- Redfish-Tacklebox rf_power_reset.py -------------------------------------------------


async def wait_for_power(host: SimulatedHost, state: PowerState, within_s: float = 10.0) -> None:
    deadline = time.monotonic() + within_s
    while host.power_state is not state:
        assert time.monotonic() < deadline, f"{host.name} still {host.power_state}, not {state}"
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("flavour", list(BmcFlavour), ids=str)
async def test_tacklebox_power_reset_turns_the_host_off(
    flavour: BmcFlavour, tmp_path: Path
) -> None:
    tool = require_tool("rf_power_reset.py")
    p = profile(flavour)
    async with serving(tmp_path, flavour) as bmc:
        # In an enclosure, the last blade: the tool must be told which system.
        target, others = bmc.hosts[-1], bmc.hosts[:-1]
        argv = [tool, "-u", USER, "-p", PASSWORD, "-r", bmc.url, "-t", "ForceOff"]
        if len(bmc.hosts) > 1:
            argv += ["-s", bmc.service.system_id(target.name)]
        code, output = await run_tool(argv, tmp_path)
        if session_login_refused(p):
            # The reference client has no fallback to Basic: it stops at the login.
            assert code != 0 and "SessionCreationError" in output, output[-2000:]
            assert bmc.service.resets(target.name) == []
            assert target.power_state is PowerState.ON
            return
        await wait_for_power(target, PowerState.OFF)
        assert bmc.service.resets(target.name) == ["ForceOff"]
        for other in others:
            assert other.power_state is PowerState.ON, f"{other.name} was reset too"
    if p.task_503_once:
        # The reset was carried out, but the tool reads the first monitor poll's 503
        # as the task's failure instead of waiting Retry-After.
        assert code != 0 and "ServiceTemporarilyUnavailable" in output, output[-2000:]
    else:
        assert code == 0, output[-2000:]


# -- Redfish Protocol Validator -----------------------------------------------------------

# Run as ``python -c``: the validator's SSDP discovery multicasts M-SEARCH to
# 239.255.255.250 and ff02::c, off loopback, and waits 2 x 10 s for answers; a
# simulated BMC has no SSDP, so discovery finds nothing, as it would otherwise.
PROTOCOL_VALIDATOR = """
import sys
from redfish_protocol_validator import console_scripts, utils
utils.discover_ssdp = lambda *args, **kwargs: {}
sys.argv[0] = "rf_protocol_validator"
console_scripts.main()
"""

# The FAILs left on a simulated BMC, by assertion, and why none is ours to fix.
PROTOCOL_FAILS_NOT_OURS = {
    # aiohttp's C HTTP parser (llhttp) answers 400 to a method it does not know
    # before any application code runs; DSP0266 wants 405 or 501.
    "PROTO_HTTP_UNSUPPORTED_METHODS": 1,
    # One per predefined role (Administrator, Operator, ReadOnly): the simulator
    # has one fixed account and no AccountService, as it models only power control.
    "SEC_PRIV_SUPPORT_PREDEFINED_ROLES": 3,
}
MAX_PROTOCOL_FAILS = sum(PROTOCOL_FAILS_NOT_OURS.values())  # measured: 4 (39 before the fixes)


async def test_protocol_validator_fails_only_where_a_simulator_cannot(tmp_path: Path) -> None:
    require_module("redfish_protocol_validator")
    reports = tmp_path / "reports"
    async with serving(tmp_path, BmcFlavour.GENERIC) as bmc:
        assert bmc.ca_file is not None
        argv = [
            sys.executable,
            *("-c", PROTOCOL_VALIDATOR),
            *("--user", USER, "--password", PASSWORD, "--rhost", bmc.url),
            *("--ca-bundle", str(bmc.ca_file), "--report-dir", str(reports)),
            *("--report-type", "tsv"),
        ]
        # requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override a Session's
        # verify, so --ca-bundle alone reaches only the tool's session-less
        # requests; the fleet CA must be the environment's bundle as well.
        env = tool_env(REQUESTS_CA_BUNDLE=str(bmc.ca_file))
        env.pop("CURL_CA_BUNDLE", None)
        code, output = await run_tool(argv, tmp_path, env)
    tsv = sorted(reports.glob("RedfishProtocolValidationReport_*.tsv"))
    assert tsv, f"no report (exit {code}):\n{output[-3000:]}"
    results = json.loads((reports / "results.json").read_text())
    counts = results["TestResults"]["Protocol Validations"]
    with tsv[0].open(newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    failed = [row for row in rows if row["Result"] == "FAIL"]
    listing = "\n".join(
        f"{r['Assertion']} {r['Method']} {r['URI']}: {r['Message']}" for r in failed
    )
    # No connection may end in an exception (the tool's pseudo-status 600).
    assert not [r for r in rows if r["Status code"] == "600"], listing
    by_assertion: dict[str, int] = {}
    for row in failed:
        by_assertion[row["Assertion"]] = by_assertion.get(row["Assertion"], 0) + 1
    for assertion, count in by_assertion.items():
        assert count <= PROTOCOL_FAILS_NOT_OURS.get(assertion, 0), listing
    assert counts["fail"] <= MAX_PROTOCOL_FAILS, listing
    assert counts["warn"] == 0, output[-3000:]
    assert counts["pass"] >= 150, output[-3000:]  # it really talked to the BMC
    assert code == int(counts["fail"] > 0), output[-3000:]
