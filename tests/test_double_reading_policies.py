"""on_completed policies: CANCELED members (wait / proceed / never) and the input modes
(copy_output, merge_outputs), with rule files written by the test."""

from __future__ import annotations

import pytest

from .dicom_instances import instance, part10, uid
from .reading_flow import read, read_uid, stow, study_workitems, workitem
from .workitems import DICOM_JSON

RULES = """
version: 1
on_store:
  - id: read-1
    workitem: {{uid: "1-{{StudyInstanceUID}}", group: read, label: "Read 1"}}
  - id: read-2
    workitem: {{uid: "2-{{StudyInstanceUID}}", group: read, label: "Read 2"}}
on_completed:
  - id: arbitration
    requires: {{group: read, count: 2, canceled: {canceled}}}
    arbitrate: always
    workitem: {{uid: "3-{{StudyInstanceUID}}", group: arbitration, label: Arbitration,
                input_information: {inputs}}}
"""


def _rules(tmp_path, canceled: str = "wait", inputs: str = "copy_input"):
    path = tmp_path / f"rules-{canceled}-{inputs}.yaml"
    path.write_text(RULES.format(canceled=canceled, inputs=inputs))
    return path


@pytest.fixture
def settings(settings, request, tmp_path):
    settings.rules = _rules(tmp_path, *request.param)
    return settings


def output(sop: str) -> dict:
    return {"0020000D": {"vr": "UI", "Value": ["1.2.3"]}, "0020000E": {"vr": "UI", "Value": ["1.2.3.4"]},
            "0040E020": {"vr": "CS", "Value": ["DICOM"]},
            "00081199": {"vr": "SQ", "Value": [{"00081150": {"vr": "UI", "Value": ["1.2.840.10008.5.1.4.1.1.88.22"]},
                                                "00081155": {"vr": "UI", "Value": [sop]}}]}}


async def _cancel(http, wi: str) -> None:
    r = await http.post(f"/workitems/{wi}/cancelrequest", json={}, headers=DICOM_JSON)
    assert r.status_code == 202, r.text


@pytest.mark.parametrize("settings", [("proceed", "copy_input")], indirect=True)
async def test_canceled_read_proceed_creates_on_cancel(http, server):
    study = uid()
    await stow(http, [part10(instance(study))])
    await read(http, read_uid(1, study), "READER_A", "NORMAL")
    assert await workitem(http, read_uid(3, study)) is None
    await _cancel(http, read_uid(2, study))  # the cancel path evaluates the rule
    assert await workitem(http, read_uid(3, study)) is not None


@pytest.mark.parametrize("settings", [("proceed", "copy_input")], indirect=True)
async def test_canceled_read_proceed_creates_on_completion(http, server):
    study = uid()
    await stow(http, [part10(instance(study))])
    await _cancel(http, read_uid(2, study))
    assert await workitem(http, read_uid(3, study)) is None
    await read(http, read_uid(1, study), "READER_A", "NORMAL")
    assert await workitem(http, read_uid(3, study)) is not None


@pytest.mark.parametrize("settings", [("wait", "copy_input"), ("never", "copy_input")], indirect=True)
async def test_canceled_read_wait_or_never_creates_nothing(http, server):
    study = uid()
    await stow(http, [part10(instance(study))])
    await _cancel(http, read_uid(2, study))
    await read(http, read_uid(1, study), "READER_A", "NORMAL")
    assert await workitem(http, read_uid(3, study)) is None
    assert len(await study_workitems(server, study)) == 2


@pytest.mark.parametrize(("settings", "from_reads"), [
    (("wait", "merge_outputs"), "both"),  # MERGE_OUTPUTS: every read's outputs
    (("wait", "copy_output"), "last"),  # COPY_OUTPUT: the read whose completion created it
], indirect=["settings"])
async def test_arbitration_inputs_from_the_reads_outputs(http, server, from_reads):
    study = uid()
    await stow(http, [part10(instance(study))])
    sr_a, sr_b = uid(), uid()
    await read(http, read_uid(1, study), "READER_A", "NORMAL", [output(sr_a)])
    await read(http, read_uid(2, study), "READER_B", "NORMAL", [output(sr_b)])
    arb = await workitem(http, read_uid(3, study))
    sops = [i["00081199"]["Value"][0]["00081155"]["Value"][0] for i in arb["00404021"]["Value"]]
    assert sorted(sops) == (sorted([sr_a, sr_b]) if from_reads == "both" else [sr_b])


@pytest.mark.parametrize("settings", [("wait", "copy_input")], indirect=True)
async def test_wait_proceeds_once_a_replacement_read_completes(http, server, tmp_path):
    """wait: the CANCELED read does not count; a replacement read (a new rule applied to the
    stored study) completing makes the two COMPLETED reads the arbitration waits for."""
    from ups_server.rules.engine import RuleEngine
    from ups_server.rules.loader import load_rules
    from ups_server.rules.reconcile import Reconciler

    study = uid()
    await stow(http, [part10(instance(study))])
    await _cancel(http, read_uid(2, study))
    await read(http, read_uid(1, study), "READER_A", "NORMAL")
    assert await workitem(http, read_uid(3, study)) is None

    extra = tmp_path / "replacement.yaml"
    extra.write_text('on_store:\n  - id: replacement-read\n'
                     '    workitem: {uid: "4-{StudyInstanceUID}", group: read, label: "Replacement read"}\n')
    engine = RuleEngine(load_rules(extra), server.ups, "UPS_SERVER", None)
    report = await Reconciler(engine).run(server.database.engine, [study])
    assert report.per_study[study].created == [read_uid(4, study)]
    await read(http, read_uid(4, study), "READER_C", "RECALL")
    assert await workitem(http, read_uid(3, study)) is not None
