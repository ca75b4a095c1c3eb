"""Worklist searches by performer: the Code Values of Scheduled Human Performers Sequence > Human
Performer Code Sequence as a text[] column that PostgreSQL derives from the dataset (a stored generated
column: no backfill, never out of step), a GIN index on it, and the (state, Worklist Label, seq) index
carrying it, so that a worklist page and its count by state + Worklist Label + performer are index-only
scans instead of a GIN over the whole dataset ANDed with a bitmap and a JSONB path test per heap row.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

PERFORMER_CODES = "'$.\"00404034\".Value[*].\"00404009\".Value[*].\"00080100\".Value[*]'"


def upgrade() -> None:
    # the strings found at a jsonpath, each at most 256 characters (a longer one is matched in the
    # dataset: ups_server/dicom/matching.py), without repeats
    op.execute("""
        CREATE FUNCTION ups_sequence_values(dataset jsonb, path jsonpath) RETURNS text[]
        LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
            SELECT coalesce(array_agg(DISTINCT v #>> '{}'), '{}') FROM jsonb_path_query(dataset, path) AS v
            WHERE jsonb_typeof(v) = 'string' AND length(v #>> '{}') <= 256
        $$""")
    op.execute("ALTER TABLE workitems ADD COLUMN performer_codes text[] NOT NULL"
               f" GENERATED ALWAYS AS (ups_sequence_values(dataset, {PERFORMER_CODES})) STORED")
    op.execute("CREATE INDEX workitems_performer_codes ON workitems USING gin (performer_codes)")
    op.drop_index("workitems_state_label_seq", "workitems")
    op.execute("CREATE INDEX workitems_state_label_seq ON workitems (state, worklist_label, seq)"
               " INCLUDE (start_dt, performer_codes)")


def downgrade() -> None:
    op.drop_index("workitems_state_label_seq", "workitems")
    op.execute("CREATE INDEX workitems_state_label_seq ON workitems (state, worklist_label, seq) INCLUDE (start_dt)")
    op.drop_index("workitems_performer_codes", "workitems")
    op.drop_column("workitems", "performer_codes")
    op.execute("DROP FUNCTION ups_sequence_values(jsonb, jsonpath)")
