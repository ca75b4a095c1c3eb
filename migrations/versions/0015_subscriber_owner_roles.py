"""The roles and worklists of a subscriber AE title's owner (issue 10): its DIMSE events are
filtered by what that principal may see, as its WebSocket's are; kept from the owner's last
subscription change (NULL worklists: not restricted).

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("subscriber_owners", sa.Column("roles", ARRAY(sa.Text), nullable=False, server_default="{}"))
    op.add_column("subscriber_owners", sa.Column("worklists", ARRAY(sa.Text), nullable=True))


def downgrade() -> None:
    op.drop_column("subscriber_owners", "worklists")
    op.drop_column("subscriber_owners", "roles")
