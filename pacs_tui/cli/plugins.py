"""``pacs-tui plugins``: what probe and action plugins are installed, and which failed."""

from __future__ import annotations

import argparse
import json
from typing import Any

from pacs_tui.cli import EXIT_OK, EXIT_UNHEALTHY


def register(subparsers: Any) -> None:
    """Add the ``plugins`` subcommand."""
    p = subparsers.add_parser(
        "plugins",
        help="list installed probe and action plugins",
        description="List installed plugins; a plugin that fails to load is shown with why.",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=run_plugins)


def run_plugins(args: argparse.Namespace) -> int:
    """Load every plugin once and report; exit 1 when any failed to load."""
    from pacs_tui.plugin_api import ACTION_GROUP, PROBE_GROUP, Action, Probe
    from pacs_tui.plugin_catalog import list_plugins, load_plugins

    rows: list[dict[str, Any]] = []
    for group, base in ((PROBE_GROUP, Probe), (ACTION_GROUP, Action)):
        loaded = load_plugins(group, base)  # type: ignore[type-var]
        by_entry = {
            type(p).__module__ + ":" + type(p).__qualname__: p for p in loaded.plugins.values()
        }
        for entry in list_plugins(group):
            plugin = by_entry.get(entry.target)
            row: dict[str, Any] = {
                "group": group,
                "name": entry.name,
                "target": entry.target,
                "distribution": entry.distribution,
                "status": "failed" if entry.name in loaded.failed else "loaded",
                "error": loaded.failed.get(entry.name),
            }
            if plugin is not None:
                row["doc"] = (type(plugin).__doc__ or "").strip().splitlines()[0:1]
            rows.append(row)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            mark = "ok " if row["status"] == "loaded" else "ERR"
            kind = row["group"].rsplit(".", 1)[1][:-1]
            line = f"{mark} {kind:<6} {row['name']:<16} {row['target']}  ({row['distribution']})"
            print(line)
            if row["error"]:
                print(f"      failed to load: {row['error']}")
    return EXIT_UNHEALTHY if any(r["status"] == "failed" for r in rows) else EXIT_OK
