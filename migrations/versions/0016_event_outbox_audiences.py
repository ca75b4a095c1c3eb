"""One event outbox row per event and audience (issue 12): the WebSocket subscribers of an event
share one row whose ``ws_aets`` lists those not yet sent to (emptied as they are), and each DIMSE
subscriber AE keeps a row of its own (``aet``, ``dimse_*``), as before. The outbox write and the
dispatchers' reads no longer grow with the number of subscribers.

Rows of the old form keep their meaning: an undelivered one lists its AE in ``ws_aets``.

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("event_outbox", sa.Column("ws_aets", ARRAY(sa.Text), nullable=False, server_default="{}"))
    op.execute("UPDATE event_outbox SET ws_aets = ARRAY[aet] WHERE ws_delivered_at IS NULL")
    op.execute("DROP INDEX event_outbox_ws")
    op.drop_column("event_outbox", "ws_delivered_at")
    op.alter_column("event_outbox", "aet", nullable=True)
    op.execute("CREATE INDEX event_outbox_ws_pending ON event_outbox (id) WHERE ws_aets <> '{}'")


def downgrade() -> None:
    op.execute("DROP INDEX event_outbox_ws_pending")
    op.add_column("event_outbox", sa.Column("ws_delivered_at", sa.DateTime(timezone=True)))
    # a shared WebSocket row becomes one row per AE still to send it to
    op.execute("INSERT INTO event_outbox (workitem_uid, aet, event_type, info, created_at, ws_aets) "
               "SELECT o.workitem_uid, a.aet, o.event_type, o.info, o.created_at, ARRAY[a.aet] "
               "FROM event_outbox o CROSS JOIN unnest(o.ws_aets) AS a(aet) WHERE o.aet IS NULL ORDER BY o.id")
    op.execute("DELETE FROM event_outbox WHERE aet IS NULL")
    op.execute("UPDATE event_outbox SET ws_delivered_at = now() WHERE NOT aet = ANY(ws_aets)")
    op.alter_column("event_outbox", "aet", nullable=False)
    op.drop_column("event_outbox", "ws_aets")
    op.execute("CREATE INDEX event_outbox_ws ON event_outbox (aet, id) WHERE ws_delivered_at IS NULL")
