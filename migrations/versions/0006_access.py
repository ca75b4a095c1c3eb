"""Access (issue 10): distinct readers and the claim role become settings of a rule group;
the claimant (authenticated subject) of a claim is kept.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("workitems", sa.Column("distinct_readers", sa.Boolean, nullable=False, server_default=sa.true()))
    op.add_column("workitems", sa.Column("claimant", sa.Text))
    op.add_column("rule_workitems", sa.Column("claim_role", sa.Text, nullable=False, server_default="reader"))


def downgrade() -> None:
    op.drop_column("rule_workitems", "claim_role")
    op.drop_column("workitems", "claimant")
    op.drop_column("workitems", "distinct_readers")
