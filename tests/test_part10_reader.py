"""The direct Part 10 reader (ingest/part10.py) against pydicom: wherever it reads an instance, it
gives the DICOM JSON, UIDs and transfer syntax that the pydicom path (``parse_bytes`` +
``metadata_json``) gives, and it never accepts an instance the pydicom path refuses.

Inputs: pydicom's own test files written in Explicit VR Little Endian, instances with the values
real devices write (numbers, names, sequences of defined and undefined length, character sets,
empty and multi-valued elements), and seeded byte flips and cuts of all of them."""

from __future__ import annotations

import io
import random
import warnings
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian

from ups_server.ingest.model import IngestError
from ups_server.ingest.parse import metadata_json, parse_bytes, read_part10

from .dicom_instances import instance, part10, uid

TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"


def _explicit_le(path: Path) -> bytes | None:
    """A pydicom test file re-written in Explicit VR Little Endian (None: one it cannot write so)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path, force=True)
            syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
            if syntax is None or syntax.is_compressed or "SOPInstanceUID" not in ds:
                return None
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
            buf = io.BytesIO()
            ds.save_as(buf, implicit_vr=False, little_endian=True, enforce_file_format=True)
            return buf.getvalue()
    except Exception:  # noqa: BLE001 - files pydicom keeps to test its own refusals
        return None


def _varied() -> list[bytes]:
    """Instances holding what devices write."""
    out = []
    a = instance(uid(), uid())
    a.SpecificCharacterSet = "ISO_IR 192"
    a.PatientName = "Müller^Jürgen"
    a.StudyDescription = "Thorax  "
    a.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    a.PixelSpacing = ["0.5", "0.5"]
    a.SliceThickness = "1.25"
    a.WindowCenter = "-600"
    a.InstanceNumber = "7"
    a.ReferencedFrameNumber = ["1", "2", "3"]
    a.ImagePositionPatient = ["-1.5e2", ".5", "+3"]
    a.AcquisitionDateTime = "20260101120000.5"
    a.StudyTime = "101010.123"
    a.PatientAge = "045Y"
    a.RetrieveAETitle = " AE1 "
    a.RetrieveURL = "http://example.org/x "
    a.FrameIncrementPointer = 0x00181063
    a.ImagerPixelSpacing = []
    a.OtherPatientNames = ["A^B", "C^D"]
    a.RescaleSlope = "1"
    a.add_new(0x00091010, "LO", "private text")
    a.add_new(0x00091011, "OB", b"\x01\x02\x03")
    a.add_new(0x00091012, "OB", bytes(2000))
    a.add_new(0x00091013, "FD", [1.5, float("nan")])
    a.add_new(0x00091014, "SS", [-1, 2])
    a.add_new(0x00091015, "UL", 4000000000)
    a.add_new(0x00091016, "LT", "line one\r\nline two\\not split  ")
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "T-D3000", "SRT", "Chest"
    inner = Dataset()
    inner.add_new(0x00091020, "OB", bytes(1000))
    inner.ReferencedSOPInstanceUID = uid()
    code.ReferencedSOPSequence = Sequence([inner])
    a.AnatomicRegionSequence = Sequence([code, Dataset()])
    a.ReferencedImageSequence = Sequence([])
    out.append(part10(a))
    # sequences and items of undefined length
    b = instance(uid(), uid())
    b.RequestAttributesSequence = Sequence([code])
    b.RequestAttributesSequence.is_undefined_length = True
    out.append(part10(b))
    c = instance(uid(), uid())
    c.SpecificCharacterSet = "ISO_IR 100"
    c.PatientName = "Ærø^Åse=Ideo^Graphic"
    c.PatientID = ""
    c.AccessionNumber = "A\\B"
    out.append(part10(c))
    d = instance(uid(), uid())
    d.SpecificCharacterSet = "ISO 2022 IR 87"
    out.append(part10(d))
    e = instance(uid(), uid())
    e.SeriesNumber = "1.0"
    e.PatientWeight = "NaN"
    e.add_new(0x00091001, "UN", b"abc")
    out.append(part10(e))
    return out


def _reference(data: bytes) -> tuple | IngestError:
    """What the pydicom path gives: (UIDs, transfer syntax, DICOM JSON), or its refusal."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parsed = parse_bytes(data)
            metadata = metadata_json(parsed.dataset)
    except IngestError as exc:
        return exc
    return ((parsed.study_uid, parsed.series_uid, parsed.sop_instance_uid, parsed.sop_class_uid),
            parsed.transfer_syntax, metadata)


def _check(data: bytes) -> bool:
    """Assert the reader agrees with pydicom on ``data``; whether the reader read it."""
    read = read_part10(data)
    if read is None:
        return False
    reference = _reference(data)
    assert not isinstance(reference, IngestError), f"read what pydicom refuses: {reference}"
    parsed, metadata = read
    assert (parsed.study_uid, parsed.series_uid, parsed.sop_instance_uid, parsed.sop_class_uid) == reference[0]
    assert parsed.transfer_syntax == reference[1]
    assert parsed.encoded is data
    assert metadata == reference[2]
    return True


def _corpus() -> list[bytes]:
    files = [data for path in sorted(TEST_FILES.rglob("*")) if path.is_file() and path.stat().st_size < 2 << 20
             for data in [_explicit_le(path)] if data is not None]
    return files + _varied()


def test_the_reader_gives_what_pydicom_gives():
    corpus = _corpus()
    read = [_check(data) for data in corpus]
    assert sum(read) >= 20, f"the reader read only {sum(read)} of {len(corpus)} instances"
    varied = read[-5:]
    assert varied[:2] == [True, True]  # UTF-8 names, sequences of both lengths: the reader's
    assert varied[3:] == [False, False]  # code extensions, UN, a non-numeric DS: pydicom's


@pytest.mark.parametrize("seed", range(4))
def test_damaged_instances_are_read_as_pydicom_reads_them_or_left_to_it(seed):
    rng = random.Random(seed)
    corpus = _corpus()
    for _ in range(300):
        data = bytearray(rng.choice(corpus))
        if rng.random() < 0.3:
            del data[rng.randrange(140, len(data)):]
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(132, len(data))] = rng.randrange(256)
        _check(bytes(data))


def test_a_plain_instance_without_its_file_meta_is_left_to_pydicom():
    ds = instance(uid(), uid())
    assert _check(part10(ds))
    ds.file_meta = FileMetaDataset(ds.file_meta)
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2"
    buf = io.BytesIO()
    ds.save_as(buf, implicit_vr=True, little_endian=True, enforce_file_format=True)
    assert read_part10(buf.getvalue()) is None
