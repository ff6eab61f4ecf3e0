"""Facts that span servers: declared sites and credentials, known and acyclic
dependencies, one ComputerSystem per server behind a shared BMC.

Run after every server was read on its own; problems go to the run's ``Check``.
"""

from __future__ import annotations

from pacs_tui.inventory.checker import Check, suggest
from pacs_tui.inventory.model import CredentialRef, Server, Site


def cross_check(
    check: Check,
    servers: list[tuple[Server, str]],
    sites: dict[str, Site],
    credentials: dict[str, CredentialRef],
) -> None:
    """Facts that span servers: unique names, declared references, no cycles."""
    first: dict[str, Server] = {}
    for server, _ in servers:
        first.setdefault(server.name, server)  # duplicates were reported while reading
    for server, key_path in servers:
        if server.site not in sites:
            check.problem(
                server.line_of("site"),
                f"{key_path}.site",
                f"unknown site {server.site!r}{suggest(server.site, sites)}; "
                "declare it under 'sites:'",
            )
        for dep in server.depends_on:
            if dep == server.name:
                check.problem(
                    server.line_of("depends_on"),
                    f"{key_path}.depends_on",
                    "a server cannot depend on itself",
                )
            elif dep not in first and dep not in check.failed:
                check.problem(
                    server.line_of("depends_on"),
                    f"{key_path}.depends_on",
                    f"unknown server {dep!r}{suggest(dep, first)}",
                )
        for block, endpoint in (("bmc", server.bmc), ("ssh", server.ssh)):
            ref = getattr(endpoint, "credentials", None)
            if ref is not None and ref not in credentials:
                check.problem(
                    server.line_of(block),
                    f"{key_path}.{block}.credentials",
                    f"unknown credential reference {ref!r}{suggest(ref, credentials)}; "
                    "declare it under 'credentials:'",
                )
    check_cycles(check, servers)
    check_shared_bmcs(check, servers)


def check_shared_bmcs(check: Check, servers: list[tuple[Server, str]]) -> None:
    """Servers behind one BMC (a blade enclosure) must each name their own system.

    Without it a reset would go to whichever system the BMC lists first: the
    wrong server powered off.
    """
    by_bmc: dict[tuple[str, int], list[tuple[Server, str]]] = {}
    for server, key_path in servers:
        if server.bmc is not None:
            by_bmc.setdefault((server.bmc.address, server.bmc.port), []).append((server, key_path))
    for (address, port), group in by_bmc.items():
        if len(group) < 2:
            continue
        names = ", ".join(s.name for s, _ in group)
        seen: dict[str, str] = {}
        for server, key_path in group:
            assert server.bmc is not None
            system = server.bmc.system
            if system is None:
                check.problem(
                    server.line,
                    f"{key_path}.bmc.system",
                    f"BMC {address}:{port} is shared by {names}; "
                    "name this server's ComputerSystem (member Id or path)",
                )
                continue
            member = system.rstrip("/").rsplit("/", 1)[-1]
            if member in seen:
                check.problem(
                    server.line,
                    f"{key_path}.bmc.system",
                    f"system {member!r} of BMC {address}:{port} is already {seen[member]}",
                )
            else:
                seen[member] = server.name


def check_cycles(check: Check, servers: list[tuple[Server, str]]) -> None:
    """Report dependency cycles (``a -> b -> a``) at the server each one returns to."""
    by_name = {s.name: (s, k) for s, k in servers}
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    for start, _ in servers:
        if start.name in state:
            continue
        path: list[str] = []
        stack: list[tuple[str, int]] = [(start.name, 0)]
        while stack:
            name, index = stack.pop()
            if index == 0:
                state[name] = 1
                path.append(name)
            deps = [d for d in by_name[name][0].depends_on if d in by_name and d != name]
            if index < len(deps):
                stack.append((name, index + 1))
                dep = deps[index]
                if state.get(dep) == 1:
                    cycle = [*path[path.index(dep) :], dep]
                    server, key_path = by_name[dep]
                    check.problem(
                        server.line,
                        f"{key_path}.depends_on",
                        f"dependency cycle: {' -> '.join(cycle)}",
                    )
                elif dep not in state:
                    stack.append((dep, 0))
            else:
                state[name] = 2
                path.pop()
