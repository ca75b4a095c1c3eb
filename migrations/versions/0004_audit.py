"""Audit trail (issue 10): one row per authentication failure, workitem change, rule effect,
stored study batch and study read, written in the transaction of the change it records.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.clock_timestamp()),
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column("event", sa.Text, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("what", sa.Text, nullable=False),
        sa.Column("outcome", sa.Integer, nullable=False),
        sa.Column("subject", sa.Text),
        sa.Column("display_name", sa.Text),
        sa.Column("ae_title", sa.Text),
        sa.Column("address", sa.Text),
        sa.Column("workitem_uid", sa.Text),
        sa.Column("study_uid", sa.Text),
        sa.Column("detail", sa.Text),
    )
    for col in ("at", "subject", "workitem_uid", "study_uid"):
        op.create_index(f"audit_events_{col}", "audit_events", [col])


def downgrade() -> None:
    op.drop_table("audit_events")
