"""Modal screens that answer once: a repeated key never dismisses twice.

A terminal delivers keys in bursts: Enter pressed twice quickly reaches a
screen's input as two queued events, and the second is handled after the
first has already dismissed the screen. Textual would then pop whatever
screen is on top now (the control room itself: ``ScreenStackError``) and
run the answer's callback, or the palette's command, a second time. Every
modal of the control room derives from :class:`Modal`, and the command
palette is :class:`Palette`; both ignore anything that would dismiss them
again.
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar

from textual import on
from textual.await_complete import AwaitComplete
from textual.command import CommandPalette
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Input, OptionList

log = logging.getLogger(__name__)

ResultT = TypeVar("ResultT")


def _nothing_to_await() -> AwaitComplete:
    done: AwaitComplete = AwaitComplete.nothing()  # type: ignore[no-untyped-call]  # untyped upstream
    return done


def _already_answered(screen: Screen[Any], answered: bool) -> bool:
    """True when ``screen`` was dismissed already or is no longer on top."""
    return answered or not screen.is_active


class Modal(ModalScreen[ResultT]):
    """A modal screen whose ``dismiss`` takes effect once; later calls do nothing."""

    _answered = False

    def dismiss(self, result: ResultT | None = None) -> AwaitComplete:
        """Close with ``result`` (the callback runs once); a repeat is ignored and logged."""
        if _already_answered(self, self._answered):
            log.debug("%s: repeated dismiss ignored", type(self).__name__)
            return _nothing_to_await()
        self._answered = True
        return super().dismiss(result)


class Palette(CommandPalette):
    """Textual's command palette, running the chosen command once, however often Enter comes.

    The palette dismisses itself from its ``Input.Submitted``/``OptionSelected``
    handlers and then schedules the command; these handlers below run first
    (subclass before base) and swallow the events that arrive after that.
    """

    _answered = False

    def dismiss(self, result: None = None) -> AwaitComplete:
        """Close the palette once; a repeat is ignored."""
        if _already_answered(self, self._answered):
            log.debug("command palette: repeated dismiss ignored")
            return _nothing_to_await()
        self._answered = True
        return super().dismiss(result)

    @on(Input.Submitted)
    @on(Button.Pressed)
    @on(OptionList.OptionSelected)
    def _ignore_after_answer(
        self, event: Input.Submitted | Button.Pressed | OptionList.OptionSelected
    ) -> None:
        if _already_answered(self, self._answered):
            event.stop()
            event.prevent_default()  # the base class's handler would run the command again
