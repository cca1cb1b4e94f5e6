"""ORM models: the database is the source of truth for datasets, clips and every job."""

from __future__ import annotations

import enum
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON, BigInteger, DateTime, Float, ForeignKey, Index, Integer, String, Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Dataset(Base):
    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    trigger: Mapped[str] = mapped_column(String(100))
    buckets: Mapped[str] = mapped_column(String(500), default="512x512x49;512x512x89")
    default_voice: Mapped[str] = mapped_column(Text, default="")
    default_sounds: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    clips: Mapped[list[Clip]] = relationship(
        back_populates="dataset", cascade="all, delete-orphan", order_by="Clip.id"
    )


class ClipStatus(str, enum.Enum):
    uploaded = "uploaded"  # stored, waiting for the probe task
    probing = "probing"  # the cpu worker is analysing it
    ready = "ready"  # analysed; may still carry warnings
    rejected = "rejected"  # analysed; an error finding blocks it from training


class Clip(Base):
    __tablename__ = "clips"
    # Not unique: a re-uploaded file becomes a clip with a ``duplicate_clip`` finding, so the
    # person sees what happened instead of a silent refusal.
    __table_args__ = (Index("ix_clips_dataset_hash", "dataset_id", "content_hash"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    original_name: Mapped[str] = mapped_column(String(500))  # shown to people, never used as a path
    stored_path: Mapped[str] = mapped_column(String(1000))  # relative to DATA_DIR
    content_hash: Mapped[str] = mapped_column(String(64), index=True)  # sha256 of the bytes
    size_bytes: Mapped[int] = mapped_column(BigInteger)  # uploads may pass 2 GiB
    status: Mapped[str] = mapped_column(String(20), default=ClipStatus.uploaded.value)
    probe: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    analysis: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    findings: Mapped[list[Any]] = mapped_column(JSON, default=list)
    media: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # proxy/poster/waveform/spectrogram
    probe_job_id: Mapped[int | None] = mapped_column(Integer, default=None)  # the latest probe_clip job
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    dataset: Mapped[Dataset] = relationship(back_populates="clips")
    caption: Mapped[Caption | None] = relationship(
        back_populates="clip", cascade="all, delete-orphan", uselist=False
    )


class Caption(Base):
    __tablename__ = "captions"

    id: Mapped[int] = mapped_column(primary_key=True)
    clip_id: Mapped[int] = mapped_column(ForeignKey("clips.id", ondelete="CASCADE"), unique=True)
    visual: Mapped[str] = mapped_column(Text, default="")
    transcript: Mapped[str] = mapped_column(Text, default="")
    voice: Mapped[str] = mapped_column(Text, default="")
    sounds: Mapped[str] = mapped_column(Text, default="")
    text: Mapped[str] = mapped_column(Text, default="")  # free-text override of the composed body
    composed: Mapped[str] = mapped_column(Text, default="")  # what the trainer sees, trigger first
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    clip: Mapped[Clip] = relationship(back_populates="caption")


class JobStatus(str, enum.Enum):
    queued = "queued"  # row written, task sent; no worker has claimed it yet
    running = "running"  # a worker holds it and beats its heartbeat
    cancelling = "cancelling"  # cancel asked; becomes cancelled or interrupted within the heartbeat timeout
    succeeded = "succeeded"
    failed = "failed"  # error holds what a person can act on
    cancelled = "cancelled"
    interrupted = "interrupted"  # its worker died (stale heartbeat); can be resumed

    @property
    def is_final(self) -> bool:
        return self in FINAL_JOB_STATES


FINAL_JOB_STATES = {JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled, JobStatus.interrupted}


class Job(Base):
    """One background job. Celery carries only its id; this row is the truth."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(40), index=True)  # probe_clip, preprocess, train, ...
    queue: Mapped[str] = mapped_column(String(20), default="cpu")
    status: Mapped[str] = mapped_column(String(20), default=JobStatus.queued.value, index=True)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    progress: Mapped[float] = mapped_column(Float, default=0.0)  # 0..1
    step: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int] = mapped_column(Integer, default=0)
    eta_s: Mapped[float | None] = mapped_column(Float, default=None)
    message: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str | None] = mapped_column(Text, default=None)
    worker: Mapped[str | None] = mapped_column(String(200), default=None)
    gpu: Mapped[str | None] = mapped_column(String(200), default=None)
    celery_id: Mapped[str | None] = mapped_column(String(64), default=None)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
