"""What the control room and the wall do with an error nobody handled.

Textual stops the app on an unhandled exception and prints a traceback with
the local variables of every frame; that may show an inventory's settings
and it goes nowhere a colleague can read later. Both apps route the error
through :func:`crash_report` instead: the full traceback goes to the log
(the file ``pacs-tui run``/``wall`` log to while the screen is up), the
terminal gets one redacted line saying what stopped and where the log is,
and the app's ``return_code`` is non-zero, which the CLI turns into its
crash exit status.
"""

from __future__ import annotations

import logging

from rich.text import Text

from pacs_tui.credentials import REDACTOR

log = logging.getLogger(__name__)


class Crash(Exception):
    """An unhandled error that stopped ``what``; ``__cause__`` is the error itself.

    Rich renders it (Textual prints it when the app has stopped) as the
    error's type and redacted message and the log files holding the traceback.
    """

    def __init__(self, what: str, error: BaseException, log_files: list[str]) -> None:
        super().__init__(f"{what} stopped: {type(error).__name__}: {error}")
        self.what = what
        self.error = error
        self.log_files = log_files

    def __rich__(self) -> Text:
        reason = REDACTOR.redact(f"{type(self.error).__name__}: {self.error}")
        where = (
            f"The traceback is in {', '.join(self.log_files)}."
            if self.log_files
            else "The traceback was logged to stderr."
        )
        return Text.assemble(
            (f"{self.what} stopped on an unexpected error: ", "bold red"),
            reason,
            f"\n{where}\nCheck `pacs-tui audit` for any power batch that was running.",
        )


def log_files() -> list[str]:
    """The files the root logger writes to (empty when it logs to the terminal only)."""
    return [
        handler.baseFilename
        for handler in logging.getLogger().handlers
        if isinstance(handler, logging.FileHandler)
    ]


def crash_report(what: str, error: Exception) -> Crash:
    """Log ``error`` with its traceback (never the frames' locals) and wrap it for display.

    Call from ``App._handle_exception`` and pass the result on to Textual's, which
    sets the return code to 1, shows ``Crash.__rich__`` and stops the app.
    """
    if isinstance(error, Crash):
        return error  # already logged (Textual hands some errors over twice)
    log.critical("%s stopped on an unexpected error", what, exc_info=error)
    crash = Crash(what, error, log_files())
    crash.__cause__ = error
    return crash
