"""rule_workitems: the trigger that made a workitem (rules apply cancels only on_store ones) and an
index on study_uid (rules apply reads a batch of studies' rule workitems).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NULL for rows made before this revision: rules apply then goes by the rule id
    op.add_column("rule_workitems", sa.Column("trigger", sa.Text))
    op.create_index("rule_workitems_study_uid", "rule_workitems", ["study_uid"])


def downgrade() -> None:
    op.drop_index("rule_workitems_study_uid", table_name="rule_workitems")
    op.drop_column("rule_workitems", "trigger")
