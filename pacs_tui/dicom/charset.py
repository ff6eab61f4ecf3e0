"""Character sets of C-FIND identifiers (PS3.5 §6.1, PS3.3 C.12.1.1.2).

A query value outside ASCII goes out as UTF-8 under Specific Character Set
``ISO_IR 192``. Without it pydicom would encode in the default repertoire
and replace every other character with ``?``, which C-FIND reads as a
single-character wildcard: ``山田*`` would quietly match ``??*``. Answers
are decoded by the character set the peer declares in them, which pydicom
does when the data set carries (0008,0005).
"""

from __future__ import annotations

from collections.abc import Mapping

from pydicom.datadict import dictionary_VR, tag_for_keyword

UTF8 = "ISO_IR 192"
# VRs whose values may use a Specific Character Set; the rest are default repertoire only.
EXTENDED_VRS = frozenset({"SH", "LO", "ST", "PN", "LT", "UC", "UT"})


def check_query_value(keyword: str, value: str) -> None:
    """Raise ``ValueError`` when ``value`` cannot be sent for ``keyword`` without loss.

    A non-ASCII value is refused for a VR of the default repertoire only
    (DA, CS, UI, ...: PS3.5 §6.1.2.3) and for text UTF-8 cannot encode (lone
    surrogates), so no character is ever replaced on the way out.
    """
    if value.isascii():
        return
    tag = tag_for_keyword(keyword)
    vr = dictionary_VR(tag) if tag is not None else "UN"
    if vr not in EXTENDED_VRS:
        raise ValueError(
            f"{keyword}: {value!r} is not ASCII, but {vr} values use the default "
            "character repertoire only (PS3.5 §6.1.2.3)"
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"{keyword}: {value!r} cannot be encoded in UTF-8 ({exc.reason})"
        ) from None


def query_character_set(query: Mapping[str, str]) -> str | None:
    """``ISO_IR 192`` when any value of ``query`` is not ASCII, else None (the default)."""
    return None if all(value.isascii() for value in query.values()) else UTF8
