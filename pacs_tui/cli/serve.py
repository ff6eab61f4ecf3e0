"""``pacs-tui serve`` and ``pacs-tui token``: the fleet's one poller as a service.

``serve`` owns every device session (BMC, DICOM, SSH), the batches, the audit
log and the custody board, and serves them over HTTP to thin screens
(``run --connect``, ``wall --connect``) and to Prometheus (``/metrics``).
It binds to loopback unless told otherwise; SIGTERM or SIGINT stop it
cleanly (a running batch is aborted and audited, BMC sessions are logged
out) with exit 0. ``token add`` writes a caller into the 0600 tokens file
and prints its token once.
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import stat
import sys
from pathlib import Path
from typing import Any

from pacs_tui.cli import EXIT_OK, EXIT_USAGE, UsageError, load_fleet
from pacs_tui.cli.power_baseline import add_power_baseline_argument, power_baseline_settings

DEFAULT_LISTEN = "127.0.0.1:8765"
# Seconds a stopping service waits for requests in progress before cancelling them
# (screens' event streams never end by themselves; other requests take milliseconds).
SHUTDOWN_TIMEOUT_S = 2.0


def register(subparsers: Any) -> None:
    """Add ``serve`` and ``token``."""
    serve = subparsers.add_parser(
        "serve",
        help="run the fleet's one poller as a service for screens and Prometheus",
        description=(
            "The only process that talks to BMCs, archives and hosts: it polls, runs batches, "
            "keeps the audit log and the custody board, and serves them over HTTP to "
            "`run --connect` / `wall --connect` screens and to Prometheus (/metrics)."
        ),
    )
    serve.add_argument("--inventory", "-i", type=Path, required=True, help="inventory YAML file")
    serve.add_argument(
        "--tokens", type=Path, required=True,
        help="bearer tokens file (YAML, mode 0600; `pacs-tui token add` writes it)",
    )  # fmt: skip
    serve.add_argument(
        "--listen", default=DEFAULT_LISTEN, metavar="ADDR:PORT",
        help=f"address and port to listen on (default {DEFAULT_LISTEN}, loopback)",
    )  # fmt: skip
    serve.add_argument("--tls-cert", type=Path, help="serve HTTPS with this certificate (PEM)")
    serve.add_argument("--tls-key", type=Path, help="the certificate's private key (PEM)")
    serve.add_argument(
        "--read-only", action="store_true", help="load no action plugin: nothing can be changed"
    )
    serve.add_argument(
        "--custody", action="store_true", help="serve the data directory's custody board"
    )
    serve.add_argument("--board", type=Path, help="custody board file (implies --custody)")
    serve.add_argument("--site", default="", help="a name for this service (default: inventory)")
    add_power_baseline_argument(serve)
    serve.add_argument(
        "--link-interval", type=float, default=60.0, metavar="S",
        help="seconds between rounds measuring the sites' WAN links (default 60)",
    )  # fmt: skip
    serve.set_defaults(handler=run_serve)

    token = subparsers.add_parser(
        "token",
        help="manage the service's bearer tokens",
        description="Add a caller to a tokens file (created 0600) and print its token once.",
    )
    token_sub = token.add_subparsers(dest="token_command", required=True)
    add = token_sub.add_parser("add", help="add a named token with a role")
    add.add_argument("--tokens", type=Path, required=True, help="tokens file")
    add.add_argument("--name", required=True, help="who the token is for (shown in the audit)")
    add.add_argument("--role", choices=("viewer", "operator"), required=True)
    add.set_defaults(handler=run_token_add)


def _error(text: str) -> int:
    print(f"pacs-tui serve: error: {text}", file=sys.stderr)
    return EXIT_USAGE


def parse_listen(text: str) -> tuple[str, int]:
    """``ADDR:PORT`` (``[::1]:PORT`` for IPv6) as (host, port); ValueError says why."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"{text!r} is not ADDR:PORT")
    host = host.strip("[]")
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"port {port_text!r} is not a number") from None
    if not 0 < port < 65536:
        raise ValueError(f"port {port} is not 1..65535")
    return host, port


def _tls(args: argparse.Namespace) -> ssl.SSLContext | None:
    """The server's TLS context; ``UsageError`` names the file and what is wrong with it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from pacs_tui.input_file import CERTIFICATE, PRIVATE_KEY, InputFileError, read_checked

    if (args.tls_cert is None) != (args.tls_key is None):
        raise UsageError("--tls-cert and --tls-key go together")
    if args.tls_cert is None:
        return None
    try:
        cert, _ = read_checked(args.tls_cert, CERTIFICATE)
        key, key_info = read_checked(args.tls_key, PRIVATE_KEY)
    except InputFileError as exc:
        raise UsageError(str(exc)) from None
    mode = stat.S_IMODE(key_info.st_mode)
    if mode & 0o077:
        raise UsageError(
            f"--tls-key {args.tls_key}: mode {mode:04o} lets others read the key; "
            f"chmod 600 {args.tls_key}"
        )
    try:
        x509.load_pem_x509_certificate(cert)
    except ValueError:
        raise UsageError(f"--tls-cert {args.tls_cert}: not a PEM certificate") from None
    try:
        serialization.load_pem_private_key(key, password=None)
    except (ValueError, TypeError):
        raise UsageError(f"--tls-key {args.tls_key}: not an unencrypted PEM private key") from None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(args.tls_cert, args.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(
            f"--tls-cert {args.tls_cert} / --tls-key {args.tls_key}: the key does not "
            f"belong to the certificate ({getattr(exc, 'reason', None) or exc})"
        ) from None
    return context


def run_serve(args: argparse.Namespace) -> int:
    """Check every input, then serve until a signal."""
    from pacs_tui.input_file import InputFileError
    from pacs_tui.service.fleet_service import read_inventory_text
    from pacs_tui.service.tokens import TokenFileError, load_tokens

    try:
        host, port = parse_listen(args.listen)
    except ValueError as exc:
        return _error(f"--listen: {exc}")
    try:
        tokens = load_tokens(args.tokens)
    except TokenFileError as exc:
        return _error(f"--tokens: {exc}")
    inventory = load_fleet(args.inventory)
    settings = power_baseline_settings(args.power_baseline, "serve")
    if settings is None:
        return EXIT_USAGE
    try:
        text = read_inventory_text(args.inventory)
    except InputFileError as exc:
        return _error(str(exc))
    tls = _tls(args)
    custody = None
    if args.custody or args.board is not None:
        from pacs_tui.custody import CustodyBoard, CustodyError

        try:
            custody = CustodyBoard.open(inventory, path=args.board)
        except (OSError, ValueError, CustodyError) as exc:
            return _error(f"custody board: {exc}")
    from pacs_tui.cli.signals import run_until_signalled

    try:
        return asyncio.run(
            run_until_signalled(
                lambda stop: _serve(
                    args, inventory, text, tokens, tls, custody, host, port, settings
                )
            )
        )
    finally:
        if custody is not None:
            custody.close()


async def _serve(
    args: argparse.Namespace,
    inventory: Any,
    text: str,
    tokens: Any,
    tls: ssl.SSLContext | None,
    custody: Any,
    host: str,
    port: int,
    settings: dict[str, Any] | None = None,
) -> int:
    from aiohttp import web

    from pacs_tui.service.api import build_app
    from pacs_tui.service.fleet_service import FleetService
    from pacs_tui.service.metrics import (
        BatchCounters,
        FleetCollector,
        fleet_registry,
        render_async,
    )
    from pacs_tui.session import POWER_BASELINE_SETTING

    if args.link_interval <= 0:
        print("pacs-tui serve: error: --link-interval must be > 0", file=sys.stderr)
        return EXIT_USAGE
    service = FleetService(
        inventory, text, read_only=args.read_only, custody=custody, site_name=args.site,
        link_interval_s=args.link_interval, settings=settings or {},
    )  # fmt: skip
    counters = BatchCounters()
    service.progress_subscribers.append(counters.observe)
    runner: web.AppRunner | None = None
    # Why one try from here, not only around the wait: a signal during start-up (probes
    # opening, the first polls logging in to BMCs) cancels this task too; before, it
    # skipped service.stop() and left every BMC session it had opened until the BMC's
    # idle timeout, and exited 143 with the monitor still polling.
    try:
        await service.start()
        from pacs_tui.rollup import applicable_probes

        collector = FleetCollector(
            inventory, service.monitor.state, applicable_probes(service.monitor.probes), counters
        )
        registry = fleet_registry(collector)
        app = build_app(service, tokens, metrics=lambda: render_async(registry))
        # Why shutdown_timeout: aiohttp waits that long for each request in progress to
        # end by itself before cancelling it, and an attached screen's event stream never
        # ends by itself: at the default 60 s, SIGTERM with a screen attached took >60 s.
        runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT_S
        )
        await runner.setup()
        site = web.TCPSite(runner, host, port, ssl_context=tls)
        try:
            await site.start()
        except OSError as exc:
            print(f"pacs-tui serve: error: cannot listen on {host}:{port}: {exc.strerror}",
                  file=sys.stderr)  # fmt: skip
            # Why: the poller has started (and may have logged in); log out before exit 2.
            await service.stop("the service could not listen")
            return EXIT_USAGE
        scheme = "https" if tls else "http"
        shown = f"[{host}]" if ":" in host else host
        print(
            f"pacs-tui serve: {len(inventory.servers)} servers, {len(tokens.callers)} token(s), "
            f"listening on {scheme}://{shown}:{port}"
            + (" (read-only)" if service.read_only else "")
            + (
                f"; power baseline: {len(draws)} server draw(s) from {args.power_baseline}"
                if (draws := (settings or {}).get(POWER_BASELINE_SETTING)) is not None
                else ""
            ),
            flush=True,
        )
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        running = service.batch_task is not None and not service.batch_task.done()
        what = "aborting the running batch, logging out" if running else "logging out"
        print(f"pacs-tui serve: stopping: {what}", flush=True)
        await service.stop("the service was stopped (signal)")
        return EXIT_OK
    finally:
        if runner is not None:
            await runner.cleanup()
    return EXIT_OK


def run_token_add(args: argparse.Namespace) -> int:
    """``pacs-tui token add``: print the new token once (stdout), nothing else."""
    from pacs_tui.service.tokens import Role, TokenFileError, add_token

    try:
        token = add_token(args.tokens, args.name, Role(args.role))
    except TokenFileError as exc:
        print(f"pacs-tui token: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"pacs-tui token: error: {args.tokens}: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE
    print(token)
    return EXIT_OK
