"""Blob uploads not yet indexed (orphan objects are removed from them by housekeeping).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "blob_uploads",
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("blob_uploads_created_at", "blob_uploads", ["created_at"])


def downgrade() -> None:
    op.drop_table("blob_uploads")
