"""Four indexes of ``workitems`` no query uses, each one more entry that every create and every state
change (a claim: not a HOT update) writes: ``workitems_patient_id`` and ``workitems_accession_number``
(equality, ``= ANY`` and prefix LIKE on those columns use ``workitems_patient_id_prefix`` /
``workitems_accession_prefix``, text_pattern_ops b-trees, migration 0009), ``workitems_patient_name``
(Patient Name is matched case-insensitively, on ``lower(patient_name)``: ``workitems_patient_name_ci``),
``workitems_performer_aet`` (nothing selects by the AE that claimed; a claim writes that column).

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-30
"""

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

DROPPED = {"workitems_patient_id": "patient_id", "workitems_accession_number": "accession_number",
           "workitems_patient_name": "patient_name", "workitems_performer_aet": "performer_aet"}


def upgrade() -> None:
    for name in DROPPED:
        op.drop_index(name, "workitems")


def downgrade() -> None:
    for name, column in DROPPED.items():
        op.create_index(name, "workitems", [column])
