"""``pacs-tui wall --web --connect URL``: the wall display in a browser (the room's TV).

textual-serve serves a page running xterm.js and starts one process per
browser connection; here that process is ``pacs-tui wall --connect URL``,
attached to the service. A browser therefore adds a viewer to the service,
never a session on a BMC: the service stays the only poller.

What this module adds to textual-serve's ``Server``:

- The bearer token reaches each wall process through its environment
  (``PACS_TUI_TOKEN``), never on a command line (``ps`` shows those) and never
  in the page.
- Keys and mouse input from the browser are dropped here: a wall process only
  ever gets its terminal size. The wall is read-only anyway (a viewer token,
  no action runner); this also keeps a stray ``q`` on the TV's keyboard from
  ending the display.
- The page loads nothing but this server's own files (a Content-Security-Policy
  says so; textual-serve's template asks a public font service for its font,
  replaced here by the copy in its static folder), and its websocket address
  is the one the browser used, so ``--web-listen 0.0.0.0:8766`` works from a TV.
- When a wall process ends (the service refused it, or this server restarted)
  the page waits until the server answers and opens a new wall by itself.
- At most ``MAX_BROWSERS`` walls at once; SIGTERM or SIGINT close every page
  and stop every wall process before exiting 0 (no orphan walls).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import re
import shlex
import signal
import sys
from pathlib import Path
from typing import Any

import jinja2
import textual_serve
from aiohttp import WSMsgType, web
from textual_serve.app_service import AppService
from textual_serve.server import Server

from pacs_tui.cli import EXIT_OK, EXIT_USAGE
from pacs_tui.cli.serve import parse_listen
from pacs_tui.remote.client import (
    TOKEN_ENV,
    ServiceClient,
    ServiceError,
    ServiceUnavailable,
    check_url,
    load_token,
)

DEFAULT_WEB_LISTEN = "127.0.0.1:8766"
MAX_BROWSERS = 8  # each is a Python process of its own; a room has a TV or two
WALL_EXIT_GRACE_S = 5.0  # a wall asked to quit has this long before SIGTERM, then SIGKILL
RETRY_PAGE_S = 10  # a page whose wall ended tries again this often

TEXTUAL_SERVE_DIR = Path(textual_serve.__file__).resolve().parent
# textual-serve resolves its defaults against its own folder, not the working
# directory; named here anyway so an upgrade that changes that fails loudly.
STATICS_PATH = TEXTUAL_SERVE_DIR / "static"
TEMPLATES_PATH = TEXTUAL_SERVE_DIR / "templates"

# Only this server: scripts, styles, fonts, images and the websocket. xterm.js's
# style loader and the template need inline styles and scripts.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
_FONT_LINK = re.compile(r"<link[^>]*fonts\.googleapis\.com[^>]*>", re.DOTALL)
_LOCAL_FONT = """<link rel="icon" href="data:," />
    <style>
      @font-face {
        font-family: "Roboto Mono";
        src: url("{{ config.static.url }}fonts/RobotoMono-VariableFont_wght.ttf");
      }
    </style>"""
_RETRY_SCRIPT = """<script>
      (function () {
        var waiting = false;
        function retry() {
          fetch(location.href, {cache: "no-store"}).then(
            function (r) { if (r.ok) { location.reload(); } else { setTimeout(retry, {{ retry_ms }}); } },
            function () { setTimeout(retry, {{ retry_ms }}); });
        }
        new MutationObserver(function () {
          if (waiting || !document.body.classList.contains("-closed")) { return; }
          waiting = true;
          setTimeout(retry, {{ retry_ms }});
        }).observe(document.body, {attributes: true, attributeFilter: ["class"]});
      })();
    </script>
  </body>"""


def run_wall_web(args: argparse.Namespace) -> int:
    """``pacs-tui wall --web``: check the arguments, then serve until SIGTERM/SIGINT."""
    if not args.web:
        return _usage("--web-listen goes with --web")
    if args.connect is None:
        return _usage(
            "--web needs --connect URL: a browser wall shows a `pacs-tui serve`, "
            "it never polls the fleet itself"
        )
    if args.inventory is not None:
        return _usage("--web takes --connect URL, not --inventory")
    if args.custody or args.board is not None:
        return _usage("--custody/--board read this machine's board; a browser wall shows the "
                      "service's (start it with `pacs-tui serve --custody`)")  # fmt: skip
    try:
        host, port = parse_listen(args.web_listen or DEFAULT_WEB_LISTEN)
    except ValueError as exc:
        return _usage(f"--web-listen: {exc}")
    if len(args.connect) != 1 or len(args.token_file or []) > 1:
        return _usage("--web shows one service: give one --connect URL (and one --token-file)")
    try:
        url = check_url(args.connect[0])
        token = load_token(args.token_file[0] if args.token_file else None)
    except ValueError as exc:
        return _usage(str(exc))
    for option, path in (("--ca-file", args.ca_file), ("--runbook", args.runbook)):
        if path is not None and not path.is_file():
            return _usage(f"{option}: {path}: no such file")
    refused = _check_token(ServiceClient(url, token, ca_file=args.ca_file))
    if refused is not None:
        return _usage(refused)
    # Every wall process inherits this process's environment (textual-serve copies it).
    os.environ[TOKEN_ENV] = token.reveal()
    server = WebWall(wall_command(args, url), host, port, title="pacs-tui wall", service_url=url)
    try:
        server.serve()
    except OSError as exc:  # the address is taken or not this machine's
        return _usage(f"cannot listen on {server.public_url}: {exc.strerror or exc}")
    return EXIT_OK


def _usage(text: str) -> int:
    print(f"pacs-tui wall: error: {text}", file=sys.stderr)
    return EXIT_USAGE


def _check_token(client: ServiceClient) -> str | None:
    """Why the service refuses the token (None: accepted, or not reachable yet).

    A service that is not up yet is no error: each page retries until it is.
    """

    async def ask() -> None:
        await client.open()
        try:
            await client.get("/api/v1/service")
        finally:
            await client.close()

    try:
        asyncio.run(ask())
    except ServiceError as exc:
        if exc.status in (401, 403):
            return f"{client.url} refuses the token: {exc.reason}"
        print(f"pacs-tui wall: warning: {client.url}: {exc.reason}", file=sys.stderr)
    except ServiceUnavailable as exc:
        print(f"pacs-tui wall: warning: {exc}; the pages will retry", file=sys.stderr)
    return None


def wall_command(args: argparse.Namespace, url: str) -> str:
    """The shell command of one browser's wall process: no token in it."""
    argv = [sys.executable, "-m", "pacs_tui", "wall", "--connect", url,
            "--page-seconds", str(args.page_seconds)]  # fmt: skip
    if args.ca_file is not None:
        argv += ["--ca-file", str(args.ca_file.resolve())]
    if args.runbook is not None:
        argv += ["--runbook", str(args.runbook.resolve())]
    # textual-serve runs it through /bin/sh: exec, so the wall is this server's own child.
    return "exec " + shlex.join(argv)


class WebWall(Server):
    """textual-serve's ``Server`` with the wall's rules (see the module doc)."""

    def __init__(self, command: str, host: str, port: int, *, title: str, service_url: str) -> None:
        shown = f"[{host}]" if ":" in host else host
        super().__init__(
            command, host, port, title=title, public_url=f"http://{shown}:{port}",
            statics_path=STATICS_PATH, templates_path=TEMPLATES_PATH,
        )  # fmt: skip
        self.service_url = service_url
        self.sockets: set[web.WebSocketResponse] = set()
        self.walls: set[asyncio.subprocess.Process] = set()
        template = (TEMPLATES_PATH / "app_index.html").read_text(encoding="utf-8")
        template = _FONT_LINK.sub(_LOCAL_FONT, template).replace("</body>", _RETRY_SCRIPT, 1)
        environment = jinja2.Environment(autoescape=True)
        self._page = environment.from_string(template)

    def initialize_logging(self) -> None:
        """Plain lines on stderr (textual-serve's would print local variables with errors)."""
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )

    async def on_startup(self, app: web.Application) -> None:
        print(
            f"pacs-tui wall --web: the wall of {self.service_url} on {self.public_url}/ "
            "(SIGTERM or Ctrl+C stops it)",
            flush=True,
        )

    async def handle_index(self, request: web.Request) -> web.Response:
        """The page, with a websocket address the browser can reach (the one it used)."""
        origin = request.url.origin()
        socket_url = origin.with_scheme("wss" if request.secure else "ws").with_path("/ws")
        try:
            font_size = int(request.query.get("fontsize", "16"))
        except ValueError:
            font_size = 16
        html = self._page.render(
            font_size=max(6, min(font_size, 96)),
            app_websocket_url=str(socket_url),
            config={"static": {"url": "/static/"}},
            application={"name": self.title},
            ping_url="",
            retry_ms=RETRY_PAGE_S * 1000,
        )
        return web.Response(
            text=html,
            content_type="text/html",
            headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY,
                     "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
        )  # fmt: skip

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        """One browser: its own wall process, which gets the terminal size and nothing else."""
        if len(self.sockets) >= MAX_BROWSERS:
            raise web.HTTPServiceUnavailable(text=f"at most {MAX_BROWSERS} browser walls at once")
        width = _size(request.query.get("width"), 80)
        height = _size(request.query.get("height"), 24)
        websocket = web.WebSocketResponse(heartbeat=15, max_msg_size=64 * 1024)
        await websocket.prepare(request)
        self.sockets.add(websocket)

        async def close() -> None:
            await websocket.close()

        wall = AppService(
            self.command,
            write_bytes=websocket.send_bytes,
            write_str=websocket.send_str,
            close=close,
            download_manager=self.download_manager,
        )
        process: asyncio.subprocess.Process | None = None
        try:
            await wall.start(width, height)
            process = wall._process
            if process is not None:
                self.walls.add(process)
                # A wall that ended by itself (refused, crashed) closes its page.
                ended = asyncio.ensure_future(process.wait())
                ended.add_done_callback(lambda _: asyncio.ensure_future(close()))
            await _read_browser(websocket, wall)
        finally:
            self.sockets.discard(websocket)
            with contextlib.suppress(asyncio.TimeoutError, Exception):
                await asyncio.wait_for(wall.stop(), WALL_EXIT_GRACE_S)  # "quit", as Textual's
            if process is not None:
                await _end(process, grace_s=1.0)  # stop() returns once its output ended
                self.walls.discard(process)
            if not websocket.closed:
                await websocket.close()
        return websocket

    async def on_shutdown(self, app: web.Application) -> None:
        """Close every page: each handler then stops its wall; wait for them all."""
        for websocket in list(self.sockets):
            with contextlib.suppress(Exception):
                await websocket.close(code=1001, message=b"pacs-tui wall --web stopped")
        if self.walls:
            waits = [asyncio.ensure_future(process.wait()) for process in self.walls]
            await asyncio.wait(waits, timeout=2 * WALL_EXIT_GRACE_S + 2)
        for process in list(self.walls):  # a handler that did not get to it
            await _end(process, grace_s=0.0)


async def _read_browser(websocket: web.WebSocketResponse, wall: AppService) -> None:
    """Answer pings and pass on resizes; keystrokes, mouse, focus and the rest are dropped."""
    async for message in websocket:
        if message.type != WSMsgType.TEXT:
            continue
        try:
            envelope = json.loads(message.data)
            kind, data = envelope[0], envelope[1] if len(envelope) > 1 else None
        except (ValueError, TypeError, IndexError, KeyError):
            continue
        if kind == "resize" and isinstance(data, dict):
            await wall.set_terminal_size(
                _size(data.get("width"), 80), _size(data.get("height"), 24)
            )
        elif kind == "ping" and isinstance(data, str):
            await websocket.send_json(["pong", data[:32]])


def _size(value: Any, default: int) -> int:
    try:
        return max(10, min(int(value), 1000))
    except (TypeError, ValueError):
        return default


async def _end(process: asyncio.subprocess.Process, grace_s: float = WALL_EXIT_GRACE_S) -> None:
    """Wait up to ``grace_s`` for a wall process; then SIGTERM (it logs out), then SIGKILL."""
    for sig, wait_s in ((None, grace_s), (signal.SIGTERM, WALL_EXIT_GRACE_S),
                        (signal.SIGKILL, WALL_EXIT_GRACE_S)):  # fmt: skip
        if process.returncode is not None:
            return
        if sig is not None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(sig)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(process.wait(), wait_s)
