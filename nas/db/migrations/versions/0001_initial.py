"""The first schema: searches, architectures, search_trials, epochs, models.

`search_trials`, not `trials`: Optuna's RDBStorage, in the same database, owns `trials`.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "searches",
        sa.Column("search_id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("config_json", sa.JSON(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("package_version", sa.String(64), nullable=False),
        sa.Column("data_fingerprint", sa.String(128)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.Column("driver_token", sa.String(64)),
        sa.Column("driver_host", sa.String(255)),
        sa.Column("driver_pid", sa.Integer()),
        sa.Column("heartbeat_at", TZ),
    )
    op.create_table(
        "architectures",
        sa.Column("architecture_id", sa.Integer(), primary_key=True),
        sa.Column("key", sa.String(64), nullable=False, unique=True),
        sa.Column("genotype_json", sa.JSON(), nullable=False),
        sa.Column("params", sa.BigInteger()),
        sa.Column("mult_adds", sa.BigInteger()),
        sa.Column("network_json", sa.JSON()),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_table(
        "search_trials",
        sa.Column("search_trial_id", sa.Integer(), primary_key=True),
        sa.Column(
            "search_id",
            sa.Integer(),
            sa.ForeignKey("searches.search_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column(
            "architecture_id", sa.Integer(), sa.ForeignKey("architectures.architecture_id")
        ),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("values_json", sa.JSON()),
        sa.Column("val_accuracy", sa.Float()),
        sa.Column("params", sa.BigInteger()),
        sa.Column("mult_adds", sa.BigInteger()),
        sa.Column("latency_ms", sa.Float()),
        sa.Column("duration_s", sa.Float()),
        sa.Column("train_seconds", sa.Float()),
        sa.Column("worker_node", sa.String(255)),
        sa.Column("device", sa.String(64)),
        sa.Column("seed", sa.Integer()),
        sa.Column("error", sa.Text()),
        sa.Column("duplicate_of", sa.Integer()),
        sa.Column("retry_of", sa.Integer()),
        sa.Column("started_at", TZ, nullable=False),
        sa.Column("finished_at", TZ),
        sa.UniqueConstraint("search_id", "number"),
    )
    op.create_index("ix_search_trials_search_state", "search_trials", ["search_id", "state"])
    op.create_table(
        "epochs",
        sa.Column("epoch_id", sa.Integer(), primary_key=True),
        sa.Column(
            "search_trial_id",
            sa.Integer(),
            sa.ForeignKey("search_trials.search_trial_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("train_loss", sa.Float()),
        sa.Column("val_accuracy", sa.Float()),
        sa.Column("seconds", sa.Float()),
        sa.Column("images_per_s", sa.Float()),
        sa.UniqueConstraint("search_trial_id", "epoch"),
    )
    op.create_table(
        "models",
        sa.Column("model_id", sa.Integer(), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("arch", sa.String(255), nullable=False),
        sa.Column(
            "architecture_id", sa.Integer(), sa.ForeignKey("architectures.architecture_id")
        ),
        sa.Column("layout", sa.String(16)),
        sa.Column("config_json", sa.JSON(), nullable=False),
        sa.Column("metrics_json", sa.JSON(), nullable=False),
        sa.Column("test_accuracy", sa.Float()),
        sa.Column("params", sa.BigInteger()),
        sa.Column("mult_adds", sa.BigInteger()),
        sa.Column("checkpoint", sa.Text()),
        sa.Column("created_at", TZ, nullable=False),
    )


def downgrade() -> None:
    for table in ("models", "epochs", "search_trials", "architectures", "searches"):
        op.drop_table(table)
