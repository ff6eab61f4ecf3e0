"""The most specific text of Redfish error bodies, in every spelling vendors use (pure logic)."""

from __future__ import annotations

from typing import Any

import pytest

from pacs_tui_redfish_power.messages import redfish_message, task_message

POINTER = "See @Message.ExtendedInfo for more information."


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # DSP0266 §9.6 with a Message: the Message wins over error.message.
        (
            {
                "error": {
                    "code": "Base.1.12.GeneralError",
                    "message": POINTER,
                    "@Message.ExtendedInfo": [
                        {"MessageId": "Base.1.12.OperationNotAllowed", "Message": "Not while Off."}
                    ],
                }
            },
            ("Base.1.12.OperationNotAllowed", "Not while Off."),
        ),
        # Only MessageId + MessageArgs: the id and its arguments, never the pointer text.
        (
            {
                "error": {
                    "code": "Base.1.12.GeneralError",
                    "message": POINTER,
                    "@Message.ExtendedInfo": [
                        {
                            "MessageId": "Base.1.12.ActionParameterValueNotInList",
                            "MessageArgs": ["Sleep", "ResetType", "Reset"],
                        }
                    ],
                }
            },
            (
                "Base.1.12.ActionParameterValueNotInList",
                "Base.1.12.ActionParameterValueNotInList (Sleep, ResetType, Reset)",
            ),
        ),
        # Vendor spellings: MessageID / MessageArguments, ExtendedInfo at the top level.
        (
            {
                "@Message.ExtendedInfo": [
                    {"MessageID": "OEM.1.0.PowerLocked", "MessageArguments": ["Blade3"]}
                ],
                "error": {"message": POINTER},
            },
            ("OEM.1.0.PowerLocked", "OEM.1.0.PowerLocked (Blade3)"),
        ),
        # Lower camel case, and a single object instead of a list.
        (
            {
                "error": {
                    "@Message.ExtendedInfo": {"messageId": "X.1.Busy", "message": "Job queue full"}
                }
            },
            ("X.1.Busy", "Job queue full"),
        ),
        # No ExtendedInfo: error.message, with the code as the id.
        (
            {"error": {"code": "Base.1.0.Conflict", "message": "  already\n in progress "}},
            ("Base.1.0.Conflict", "already in progress"),
        ),
        # Nothing useful but a code: the code, rather than the pointer.
        (
            {"error": {"code": "Base.1.0.GeneralError", "message": POINTER}},
            ("Base.1.0.GeneralError", "Base.1.0.GeneralError"),
        ),
        ({"error": "text"}, ("", "")),
        ([], ("", "")),
        (None, ("", "")),
    ],
)
def test_the_most_specific_text_is_chosen(body: Any, expected: tuple[str, str]) -> None:
    assert redfish_message(body) == expected


def test_long_messages_are_cut() -> None:
    body = {"error": {"@Message.ExtendedInfo": [{"MessageId": "A.1.B", "Message": "x" * 900}]}}
    assert len(redfish_message(body)[1]) == 200


def test_a_task_says_how_it_ended_in_its_last_message() -> None:
    task = {
        "TaskState": "Exception",
        "Messages": [
            {"MessageId": "TaskEvent.1.0.TaskStarted", "Message": "started"},
            {"MessageId": "OEM.1.PowerSupplyFault", "MessageArgs": ["PSU2"]},
        ],
    }
    assert task_message(task) == "OEM.1.PowerSupplyFault (PSU2)"
    assert task_message({"Messages": "nope"}) == ""
