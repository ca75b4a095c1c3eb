"""The DICOM Native Model in XML (PS3.19 Annex A) <-> the DICOM JSON model (PS3.18 F.2) the
server keeps datasets in.

A document is one ``NativeDicomModel`` holding one ``DicomAttribute`` per element (``tag``,
``vr``, ``keyword``); its values are ``Value`` elements numbered from 1, person names are
``PersonName`` with ``Alphabetic`` / ``Ideographic`` / ``Phonetic`` groups split into the five
name components, sequence items are numbered ``Item`` elements, and binary values are either
``InlineBinary`` (base64) or a ``BulkData`` reference (``uri``). Both directions keep what DICOM
JSON can say: empty elements, empty values inside a multi-valued element, empty items.

Parsing uses the standard library's expat through ElementTree; a document type declaration is
refused (no DTD, no entities), so a request body cannot expand or fetch anything.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from pydicom.datadict import keyword_for_tag

from .dataset import InvalidDataset, JsonDataset, validate

NAMESPACE = "http://dicom.nema.org/PS3.19/models/NativeDICOM"
PN_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")
PN_COMPONENTS = ("FamilyName", "GivenName", "MiddleName", "NamePrefix", "NameSuffix")
INTEGER_VRS = {"IS", "SL", "SS", "UL", "US", "SV", "UV"}
FLOAT_VRS = {"FL", "FD"}
BINARY_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "UN"}


class XmlError(InvalidDataset):
    """A body that is not a PS3.19 Native DICOM Model document."""


# --- JSON model -> XML ------------------------------------------------------------------------
# Written by hand rather than through ElementTree so that a carriage return in a value is kept
# (escaped as &#13;; XML parsers turn a literal CR LF into LF).

_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\r": "&#13;"})


def _escape(text: str) -> str:
    return text.translate(_ESCAPES)


def to_xml(ds: JsonDataset) -> bytes:
    """One dataset as a UTF-8 PS3.19 document."""
    out = ['<?xml version="1.0" encoding="UTF-8"?>\n',
           f'<NativeDicomModel xmlns="{NAMESPACE}" xml:space="preserve">']
    _write_attributes(out, ds)
    out.append("</NativeDicomModel>\n")
    return "".join(out).encode("utf-8")


def _write_attributes(out: list[str], ds: JsonDataset) -> None:
    for tag in sorted(ds, key=str.upper):
        elem = ds[tag]
        vr = elem.get("vr", "UN")
        keyword = keyword_for_tag(int(tag, 16))
        out.append(f'<DicomAttribute tag="{tag.upper()}" vr="{_escape(vr)}"'
                   + (f' keyword="{keyword}">' if keyword else ">"))
        if "InlineBinary" in elem:
            out.append(f"<InlineBinary>{_escape(elem['InlineBinary'])}</InlineBinary>")
        elif "BulkDataURI" in elem:
            out.append(f'<BulkData uri="{_escape(elem["BulkDataURI"])}"/>')
        for number, value in enumerate(elem.get("Value") or [], start=1):
            if vr == "SQ":
                out.append(f'<Item number="{number}">')
                _write_attributes(out, value or {})
                out.append("</Item>")
            elif vr == "PN":
                out.append(f'<PersonName number="{number}">')
                _write_person_name(out, value or {})
                out.append("</PersonName>")
            else:
                text = _text(value)
                out.append(f'<Value number="{number}"/>' if text is None
                           else f'<Value number="{number}">{_escape(text)}</Value>')
        out.append("</DicomAttribute>")


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return repr(value) if isinstance(value, float) else str(value)


def _write_person_name(out: list[str], name: dict[str, str]) -> None:
    for group in PN_GROUPS:
        if name.get(group) is None:
            continue
        out.append(f"<{group}>")
        for component, text in zip(PN_COMPONENTS, name[group].split("^"), strict=False):
            if text:
                out.append(f"<{component}>{_escape(text)}</{component}>")
        out.append(f"</{group}>")


# --- XML -> JSON model ------------------------------------------------------------------------

class _NoDoctype(ET.TreeBuilder):
    def doctype(self, name: str, pubid: str, system: str) -> None:
        raise XmlError("a document type declaration is not allowed in a DICOM XML body")


def from_xml(data: bytes) -> JsonDataset:
    """A PS3.19 document -> a validated DICOM JSON dataset; XmlError naming the fault."""
    parser = ET.XMLParser(target=_NoDoctype())
    try:
        parser.feed(data)
        root = parser.close()
    except ET.ParseError as exc:
        raise XmlError(f"the body is not well-formed XML: {exc}") from None
    if _local(root.tag) != "NativeDicomModel":
        raise XmlError(f"the root element must be NativeDicomModel, not {_local(root.tag)}")
    return validate(_read_attributes(root, ""))


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _read_attributes(parent: ET.Element, where: str) -> JsonDataset:
    out: JsonDataset = {}
    for node in parent:
        if _local(node.tag) != "DicomAttribute":
            raise XmlError(f"{where}unexpected element {_local(node.tag)} (expected DicomAttribute)")
        tag, vr = node.get("tag"), node.get("vr")
        if not tag or not vr:
            raise XmlError(f"{where}DicomAttribute needs both 'tag' and 'vr'")
        out[tag.upper()] = _read_element(node, tag.upper(), vr, f"{where}{tag}")
    return out


def _read_element(node: ET.Element, tag: str, vr: str, where: str) -> dict[str, Any]:
    elem: dict[str, Any] = {"vr": vr}
    numbered: dict[int, Any] = {}
    for child in node:
        kind = _local(child.tag)
        if kind == "InlineBinary":
            elem["InlineBinary"] = "".join((child.text or "").split())
        elif kind == "BulkData":
            uri = child.get("uri") or child.get("URI") or child.get("uuid")
            if not uri:
                raise XmlError(f"{where}: BulkData needs a 'uri'")
            elem["BulkDataURI"] = uri
        elif kind in ("Value", "PersonName", "Item"):
            numbered[_number(child, where)] = _read_value(child, kind, vr, where)
        else:
            raise XmlError(f"{where}: unexpected element {kind}")
    if numbered:
        elem["Value"] = [numbered.get(n) for n in range(1, max(numbered) + 1)]
    return elem


def _number(node: ET.Element, where: str) -> int:
    try:
        number = int(node.get("number", ""))
    except ValueError:
        raise XmlError(f"{where}: {_local(node.tag)} needs a numeric 'number'") from None
    if not 1 <= number <= 65536:
        raise XmlError(f"{where}: {_local(node.tag)} number {number} out of range")
    return number


def _read_value(node: ET.Element, kind: str, vr: str, where: str) -> Any:
    if kind == "Item":
        if vr != "SQ":
            raise XmlError(f"{where}: Item in an element of VR {vr}")
        return _read_attributes(node, f"{where}.")
    if kind == "PersonName":
        return _read_person_name(node, where)
    text = node.text
    if text is None or text == "":
        return None
    try:
        if vr in INTEGER_VRS:
            return int(text.strip())
        if vr in FLOAT_VRS:
            return float(text)
        if vr == "DS":
            number = text.strip()
            return float(number) if any(c in number for c in ".eE") else int(number)
    except ValueError:
        raise XmlError(f"{where}: {text!r} is not a number (VR {vr})") from None
    return text


def _read_person_name(node: ET.Element, where: str) -> dict[str, str] | None:
    """A PersonName's groups as DICOM JSON; an empty PersonName is an empty value (null)."""
    if len(node) == 0:
        return None
    name: dict[str, str] = {}
    for group in node:
        if _local(group.tag) not in PN_GROUPS:
            raise XmlError(f"{where}: unexpected element {_local(group.tag)} in PersonName")
        parts = {_local(c.tag): c.text or "" for c in group}
        components = [parts.get(component, "") for component in PN_COMPONENTS]
        while components and not components[-1]:
            components.pop()
        name[_local(group.tag)] = "^".join(components)
    return name
