"""SQLAlchemy Core tables. The schema itself is created by the Alembic migrations in migrations/."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Identity, MetaData, Table, Text, func
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

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
    # Reading workflow (rules issue): the rule group a workitem belongs to ("read",
    # "arbitration", ...) and the reader who claimed it; a partial unique index on
    # (study_uid, read_group, reader) makes "one read per reader per study" a constraint.
    Column("read_group", Text),
    Column("reader", Text),
    Column("performer_aet", Text),  # requester / calling AE that claimed it
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
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

