"""The PS3.19 Native DICOM Model codec (``ups_server/dicom/xml.py``): pydicom datasets with
every VR, person name groups and components, nested and empty sequences, binary values, empty
elements and empty values survive JSON -> XML -> JSON; a document written by hand as PS3.19
describes it reads as the standard says; DTDs and malformed documents are refused."""

from __future__ import annotations

import pytest
from pydicom import Dataset
from pydicom.datadict import DicomDictionary, keyword_for_tag
from pydicom.sequence import Sequence

from ups_server.dicom.dataset import InvalidDataset, from_pydicom, to_pydicom
from ups_server.dicom.xml import from_xml, to_xml

# one value list per VR (binary VRs: bytes); a multi-valued entry goes to a tag whose VM allows it
VALUES = {
    "AE": ["UPS_SERVER"], "AS": ["042Y"], "AT": [0x00100010, 0x00100020], "CS": ["ORIGINAL", "", "AXIAL"],
    "DA": ["20240131"], "DS": ["72.5", "-3"], "DT": ["20240131123456.123456+0100"], "FL": [1.5, -0.25],
    "FD": [0.1, 1e300], "IS": ["12", "-4"], "LO": ["Müller", "x<y&z>"], "LT": ["  line1\r\nline2 "],
    "SH": ["short"], "SL": [-2147483648, 5], "SS": [-32768, 1], "ST": ["st"], "SV": [-(2**63), 2**40],
    "TM": ["123456.5"], "UC": ["unlimited ]]> chars"], "UI": ["1.2.3", "1.2.840.10008.1.2"],
    "UL": [4294967295], "UR": ["http://example.org/y?a=b&c=d"], "US": [65535, 0], "UT": ["text\nmore"],
    "UV": [2**64 - 1],
    "OB": b"\x00\x01\xff\x10", "OD": bytes(range(16)), "OF": bytes(range(8)), "OL": bytes(range(8)),
    "OV": bytes(range(8)), "OW": bytes(range(6)), "UN": b"\x01\x02",
}


def _tag_for(vr: str, multi: bool) -> int:
    """A public, non-retired dictionary tag of exactly this VR (multi-valued if asked)."""
    for tag, (tag_vr, vm, _name, retired, keyword) in sorted(DicomDictionary.items()):
        if tag_vr == vr and not retired and keyword and tag >> 16 not in (0x0000, 0x0002, 0x7FE0) \
                and (vm != "1") == multi and tag & 0xFFFF:
            return tag
    raise LookupError(vr)


def every_vr() -> Dataset:
    ds = Dataset()
    for vr, value in VALUES.items():
        if isinstance(value, bytes):
            ds.add_new(_tag_for(vr, False), vr, value)
        else:
            ds.add_new(_tag_for(vr, len(value) > 1), vr, value if len(value) > 1 else value[0])
    return ds


def roundtrip(ds: Dataset) -> Dataset:
    return to_pydicom(from_xml(to_xml(from_pydicom(ds))))


def test_every_vr_round_trips():
    ds = every_vr()
    assert len(ds) == len(VALUES)
    assert roundtrip(ds) == ds


def test_empty_elements_round_trip():
    ds = Dataset()
    ds.PatientName = ""
    ds.PatientID = ""
    ds.add_new(0x00280010, "US", None)  # Rows, zero length
    ds.add_new(0x00420011, "OB", b"")  # Encapsulated Document, zero length
    ds.ScheduledProcedureStepModificationDateTime = ""
    ds.ReferencedRequestSequence = Sequence()
    as_json = from_pydicom(ds)
    back = roundtrip(ds)
    assert back == to_pydicom(as_json)  # what XML keeps is what DICOM JSON keeps
    assert set(back.keys()) == set(ds.keys()) and all(elem.is_empty for elem in back)


def test_person_names_with_groups_and_components():
    ds = Dataset()
    ds.PatientName = "Yamada^Tarou^^Dr^Jr=山田^太郎=やまだ^たろう"
    ds.ReferringPhysicianName = "^Given"  # no family name: components keep their positions
    back = roundtrip(ds)
    assert back == ds
    assert back.PatientName.ideographic == "山田^太郎" and back.PatientName.phonetic == "やまだ^たろう"
    xml = to_xml(from_pydicom(ds)).decode()
    assert "<FamilyName>Yamada</FamilyName><GivenName>Tarou</GivenName><NamePrefix>Dr</NamePrefix>" in xml


def test_empty_value_inside_multi_valued_elements():
    # (pydicom cannot write an empty PN value to JSON, so this one starts as DICOM JSON)
    ds = {"00081070": {"vr": "PN", "Value": [{"Alphabetic": "One^A"}, None, {"Alphabetic": "Three^C^M"}]},
          "00080008": {"vr": "CS", "Value": ["ORIGINAL", None, "AXIAL"]},
          "00181310": {"vr": "US", "Value": [1, None, 3, 4]}}
    assert from_xml(to_xml(ds)) == ds


def test_nested_sequences_and_empty_items():
    inner = Dataset()
    inner.CodeValue, inner.CodingSchemeDesignator, inner.CodeMeaning = "R1", "99LOCAL", "Reader 1"
    item = Dataset()
    item.AccessionNumber = "A1"
    item.HumanPerformerCodeSequence = Sequence([inner])
    ds = Dataset()
    ds.ScheduledHumanPerformersSequence = Sequence([item, Dataset()])
    back = roundtrip(ds)
    assert back == ds
    assert back.ScheduledHumanPerformersSequence[0].HumanPerformerCodeSequence[0].CodeValue == "R1"
    assert len(back.ScheduledHumanPerformersSequence[1]) == 0


def test_bulk_data_reference_and_inline_binary_stay_as_sent():
    ds = {"00420011": {"vr": "OB", "BulkDataURI": "http://example.org/bulk/1"},
          "7FE00010": {"vr": "OW", "InlineBinary": "AAEC/w=="}}
    assert from_xml(to_xml(ds)) == ds
    xml = to_xml(ds).decode()
    assert '<BulkData uri="http://example.org/bulk/1"/>' in xml and "<InlineBinary>AAEC/w==</InlineBinary>" in xml


def test_writer_names_each_attribute_as_ps3_19_does():
    xml = to_xml({"00100020": {"vr": "LO", "Value": ["P1"]}}).decode()
    assert xml.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    assert '<NativeDicomModel xmlns="http://dicom.nema.org/PS3.19/models/NativeDICOM" xml:space="preserve">' in xml
    assert '<DicomAttribute tag="00100020" vr="LO" keyword="PatientID"><Value number="1">P1</Value>' in xml
    assert keyword_for_tag(0x00100020) == "PatientID"


# a document as a PS3.19 client writes it: no namespace, whitespace between elements, an
# Alphabetic name with three components, a sequence item, a value number left out (empty)
HAND_WRITTEN = b"""<?xml version="1.0" encoding="UTF-8"?>
<NativeDicomModel xml:space="preserve">
  <DicomAttribute keyword="PatientName" tag="00100010" vr="PN">
    <PersonName number="1">
      <Alphabetic><FamilyName>Doe</FamilyName><GivenName>Jane</GivenName><NameSuffix>III</NameSuffix></Alphabetic>
    </PersonName>
  </DicomAttribute>
  <DicomAttribute keyword="ProcedureStepState" tag="00741000" vr="CS"><Value number="1">SCHEDULED</Value></DicomAttribute>
  <DicomAttribute keyword="ImageType" tag="00080008" vr="CS">
    <Value number="1">ORIGINAL</Value><Value number="3">AXIAL</Value>
  </DicomAttribute>
  <DicomAttribute keyword="ReferencedRequestSequence" tag="0040A370" vr="SQ">
    <Item number="1">
      <DicomAttribute keyword="AccessionNumber" tag="00080050" vr="SH"><Value number="1">ACC1</Value></DicomAttribute>
    </Item>
  </DicomAttribute>
  <DicomAttribute keyword="PatientWeight" tag="00101030" vr="DS"><Value number="1">72.50</Value></DicomAttribute>
  <DicomAttribute keyword="Rows" tag="00280010" vr="US"><Value number="1">512</Value></DicomAttribute>
  <DicomAttribute keyword="PatientID" tag="00100020" vr="LO"/>
</NativeDicomModel>
"""


def test_hand_written_document_reads_as_the_standard_says():
    ds = from_xml(HAND_WRITTEN)
    assert ds == {
        "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Doe^Jane^^^III"}]},
        "00741000": {"vr": "CS", "Value": ["SCHEDULED"]},
        "00080008": {"vr": "CS", "Value": ["ORIGINAL", None, "AXIAL"]},
        "0040A370": {"vr": "SQ", "Value": [{"00080050": {"vr": "SH", "Value": ["ACC1"]}}]},
        "00101030": {"vr": "DS", "Value": [72.5]},
        "00280010": {"vr": "US", "Value": [512]},
        "00100020": {"vr": "LO"},
    }
    assert str(to_pydicom(ds).PatientName.family_name) == "Doe"


@pytest.mark.parametrize(("body", "reason"), [
    (b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x "xx">]><NativeDicomModel/>', "document type"),
    (b"<NativeDicomModel><DicomAttribute tag='00100010'", "well-formed"),
    (b"<Other/>", "root element"),
    (b"<NativeDicomModel><DicomAttribute tag='00280010' vr='US'><Value number='1'>x</Value></DicomAttribute>"
     + b"</NativeDicomModel>", "not a number"),
    (b"<NativeDicomModel><DicomAttribute tag='00280010' vr='US'><Value>1</Value></DicomAttribute>"
     + b"</NativeDicomModel>", "number"),
    (b"<NativeDicomModel><DicomAttribute tag='00280010' vr='XX'/></NativeDicomModel>", "vr"),
    (b"<NativeDicomModel><DicomAttribute tag='zz' vr='US'/></NativeDicomModel>", "hexadecimal"),
])
def test_bad_documents_are_refused_with_a_reason(body, reason):
    with pytest.raises(InvalidDataset, match=reason):  # answered 400 with this reason
        from_xml(body)
