"""Reading page: claim / completion times, skipped reads, worklist order indexes.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # claim -> completion per read (statistics); set by the service on those state changes
    op.add_column("workitems", sa.Column("claimed_at", sa.DateTime(timezone=True)))
    op.add_column("workitems", sa.Column("completed_at", sa.DateTime(timezone=True)))
    op.execute("CREATE INDEX workitems_completed_at ON workitems (completed_at) WHERE completed_at IS NOT NULL")
    # the worklist page's orders (keyset paging): priority then age, and age alone
    op.create_index("workitems_list_priority", "workitems", ["state", "priority_rank", "seq"])
    op.create_index("workitems_list_priority_all", "workitems", ["priority_rank", "seq"])
    op.create_index("workitems_performer_aet", "workitems", ["performer_aet"])
    # a read given back to the pool (Skip): claim-next does not offer that reader the study for a while
    op.create_table(
        "skipped_reads",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("workitem_uid", sa.Text, sa.ForeignKey("workitems.uid", ondelete="CASCADE"), nullable=False),
        sa.Column("reader", sa.Text, nullable=False),
        sa.Column("study_uid", sa.Text),
        sa.Column("skipped_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("skipped_reads_workitem", "skipped_reads", ["workitem_uid", "reader", "skipped_at"])
    op.create_index("skipped_reads_study", "skipped_reads", ["study_uid", "reader", "skipped_at"])


def downgrade() -> None:
    op.drop_table("skipped_reads")
    for name in ("workitems_performer_aet", "workitems_list_priority_all", "workitems_list_priority",
                 "workitems_completed_at"):
        op.drop_index(name, "workitems")
    op.drop_column("workitems", "completed_at")
    op.drop_column("workitems", "claimed_at")
