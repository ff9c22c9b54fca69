"""search_trials.fit_seconds: wall time inside the trainer, evaluation included.

The per-trial overhead (dispatch, model build, data hand-off, database writes) is the
trial's duration minus this.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("search_trials") as batch:
        batch.add_column(sa.Column("fit_seconds", sa.Float()))


def downgrade() -> None:
    with op.batch_alter_table("search_trials") as batch:
        batch.drop_column("fit_seconds")
