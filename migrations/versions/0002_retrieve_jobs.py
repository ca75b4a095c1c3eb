"""Retrieve jobs: studies pulled from archives (issue 14).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "retrieve_jobs",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("state", sa.Text, nullable=False, server_default="queued"),
        sa.Column("study_uid", sa.Text),
        sa.Column("patient_id", sa.Text),
        sa.Column("accession_number", sa.Text),
        sa.Column("parent_id", sa.BigInteger, sa.ForeignKey("retrieve_jobs.id", ondelete="CASCADE"), index=True),
        sa.Column("archive", sa.Text),
        sa.Column("instances_expected", sa.BigInteger),
        sa.Column("instances_present_before", sa.BigInteger),
        sa.Column("instances_retrieved", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("error", sa.Text),
        sa.Column("attempts", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("next_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("retrieve_jobs_due", "retrieve_jobs", ["next_at", "id"],
                    postgresql_where=sa.text("state IN ('queued', 'running')"))
    op.create_index("retrieve_jobs_state", "retrieve_jobs", ["state", "id"])


def downgrade() -> None:
    op.drop_table("retrieve_jobs")
