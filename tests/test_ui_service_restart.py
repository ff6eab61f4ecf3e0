"""A control room attached to a service that is killed mid-batch and started again.

The room must not stay "RUNNING" on a batch the new run of the service does
not know: its pane ends the batch as INTERRUPTED with every server it was
not told about as ``unknown`` (read back before acting again), the keys
accept a new batch, and the event log names the service's interrupted batch
from the service's own audit log. Readings of the old run must not linger as
flaps or health changes: after the restart the room's verdicts are those of
a screen that attached afresh.
"""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest

from pacs_tui.batch.result import ServerStatus
from pacs_tui.rollup import server_health
from pacs_tui_widgets.app import ControlRoomApp
from pacs_tui_widgets.command_line import CommandLine
from pacs_tui_widgets.keymap import KeymapConfig
from pacs_tui_widgets.wall_batch import batch_line
from service_process import running_service
from sim_process import running_sim
from test_ui_attached import NO_THEMES, every_reading_in, mirror_of, restart
from ui_pilot import wait_for

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]

WIDE = (220, 50)  # event-log lines unwrapped


async def test_a_room_names_a_batch_cut_off_by_a_service_restart_and_forgets_the_old_run(
    tmp_path: Path,
) -> None:
    data = {"PACS_TUI_DATA_DIR": str(tmp_path / "data")}
    with (
        running_sim(tmp_path / "dc", "--servers", "12", "--time-scale", "0.05") as sim,
        running_service(sim.out / "inventory.yaml", tmp_path / "svc", env=data) as service,
    ):
        mirror, remote = await mirror_of(service, "lead")
        app = ControlRoomApp(mirror.inventory, source=mirror, remote=remote,
                             keymap=KeymapConfig(), theme_dir=NO_THEMES)  # fmt: skip
        async with app.run_test(size=WIDE) as pilot:
            await wait_for(pilot, lambda: every_reading_in(mirror), 30, "the mirror's readings")
            targets = [s["name"] for s in sim.servers("web-viewer")]
            status, answer = service.request(
                "POST", "/api/v1/batches", service.tokens["lead"],
                {"verb": "restart", "servers": targets, "expect": {"touched": targets}},
            )  # fmt: skip
            assert status == 202, answer
            batch = answer["batch"]
            # Paused at once, so the kill lands while the batch is surely unfinished.
            status, _ = service.request(
                "POST", "/api/v1/batches/current/pause", service.tokens["lead"], {}
            )
            assert status == 200
            await wait_for(
                pilot, lambda: app.runner is not None and app.runner.batch_id == batch, 20,
                "the room to follow the batch",
            )  # fmt: skip
            runner = app.runner
            assert runner is not None and app.batch_active

            def elapsed() -> int:
                title = app.batch_pane.query_one("#batch-title").render().plain
                found = re.search(r"elapsed (\d+) s", title)
                assert found, title
                return int(found.group(1))

            # Paused, the service says nothing: the pane's clock still moves on.
            await wait_for(pilot, lambda: app.batch_pane.last is not None, 10, "an event")
            first = elapsed()
            await pilot.pause(2.5)
            assert elapsed() >= first + 2
            service.process.send_signal(signal.SIGKILL)
            service.process.wait(10)
            again = restart(service)
            try:
                await wait_for(pilot, lambda: not app.batch_active, 60, "the batch to end here")
                result = await runner.run()
                assert result.interrupted and not result.ok
                # The wall's line says so too (the new run of the service does not know it).
                assert "INTERRUPTED" in batch_line(mirror.batch)
                await wait_for(  # the pane applies its queue at 4 Hz
                    pilot, lambda: app.batch_pane.status == "done: interrupted", 5, "the pane"
                )
                # Each server not confirmed is named in the pane as unknown.
                said = {name: r.status for name, r in result.servers.items()}
                unknown_here = {n for n, st in said.items() if st is ServerStatus.UNKNOWN}
                assert unknown_here and unknown_here <= {
                    n for n, word in app.batch_pane.results.items() if word == "unknown"
                }, app.batch_pane.results
                # Paused ≥ 2.5 s above: the elapsed time counts until the service died.
                assert elapsed() >= first + 2
                assert "INTERRUPTED" in app.batch_pane.query_one("#batch-title").render().plain
                assert set(said) == set(targets)
                # A server the service never reported on is unknown, never "not run".
                assert ServerStatus.UNKNOWN in said.values(), said
                assert ServerStatus.NOT_RUN not in said.values(), said

                def logged() -> str:
                    return "\n".join(line.text for line in app.events.lines)

                await wait_for(
                    pilot, lambda: f"INTERRUPTED batch {batch}" in logged(), 20,
                    "the service's interrupted batch named in the event log",
                )  # fmt: skip
                assert "restarted" in logged()
                assert f":ack {batch}" in logged()  # how to stop it being named, from here
                # Acknowledged from the room: audited in the service, no longer named.
                await pilot.press("colon")
                app.query_one(CommandLine).input.value = f":ack {batch}"
                await pilot.press("enter")
                await wait_for(
                    pilot, lambda: f"interrupted batch {batch} acknowledged" in logged(), 10,
                    "the acknowledgement",
                )  # fmt: skip
                status, listed = service.request(
                    "GET", "/api/v1/audit/interrupted", service.tokens["wall"]
                )
                assert status == 200 and listed["interrupted"] == [], listed
                status, rows = service.request(
                    "GET", f"/api/v1/audit?batch={batch}", service.tokens["wall"]
                )
                acks = [r for r in rows["events"] if r["kind"] == "ack"]
                assert [r["operator"] for r in acks] == ["token:lead"], rows
                # A fresh screen on the new run, to compare verdicts with.
                fresh, _ = await mirror_of(service, "wall")
                await fresh.open()
                fresh.start()
                try:
                    await wait_for(pilot, lambda: every_reading_in(fresh), 30, "fresh readings")

                    def same_verdicts() -> bool:
                        now = mirror.state.clock()
                        return all(
                            server_health(s, mirror.state, mirror.applicable(s), now)
                            == server_health(s, fresh.state, fresh.applicable(s), now)
                            for s in mirror.servers
                        )

                    await wait_for(pilot, same_verdicts, 30, "the room's verdicts = a new screen's")
                    flapping = [
                        (s.name, probe)
                        for s in mirror.servers
                        for probe in mirror.applicable(s)
                        if mirror.state.reading(s.name, probe).flap is not None
                    ]
                    assert flapping == []
                finally:
                    await fresh.close()
                # The keys take a new batch: plan one (a dry run reaches no BMC).
                before = [sim.bmc(name)["resets"] for name in targets]
                await pilot.press("slash", *targets[0], "enter")
                await wait_for(
                    pilot, lambda: app.grid.cursor_server == targets[0], 5, "cursor on it"
                )
                await pilot.press("R")
                await wait_for(
                    pilot, lambda: type(app.screen).__name__ == "PlanScreen", 20, "a new plan"
                )
                await pilot.press("escape")
                assert [sim.bmc(name)["resets"] for name in targets] == before
            finally:
                again.send_signal(signal.SIGTERM)
                again.wait(30)
            await pilot.press("q")
