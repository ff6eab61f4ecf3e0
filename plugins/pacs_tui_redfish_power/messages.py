"""The most specific text of a Redfish error or task message, as vendors send it.

DSP0266 §9.6 puts an error's detail in ``error.@Message.ExtendedInfo``: a
list of Message objects (``MessageId``, ``Message``, ``MessageArgs``,
``Severity``, ``Resolution``; Message schema, DSP8010). In the field the
useful part is often only there: ``error.message`` just says "See
@Message.ExtendedInfo for more information", ``Message`` may be missing
(only ``MessageId`` and its arguments), the keys are spelled differently
(``MessageID``, ``messageId``, ``MessageArguments``) or the list sits at the
top level of the body. ``redfish_message`` accepts every such variant and
returns one line for the operator, the same in the CLI, the UI, the audit
log and ``--json``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["MAX_MESSAGE", "redfish_message", "task_message"]

MAX_MESSAGE = 200  # a BMC's own text is shown, but never a page of it

_EXTENDED = ("@Message.ExtendedInfo", "@message.extendedInfo", "@Message.ExtendedInfo@odata")
_ID_KEYS = ("MessageId", "MessageID", "messageId", "messageID", "MessageKey")
_TEXT_KEYS = ("Message", "message")
_ARG_KEYS = ("MessageArgs", "MessageArguments", "messageArgs", "MessageArg")
# Placeholders that point elsewhere instead of saying anything.
_POINTERS = ("see @message.extendedinfo", "see extendedinfo", "general error")


def _first(mapping: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        if key in mapping:
            return mapping[key]
    return None


def _clean(text: str) -> str:
    text = " ".join(text.split())
    if len(text) > MAX_MESSAGE:
        text = text[: MAX_MESSAGE - 1] + "…"
    return text


def _is_pointer(text: str) -> bool:
    lowered = text.lower()
    return not lowered or any(lowered.startswith(p) for p in _POINTERS)


def _one(message: Mapping[str, Any]) -> tuple[str, str]:
    """(MessageId, text) of one Message object; the text is its id and args without one."""
    raw_id = _first(message, _ID_KEYS)
    message_id = raw_id if isinstance(raw_id, str) else ""
    text = _first(message, _TEXT_KEYS)
    if isinstance(text, str) and not _is_pointer(text.strip()):
        return message_id, _clean(text)
    args = _first(message, _ARG_KEYS)
    shown = (
        [str(a) for a in args if isinstance(a, str | int | float)] if isinstance(args, list) else []
    )
    if message_id:
        words = message_id + (f" ({', '.join(shown)})" if shown else "")
        return message_id, _clean(words)
    return "", ""


def _extended(container: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    info = _first(container, _EXTENDED)
    if isinstance(info, dict):
        info = [info]
    if not isinstance(info, list):
        return []
    return [m for m in info if isinstance(m, dict)]


def redfish_message(body: Any) -> tuple[str, str]:
    """(MessageId, text) of a Redfish error body; ``("", "")`` when it says nothing.

    ``body`` is the decoded JSON. The text is the first ExtendedInfo
    ``Message``; without one, ``MessageId (arg, arg)``; without ExtendedInfo,
    ``error.message`` unless it only points at ExtendedInfo. Never raises.
    """
    if not isinstance(body, dict):
        return "", ""
    error = body.get("error")
    error = error if isinstance(error, dict) else {}
    messages = _extended(error) or _extended(body)
    best_id = ""
    for message in messages:
        message_id, text = _one(message)
        best_id = best_id or message_id
        if text:
            return message_id, text
    code = error.get("code")
    fallback_id = best_id or (code if isinstance(code, str) else "")
    top = _first(error, _TEXT_KEYS)
    if isinstance(top, str) and not _is_pointer(top.strip()):
        return fallback_id, _clean(top)
    return fallback_id, fallback_id


def task_message(task: Mapping[str, Any]) -> str:
    """The most specific text among a Task's ``Messages`` (DSP0266 §12.2), or ""."""
    messages = task.get("Messages")
    if not isinstance(messages, list):
        return ""
    texts = [_one(m)[1] for m in messages if isinstance(m, dict)]
    # The last message is the newest: it says how the task ended.
    for text in reversed(texts):
        if text:
            return text
    return ""
