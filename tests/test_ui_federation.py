"""One control room over two services (``run --connect A --connect B``).

One simulator, its inventory split in two: the main data center's servers
(with the hospital gateways) served by service A, the remote backup's by
service B. The room shows every server in one grid; a batch goes to the
service that owns its servers (exactly its plan's resets reach the BMC, and
only that service audits it); a selection spanning both is refused before
anything is planned; when B is killed its servers turn STALE while A's stay
fresh, and the banner names B.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from pacs_tui.credentials import Secret
from pacs_tui.custody import CustodyState
from pacs_tui.plugin_api import Health
from pacs_tui.remote.client import ServiceClient
from pacs_tui.remote.custody import ServiceCustody, ServiceCustodyError
from pacs_tui.remote.federation import FederatedBatches, FleetFederation
from pacs_tui.remote.mirror import attach
from pacs_tui_widgets.app import ControlRoomApp
from pacs_tui_widgets.keymap import KeymapConfig
from pacs_tui_widgets.plan_screen import PlanScreen
from service_process import RunningService, running_service
from sim_process import RunningSim, running_sim
from test_ui_attached import NO_THEMES, assert_sent_as_planned
from ui_pilot import SIZE, wait_for

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]

BACKUP_SITE = "dc-backup"


def split_inventory(sim: RunningSim, folder: Path) -> tuple[Path, Path]:
    """The simulator's inventory as two files: the backup site's servers, and the rest."""
    document = yaml.safe_load((sim.out / "inventory.yaml").read_text())
    parts: dict[str, list[dict[str, Any]]] = {"main": [], "backup": []}
    for server in document["servers"]:
        parts["backup" if server["site"] == BACKUP_SITE else "main"].append(server)
    paths = []
    for part, servers in parts.items():
        names = {s["name"] for s in servers}
        for server in servers:  # a dependency on the other service's server is not ours
            if "depends_on" in server:
                server["depends_on"] = [d for d in server["depends_on"] if d in names]
        path = sim.out / f"inventory-{part}.yaml"  # beside the CA and keys it names
        path.write_text(yaml.safe_dump({**document, "servers": servers}, sort_keys=False))
        paths.append(path)
    return paths[0], paths[1]


@pytest.fixture(scope="module")
def two_services(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[RunningSim, RunningService, RunningService]]:
    root = tmp_path_factory.mktemp("federation")
    with running_sim(root / "dc", "--servers", "12", "--time-scale", "0.05") as sim:
        main, backup = split_inventory(sim, root)
        with (
            running_service(main, root / "a", "--site", "main", "--custody",
                            env={"PACS_TUI_DATA_DIR": str(root / "data-a")}) as a,
            running_service(backup, root / "b", "--site", "backup", "--custody",
                            env={"PACS_TUI_DATA_DIR": str(root / "data-b")}) as b,
        ):  # fmt: skip
            yield sim, a, b


async def federation_of(*services: RunningService) -> FleetFederation:
    attached = []
    for service in services:
        client = ServiceClient(service.url, Secret(service.tokens["lead"]))
        inventory, description = await attach(client)
        attached.append((client, inventory, description))
    return FleetFederation.build(attached)


def audit_batches(service: RunningService) -> set[str]:
    status, answer = service.request("GET", "/api/v1/audit", service.tokens["wall"])
    assert status == 200
    return {e["batch"] for e in answer["events"] if not e["batch"].startswith("custody-")}


async def test_each_servers_custody_is_its_own_services_board(
    two_services: tuple[RunningSim, RunningService, RunningService],
) -> None:
    """One board over two services: states from each, a change to the owner only."""
    sim, a, b = two_services
    federation = await federation_of(a, b)
    board = ServiceCustody(*federation.mirrors)
    backup_server = next(s["name"] for s in sim.servers() if s["site"] == BACKUP_SITE)
    main_server = next(s["name"] for s in sim.servers() if s["site"] != BACKUP_SITE)
    await federation.open()
    federation.start()
    try:
        assert set(board.states()) == {s["name"] for s in sim.servers()}
        with pytest.raises(ServiceCustodyError, match="2 services"):
            await board.change("advance", [main_server, backup_server], None, "both")
        assert custody_of(a)[main_server] == custody_of(b)[backup_server] == "running"
        changes = await board.change("advance", [backup_server], None, "trial")
        assert [c["server"] for c in changes] == [backup_server]
        assert custody_of(b)[backup_server] == "shut-down"
        assert custody_of(a)[main_server] == "running" and backup_server not in custody_of(a)
        deadline = time.monotonic() + 10
        while board.state(backup_server) is not CustodyState.SHUT_DOWN:
            assert time.monotonic() < deadline, "the custody event never reached the board"
            await asyncio.sleep(0.1)
        assert board.state(main_server) is CustodyState.RUNNING
        await board.change("correct", [backup_server], "running", "undo the trial")
    finally:
        await federation.close()


def custody_of(service: RunningService) -> dict[str, str]:
    status, answer = service.request("GET", "/api/v1/custody", service.tokens["wall"])
    assert status == 200, answer
    return dict(answer["states"])


async def test_one_room_over_two_services(
    two_services: tuple[RunningSim, RunningService, RunningService],
) -> None:
    sim, a, b = two_services
    federation = await federation_of(a, b)
    backup_servers = [s["name"] for s in sim.servers() if s["site"] == BACKUP_SITE]
    main_servers = [s["name"] for s in sim.servers() if s["site"] != BACKUP_SITE]
    assert backup_servers and main_servers
    app = ControlRoomApp(
        federation.inventory, source=federation, remote=FederatedBatches(federation),
        keymap=KeymapConfig(), theme_dir=NO_THEMES,
    )  # fmt: skip
    target = next(n for n in backup_servers if n.startswith("bkp-arch"))
    before = list(sim.bmc(target)["resets"])
    audited_a = audit_batches(a)
    async with app.run_test(size=SIZE) as pilot:
        # One grid: every server of both services, each read by its own service.
        assert set(app.servers) == {s["name"] for s in sim.servers()}
        await wait_for(pilot, lambda: fresh(app, app.servers), 40, "every server read")
        # A selection spanning both services is refused before anything is planned.
        assert app.start_power("restart", f"{main_servers[0]},{target}") is True
        await pilot.pause(1.0)
        assert not isinstance(app.screen, PlanScreen)
        # The backup server's batch goes to service B only.
        await pilot.press("slash", *target, "enter")
        await wait_for(pilot, lambda: app.grid.cursor_server == target, 5, "cursor on target")
        await pilot.press("R")
        await wait_for(pilot, lambda: isinstance(app.screen, PlanScreen), 20, "the plan")
        screen = app.screen
        assert isinstance(screen, PlanScreen)
        plan = screen.plan
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.runner is not None, 20, "the batch to start")
        await wait_for(pilot, lambda: not app.batch_active, 60, "the batch to end")
        runner = app.runner
        assert runner is not None
        assert (await runner.run()).ok
        assert runner.batch_id in audit_batches(b)
        assert audit_batches(a) == audited_a  # service A planned and sent nothing
        # Service B goes away: its servers turn STALE, A's stay fresh, the banner names B.
        b.process.send_signal(signal.SIGKILL)
        b.process.wait(10)
        await wait_for(
            pilot, lambda: stale(app, backup_servers), 120, "the backup servers to turn STALE"
        )
        assert fresh(app, main_servers)
        assert "backup" in app.monitor.label and "main" not in app.monitor.label
        assert app.monitor.data_age_s() is not None
        await pilot.press("q")
    assert_sent_as_planned(plan, before, list(sim.bmc(target)["resets"]))


def fresh(app: ControlRoomApp, names: Any) -> bool:
    rollup = app.rollup
    return rollup is not None and all(
        rollup.health.get(n) not in (None, Health.STALE, Health.UNKNOWN) for n in names
    )


def stale(app: ControlRoomApp, names: Any) -> bool:
    rollup = app.rollup
    return rollup is not None and all(rollup.health.get(n) is Health.STALE for n in names)
