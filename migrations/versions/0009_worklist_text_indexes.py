"""Reading page: prefix indexes for its free text on patient ID and accession number.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # the worklist's free text is a prefix of the patient name (workitems_patient_name_ci), the
    # patient ID or the accession number: LIKE 'x%' needs text_pattern_ops under any collation
    op.execute("CREATE INDEX workitems_patient_id_prefix ON workitems (patient_id text_pattern_ops)")
    op.execute("CREATE INDEX workitems_accession_prefix ON workitems (accession_number text_pattern_ops)")


def downgrade() -> None:
    op.drop_index("workitems_accession_prefix", "workitems")
    op.drop_index("workitems_patient_id_prefix", "workitems")
