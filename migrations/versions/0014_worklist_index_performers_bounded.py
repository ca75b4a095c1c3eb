"""The (state, Worklist Label, seq) index carries the performer codes again (as 0012 had it, 0013 took
them out): a workitem now names at most 64 distinct performer codes of 1,024 bytes in all (refused with
0106 / 400 beyond, ups/attributes.py), so its index entry stays far below the size limit. A worklist
page and its count by state + Worklist Label + performer are then index-only scans: at 1M workitems
201 buffers and 2.4 ms instead of a BitmapAnd over the GIN index, 571 buffers and 63 ms (load 15;
benchmarks/search.py).

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30
"""

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("workitems_state_label_seq", "workitems")
    op.execute("CREATE INDEX workitems_state_label_seq ON workitems (state, worklist_label, seq)"
               " INCLUDE (start_dt, performer_codes)")


def downgrade() -> None:
    op.drop_index("workitems_state_label_seq", "workitems")
    op.execute("CREATE INDEX workitems_state_label_seq ON workitems (state, worklist_label, seq) INCLUDE (start_dt)")
