"""ORM models: the database is the source of truth for datasets, clips and every job."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


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
    language: Mapped[str] = mapped_column(String(16), default="en")  # what the recogniser listens for
    auto_transcribe: Mapped[bool] = mapped_column(Boolean, default=False)  # transcribe each new clip
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    clips: Mapped[list[Clip]] = relationship(
        back_populates="dataset", cascade="all, delete-orphan", order_by="Clip.id"
    )


class ClipStatus(str, enum.Enum):
    uploaded = "uploaded"  # stored, waiting for the probe task
    probing = "probing"  # the cpu worker is analysing it
    ready = "ready"  # analysed; may still carry warnings
    rejected = "rejected"  # analysed; an error finding blocks it from training
    split = "split"  # cut into new clips (``split_into``); kept for reference, not trained


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
    # What the recogniser heard (or the aligner placed): {"text", "words": [{"word","start_s","end_s",
    # "confidence"}], "source": "recognised"|"aligned", "backend", "language"}
    speech: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    split_plan: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)  # {"parts": [...]}
    split_into: Mapped[list[Any] | None] = mapped_column(JSON, default=None)  # ids of the clips cut from it
    split_from_id: Mapped[int | None] = mapped_column(Integer, default=None)  # the clip this one was cut from
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
    transcript_source: Mapped[str] = mapped_column(String(10), default="user")  # auto | user
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
    # Actions a person asked of the running job, name -> when asked (ISO time): "checkpoint",
    # "sample". The worker carries each out between steps and removes it (core.services.job_actions).
    requests: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)


# --- training: preprocess runs, training runs and what they produce ---------------------------
# A run's status is its current job's status (the job row is the truth); resuming a run gives it
# a new job. Rows a worker writes while a run trains are keyed by (run, step[, prompt, variant])
# so re-running a step after a crash updates a row instead of adding a second one.


class PreprocessRun(Base):
    """One preprocessing of a dataset's trainable clips with a model preset, buckets and trigger."""

    __tablename__ = "preprocess_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    model: Mapped[str] = mapped_column(String(40))  # model preset: toy | toy-2.0 | ltx-2.3 | ltx-2
    buckets: Mapped[str] = mapped_column(String(500))
    trigger: Mapped[str] = mapped_column(String(100))
    # sha256 of model, buckets, trigger and every exported clip (id, content hash, caption):
    # training is offered only while the dataset still has this fingerprint.
    fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    clip_results: Mapped[list[Any]] = mapped_column(JSON, default=list)  # one dict per exported clip
    output_dir: Mapped[str] = mapped_column(String(1000))  # relative to DATA_DIR
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"), default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    dataset: Mapped[Dataset] = relationship()
    job: Mapped[Job | None] = relationship()

    @property
    def status(self) -> str:
        """The status of its current job (``queued`` ... ``succeeded``)."""
        return self.job.status if self.job is not None else JobStatus.interrupted.value


class TrainingRun(Base):
    """A LoRA training run: its config, the preprocessed data it reads, and its output folder."""

    __tablename__ = "training_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    preprocess_run_id: Mapped[int] = mapped_column(ForeignKey("preprocess_runs.id", ondelete="RESTRICT"))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)  # a RunConfig as JSON, paths filled in
    output_dir: Mapped[str] = mapped_column(String(1000))  # relative to DATA_DIR
    best_checkpoint_step: Mapped[int | None] = mapped_column(Integer, default=None)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"), default=None)
    parent_run_id: Mapped[int | None] = mapped_column(
        ForeignKey("training_runs.id", ondelete="SET NULL"), default=None)  # the run this one was cloned from
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    dataset: Mapped[Dataset] = relationship()
    preprocess_run: Mapped[PreprocessRun] = relationship()
    job: Mapped[Job | None] = relationship()
    checkpoints: Mapped[list[Checkpoint]] = relationship(
        back_populates="run", cascade="all, delete-orphan", order_by="Checkpoint.step")
    samples: Mapped[list[Sample]] = relationship(
        back_populates="run", cascade="all, delete-orphan",
        order_by=lambda: (Sample.step, Sample.prompt_index, Sample.variant))
    metrics: Mapped[list[Metric]] = relationship(
        back_populates="run", cascade="all, delete-orphan", order_by="Metric.step")

    @property
    def status(self) -> str:
        """The status of its current job (``queued`` ... ``succeeded``)."""
        return self.job.status if self.job is not None else JobStatus.interrupted.value


class Checkpoint(Base):
    """The LoRA files of one step: official (ComfyUI) and diffusers layouts, plus the resumable state."""

    __tablename__ = "checkpoints"
    __table_args__ = (UniqueConstraint("run_id", "step", name="uq_checkpoint_run_step"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("training_runs.id", ondelete="CASCADE"), index=True)
    step: Mapped[int] = mapped_column(Integer)
    files: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # official|diffusers|state -> path under DATA_DIR
    key_counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # LoRA layers per module family
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    run: Mapped[TrainingRun] = relationship(back_populates="checkpoints")


class Sample(Base):
    """One validation sample: prompt ``prompt_index`` (0-based) at ``step`` in one variant (for the
    v2a variants, training clip ``prompt_index`` of the run's v2a clips, ``source_clip_id``)."""

    __tablename__ = "samples"
    __table_args__ = (
        UniqueConstraint("run_id", "step", "prompt_index", "variant", name="uq_sample_run_step_prompt_variant"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("training_runs.id", ondelete="CASCADE"), index=True)
    step: Mapped[int] = mapped_column(Integer)
    prompt_index: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(BigInteger)
    variant: Mapped[str] = mapped_column(String(20))  # core.names.SAMPLE_VARIANTS
    # v2a variants: the training clip whose own video the audio was generated for (the studio's
    # clip id; ``prompt_index`` is then the clip's place among the run's v2a clips); None otherwise
    source_clip_id: Mapped[int | None] = mapped_column(Integer, nullable=True, default=None)
    wav: Mapped[str] = mapped_column(String(1000))  # path under DATA_DIR
    mp4: Mapped[str] = mapped_column(String(1000))  # path under DATA_DIR
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    run: Mapped[TrainingRun] = relationship(back_populates="samples")


class Metric(Base):
    """The losses and timings of one optimizer step."""

    __tablename__ = "metrics"
    __table_args__ = (UniqueConstraint("run_id", "step", name="uq_metric_run_step"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("training_runs.id", ondelete="CASCADE"), index=True)
    step: Mapped[int] = mapped_column(Integer)
    loss: Mapped[float] = mapped_column(Float)
    loss_video: Mapped[float | None] = mapped_column(Float, default=None)  # None: the mode scores no video
    loss_audio: Mapped[float | None] = mapped_column(Float, default=None)  # None without audio latents
    lr: Mapped[float] = mapped_column(Float)
    grad_norm: Mapped[float] = mapped_column(Float)
    step_time: Mapped[float] = mapped_column(Float)  # seconds
    gpu_mem: Mapped[int] = mapped_column(BigInteger)  # peak bytes (GPU, or process RSS on the CPU)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    run: Mapped[TrainingRun] = relationship(back_populates="metrics")


class LogLine(Base):
    """A human-readable line a job wrote (shown in the live log)."""

    __tablename__ = "log_lines"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    level: Mapped[str] = mapped_column(String(10), default="info")  # info | warning | error
    text: Mapped[str] = mapped_column(Text)


# --- comparing checkpoints: LoRA key reports and blind listening votes -----------------------


class LoraKeyReport(Base):
    """The key report of one LoRA file: a checkpoint's file (official or diffusers layout) or an
    uploaded file from another trainer, loaded into a fresh pipeline by a ``key_report`` job."""

    __tablename__ = "lora_key_reports"
    __table_args__ = (UniqueConstraint("checkpoint_id", "layout", name="uq_key_report_checkpoint_layout"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    checkpoint_id: Mapped[int | None] = mapped_column(
        ForeignKey("checkpoints.id", ondelete="CASCADE"), default=None, index=True)  # None for an upload
    layout: Mapped[str] = mapped_column(String(20))  # official | diffusers | upload
    file_name: Mapped[str] = mapped_column(String(500))  # shown to people (an upload's original name)
    path: Mapped[str] = mapped_column(String(1000))  # the file, under DATA_DIR
    preset: Mapped[str] = mapped_column(String(40))  # model preset the file was loaded into
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending | done | failed
    report: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)  # VerifyReport.to_dict()
    error: Mapped[str | None] = mapped_column(Text, default=None)  # why no report could be made
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"), default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    checkpoint: Mapped[Checkpoint | None] = relationship()
    job: Mapped[Job | None] = relationship()


class Vote(Base):
    """One blind A/B listening trial: two samples of the same prompt under hidden labels.

    ``choice`` is ``a``, ``b`` or ``same`` once the listener decided (None while open).
    """

    __tablename__ = "votes"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("training_runs.id", ondelete="CASCADE"), index=True)
    sample_a_id: Mapped[int] = mapped_column(ForeignKey("samples.id", ondelete="CASCADE"))
    sample_b_id: Mapped[int] = mapped_column(ForeignKey("samples.id", ondelete="CASCADE"))
    choice: Mapped[str | None] = mapped_column(String(10), default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)

    sample_a: Mapped[Sample] = relationship(foreign_keys=[sample_a_id])
    sample_b: Mapped[Sample] = relationship(foreign_keys=[sample_b_id])


# --- workers: which Celery workers are up, and what they serve ---------------------------------


class Worker(Base):
    """A Celery worker process that announced itself (core.services.workers): the queues it serves,
    its GPUs and a heartbeat. Written by the worker on start, refreshed every few seconds, deleted
    when it stops cleanly; a row whose heartbeat is old belongs to a worker that died."""

    __tablename__ = "workers"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))  # the Celery node name, e.g. avlora-gpu@host
    host: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    queues: Mapped[list[Any]] = mapped_column(JSON, default=list)  # queue names it consumes
    gpus: Mapped[list[Any]] = mapped_column(JSON, default=list)  # GPU names it sees; empty on a CPU host
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
