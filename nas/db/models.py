"""The ORM: one model per table. Optuna's own tables live beside these in the same database."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}  # noqa: RUF012


class SearchRow(Base):
    """One search (an Optuna study of the same name) and the lock of the driver running it."""

    __tablename__ = "searches"

    search_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    config_json: Mapped[dict[str, Any]] = mapped_column(JSON)
    seed: Mapped[int] = mapped_column(Integer)
    package_version: Mapped[str] = mapped_column(String(64))
    data_fingerprint: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))  # running, finished, interrupted, failed
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # The lock: the driver that owns writes for this search, and when it was last alive.
    driver_token: Mapped[str | None] = mapped_column(String(64))
    driver_host: Mapped[str | None] = mapped_column(String(255))
    driver_pid: Mapped[int | None] = mapped_column(Integer)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ArchitectureRow(Base):
    """A genotype, once per canonical key; cost at the network size it was first built."""

    __tablename__ = "architectures"

    architecture_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    genotype_json: Mapped[dict[str, Any]] = mapped_column(JSON)
    params: Mapped[int | None] = mapped_column(BigInteger)
    mult_adds: Mapped[int | None] = mapped_column(BigInteger)
    network_json: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TrialRow(Base):
    """One Optuna trial of a search: what was trained, where, and how it ended."""

    __tablename__ = "search_trials"  # Optuna's own `trials` table shares the database
    __table_args__ = (
        UniqueConstraint("search_id", "number"),
        Index("ix_search_trials_search_state", "search_id", "state"),
    )

    search_trial_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    search_id: Mapped[int] = mapped_column(ForeignKey("searches.search_id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)  # Optuna's trial number
    architecture_id: Mapped[int | None] = mapped_column(
        ForeignKey("architectures.architecture_id")
    )
    state: Mapped[str] = mapped_column(String(16))  # RUNNING, COMPLETE, PRUNED, FAIL
    values_json: Mapped[list[Any] | None] = mapped_column(JSON)  # objective values, in order
    val_accuracy: Mapped[float | None] = mapped_column(Float)
    params: Mapped[int | None] = mapped_column(BigInteger)
    mult_adds: Mapped[int | None] = mapped_column(BigInteger)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    cells: Mapped[int | None] = mapped_column(Integer)  # N the trial's network was built at
    filters: Mapped[int | None] = mapped_column(Integer)  # F the trial's network was built at
    stem_stride: Mapped[int | None] = mapped_column(Integer)  # its CIFAR stem's; NULL: 1
    # the pre-filter's training throughput estimate (workers.throughput), beside the
    # measured images_per_s of its epochs
    est_images_per_s: Mapped[float | None] = mapped_column(Float)
    duration_s: Mapped[float | None] = mapped_column(Float)  # wall time, dispatch to result
    train_seconds: Mapped[float | None] = mapped_column(Float)  # trainer's steps only
    fit_seconds: Mapped[float | None] = mapped_column(Float)  # inside train(), evaluation too
    worker_node: Mapped[str | None] = mapped_column(String(255))
    device: Mapped[str | None] = mapped_column(String(64))
    seed: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)  # FAIL reason, or why it was pruned
    duplicate_of: Mapped[int | None] = mapped_column(Integer)  # trial number whose result it reuses
    retry_of: Mapped[int | None] = mapped_column(Integer)  # trial number it re-runs after a crash
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class EpochRow(Base):
    """Per-epoch metrics of a trial, as the worker streamed them."""

    __tablename__ = "epochs"
    __table_args__ = (UniqueConstraint("search_trial_id", "epoch"),)

    epoch_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    search_trial_id: Mapped[int] = mapped_column(
        ForeignKey("search_trials.search_trial_id", ondelete="CASCADE")
    )
    epoch: Mapped[int] = mapped_column(Integer)
    train_loss: Mapped[float | None] = mapped_column(Float)
    val_accuracy: Mapped[float | None] = mapped_column(Float)
    seconds: Mapped[float | None] = mapped_column(Float)
    images_per_s: Mapped[float | None] = mapped_column(Float)


class ModelRow(Base):
    """A final training (`nas train`, later `transfer` / `baselines`) and its checkpoint."""

    __tablename__ = "models"

    model_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # train, transfer, baseline
    arch: Mapped[str] = mapped_column(String(255))  # the REF or name it was built from
    architecture_id: Mapped[int | None] = mapped_column(
        ForeignKey("architectures.architecture_id")
    )
    layout: Mapped[str | None] = mapped_column(String(16))
    config_json: Mapped[dict[str, Any]] = mapped_column(JSON)
    metrics_json: Mapped[dict[str, Any]] = mapped_column(JSON)
    test_accuracy: Mapped[float | None] = mapped_column(Float)
    params: Mapped[int | None] = mapped_column(BigInteger)
    mult_adds: Mapped[int | None] = mapped_column(BigInteger)
    checkpoint: Mapped[str | None] = mapped_column(Text)
    card_json: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # the model card
    # made by the client before the insert, so a retried insert finds its own row
    model_uid: Mapped[str | None] = mapped_column(String(36), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
