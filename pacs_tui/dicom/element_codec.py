"""A minimal codec for flat DICOM data sets of short text elements (PS3.5 7.1).

C-FIND identifiers at study level are a dozen short text elements. pydicom
spends ~0.2 ms building or reading one; bulk listings (the replication proof
reads ~2 400 a day per archive) use this instead: Little Endian, Implicit or
Explicit VR, top-level elements only. Anything else (a sequence of undefined
length, a truncated element) raises ``ValueError`` so the caller can fall
back to pydicom.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Iterable, Mapping

from pydicom.datadict import dictionary_VR, tag_for_keyword

# Explicit VR elements with a 2-byte reserved field and a 4-byte length (PS3.5 7.1.2).
_LONG_VRS = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
)
_HEAD = struct.Struct("<HHI")  # group, element, 4-byte length (implicit VR)
_EXPLICIT = struct.Struct("<HH2sH")  # group, element, VR, 2-byte length
_LONG_LENGTH = struct.Struct("<I")
_UNDEFINED = 0xFFFFFFFF


@functools.lru_cache(maxsize=512)
def tag_of(keyword: str) -> tuple[int, str]:
    """(tag, VR) of a DICOM keyword; ``ValueError`` when it is not one."""
    tag = tag_for_keyword(keyword)
    if tag is None:
        raise ValueError(f"{keyword!r} is not a DICOM keyword")
    vr = dictionary_VR(tag)
    return tag, vr.split(" or ")[0]


def read_elements(data: bytes, implicit_vr: bool, wanted: Mapping[int, str]) -> dict[str, bytes]:
    """Raw values of the ``wanted`` tags (tag -> name) found at the top level of ``data``."""
    found: dict[str, bytes] = {}
    offset, size = 0, len(data)
    while offset < size:
        if implicit_vr:
            if offset + 8 > size:
                raise ValueError("truncated element header")
            group, element, length = _HEAD.unpack_from(data, offset)
            offset += 8
        else:
            if offset + 8 > size:
                raise ValueError("truncated element header")
            group, element, vr, length = _EXPLICIT.unpack_from(data, offset)
            offset += 8
            if vr in _LONG_VRS:
                if offset + 4 > size:
                    raise ValueError("truncated element header")
                (length,) = _LONG_LENGTH.unpack_from(data, offset)
                offset += 4
        if length == _UNDEFINED:
            raise ValueError("an element of undefined length")
        end = offset + length
        if end > size:
            raise ValueError("truncated element value")
        name = wanted.get(group << 16 | element)
        if name is not None:
            found[name] = data[offset:end]
        offset = end
    return found


def text(value: bytes) -> str:
    """A text value without its padding (trailing spaces or NUL), decoded as Latin-1."""
    return value.rstrip(b" \0").decode("latin-1").strip()


def encode_elements(items: Iterable[tuple[int, str, bytes]], implicit_vr: bool) -> bytes:
    """Encode (tag, VR, value) text elements, in ascending tag order, padded to even length."""
    parts: list[bytes] = []
    for tag, vr, value in items:
        if len(value) % 2:
            value += b"\0" if vr == "UI" else b" "
        group, element = tag >> 16, tag & 0xFFFF
        if implicit_vr:
            parts.append(_HEAD.pack(group, element, len(value)))
        elif vr.encode() in _LONG_VRS:
            parts.append(struct.pack("<HH2sHI", group, element, vr.encode(), 0, len(value)))
        else:
            parts.append(_EXPLICIT.pack(group, element, vr.encode(), len(value)))
        parts.append(value)
    return b"".join(parts)
