"""The log file of the full-screen UIs (control room, wall, demo).

While Textual draws on the terminal, a log line written to stderr lands in
the middle of the screen and is gone at the next redraw. For as long as a UI
runs, the root logger's terminal handlers are swapped for a file in the data
directory (``$PACS_TUI_DATA_DIR/pacs-tui.log``), with the secret redactor on
it like every other handler; an unhandled error's traceback is written there.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from pacs_tui.batch.audit import data_dir
from pacs_tui.credentials import REDACTOR

LOG_FILE = "pacs-tui.log"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

log = logging.getLogger(__name__)


def ui_log_path() -> Path:
    """Where the UIs log: ``pacs-tui.log`` in the data directory."""
    return data_dir() / LOG_FILE


@contextlib.contextmanager
def logging_to_file(path: Path | None = None) -> Iterator[Path | None]:
    """Log to ``path`` (default :func:`ui_log_path`) instead of the terminal, then restore.

    Yields the file, or None when it cannot be opened (then logging stays on
    stderr and a warning says why: a UI must open even with a full disk).
    """
    path = ui_log_path() if path is None else path
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        handler = logging.FileHandler(path, encoding="utf-8")
        os.chmod(path, 0o600)  # server names, addresses and errors: the operator's only
    except OSError as exc:
        log.warning("log file %s not opened (%s); logging to stderr", path, exc.strerror)
        yield None
        return
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(REDACTOR)
    root = logging.getLogger()
    terminal = [
        h
        for h in root.handlers
        if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
    ]
    for h in terminal:
        root.removeHandler(h)
    root.addHandler(handler)
    try:
        yield path
    finally:
        root.removeHandler(handler)
        handler.close()
        for h in terminal:
            root.addHandler(h)
