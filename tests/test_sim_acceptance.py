"""Issue 2 acceptance: tools we did not write work against ``pacs-tui sim`` unchanged."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from peers import require_binary, require_dcmtk, require_module
from sim_process import RunningSim, running_sim, wait_until

PACS_TUI = [sys.executable, "-m", "pacs_tui"]
DCMTK_ENV = {**os.environ, "TCP_NODELAY": "1"}


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> RunningSim:
    out = tmp_path_factory.mktemp("sim") / "dc"
    with running_sim(out, "--servers", "40", "--time-scale", "0.05") as running:
        yield running  # type: ignore[misc]


def echoscu(sim: RunningSim, server: dict, timeout: int = 5) -> subprocess.CompletedProcess[str]:
    binary = require_dcmtk("echoscu")
    port = sim.defaults["dicom"]["port"]
    return subprocess.run(
        [binary, "-to", str(timeout), "-aet", "PACSTUI", "-aec", server["dicom"]["ae_title"],
         server["dicom"]["host"], str(port)],
        capture_output=True, text=True, timeout=30, env=DCMTK_ENV,
    )  # fmt: skip


def test_sim_writes_client_files(sim: RunningSim) -> None:
    for name in ("inventory.yaml", "known_hosts", "id_ed25519", "ca.pem", "credentials.yaml"):
        assert (sim.out / name).is_file(), name
    assert (sim.out / "credentials.yaml").stat().st_mode & 0o777 == 0o600
    assert (sim.out / "id_ed25519").stat().st_mode & 0o777 == 0o600
    assert len(sim.servers()) == 40
    addresses = [s["bmc"]["address"] for s in sim.servers()]
    assert len(set(addresses)) == 40 and all(a.startswith("127.") for a in addresses)
    _, password = sim.bmc_credentials()
    assert password not in (sim.out / "inventory.yaml").read_text()
    assert password not in (sim.out.parent / f"{sim.out.name}-sim.log").read_text()


def test_sim_inventory_is_valid(sim: RunningSim) -> None:
    done = subprocess.run(
        [*PACS_TUI, "inventory", "check", str(sim.out / "inventory.yaml")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_echoscu_succeeds_against_a_dicom_server(sim: RunningSim) -> None:
    server = sim.servers("archive")[0]
    done = echoscu(sim, server)
    assert done.returncode == 0, done.stdout + done.stderr


def test_echoscu_with_unknown_called_ae_is_rejected(sim: RunningSim) -> None:
    server = dict(sim.servers("image-manager")[0])
    server["dicom"] = {**server["dicom"], "ae_title": "NOT-THIS-AE"}
    done = echoscu(sim, server)
    assert done.returncode != 0
    assert "reject" in (done.stdout + done.stderr).lower()


def test_openssh_runs_systemctl_with_strict_host_keys(sim: RunningSim) -> None:
    ssh = require_binary("ssh")
    server = sim.servers("archive")[0]
    ssh_defaults = sim.defaults["ssh"]
    done = subprocess.run(
        [ssh, "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
         "-o", f"UserKnownHostsFile={sim.out / 'known_hosts'}", "-o", "IdentitiesOnly=yes",
         "-o", "ConnectTimeout=10", "-i", str(sim.out / "id_ed25519"),
         "-p", str(ssh_defaults["port"]), f"{ssh_defaults['user']}@{server['ssh']['host']}",
         "systemctl is-active pacs"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "active"


def test_dmtf_redfish_client_powers_a_server_off_and_on(sim: RunningSim) -> None:
    require_module("redfish")
    import redfish

    server = next(s for s in sim.servers("archive") if s["site"] == "dc-main")
    bmc = sim.defaults["bmc"]
    username, password = sim.bmc_credentials()
    client = redfish.redfish_client(
        base_url=f"https://{server['bmc']['address']}:{bmc['port']}",
        username=username,
        password=password,
        cafile=str(sim.out / "ca.pem"),
        timeout=10,
    )
    client.login(auth="session")
    try:
        systems = client.get("/redfish/v1/Systems")
        assert systems.status == 200
        system_path = systems.dict["Members"][0]["@odata.id"]
        assert client.get(system_path).dict["PowerState"] == "On"
        target = client.get(system_path).dict["Actions"]["#ComputerSystem.Reset"]["target"]

        reply = client.post(target, body={"ResetType": "ForceOff"})
        assert reply.status in (200, 202, 204), reply.text
        wait_until(
            lambda: client.get(system_path).dict["PowerState"] == "Off", 30, what="PowerState Off"
        )
        refused = echoscu(sim, server)
        assert refused.returncode != 0
        assert "refused" in (refused.stdout + refused.stderr).lower()

        reply = client.post(target, body={"ResetType": "On"})
        assert reply.status in (200, 202, 204), reply.text
        wait_until(
            lambda: client.get(system_path).dict["PowerState"] == "On", 30, what="PowerState On"
        )
        wait_until(lambda: echoscu(sim, server).returncode == 0, 60, 0.3, "DICOM back after On")
    finally:
        client.logout()


def test_sim_rejects_bad_arguments(tmp_path: Path) -> None:
    done = subprocess.run(
        [*PACS_TUI, "sim", "--servers", "3", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "--servers" in done.stderr


def test_sim_rejects_a_bad_faults_file(tmp_path: Path) -> None:
    faults = tmp_path / "faults.yaml"
    faults.write_text("faults:\n  - servers: 'arch-*'\n    bmc_503: maybe\n")
    done = subprocess.run(
        [*PACS_TUI, "sim", "--servers", "10", "--faults", str(faults), "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert f"{faults}:2" in done.stderr and "bmc_503" in done.stderr
