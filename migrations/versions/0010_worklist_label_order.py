"""Worklist searches: (state, Worklist Label, creation order) for GET /workitems / C-FIND by state and
Worklist Label, whose page is in ``seq`` order and whose full page is followed by a count of the matches.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # measured with benchmarks/search.py at 1M workitems: the page walked workitems_seq_key filtering
    # rows and the count bitmap-ANDed two single-column indexes (docs in the commit message)
    op.create_index("workitems_state_label_seq", "workitems", ["state", "worklist_label", "seq"])


def downgrade() -> None:
    op.drop_index("workitems_state_label_seq", "workitems")
