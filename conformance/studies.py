"""Test studies as DICOM files, and the name-based workitem UIDs they give (written here from
DESIGN.md, not imported from the server: the suite is a black box)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from pydicom import Dataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid


def name_based_uid(name: str) -> str:
    """dcm4che UIDUtils.createNameBasedUID (the reference vectors are in DESIGN.md)."""
    b = bytearray(hashlib.md5(name.encode()).digest())
    b[6] = (b[6] & 0x0F) | 0x30
    b[8] = (b[8] & 0x3F) | 0x80
    return f"2.25.{int.from_bytes(b, 'big')}"


def write_study(directory: Path, study_uid: str, count: int = 2, patient_id: str = "PAT-DR-1",
                accession: str = "ACC-DR-1") -> list[Path]:
    """``count`` tiny Secondary Capture instances of one study, as DICOM files."""
    directory.mkdir(parents=True, exist_ok=True)
    series_uid = generate_uid()
    paths = []
    for i in range(count):
        ds = Dataset()
        ds.SOPClassUID = SecondaryCaptureImageStorage
        ds.SOPInstanceUID = generate_uid()
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "Doe^Jane", patient_id, "19700101", "F"
        ds.AccessionNumber, ds.StudyID, ds.SeriesNumber, ds.InstanceNumber = accession, "1", 1, i + 1
        ds.StudyDate, ds.StudyTime, ds.Modality, ds.ConversionType = "20261123", "101500", "OT", "WSD"
        ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.Rows, ds.Columns = 1, "MONOCHROME2", 4, 4
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        ds.PixelData = bytes(16)
        ds.file_meta = Dataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        path = directory / f"img{i}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
