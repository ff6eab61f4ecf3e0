"""Value converters of the inventory: one YAML value in, the checked value out.

A converter takes the raw value of one key and returns it converted, or
raises ``Invalid`` whose message says what was expected; the checker
(``checker``) reports that message at the key's line. Converters know no
file, line or key: the same one checks a server's value and a default's.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any

from pacs_tui.inventory.model import SITE_KINDS

# A converter: raw YAML value → checked value; raises ``Invalid``.
Converter = Callable[[Any], Any]


class Invalid(ValueError):
    """A value its converter refuses; the message says what was expected."""


_HOST_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\Z")
_SERVER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def describe(value: Any) -> str:
    """How a wrong value reads in a message (never used for secret keys)."""
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def as_text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        # YAML reads yes/no/on/off as booleans and 0123 as a number.
        quote = " (quote it)" if isinstance(value, bool | int | float) else ""
        raise Invalid(f"expected text, got {describe(value)}{quote}")
    return value.strip()


def server_name(value: Any) -> str:
    text = as_text(value)
    if not _SERVER_NAME.match(text):
        raise Invalid(f"{text!r} is not a valid name (letters, digits, '.', '_', '-')")
    return text


def host(value: Any) -> str:
    """An IPv4/IPv6 address or a DNS host name."""
    text = as_text(value)
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    labels = text.rstrip(".").split(".")
    if (
        len(text) <= 253
        and all(_HOST_LABEL.match(label) for label in labels)
        and not labels[-1].isdigit()  # 10.0.0.300 is a bad address, not a host name
    ):
        return text
    raise Invalid(f"{text!r} is not an IP address or a valid host name")


def port(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid(f"expected a port number 1-65535, got {describe(value)}")
    if not 1 <= value <= 65535:
        raise Invalid(f"port {value} is out of range 1-65535")
    return value


def flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise Invalid(f"expected true or false, got {describe(value)}")
    return value


def word_list(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise Invalid(f"expected a list, got {describe(value)}")
    return tuple(dict.fromkeys(as_text(item) for item in value))  # drop repeats, keep order


def scheme(value: Any) -> str:
    text = as_text(value)
    if text not in ("https", "http"):
        raise Invalid(f"expected https or http, got {text!r}")
    return text


def bmc_auth(value: Any) -> str:
    text = as_text(value)
    if text not in ("auto", "session", "basic"):
        raise Invalid(f"expected auto, session or basic, got {text!r}")
    return text


def seconds(value: Any) -> float:
    """A positive time in seconds, at most an hour."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Invalid(f"expected a number of seconds, got {describe(value)}")
    if not 0 < value <= 3600:
        raise Invalid(f"{value!r} s is out of range (0, 3600]")
    return float(value)


def system_id(value: Any) -> str:
    """A Redfish ComputerSystem member Id (``Blade2``) or its path."""
    text = as_text(value)
    if any(c.isspace() for c in text) or "?" in text or "#" in text:
        raise Invalid(f"{text!r} is not a ComputerSystem Id or /redfish/v1/Systems/... path")
    if "/" in text and not text.startswith("/redfish/v1/Systems/"):
        raise Invalid(f"a system path must start with /redfish/v1/Systems/, got {text!r}")
    return text


def ae_title(value: Any) -> str:
    """A DICOM AE title: 1-16 characters of the default repertoire, no backslash."""
    if not isinstance(value, str):
        raise Invalid(f"expected an AE title (text), got {describe(value)}")
    if not value.strip():
        raise Invalid("an AE title cannot be empty or all spaces")
    if len(value) > 16:
        raise Invalid(f"AE title {value!r} is longer than 16 characters")
    if "\\" in value or not value.isascii() or not value.isprintable():
        raise Invalid(f"AE title {value!r} contains a backslash or a control character")
    return value.strip()  # leading/trailing spaces are not significant in AE titles


def env_name(value: Any) -> str:
    text = as_text(value)
    if not _ENV_NAME.match(text):
        raise Invalid(f"{text!r} is not an environment variable name")
    return text


def site_kind(value: Any) -> str:
    text = as_text(value)
    if text not in SITE_KINDS:
        raise Invalid(f"kind {text!r} is not one of {', '.join(SITE_KINDS)}")
    return text


MAX_WATTS = 1_000_000.0  # a megawatt: beyond it, a typo (a rack is kilowatts)


def watts(value: Any) -> float:
    """A power in watts: a number in (0, 1 000 000]."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Invalid(f"expected a number of watts, got {describe(value)}")
    if not 0 < value <= MAX_WATTS:
        raise Invalid(f"{value!r} W is out of range (0, {MAX_WATTS:.0f}]")
    return float(value)


def peak_factor(value: Any) -> float:
    """A boot peak as a multiple of the steady draw: a number in [1, 10]."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Invalid(f"expected a number (boot peak / steady draw), got {describe(value)}")
    if not 1 <= value <= 10:
        raise Invalid(f"{value!r} is out of range [1, 10]")
    return float(value)
