"""Initial schema.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # --- workitems (UPS instances) -------------------------------------------------------
    op.create_table(
        "workitems",
        sa.Column("uid", sa.Text, primary_key=True),
        sa.Column("seq", sa.BigInteger, sa.Identity(), nullable=False, unique=True),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("transaction_uid", sa.Text),
        sa.Column("dataset", JSONB, nullable=False),
        sa.Column("priority", sa.Text, nullable=False),
        sa.Column("priority_rank", sa.BigInteger, nullable=False),
        sa.Column("procedure_step_label", sa.Text),
        sa.Column("worklist_label", sa.Text),
        sa.Column("input_readiness", sa.Text),
        sa.Column("start_dt", sa.DateTime),
        sa.Column("expected_completion_dt", sa.DateTime),
        sa.Column("expiration_dt", sa.DateTime),
        sa.Column("modification_dt", sa.DateTime),
        sa.Column("patient_name", sa.Text),
        sa.Column("patient_id", sa.Text),
        sa.Column("issuer_of_patient_id", sa.Text),
        sa.Column("patient_birth_date", sa.Text),
        sa.Column("patient_sex", sa.Text),
        sa.Column("admission_id", sa.Text),
        sa.Column("study_uid", sa.Text),
        sa.Column("accession_number", sa.Text),
        sa.Column("read_group", sa.Text),
        sa.Column("reader", sa.Text),
        sa.Column("performer_aet", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint(
            "state IN ('SCHEDULED', 'IN PROGRESS', 'COMPLETED', 'CANCELED')", name="workitems_state_valid"
        ),
    )
    # claim-next order: priority, then start datetime, then creation order
    op.create_index(
        "workitems_claim_order", "workitems", ["state", "priority_rank", "start_dt", "seq"]
    )
    for col in (
        "procedure_step_label", "worklist_label", "start_dt", "expected_completion_dt",
        "modification_dt", "patient_id", "patient_name", "study_uid", "accession_number",
        "expiration_dt", "issuer_of_patient_id", "patient_birth_date", "admission_id",
    ):
        op.create_index(f"workitems_{col}", "workitems", [col])
    # PN matching is case-insensitive (search compares lower(patient_name), = and LIKE 'x%')
    op.execute("CREATE INDEX workitems_patient_name_ci ON workitems (lower(patient_name) text_pattern_ops)")
    op.execute("CREATE INDEX workitems_dataset ON workitems USING gin (dataset jsonb_path_ops)")
    op.execute(
        "CREATE UNIQUE INDEX workitems_one_read_per_reader ON workitems (study_uid, read_group, reader) "
        "WHERE study_uid IS NOT NULL AND read_group IS NOT NULL AND reader IS NOT NULL"
    )

    op.create_table(
        "cancel_requests",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("workitem_uid", sa.Text, nullable=False, index=True),
        sa.Column("requester", sa.Text),
        sa.Column("info", JSONB, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )

    # --- ingest and rules (issue 3) --------------------------------------------------------
    op.create_table(
        "studies",
        sa.Column("study_uid", sa.Text, primary_key=True),
        sa.Column("patient_id", sa.Text),
        sa.Column("patient_name", sa.Text),
        sa.Column("accession_number", sa.Text),
        sa.Column("study_date", sa.Text),
        sa.Column("attributes", JSONB, nullable=False),  # patient + study level DICOM JSON
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    for col in ("patient_id", "accession_number", "study_date"):
        op.create_index(f"studies_{col}", "studies", [col])
    op.create_table(
        "series",
        sa.Column("series_uid", sa.Text, primary_key=True),
        sa.Column("study_uid", sa.Text, sa.ForeignKey("studies.study_uid", ondelete="CASCADE"), nullable=False),
        sa.Column("modality", sa.Text),
        sa.Column("attributes", JSONB, nullable=False),  # series level DICOM JSON
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("series_study_uid", "series", ["study_uid"])
    op.create_table(
        "instances",
        sa.Column("sop_instance_uid", sa.Text, primary_key=True),
        sa.Column("seq", sa.BigInteger, sa.Identity(), nullable=False, unique=True),
        sa.Column("series_uid", sa.Text, sa.ForeignKey("series.series_uid", ondelete="CASCADE"), nullable=False),
        sa.Column("study_uid", sa.Text, nullable=False),
        sa.Column("sop_class_uid", sa.Text, nullable=False),
        sa.Column("transfer_syntax", sa.Text, nullable=False),
        sa.Column("path", sa.Text, nullable=False),  # relative to <data_dir>/blobs
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("metadata", JSONB, nullable=False),  # DICOM JSON without bulk data
        sa.Column("source_ae", sa.Text),
        sa.Column("source_host", sa.Text),
        sa.Column("receiving_ae", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("instances_study_uid", "instances", ["study_uid"])
    op.create_index("instances_series_uid", "instances", ["series_uid"])
    op.create_table(
        "rule_workitems",  # which rule made which workitem (claim guards, diagnostics)
        sa.Column("workitem_uid", sa.Text, primary_key=True),
        sa.Column("rule", sa.Text, nullable=False),
        sa.Column("study_uid", sa.Text),
        sa.Column("performer_only", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "rule_failures",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("rule", sa.Text, nullable=False),
        sa.Column("trigger", sa.Text, nullable=False),  # on_store | on_completed | on_canceled
        sa.Column("study_uid", sa.Text),
        sa.Column("sop_instance_uid", sa.Text),
        sa.Column("workitem_uid", sa.Text),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("rule_failures_study_uid", "rule_failures", ["study_uid"])

    # --- subscriptions and events (issue 5) ------------------------------------------------
    op.create_table(
        "subscriptions",
        sa.Column("aet", sa.Text, primary_key=True),
        sa.Column("workitem_uid", sa.Text, sa.ForeignKey("workitems.uid", ondelete="CASCADE"), primary_key=True),
        sa.Column("deletion_lock", sa.Boolean, nullable=False),
        sa.Column("via_http", sa.Boolean, nullable=False, server_default="false"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("subscriptions_workitem", "subscriptions", ["workitem_uid"])
    op.create_table(
        "global_subscriptions",
        sa.Column("aet", sa.Text, primary_key=True),
        sa.Column("deletion_lock", sa.Boolean, nullable=False),
        sa.Column("filtered", sa.Boolean, nullable=False),
        sa.Column("filter", JSONB),
        sa.Column("via_http", sa.Boolean, nullable=False, server_default="false"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "event_outbox",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("workitem_uid", sa.Text),
        sa.Column("aet", sa.Text, nullable=False),
        sa.Column("event_type", sa.BigInteger, nullable=False),
        sa.Column("info", JSONB, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.clock_timestamp()),
        sa.Column("ws_delivered_at", sa.DateTime(timezone=True)),
        sa.Column("dimse_pending", sa.Boolean, nullable=False, server_default="false"),
        sa.Column("dimse_attempts", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("dimse_next_at", sa.DateTime(timezone=True)),
        sa.Column("dimse_done_at", sa.DateTime(timezone=True)),
    )
    op.execute("CREATE INDEX event_outbox_ws ON event_outbox (aet, id) WHERE ws_delivered_at IS NULL")
    op.execute("CREATE INDEX event_outbox_dimse ON event_outbox (aet, id) WHERE dimse_pending")
    op.create_index("event_outbox_created", "event_outbox", ["created_at"])


def downgrade() -> None:
    # --- subscriptions and events (issue 5) ------------------------------------------------
    op.drop_table("event_outbox")
    op.drop_table("global_subscriptions")
    op.drop_table("subscriptions")

    # --- ingest and rules (issue 3) --------------------------------------------------------
    for table in ("rule_failures", "rule_workitems", "instances", "series", "studies"):
        op.drop_table(table)

    op.drop_table("cancel_requests")
    op.drop_table("workitems")
