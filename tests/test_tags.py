"""Each tag constant is the attribute its name says, by the DICOM data dictionary (pydicom's)."""

from __future__ import annotations

import ast
import inspect
import io
import re
import tokenize
from pathlib import Path
from types import ModuleType

import pytest
from pydicom.datadict import keyword_for_tag

import ups_server
from ups_server.dicom import tags as dicom_tags
from ups_server.ups import tags as ups_tags

# names shorter than the dictionary's keyword
SHORTENED = {
    "COMMENTS_ON_SCHEDULED_PROCEDURE_STEP": "CommentsOnTheScheduledProcedureStep",
    "UPS_PERFORMED_PROCEDURE_SEQUENCE": "UnifiedProcedureStepPerformedProcedureSequence",
    "UPS_LIST_STATUS": "UnifiedProcedureStepListStatus",
}


def _constants(module: ModuleType) -> dict[str, str]:
    return {name: value for name, value in vars(module).items() if name.isupper() and isinstance(value, str)}


@pytest.mark.parametrize("module", [dicom_tags, ups_tags], ids=["dicom", "ups"])
def test_each_tag_is_the_attribute_its_name_says(module):
    constants = _constants(module)
    assert len(constants) > 40
    for name, tag in constants.items():
        keyword = keyword_for_tag(int(tag, 16))
        if name in SHORTENED:
            assert keyword == SHORTENED[name], (name, tag)
        else:
            assert name.replace("_", "") == keyword.upper(), (name, tag, keyword)


def test_one_place_per_tag():
    # ups/tags.py assigns only the UPS's own tags; the ones it shares are imported from dicom/tags.py
    assigned = {node.targets[0].id: node.value.value for node in ast.parse(inspect.getsource(ups_tags)).body
                if isinstance(node, ast.Assign)}
    assert assigned
    assert not set(assigned.values()) & set(_constants(dicom_tags).values())
    for module in (dicom_tags, ups_tags):
        values = list(_constants(module).values())
        assert len(set(values)) == len(values), module.__name__


_QUOTED_TAG = re.compile(r"""(["'])([0-9A-Fa-f]{8})\1""")


def _hex_tags(source: str) -> list[tuple[int, str]]:
    """(line, tag) of each string literal (or f-string part) that is a bare tag of the dictionary."""
    found = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type != tokenize.STRING:
            continue
        body = token.string.lstrip("rbuRBU")
        if body.startswith(("f", "F")):
            candidates = [m.group(2) for m in _QUOTED_TAG.finditer(body)]
        else:
            whole = _QUOTED_TAG.fullmatch(body)
            candidates = [whole.group(2)] if whole else []
        found += [(token.start[0], tag) for tag in candidates if keyword_for_tag(int(tag, 16))]
    return found


def test_no_hex_tags_outside_the_tag_modules():
    # one place per tag: code names attributes from dicom/tags.py or ups/tags.py
    root = Path(ups_server.__file__).parent
    modules = {Path(dicom_tags.__file__), Path(ups_tags.__file__)}
    found = [f"{path.relative_to(root)}:{line}: {tag}" for path in sorted(root.rglob("*.py")) if path not in modules
             for line, tag in _hex_tags(path.read_text())]
    assert not found, "name these tags from dicom/tags.py or ups/tags.py: " + ", ".join(found)


def test_the_hex_tag_check_finds_literals():
    source = 'a = {"00100020": 1}\nb = f"{ds[\'0020000E\']}"\nc = "20261123"\n"""{"00741000": ...}"""\n'
    assert _hex_tags(source) == [(1, "00100020"), (2, "0020000E")]
