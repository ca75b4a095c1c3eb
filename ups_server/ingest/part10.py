"""The common STOW-RS part read straight into DICOM JSON, without a pydicom Dataset.

A Part 10 file in Explicit VR Little Endian with the default, Latin-1 or UTF-8 character set is
walked element by element: each value becomes the DICOM JSON pydicom's ``to_json_dict`` gives for
it (``metadata_json``: binary values above ``BULK_THRESHOLD`` left out at the top level, a
``BulkDataURI`` of "" inside sequences), its lengths are checked against the bytes, and the UIDs
and the Pixel Data description are read on the way. Whatever this reader is not sure to read as
pydicom does - another transfer syntax, a character set with code extensions, UN, an undefined
length outside sequences, a number that is not plainly written, an element out of order, a value
past the end, a missing or invalid UID, short Pixel Data - makes it answer None: the instance then
goes through pydicom (``parse.py``), which also gives each refusal its reason.
"""

from __future__ import annotations

import base64
import math
import re
import struct
from typing import Any

from pydicom import config

from ..dicom import tags as t
from ..dicom.uids import is_valid_uid

EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
INLINE_LIMIT = (1024 // 4) * 3  # binary values up to this length are inline (pydicom's threshold, BULK_THRESHOLD)

_STRINGS = frozenset({"AS", "CS", "DA", "DT", "TM", "UI"})  # default repertoire, split, right-stripped
_TEXTS = frozenset({"SH", "LO", "UC"})  # the character set, split, each right-stripped
_SINGLE_TEXTS = frozenset({"ST", "LT", "UT"})  # the character set, not split
_NUMBERS = {"US": "H", "SS": "h", "UL": "L", "SL": "l", "FL": "f", "FD": "d", "SV": "q", "UV": "Q"}
_BINARY = frozenset({"OB", "OD", "OF", "OL", "OV", "OW"})
_LONG = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"})  # 32-bit length
_KNOWN = _STRINGS | _TEXTS | _SINGLE_TEXTS | _BINARY | frozenset(_NUMBERS) | {"AE", "AT", "DS", "IS", "PN", "SQ", "UR"}
_ENCODINGS = {"": "iso8859", "ISO_IR 6": "iso8859", "ISO_IR 100": "latin_1", "ISO_IR 192": "UTF8"}
_IS = re.compile(r" *[+-]?[0-9]+ *\Z")
_DS = re.compile(r" *[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)? *\Z")
_HEAD = struct.Struct("<HH2sH")
_ITEM = 0xFFFEE000
_ITEM_END = 0xFFFEE00D
_SEQUENCE_END = 0xFFFEE0DD
_UNDEFINED = 0xFFFFFFFF
_NATIVE_PIXELS = 0x7FE00010
_SPECIFIC_CHARACTER_SET = int(t.SPECIFIC_CHARACTER_SET, 16)
_META_GROUP_LENGTH, _MEDIA_SOP_CLASS_UID, _MEDIA_SOP_INSTANCE_UID, _TRANSFER_SYNTAX_UID = (
    0x00020000, 0x00020002, 0x00020003, 0x00020010)  # File Meta elements (PS3.10 7.1), read as integers


class _NotPlain(Exception):
    """Something this reader leaves to pydicom."""


class Plain:
    """What the walk found: the DICOM JSON, the instance's UIDs and transfer syntax."""

    __slots__ = ("metadata", "series_uid", "sop_class_uid", "sop_instance_uid", "study_uid", "transfer_syntax")

    def __init__(self, metadata: dict[str, Any], uids: tuple[str, str, str, str], transfer_syntax: str):
        self.metadata = metadata
        self.study_uid, self.series_uid, self.sop_instance_uid, self.sop_class_uid = uids
        self.transfer_syntax = transfer_syntax


def read_plain(data: bytes) -> Plain | None:
    """``data`` (a Part 10 file) read as DICOM JSON, or None when pydicom should read it."""
    if data[128:132] != b"DICM" or config.datetime_conversion or config.settings.reading_validation_mode == config.RAISE:
        return None
    try:
        meta, start = _file_meta(data)
        syntax = _string(meta.get(_TRANSFER_SYNTAX_UID, b""))
        if syntax != EXPLICIT_VR_LITTLE_ENDIAN:
            return None
        reader = _Reader(data)
        metadata, pixels = reader.dataset(start, len(data), top=True)
        uids = (_single(metadata, t.STUDY_INSTANCE_UID), _single(metadata, t.SERIES_INSTANCE_UID),
                _single(metadata, t.SOP_INSTANCE_UID) or _string(meta.get(_MEDIA_SOP_INSTANCE_UID, b"")),
                _single(metadata, t.SOP_CLASS_UID) or _string(meta.get(_MEDIA_SOP_CLASS_UID, b"")))
        if not all(isinstance(uid, str) and uid and is_valid_uid(uid) for uid in uids):
            return None
        if pixels is not None and _pixels_short(metadata, pixels):
            return None
    except (_NotPlain, struct.error, UnicodeError, ValueError, IndexError):
        return None
    return Plain(metadata, uids, syntax)  # type: ignore[arg-type]


def _file_meta(data: bytes) -> tuple[dict[int, bytes], int]:
    """The group 0002 values (explicit VR little endian) and where the dataset starts; the group
    length, when there is one, must end where the group does."""
    meta: dict[int, bytes] = {}
    pos = 132
    while data[pos:pos + 2] == b"\x02\x00":
        group, elem, vr_bytes, length = _HEAD.unpack_from(data, pos)
        vr = vr_bytes.decode("ascii")
        if vr not in _KNOWN:
            raise _NotPlain
        pos += 8
        if vr in _LONG:
            (length,) = struct.unpack_from("<L", data, pos)
            pos += 4
        if length == _UNDEFINED or pos + length > len(data):
            raise _NotPlain
        meta[group << 16 | elem] = data[pos:pos + length]
        pos += length
    group_length = meta.get(_META_GROUP_LENGTH)
    if group_length is not None and (len(group_length) != 4 or 144 + int.from_bytes(group_length, "little") != pos):
        raise _NotPlain
    return meta, pos


def _string(value: bytes) -> str:
    return value.decode("iso8859").rstrip("\0 ")


def _single(ds: dict[str, Any], tag: str) -> str:
    """The value of a UID attribute, "" when absent or empty; several values are pydicom's to refuse."""
    values = ds.get(tag, {}).get("Value")
    if values and len(values) > 1:
        raise _NotPlain
    return values[0] if values else ""


def _first(ds: dict[str, Any], tag: str) -> Any:
    values = ds.get(tag, {}).get("Value")
    return values[0] if values else None


def _pixels_short(ds: dict[str, Any], length: int) -> bool:
    """Native Pixel Data shorter than the image it describes (parse.py's check)."""
    try:
        frames = int(_first(ds, t.NUMBER_OF_FRAMES) or 1)
        bits = int(_first(ds, t.BITS_ALLOCATED))
        needed = int(_first(ds, t.ROWS)) * int(_first(ds, t.COLUMNS)) * int(_first(ds, t.SAMPLES_PER_PIXEL) or 1)
    except (TypeError, ValueError):
        return False
    return length < (needed * frames * bits + 7) // 8


class _Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.encoding = "iso8859"

    def dataset(self, pos: int, end: int, top: bool = False) -> tuple[dict[str, Any], int | None]:
        """The elements from ``pos`` to ``end``: (DICOM JSON, the length of Pixel Data at the top
        level or None)."""
        out: dict[str, Any] = {}
        pixels = None
        previous = -1
        data = self.data
        while pos < end:
            group, elem, vr_bytes, length = _HEAD.unpack_from(data, pos)
            tag = group << 16 | elem
            if tag <= previous or group == 0xFFFE or group == 0x0002:
                raise _NotPlain
            previous = tag
            vr, length, pos = self.value_start(pos, vr_bytes, length)
            if length == _UNDEFINED:
                value, pos = self.sequence(pos, None)
                out[f"{tag:08X}"] = value
                continue
            if pos + length > end:
                raise _NotPlain
            raw = data[pos:pos + length]
            if vr == "SQ":
                value, _ = self.sequence(pos, pos + length)
            elif tag == _SPECIFIC_CHARACTER_SET:
                value = self.character_set(raw, top)
            else:
                value = self.element(vr, raw, top)
            if tag == _NATIVE_PIXELS and top:
                pixels = length
            if value is not None:
                out[f"{tag:08X}"] = value
            pos += length
        if pos != end:
            raise _NotPlain
        return out, pixels

    def value_start(self, pos: int, vr_bytes: bytes, length: int) -> tuple[str, int, int]:
        """The VR, value length and value position of the element whose header is at ``pos`` (its
        tag read, ``vr_bytes`` and short ``length`` unpacked); _NotPlain for a VR this reader does
        not know or an undefined length on anything but a sequence."""
        vr = vr_bytes.decode("ascii")
        if vr not in _KNOWN:
            raise _NotPlain
        pos += 8
        if vr in _LONG:
            (length,) = struct.unpack_from("<L", self.data, pos)
            pos += 4
        if length == _UNDEFINED and vr != "SQ":
            raise _NotPlain
        return vr, length, pos

    def sequence(self, pos: int, end: int | None) -> tuple[dict[str, Any], int]:
        """A sequence's items from ``pos`` (``end`` None: up to its delimitation item)."""
        data = self.data
        items = []
        while end is None or pos < end:
            (tag, length) = struct.unpack_from("<LL", data, pos)
            tag = (tag & 0xFFFF) << 16 | tag >> 16
            pos += 8
            if tag == _SEQUENCE_END and end is None:
                break
            if tag != _ITEM:
                raise _NotPlain
            if length == _UNDEFINED:
                item_end = self.item_end(pos)
                ds, _ = self.dataset(pos, item_end)
                pos = item_end + 8
            else:
                ds, _ = self.dataset(pos, pos + length)
                pos += length
            items.append(ds)
        if end is not None and pos != end:
            raise _NotPlain
        return {"vr": "SQ", "Value": items}, pos

    def item_end(self, pos: int) -> int:
        """Where the item starting at ``pos`` (undefined length) ends: its delimitation item,
        found by walking its elements (nested sequences included)."""
        data = self.data
        while True:
            group, elem, vr_bytes, length = _HEAD.unpack_from(data, pos)
            if group == 0xFFFE:
                if elem != 0xE00D:
                    raise _NotPlain
                return pos
            _, length, pos = self.value_start(pos, vr_bytes, length)
            if length == _UNDEFINED:
                _, pos = self.sequence(pos, None)
            else:
                pos += length
            if pos > len(data):
                raise _NotPlain

    def character_set(self, raw: bytes, top: bool) -> dict[str, Any]:
        value = raw.decode("iso8859").rstrip("\0 ")
        if not top or value not in _ENCODINGS:
            raise _NotPlain  # code extensions, several sets, or a set in an item: pydicom's
        self.encoding = _ENCODINGS[value]
        return {"vr": "CS", "Value": [value]} if value else {"vr": "CS"}

    def element(self, vr: str, raw: bytes, top: bool) -> dict[str, Any] | None:
        """One element's DICOM JSON (None: left out, a large binary value at the top level)."""
        if not raw:
            return {"vr": vr}
        if vr in _STRINGS:
            values = raw.decode("iso8859").rstrip(" \x00").split("\\")
        elif vr in _TEXTS:
            values = [v.rstrip("\0 ") for v in raw.decode(self.encoding).split("\\")]
        elif vr in _SINGLE_TEXTS:
            values = [raw.decode(self.encoding).rstrip("\0 ")]
        elif vr in _BINARY:
            if len(raw) > INLINE_LIMIT:
                return None if top else {"vr": vr, "BulkDataURI": ""}
            return {"vr": vr, "InlineBinary": base64.b64encode(raw).decode()}
        elif vr in _NUMBERS:
            size = struct.calcsize("<" + _NUMBERS[vr])
            if len(raw) % size:
                raise _NotPlain
            numbers = struct.unpack(f"<{len(raw) // size}{_NUMBERS[vr]}", raw)
            if vr in ("FL", "FD"):
                return {"vr": vr, "Value": [v if math.isfinite(v) else None for v in numbers]}
            return {"vr": vr, "Value": list(numbers)}
        elif vr == "AE":
            values = [v.strip() for v in raw.decode("iso8859").split("\\")]
        elif vr == "UR":
            values = [raw.decode("iso8859").rstrip()]
        elif vr == "PN":
            return self.person_name(raw)
        elif vr == "IS":
            return self.numbers(vr, raw.decode("iso8859").rstrip(" \x00").split("\\"), _IS, int)
        elif vr == "DS":
            return self.numbers(vr, raw.decode("iso8859").strip().rstrip(" \x00").split("\\"), _DS, float)
        elif vr == "AT":
            if len(raw) % 4:
                raise _NotPlain
            pairs = struct.unpack(f"<{len(raw) // 2}H", raw)
            return {"vr": vr, "Value": [f"{pairs[k]:04X}{pairs[k + 1]:04X}" for k in range(0, len(pairs), 2)]}
        else:
            raise _NotPlain
        if len(values) == 1:
            if not values[0]:
                return {"vr": vr}
        elif not all(values):
            raise _NotPlain  # an empty value among several: pydicom's way with those is its own
        if any("\x00" in v for v in values):
            raise _NotPlain  # NUL inside a value (kept by pydicom, dropped for the index, refused in a UID)
        return {"vr": vr, "Value": values}

    def person_name(self, raw: bytes) -> dict[str, Any]:
        text = raw.rstrip(b"\x00 ").decode(self.encoding)
        if not text:
            return {"vr": "PN"}
        values = text.split("\\")
        if "=" in text or "\x00" in text or not all(values):
            raise _NotPlain  # component groups, or empty names among several: pydicom's
        return {"vr": "PN", "Value": [{"Alphabetic": v} for v in values]}

    @staticmethod
    def numbers(vr: str, values: list[str], form: re.Pattern[str], kind: type) -> dict[str, Any]:
        if len(values) == 1 and not values[0]:
            return {"vr": vr}
        if not all(form.match(v) for v in values):
            raise _NotPlain
        numbers = [kind(v) for v in values]
        if kind is float and not all(math.isfinite(v) for v in numbers):
            raise _NotPlain
        return {"vr": vr, "Value": numbers}
