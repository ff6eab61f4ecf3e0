"""Finding and loading plugins through entry points, without trusting them.

Listing reads package metadata only; a plugin's code is imported when it is
loaded. A plugin that fails to import, is not the right kind of class, or
cannot be instantiated is recorded with the reason and skipped: one broken
plugin never stops the control room.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Generic, TypeVar

from pacs_tui.plugin_api import ACTION_GROUP, PROBE_GROUP, Action, Probe

log = logging.getLogger(__name__)

P = TypeVar("P", Probe, Action)


@dataclass(frozen=True)
class PluginEntry:
    """An installed plugin as metadata describes it (nothing imported yet)."""

    group: str
    name: str
    target: str  # "module:attribute"
    distribution: str


@dataclass
class LoadedPlugins(Generic[P]):
    """The plugins of one group that loaded, and the ones that failed with why."""

    plugins: dict[str, P] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


def list_plugins(group: str) -> list[PluginEntry]:
    """Installed plugins of ``group`` (``pacs_tui.probes`` / ``pacs_tui.actions``)."""
    found = []
    for ep in entry_points(group=group):
        dist = ep.dist.name if ep.dist is not None else "?"
        found.append(PluginEntry(group, ep.name, ep.value, dist))
    return sorted(found, key=lambda e: e.name)


def _load_one(ep: EntryPoint, base: type[P]) -> P:
    obj = ep.load()
    if not isinstance(obj, type) or not issubclass(obj, base):
        raise TypeError(f"{ep.value} is not a {base.__name__} subclass")
    instance = obj()
    if not getattr(instance, "name", ""):
        raise TypeError(f"{ep.value} has no 'name'")
    return instance


def load_plugins(group: str, base: type[P], only: set[str] | None = None) -> LoadedPlugins[P]:
    """Import and instantiate the plugins of ``group``; never raises for a bad plugin."""
    result: LoadedPlugins[P] = LoadedPlugins()
    for ep in sorted(entry_points(group=group), key=lambda e: e.name):
        if only is not None and ep.name not in only:
            continue
        try:
            plugin = _load_one(ep, base)
        except Exception as exc:  # any failure of foreign code is reported, not fatal
            reason = f"{type(exc).__name__}: {exc}"
            log.warning("plugin %s (%s) failed to load: %s", ep.name, ep.value, reason)
            result.failed[ep.name] = reason
            continue
        if plugin.name in result.plugins:
            result.failed[ep.name] = f"duplicate plugin name {plugin.name!r}"
            continue
        result.plugins[plugin.name] = plugin
    return result


def load_probes(only: set[str] | None = None) -> LoadedPlugins[Probe]:
    """The installed probe plugins."""
    return load_plugins(PROBE_GROUP, Probe, only)  # type: ignore[type-abstract]


def load_actions(only: set[str] | None = None) -> LoadedPlugins[Action]:
    """The installed action plugins."""
    return load_plugins(ACTION_GROUP, Action, only)  # type: ignore[type-abstract]
