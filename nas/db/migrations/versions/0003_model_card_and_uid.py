"""models.card_json and models.model_uid: one typed model card per trained model, and a
client-made key that makes a retried `record_model` insert safe to repeat.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("models") as batch:
        batch.add_column(sa.Column("card_json", sa.JSON()))
        batch.add_column(sa.Column("model_uid", sa.String(36)))
        batch.create_unique_constraint("uq_models_model_uid", ["model_uid"])


def downgrade() -> None:
    with op.batch_alter_table("models") as batch:
        batch.drop_constraint("uq_models_model_uid", type_="unique")
        batch.drop_column("model_uid")
        batch.drop_column("card_json")
