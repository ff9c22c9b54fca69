"""search_trials.stem_stride: the CIFAR stem's stride a trial's network was built at.

The stem stride is a searched macro decision beside N and F (cpu-search: 1 or 2), so it
belongs to the trial. Rows from before this revision hold NULL, read as the paper's 1.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("search_trials") as batch:
        batch.add_column(sa.Column("stem_stride", sa.Integer()))


def downgrade() -> None:
    with op.batch_alter_table("search_trials") as batch:
        batch.drop_column("stem_stride")
