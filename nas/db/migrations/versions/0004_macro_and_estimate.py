"""search_trials.cells, .filters, .est_images_per_s: the trial's N@F and its throughput estimate.

N and F are searched decisions beside the cell (one cell at two sizes is two candidates), so
the size belongs to the trial, not to the architecture row. The estimate is what the
pre-filter predicted before the trial reached a worker.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("search_trials") as batch:
        batch.add_column(sa.Column("cells", sa.Integer()))
        batch.add_column(sa.Column("filters", sa.Integer()))
        batch.add_column(sa.Column("est_images_per_s", sa.Float()))


def downgrade() -> None:
    with op.batch_alter_table("search_trials") as batch:
        batch.drop_column("est_images_per_s")
        batch.drop_column("filters")
        batch.drop_column("cells")
