"""What the custody key and ``:custody`` do: advance or correct custody, audited by the board.

Only a writable room with a custody board holds the board as something it
may change (``app.custody``); more than ``CUSTODY_CONFIRM_ABOVE`` servers are
asked about first with a ``CustodyPrompt``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pacs_tui.custody import CustodyChange, CustodyError, CustodyState, parse_state
from pacs_tui.remote.custody import ServiceCustody, ServiceCustodyError
from pacs_tui_widgets.command_line import CommandError
from pacs_tui_widgets.custody_desk import CustodyPrompt
from pacs_tui_widgets.move_bar import MoveBar

if TYPE_CHECKING:
    from pacs_tui_widgets.app import ControlRoomApp

CUSTODY_CONFIRM_ABOVE = 5  # servers; a larger custody change is asked about first


class CustodyControl:
    """Custody changes from the control room."""

    def __init__(self, app: ControlRoomApp) -> None:
        self.app = app

    def change(
        self, how: str, to: str | None = None, reason: str = "", *, confirmed: bool = False
    ) -> bool:
        """``advance`` (to the next state, or ``to``) or ``correct`` (to ``to``, with a
        reason) the marked servers, else the cursor's; more than
        ``CUSTODY_CONFIRM_ABOVE`` are asked about first. False (with a toast) when
        nothing changed or a question is pending.
        """
        board = self.app.custody
        if board is None:
            why = self.app.read_only_reason if self.app.read_only else "no custody board"
            self.app.notify(f"refused: {why}", severity="error")
            return False
        names, selection = self.app.chosen_servers(None)
        if not names:
            self.app.notify("nothing to change: mark servers (space) or put the cursor on one")
            return False
        if len(names) > CUSTODY_CONFIRM_ABOVE and not confirmed:
            target = to or "its next state"
            question = f"{how.capitalize()} custody of {len(names)} servers to {target}?"

            def answered(yes: bool | None) -> None:
                if yes:
                    self.change(how, to, reason, confirmed=True)
                else:
                    self.app.events.note(
                        self.app.state.clock(), f"custody {how} declined: nothing changed"
                    )

            self.app.push_screen(CustodyPrompt(question, selection), answered)
            return False
        if isinstance(board, ServiceCustody):
            self.app.run_worker(self.change_in_service(board, how, names, to, reason),
                                group="custody")  # fmt: skip
            return True
        try:
            if how == "correct":
                assert to is not None
                changes = board.correct(names, to, reason=reason)
            else:
                changes = board.advance(names, to, reason=reason)
        except (CustodyError, KeyError) as exc:
            self.app.notify(f"custody not changed: {exc}", severity="error", timeout=10)
            return False
        self.app.move.noted_own_change()
        self.custody_changed(changes)
        return True

    async def change_in_service(
        self, board: ServiceCustody, how: str, names: list[str], to: str | None, reason: str
    ) -> None:
        """An attached room's change: the service checks, saves and audits it."""
        try:
            made = await board.change(how, names, to, reason)
        except ServiceCustodyError as exc:
            self.app.notify(f"custody not changed: {exc}", severity="error", timeout=10)
            return
        changes = [
            CustodyChange(
                str(c["server"]), CustodyState(c["before"]), CustodyState(c["after"]),
                str(c.get("at", "")), str(c.get("operator", "")), bool(c.get("correction")),
                str(c.get("reason", "")),
            )
            for c in made
        ]  # fmt: skip
        self.custody_changed(changes)

    def custody_changed(self, changes: Sequence[CustodyChange]) -> None:
        now = self.app.state.clock()
        if not changes:
            self.app.notify("custody unchanged: every server is already there")
            return
        moves = sorted({f"{c.before} → {c.after}" for c in changes})
        text = f"custody: {len(changes)} server(s) {', '.join(moves)}" + (
            f" (correction: {changes[0].reason})" if changes[0].correction else ""
        )
        self.app.events.note(now, text)
        self.app.notify(text)
        self.app.grid.custody_changed()
        for bar in self.app.main_screen.query(MoveBar):
            bar.show(self.app.move)

    def command(self, text: str, arg: str, offset: int) -> None:
        how, _, rest = arg.partition(" ")
        if how not in ("advance", "correct"):
            raise CommandError(
                "try :custody advance [STATE] or :custody correct STATE REASON", text, offset
            )
        if self.app.read_only:
            raise CommandError(
                f"refused: {self.app.read_only_reason}; custody cannot change here", text
            )
        if self.app.custody is None:
            raise CommandError("no custody board: start with pacs-tui run --custody", text)
        state, _, reason = rest.strip().partition(" ")
        where = offset + len(how) + 1
        if state:
            try:
                parse_state(state)
            except CustodyError as exc:
                raise CommandError(str(exc), text, where) from exc
        if how == "correct":
            if not state or not reason.strip():
                raise CommandError("a correction needs a state and a reason", text, where)
            self.change("correct", state, reason.strip())
        else:
            if reason.strip():
                raise CommandError("advance takes at most a state", text, where)
            self.change("advance", state or None)
