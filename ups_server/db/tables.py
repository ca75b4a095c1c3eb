"""SQLAlchemy Core tables. The schema itself is created by the Alembic migrations in migrations/."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Computed,
    DateTime,
    ForeignKey,
    Identity,
    Integer,
    MetaData,
    Table,
    Text,
    false,
    func,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from ..ups import tags as t

metadata = MetaData()

# Text copied from a dataset into an indexed column is cut to this many characters (a B-tree
# entry must stay under ~2.7 KB); the whole value stays in the row's DICOM JSON.
INDEXED_TEXT_MAX = 256


def indexed_text(value: Any) -> Any:
    return value[:INDEXED_TEXT_MAX] if isinstance(value, str) else value


# Array columns of ``workitems`` PostgreSQL derives from the dataset (migration 0012,
# ups_sequence_values): every string value (at most INDEXED_TEXT_MAX characters) found down a path of
# sequences, for sequence matching through a narrow GIN index (dicom/matching.py ``Target.arrays``).
SEQUENCE_VALUE_COLUMNS: dict[str, tuple[str, ...]] = {
    "performer_codes": (t.SCHEDULED_HUMAN_PERFORMERS_SEQUENCE, t.HUMAN_PERFORMER_CODE_SEQUENCE, t.CODE_VALUE),
}


def _sequence_values(name: str) -> Computed:
    """The generated column ``name`` of SEQUENCE_VALUE_COLUMNS (its expression in migration 0012)."""
    path = "$" + "".join(f'."{tag}".Value[*]' for tag in SEQUENCE_VALUE_COLUMNS[name])
    return Computed(f"ups_sequence_values(dataset, '{path}')")


# One row per UPS instance. ``dataset`` is the full DICOM JSON without the Transaction UID;
# the other columns are the matching keys PS3.4 Table CC.2.5-3 requires, kept in sync by
# ups.columns.index_columns() on every write.
workitems = Table(
    "workitems",
    metadata,
    Column("uid", Text, primary_key=True),
    Column("seq", BigInteger, Identity(), nullable=False, unique=True),  # creation order
    Column("state", Text, nullable=False),
    Column("transaction_uid", Text),  # kept after final states so B304/B306 can be evaluated
    Column("dataset", JSONB, nullable=False),
    Column("priority", Text, nullable=False),
    Column("priority_rank", BigInteger, nullable=False),  # HIGH=0, MEDIUM=1, LOW=2: claim order
    Column("procedure_step_label", Text),
    Column("worklist_label", Text),
    Column("input_readiness", Text),
    Column("start_dt", DateTime),
    Column("expected_completion_dt", DateTime),
    Column("expiration_dt", DateTime),
    Column("modification_dt", DateTime),
    Column("patient_name", Text),
    Column("patient_id", Text),
    Column("issuer_of_patient_id", Text),
    Column("patient_birth_date", Text),
    Column("patient_sex", Text),
    Column("admission_id", Text),
    Column("study_uid", Text),  # top-level Study Instance UID, else Referenced Request's
    Column("accession_number", Text),
    # Scheduled Human Performers Sequence > Human Performer Code Sequence > Code Value: derived by
    # PostgreSQL from the dataset (SEQUENCE_VALUE_COLUMNS), matched through a GIN index
    Column("performer_codes", ARRAY(Text), _sequence_values("performer_codes"), nullable=False),
    # Reading workflow (rules issue): the rule group a workitem belongs to ("read",
    # "arbitration", ...) and the reader who claimed it; a partial unique index on
    # (study_uid, read_group, reader) makes "one read per reader per study" a constraint.
    Column("read_group", Text),
    Column("reader", Text),
    Column("performer_aet", Text),  # requester / calling AE that claimed it
    Column("claimed_at", DateTime(timezone=True)),  # last claim (SCHEDULED -> IN PROGRESS)
    Column("completed_at", DateTime(timezone=True)),  # when it became COMPLETED
    # the group's distinct_readers setting: ``reader`` is filled (and unique per study) only if true
    Column("distinct_readers", Boolean, nullable=False, server_default=true()),
    Column("claimant", Text),  # the authenticated subject holding the claim (--auth oidc)
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# A read given back to the pool by its reader (Skip, an extension): claim-next does not offer
# that reader the workitem, nor another read of its study, for --skip-hold seconds.
skipped_reads = Table(
    "skipped_reads",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("workitem_uid", Text, ForeignKey("workitems.uid", ondelete="CASCADE"), nullable=False),
    Column("reader", Text, nullable=False),
    Column("study_uid", Text),
    Column("skipped_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Request Cancellation of an IN PROGRESS workitem is recorded here (PS3.4 CC.2.2.3).
cancel_requests = Table(
    "cancel_requests",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("workitem_uid", Text, nullable=False, index=True),
    Column("requester", Text),
    Column("info", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# --- ingest and rules (issue 3) -------------------------------------------------------------
# Stored instances: the index (``path``: the instance's key in the blob store, ingest/blobs.py).
studies = Table(
    "studies",
    metadata,
    Column("study_uid", Text, primary_key=True),
    Column("patient_id", Text),
    Column("patient_name", Text),
    Column("accession_number", Text),
    Column("study_date", Text),
    Column("attributes", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

series = Table(
    "series",
    metadata,
    Column("series_uid", Text, primary_key=True),
    Column("study_uid", Text, ForeignKey("studies.study_uid", ondelete="CASCADE"), nullable=False),
    Column("modality", Text),
    Column("attributes", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

instances = Table(
    "instances",
    metadata,
    Column("sop_instance_uid", Text, primary_key=True),
    Column("seq", BigInteger, Identity(), nullable=False, unique=True),
    Column("series_uid", Text, ForeignKey("series.series_uid", ondelete="CASCADE"), nullable=False),
    Column("study_uid", Text, nullable=False),
    Column("sop_class_uid", Text, nullable=False),
    Column("transfer_syntax", Text, nullable=False),
    Column("path", Text, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("metadata", JSONB, nullable=False),
    Column("source_ae", Text),
    Column("source_host", Text),
    Column("receiving_ae", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Objects put in the blob store whose index row has not committed yet: the store transaction
# deletes the rows of the objects it indexes; housekeeping removes the objects of rows older than
# the grace period (a crash or a failure between the put and the commit, a duplicate).
blob_uploads = Table(
    "blob_uploads",
    metadata,
    Column("key", Text, primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Which rule created which workitem; ``performer_only``: only a scheduled performer may claim it;
# ``trigger``: on_store | on_completed (NULL: made before it was recorded).
rule_workitems = Table(
    "rule_workitems",
    metadata,
    Column("workitem_uid", Text, primary_key=True),
    Column("rule", Text, nullable=False),
    Column("study_uid", Text, index=True),
    Column("trigger", Text),
    Column("performer_only", Boolean, nullable=False, server_default=false()),
    Column("claim_role", Text, nullable=False, server_default="reader"),  # the group's claim_role
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# A rule that failed at run time (the stored instance / state change still committed).
rule_failures = Table(
    "rule_failures",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("rule", Text, nullable=False),
    Column("trigger", Text, nullable=False),
    Column("study_uid", Text),
    Column("sop_instance_uid", Text),
    Column("workitem_uid", Text),
    Column("error", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# --- subscriptions and events (issue 5) ---------------------------------------------------
# Subscription state of PS3.4 Table CC.2.3-2: one row per (AE, workitem) subscribed, and one
# per AE with a global (possibly filtered) subscription. ``via_http``: made over UPS-RS, so
# the AE's channel is the WebSocket (UPS-EVT-03).
subscriptions = Table(
    "subscriptions",
    metadata,
    Column("aet", Text, primary_key=True),
    Column("workitem_uid", Text, ForeignKey("workitems.uid", ondelete="CASCADE"), primary_key=True),
    Column("deletion_lock", Boolean, nullable=False),
    Column("via_http", Boolean, nullable=False, server_default="false"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

global_subscriptions = Table(
    "global_subscriptions",
    metadata,
    Column("aet", Text, primary_key=True),
    Column("deletion_lock", Boolean, nullable=False),
    Column("filtered", Boolean, nullable=False),
    Column("filter", JSONB),  # {"items": [[attr, value], ...]} or {"dataset": {...}}
    Column("via_http", Boolean, nullable=False, server_default="false"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Under --auth oidc the subject that first subscribed an AE title (or opened its WebSocket) owns
# it: only that subject and admins manage its subscriptions and read its events (issue 10).
subscriber_owners = Table(
    "subscriber_owners",
    metadata,
    Column("aet", Text, primary_key=True),
    Column("subject", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # the owner's roles and worklists at its last subscription change: what its DIMSE events may show
    Column("roles", ARRAY(Text), nullable=False, server_default="{}"),
    Column("worklists", ARRAY(Text), nullable=True),
)

# Transactional outbox, written in the transaction of the change: one row per event for its
# WebSocket subscribers (``ws_aets``: those not yet sent to, removed as a dispatcher sends it) and
# one row per event and DIMSE subscriber AE (``aet``), which exactly one DIMSE dispatcher sends
# while ``dimse_pending``. Rows older than the replay window are pruned.
event_outbox = Table(
    "event_outbox",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("workitem_uid", Text),  # None for SCP Status Change
    Column("aet", Text),  # the DIMSE subscriber of a DIMSE row; None: the row of the WebSocket subscribers
    Column("event_type", BigInteger, nullable=False),
    Column("info", JSONB, nullable=False),  # Event Information (DICOM JSON)
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.clock_timestamp()),
    Column("ws_aets", ARRAY(Text), nullable=False, server_default="{}"),  # WebSocket subscribers not yet sent to
    Column("dimse_pending", Boolean, nullable=False, server_default="false"),
    Column("dimse_attempts", BigInteger, nullable=False, server_default="0"),
    Column("dimse_next_at", DateTime(timezone=True)),
    Column("dimse_done_at", DateTime(timezone=True)),
)

# --- retrieve jobs (issue 14) ---------------------------------------------------------------
# A study (``study_uid``) or a patient ID + accession number lookup to pull from the archives;
# taken by a worker with FOR UPDATE SKIP LOCKED. A lookup job ends ``done`` once it has queued one
# study job per study found (``parent_id`` = the lookup). ``next_at``: when a retry is due.
retrieve_jobs = Table(
    "retrieve_jobs",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("state", Text, nullable=False, server_default="queued"),
    Column("study_uid", Text),
    Column("patient_id", Text),
    Column("accession_number", Text),
    Column("parent_id", BigInteger, ForeignKey("retrieve_jobs.id", ondelete="CASCADE"), index=True),
    Column("archive", Text),  # the name of the archive that had the study
    Column("instances_expected", BigInteger),  # instances of the study at that archive
    Column("instances_present_before", BigInteger),
    Column("instances_retrieved", BigInteger, nullable=False, server_default="0"),
    Column("error", Text),
    Column("attempts", BigInteger, nullable=False, server_default="0"),
    Column("next_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# --- audit trail (issue 10) ------------------------------------------------------------------
# One row per audited action, written in the transaction of the change (ups_server.audit).
# ``event_id``/``event``: the PS3.15 A.5 Audit Event ID (DCM code and meaning); ``action``: the
# Event Action Code (C R U D E); ``outcome``: the Event Outcome Indicator (0, 4, 8, 12).
audit_events = Table(
    "audit_events",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.clock_timestamp()),
    Column("event_id", Text, nullable=False),
    Column("event", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("what", Text, nullable=False),
    Column("outcome", Integer, nullable=False),
    Column("subject", Text),
    Column("display_name", Text),
    Column("ae_title", Text),
    Column("address", Text),
    Column("workitem_uid", Text),
    Column("study_uid", Text),
    Column("detail", Text),
)
