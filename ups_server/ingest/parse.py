"""Turn what arrives (Part 10 bytes, a spooled file, a pydicom Dataset) into a checked instance."""

from __future__ import annotations

import io
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError

from ..dicom.uids import is_valid_uid
from .model import CANNOT_UNDERSTAND, DATASET_DOES_NOT_MATCH_SOP_CLASS, IngestError

log = logging.getLogger(__name__)

PREAMBLE = b"\0" * 128 + b"DICM"
BULK_THRESHOLD = 1024
_UNDEFINED = 0xFFFFFFFF


@dataclass
class ParsedInstance:
    dataset: Dataset
    study_uid: str
    series_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax: str
    encoded: bytes | None  # the Part 10 file to write; None when ``source`` already holds it
    source: Path | None = None


def parse_bytes(data: bytes) -> ParsedInstance:
    if data[128:132] == b"DICM":
        encoded = data
    elif data[:2] == b"\x02\x00":  # a dataset starting with its file meta group, no preamble
        encoded = PREAMBLE + data
    else:
        raise IngestError("not a DICOM Part 10 file (no DICM prefix and no File Meta Information)")
    return _checked(_read(io.BytesIO(encoded)), encoded, None)


def parse_file(path: Path) -> ParsedInstance:
    with open(path, "rb") as f:
        head = f.read(132)
    if head[128:132] != b"DICM":
        return parse_bytes(path.read_bytes())
    with open(path, "rb") as f:
        return _checked(_read(f), None, path)


def parse_dataset(ds: Dataset) -> ParsedInstance:
    """A decoded dataset (DIMSE C-STORE) with ``file_meta``: encoded here as a Part 10 file."""
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
    return _checked(ds, buf.getvalue(), None)  # already decoded: no need to read it back


def _read(fp: Any) -> Dataset:
    try:
        return pydicom.dcmread(fp)
    except InvalidDicomError as exc:
        raise IngestError(f"not a DICOM file: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - struct.error, EOFError, ValueError ... on garbled input
        raise IngestError(f"cannot parse the DICOM file (truncated or corrupt): {exc}") from None


def _truncated(ds: Dataset) -> str | None:
    """pydicom keeps a short value silently when a file ends early: compare each raw length."""
    for tag in list(ds.keys()):
        raw = ds.get_item(tag)
        if (isinstance(raw, RawDataElement) and raw.length != _UNDEFINED and raw.value is not None
                and len(raw.value) != raw.length):
            return f"element {tag} has {len(raw.value)} of its {raw.length} bytes"
    return None


def _checked(ds: Dataset, encoded: bytes | None, source: Path | None) -> ParsedInstance:
    problem = _truncated(ds)
    if problem:
        raise IngestError(f"the DICOM file is truncated: {problem}")
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
        raise IngestError(f"cannot read the instance's UIDs: {exc}", CANNOT_UNDERSTAND) from None
    for keyword, value in uids.items():
        if not value:
            raise IngestError(f"{keyword} is missing", DATASET_DOES_NOT_MATCH_SOP_CLASS)
        if not is_valid_uid(value):
            raise IngestError(f"{keyword} {value!r} is not a valid UID", DATASET_DOES_NOT_MATCH_SOP_CLASS)
    return ParsedInstance(ds, uids["StudyInstanceUID"], uids["SeriesInstanceUID"], uids["SOPInstanceUID"],
                          uids["SOPClassUID"], ts, encoded, source)


def metadata_json(ds: Dataset) -> dict[str, Any]:
    """The instance's DICOM JSON for the index, without bulk data (binary above 1 KiB). Devices
    write values pydicom cannot convert (an IS of letters, a DS of NaN): those elements are left
    out of this copy, never the instance; the stored file keeps every byte."""
    out: dict[str, Any] = {}
    for tag in ds.keys():  # noqa: SIM118 - iterating a Dataset yields elements, not tags
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
