"""Name-based workitem UIDs as dcm4chee makes them (DESIGN.md vectors), random UIDs, UID syntax."""

from __future__ import annotations

import pytest

from ups_server.dicom.uids import is_valid_uid, name_based_uid, new_uid

VECTORS = [
    ("1-1.2.3.4", "2.25.237997061136468279839587818681855387213"),
    ("2-1.2.3.4", "2.25.321957544142888833938550197192392378981"),
    ("3-1.2.840.113619.2.55.3.604688119.969.1268071029.320", "2.25.91542569924284747986453418195720767555"),
]


@pytest.mark.parametrize(("name", "uid"), VECTORS)
def test_name_based_uid_vectors(name, uid):
    assert name_based_uid(name) == uid
    assert is_valid_uid(uid)


def test_name_based_uid_is_deterministic_and_distinct():
    assert name_based_uid("1-1.2.3") == name_based_uid("1-1.2.3")
    assert name_based_uid("1-1.2.3") != name_based_uid("2-1.2.3")


def test_new_uid():
    uids = {new_uid() for _ in range(1000)}
    assert len(uids) == 1000
    assert all(u.startswith("2.25.") and is_valid_uid(u) for u in uids)


@pytest.mark.parametrize(("value", "valid"), [
    ("1.2.3", True), ("0.1", True), ("2.25.0", True), ("1.2.840.10008.5.1.4.34.6.1", True),
    ("1." + "2" * 62, True), ("1." + "2" * 63, False),  # at most 64 characters
    ("1.02.3", False), ("1..2", False), (".1.2", False), ("1.2.", False), ("", False), ("1.2.a", False),
    ("1.2 ", False),
])
def test_uid_syntax(value, valid):
    assert is_valid_uid(value) is valid
