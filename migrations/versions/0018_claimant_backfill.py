"""Claims made before the claimant was kept (issue 10 residual): their claimant is their requester.

Before 0006 every claim was made in open mode, where the claimant a claim records is the reader
the client names, its requester (``{requester}``, ``?requester=``, the calling AE title), which
the row keeps in ``performer_aet``. A row claimed then (IN PROGRESS, or claimed and since
COMPLETED or CANCELED) has a performer and no claimant; it gets the claimant it would have been
given: the reading page's "Mine", skips and, under --auth oidc, the only-the-claimant rule and
blind reading then treat it as they treat any other claim (under oidc the claimant is that
requester: a station with that AE title and --ae-roles, or an admin, acts on it).

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-30
"""

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("UPDATE workitems SET claimant = performer_aet "
               "WHERE claimant IS NULL AND performer_aet IS NOT NULL AND state <> 'SCHEDULED'")


def downgrade() -> None:
    pass  # the claimant is the requester either way; 0006's downgrade drops the column
