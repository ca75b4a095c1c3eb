"""Turn what arrives (Part 10 bytes, a spooled file, a pydicom Dataset) into a checked instance."""

from __future__ import annotations

import io
import logging
import math
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError

from ..dicom.statuses import Storage
from ..dicom.uids import is_valid_uid
from .model import IngestError
from .part10 import read_plain

log = logging.getLogger(__name__)

PREAMBLE = b"\0" * 128 + b"DICM"
BULK_THRESHOLD = 1024
DEFER_SIZE = 1 << 20  # values larger than this stay in the file while it is checked and indexed
DEFLATED = "1.2.840.10008.1.2.1.99"  # Deflated Explicit VR Little Endian
_UNDEFINED = 0xFFFFFFFF
_NATIVE_SYNTAXES = ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", DEFLATED)


@dataclass(frozen=True)
class InflateLimits:
    """How far an instance in a deflated transfer syntax may inflate (bytes, and times its size)."""

    max_size: int = 2**30
    max_ratio: int = 100


DEFAULT_INFLATE = InflateLimits()


@dataclass
class ParsedInstance:
    dataset: Dataset | None  # None: read without pydicom (part10.py)
    study_uid: str
    series_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax: str
    encoded: bytes | None  # the Part 10 file to write; None when ``source`` already holds it
    source: Path | None = None


def parse_bytes(data: bytes, limits: InflateLimits = DEFAULT_INFLATE) -> ParsedInstance:
    if data[128:132] == b"DICM":
        encoded = data
    elif data[:2] == b"\x02\x00":  # a dataset starting with its file meta group, no preamble
        encoded = PREAMBLE + data
    else:
        raise IngestError("not a DICOM Part 10 file (no DICM prefix and no File Meta Information)")
    check_inflate(io.BytesIO(encoded), len(encoded), limits)
    return _checked(_read(io.BytesIO(encoded)), encoded, None, len(encoded))


def read_part10(data: bytes) -> tuple[ParsedInstance, dict[str, Any]] | None:
    """Part 10 bytes of the common form (part10.py: explicit VR little endian, plain values) checked
    and read into DICOM JSON without pydicom: (instance, DICOM JSON); None for any other form (then
    ``parse_bytes`` and ``metadata_json``)."""
    plain = read_plain(data)
    if plain is None:
        return None
    return ParsedInstance(None, plain.study_uid, plain.series_uid, plain.sop_instance_uid, plain.sop_class_uid,
                          plain.transfer_syntax, data), plain.metadata


def parse_file(path: Path, limits: InflateLimits = DEFAULT_INFLATE) -> ParsedInstance:
    """A spooled Part 10 file, read without its large values (they stay on disk: DEFER_SIZE)."""
    with open(path, "rb") as f:
        head = f.read(132)
    if head[128:132] != b"DICM":
        return parse_bytes(path.read_bytes(), limits)
    size = path.stat().st_size
    with open(path, "rb") as f:
        check_inflate(f, size, limits)
    return _checked(_read(str(path)), None, path, size)


def check_inflate(fp: Any, size: int, limits: InflateLimits) -> None:
    """Refuse (A700) a deflated instance that inflates past ``limits``, before pydicom inflates it
    whole into memory; the inflated bytes are counted, never kept. ``fp`` is at the preamble."""
    if _transfer_syntax(fp) == DEFLATED:
        check_deflated(fp, size, limits)


def check_deflated(fp: Any, size: int, limits: InflateLimits) -> None:
    """``fp``: a deflated dataset (``size`` bytes with what precedes it); IngestError (A700) when it
    inflates past ``limits``."""
    limit = min(limits.max_size, limits.max_ratio * max(size, 1))
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    inflated = 0
    try:
        while (chunk := fp.read(1 << 16)) and inflated <= limit:
            inflated += len(inflater.decompress(chunk, limit + 1 - inflated))
            while inflater.unconsumed_tail and inflated <= limit:
                inflated += len(inflater.decompress(inflater.unconsumed_tail, limit + 1 - inflated))
    except zlib.error as exc:
        raise IngestError(f"the deflated dataset cannot be inflated: {exc}") from None
    if inflated > limit:
        raise IngestError(f"the deflated dataset inflates past {limit} bytes (limits: {limits.max_size} bytes, "
                          f"{limits.max_ratio} times its size)", Storage.OUT_OF_RESOURCES)


def _transfer_syntax(fp: Any) -> str | None:
    """Read the File Meta Information (explicit VR little endian, group 0002) after the preamble;
    its Transfer Syntax UID, ``fp`` left at the dataset. None when it cannot be read."""
    if fp.read(132)[128:] != b"DICM":
        return None
    syntax = None
    while True:
        start = fp.tell()
        head = fp.read(8)
        if len(head) < 8 or head[:2] != b"\x02\x00":
            fp.seek(start)
            return syntax
        length = int.from_bytes(head[6:8], "little")
        if head[4:6] in (b"OB", b"OW", b"UN", b"UT", b"SQ", b"OF"):
            length = int.from_bytes(fp.read(4), "little")
        value = fp.read(length)
        if head[2:4] == b"\x10\x00":
            syntax = value.rstrip(b"\x00 ").decode("ascii", "replace")


def parse_dataset(ds: Dataset) -> ParsedInstance:
    """A decoded dataset (DIMSE C-STORE) with ``file_meta``: checked as received (declared lengths
    against the data), encoded here as a Part 10 file."""
    problem = _truncated(ds, None)
    if problem:
        raise IngestError(f"truncated: {problem}")
    meta = getattr(ds, "file_meta", None)
    if meta is None or "TransferSyntaxUID" not in meta:
        raise IngestError("the dataset has no File Meta Information (Transfer Syntax UID)")
    meta = FileMetaDataset(meta)
    meta.setdefault("MediaStorageSOPClassUID", ds.get("SOPClassUID"))
    meta.setdefault("MediaStorageSOPInstanceUID", ds.get("SOPInstanceUID"))
    ds.file_meta = meta
    buf = io.BytesIO()
    try:
        ds.save_as(buf, enforce_file_format=True)
    except Exception as exc:  # noqa: BLE001 - pydicom raises many kinds for unencodable values
        raise IngestError(f"cannot encode the dataset: {exc}") from None
    encoded = buf.getvalue()
    return _checked(ds, encoded, None, len(encoded))  # already decoded: no need to read it back


def _read(fp: Any) -> Dataset:
    try:
        return pydicom.dcmread(fp, defer_size=DEFER_SIZE)
    except InvalidDicomError as exc:
        raise IngestError(f"not a DICOM file: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - struct.error, EOFError, ValueError ... on garbled input
        raise IngestError(f"cannot parse the DICOM file (truncated or corrupt): {exc}") from None


def _truncated(ds: Dataset, size: int | None) -> str | None:
    """pydicom keeps a short value silently when a file ends early: compare each raw length with
    the bytes read (or, for a value left in the file, with the file's ``size``)."""
    for tag in list(ds.keys()):
        raw = ds.get_item(tag, keep_deferred=True)
        if not isinstance(raw, RawDataElement) or raw.length == _UNDEFINED:
            continue
        if raw.value is not None and len(raw.value) != raw.length:
            return f"element {tag} has {len(raw.value)} of its {raw.length} bytes"
        if raw.value is None and size is not None and raw.value_tell + raw.length > size:
            return f"element {tag} has {max(0, size - raw.value_tell)} of its {raw.length} bytes"
    return None


def _pixel_data_short(ds: Dataset, transfer_syntax: str) -> str | None:
    """Native (uncompressed) Pixel Data shorter than Rows x Columns x Samples x Bits x Frames."""
    raw = ds.get_item(0x7FE00010, keep_deferred=True) if "PixelData" in ds else None
    if raw is None or transfer_syntax not in _NATIVE_SYNTAXES:
        return None
    length = raw.length if isinstance(raw, RawDataElement) else len(raw.value or b"")
    if length == _UNDEFINED:
        return None
    try:
        frames = int(ds.get("NumberOfFrames") or 1)
        bits = int(ds.BitsAllocated)
        needed = int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel") or 1) * frames * bits
    except (AttributeError, TypeError, ValueError):
        return None  # no image description: nothing to compare with
    needed_bytes = (needed + 7) // 8
    if length < needed_bytes:
        return f"Pixel Data holds {length} of the image's {needed_bytes} bytes"
    return None


def _checked(ds: Dataset, encoded: bytes | None, source: Path | None, size: int | None) -> ParsedInstance:
    problem = _truncated(ds, size)
    if problem:
        raise IngestError(f"truncated: {problem}")
    meta = getattr(ds, "file_meta", None) or FileMetaDataset()
    ts = str(meta.get("TransferSyntaxUID") or "")
    if not ts:
        raise IngestError("the File Meta Information has no Transfer Syntax UID")
    try:
        uids = {
            "StudyInstanceUID": str(ds.get("StudyInstanceUID") or ""),
            "SeriesInstanceUID": str(ds.get("SeriesInstanceUID") or ""),
            "SOPInstanceUID": str(ds.get("SOPInstanceUID") or meta.get("MediaStorageSOPInstanceUID") or ""),
            "SOPClassUID": str(ds.get("SOPClassUID") or meta.get("MediaStorageSOPClassUID") or ""),
        }
    except Exception as exc:  # noqa: BLE001 - a garbled value may fail to decode in many ways
        raise IngestError(f"cannot read the instance's UIDs: {exc}", Storage.CANNOT_UNDERSTAND) from None
    for keyword, value in uids.items():
        if not value:
            raise IngestError(f"{keyword} is missing", Storage.DATASET_DOES_NOT_MATCH_SOP_CLASS)
        if not is_valid_uid(value):
            raise IngestError(f"{keyword} {value!r} is not a valid UID", Storage.DATASET_DOES_NOT_MATCH_SOP_CLASS)
    short = _pixel_data_short(ds, ts)
    if short:
        raise IngestError(short, Storage.DATASET_DOES_NOT_MATCH_SOP_CLASS,
                          sop_class_uid=uids["SOPClassUID"], sop_instance_uid=uids["SOPInstanceUID"])
    return ParsedInstance(ds, uids["StudyInstanceUID"], uids["SeriesInstanceUID"], uids["SOPInstanceUID"],
                          uids["SOPClassUID"], ts, encoded, source)


def metadata_json(ds: Dataset) -> dict[str, Any]:
    """The instance's DICOM JSON for the index, without bulk data (binary above 1 KiB). Devices
    write values pydicom cannot convert (an IS of letters, a DS of NaN): those elements are left
    out of this copy, never the instance; the stored file keeps every byte."""
    out: dict[str, Any] = {}
    for tag in ds.keys():  # noqa: SIM118 - iterating a Dataset yields elements, not tags
        raw = ds.get_item(tag, keep_deferred=True)
        if isinstance(raw, RawDataElement) and raw.value is None and raw.length:
            continue  # a value left in the file (over DEFER_SIZE): bulk data, never read here
        try:
            value = ds[tag].to_json_dict(lambda elem: "", BULK_THRESHOLD)
        except Exception as exc:  # noqa: BLE001 - an undecodable value fails in many ways
            log.info("instance %s: %08X left out of the index (%s)", ds.get("SOPInstanceUID"), tag, exc)
            continue
        if "BulkDataURI" not in value:
            out[f"{tag:08X}"] = _storable(value)
    return out


def _storable(value: Any) -> Any:
    """What JSONB can hold: NUL characters (padding some devices write) removed from strings,
    numbers that are not finite (NaN, an overflowing DS) as null."""
    if isinstance(value, str):
        return value.replace("\x00", "") if "\x00" in value else value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, list):
        return [_storable(v) for v in value]
    if isinstance(value, dict):
        return {k: _storable(v) for k, v in value.items()}
    return value
