"""The Actual Human Performers Sequence (0040,4035) names the authenticated person (issue 10).

Under ``--auth oidc`` whoever updates or completes a workitem is known; the server writes that
person into the first item of the UPS Performed Procedure Sequence (0074,1216), whatever the
client wrote there: its code is the token's subject (coding scheme ``99OIDC``; Code Value is SH,
16 characters, so a longer subject goes in Long Code Value, UC), its name the display name.
"""

from __future__ import annotations

from ..dicom.dataset import JsonDataset, element, items
from ..ups import tags as t

PERSON_SCHEME = "99OIDC"  # coding scheme of the Actual Human Performer codes: the token's subject
_CODE_VALUE_MAX = 16  # SH


def code_value(value: str) -> JsonDataset:
    """The Code Value (SH) of a code item, or its Long Code Value (UC) beyond 16 characters (a
    Keycloak subject is a 36-character UUID)."""
    if len(value) <= _CODE_VALUE_MAX:
        return {t.CODE_VALUE: element("SH", value)}
    return {t.LONG_CODE_VALUE: element("UC", value)}


def name_performer(ds: JsonDataset, subject: str, display_name: str | None) -> None:
    """Set the Actual Human Performers Sequence of ``ds``'s first performed procedure item (in
    place); nothing when the dataset has no UPS Performed Procedure Sequence yet."""
    performed = items(ds, t.UPS_PERFORMED_PROCEDURE_SEQUENCE)
    if not performed:
        return
    code = {**code_value(subject), t.CODING_SCHEME_DESIGNATOR: element("SH", PERSON_SCHEME),
            t.CODE_MEANING: element("LO", (display_name or subject)[:64])}
    person = {t.HUMAN_PERFORMER_CODE_SEQUENCE: {"vr": "SQ", "Value": [code]}}
    if display_name:
        person[t.HUMAN_PERFORMER_NAME] = element("PN", display_name)
    first_item = {**performed[0], t.ACTUAL_HUMAN_PERFORMERS_SEQUENCE: {"vr": "SQ", "Value": [person]}}
    ds[t.UPS_PERFORMED_PROCEDURE_SEQUENCE] = {"vr": "SQ", "Value": [first_item, *performed[1:]]}
