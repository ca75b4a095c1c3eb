"""Worklist searches: the (state, Worklist Label, seq) index also carries the Scheduled Procedure Step
Start DateTime, so that the count after a full page of state + Worklist Label + a date range stays an
index-only scan (without it that count fetched every state + label match from the heap).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("workitems_state_label_seq", "workitems")
    op.execute("CREATE INDEX workitems_state_label_seq ON workitems (state, worklist_label, seq) INCLUDE (start_dt)")


def downgrade() -> None:
    op.drop_index("workitems_state_label_seq", "workitems")
    op.create_index("workitems_state_label_seq", "workitems", ["state", "worklist_label", "seq"])
