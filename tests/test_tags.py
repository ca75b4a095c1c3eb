"""Each tag constant is the attribute its name says, by the DICOM data dictionary (pydicom's)."""

from __future__ import annotations

import ast
import inspect
from types import ModuleType

import pytest
from pydicom.datadict import keyword_for_tag

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
