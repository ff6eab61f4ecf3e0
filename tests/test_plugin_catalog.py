"""Plugin discovery through entry points: built-ins, a third-party plugin, broken ones."""

from __future__ import annotations

import asyncio
import importlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pacs_tui.inventory import load_inventory_text
from pacs_tui.monitor import FleetMonitor
from pacs_tui.plugin_api import PROBE_GROUP, Health
from pacs_tui.plugin_catalog import list_plugins, load_actions, load_probes

EXAMPLE = Path(__file__).parent / "plugin_example" / "pacs_tui_example_uptime.py"

BROKEN_MODULE = """
from pacs_tui.plugin_api import Probe

raise_on_import = {raise_on_import}
if raise_on_import:
    raise ImportError("libfoo.so.1: cannot open shared object file")


class NotAProbe:
    name = "nope"


class ExplodingProbe(Probe):
    name = "exploding"

    def __init__(self) -> None:
        raise RuntimeError("needs a licence key")

    def applies_to(self, server):
        return True

    async def probe(self, server):
        raise AssertionError


class FailsToOpen(Probe):
    name = "fails-to-open"

    async def open(self, context):
        raise ConnectionError("vendor API unreachable")

    def applies_to(self, server):
        return True

    async def probe(self, server):
        raise AssertionError
"""


def install_distribution(site: Path, name: str, entry_points: dict[str, str]) -> None:
    """What pip would leave behind: a dist-info with METADATA and entry_points.txt."""
    info = site / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    lines = [f"[{PROBE_GROUP}]"] + [f"{k} = {v}" for k, v in entry_points.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")


@pytest.fixture
def third_party(tmp_path: Path) -> Iterator[Path]:
    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(EXAMPLE, site / EXAMPLE.name)
    (site / "pacs_tui_broken_plugins.py").write_text(BROKEN_MODULE.format(raise_on_import=False))
    (site / "pacs_tui_unimportable.py").write_text(BROKEN_MODULE.format(raise_on_import=True))
    install_distribution(
        site, "pacs_tui_example", {"viewer": "pacs_tui_example_uptime:ViewerPortProbe"}
    )
    install_distribution(
        site,
        "pacs_tui_broken",
        {
            "not-a-probe": "pacs_tui_broken_plugins:NotAProbe",
            "exploding": "pacs_tui_broken_plugins:ExplodingProbe",
            "fails-to-open": "pacs_tui_broken_plugins:FailsToOpen",
            "unimportable": "pacs_tui_unimportable:Anything",
            "missing-attr": "pacs_tui_broken_plugins:NoSuchClass",
        },
    )
    sys.path.insert(0, str(site))
    importlib.invalidate_caches()
    try:
        yield site
    finally:
        sys.path.remove(str(site))
        for mod in ("pacs_tui_example_uptime", "pacs_tui_broken_plugins", "pacs_tui_unimportable"):
            sys.modules.pop(mod, None)
        importlib.invalidate_caches()


def test_builtin_plugins_are_found_through_entry_points() -> None:
    probes = load_probes()
    assert {"power", "network", "dicom", "ssh"} <= set(probes.plugins)
    assert {e.name for e in list_plugins(PROBE_GROUP)} >= {"power", "network", "dicom", "ssh"}
    assert {"redfish-reset", "ssh-control"} <= set(load_actions().plugins)


def test_broken_plugins_are_reported_and_skipped(third_party: Path) -> None:
    loaded = load_probes()
    assert "viewer" in loaded.plugins and "power" in loaded.plugins
    assert "libfoo.so.1" in loaded.failed["unimportable"]
    assert "not a Probe subclass" in loaded.failed["not-a-probe"]
    assert "needs a licence key" in loaded.failed["exploding"]
    assert "NoSuchClass" in loaded.failed["missing-attr"]


async def test_third_party_probe_runs_and_a_probe_failing_to_open_is_left_out(
    third_party: Path, tmp_path: Path
) -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    inventory = load_inventory_text(
        "sites: [{name: dc, kind: datacenter}]\n"
        "servers:\n"
        "  - {name: web-1, site: dc, role: web-viewer, ssh: {host: 127.0.0.1, user: ops}}\n"
        "  - {name: db-1, site: dc, role: database, ssh: {host: 127.0.0.1, user: ops}}\n",
        tmp_path / "inventory.yaml",
    )
    loaded = load_probes({"viewer", "fails-to-open"})
    async with server:
        monitor = FleetMonitor(
            inventory, probes=list(loaded.plugins.values()), settings={"viewer_port": port}
        )
        async with monitor:
            assert "fails-to-open" in monitor.failed_plugins
            assert [p.name for p in monitor.probes] == ["viewer"]
            await monitor.sweep()
            reading = monitor.state.reading("web-1", "viewer")
            assert reading.health is Health.OK and reading.state == "open"
            assert monitor.state.reading("db-1", "viewer").result is None  # does not apply


def test_plugins_command_lists_failures_and_exits_1(third_party: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": f"{third_party}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    done = subprocess.run(
        [sys.executable, "-m", "pacs_tui", "plugins"], capture_output=True, text=True, env=env,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    assert "ok  probe  viewer" in done.stdout
    assert "ERR probe  unimportable" in done.stdout and "libfoo.so.1" in done.stdout
    assert "ok  probe  power" in done.stdout
