"""The (state, Worklist Label, seq) index carries the start datetime only again, not the performer codes
(0012): an INCLUDE column is stored whole in the index entry, and a workitem with many long performer
codes (40 codes of 200 characters) made its entry larger than an index entry may be, so its creation
failed (500). Performer codes are matched through their GIN index (workitems_performer_codes).

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("workitems_state_label_seq", "workitems")
    op.execute("CREATE INDEX workitems_state_label_seq ON workitems (state, worklist_label, seq) INCLUDE (start_dt)")


def downgrade() -> None:
    op.drop_index("workitems_state_label_seq", "workitems")
    op.execute("CREATE INDEX workitems_state_label_seq ON workitems (state, worklist_label, seq)"
               " INCLUDE (start_dt, performer_codes)")
