"""Rows a running job writes: metrics, checkpoints, samples (upserted by step) and log lines.

Every write is keyed so that doing a step again after a crash updates the row it wrote before
instead of adding a second one: (run, step) for metrics and checkpoints, (run, step, prompt,
variant) for samples. Used by the worker's handlers and by tests; no torch here.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from core.models import Checkpoint, LogLine, Metric, Sample, utcnow

LOG_LEVELS = ("info", "warning", "error")
MAX_LOG_TEXT = 4000


def record_metric(session: Session, run_id: int, step: int, values: dict[str, Any]) -> Metric:
    """Insert or update the metric row of ``step``.

    ``values``: loss, loss_video (None where the training mode scores no video), loss_audio (None
    without audio), lr, grad_norm, step_time,
    gpu_mem (peak bytes).
    """
    row = session.scalar(select(Metric).where(Metric.run_id == run_id, Metric.step == step))
    if row is None:
        row = Metric(run_id=run_id, step=step)
        session.add(row)
    row.loss = float(values["loss"])
    row.loss_video = None if values.get("loss_video") is None else float(values["loss_video"])
    row.loss_audio = None if values.get("loss_audio") is None else float(values["loss_audio"])
    row.lr = float(values["lr"])
    row.grad_norm = float(values["grad_norm"])
    row.step_time = float(values["step_time"])
    row.gpu_mem = int(values["gpu_mem"])
    return row


def record_checkpoint(session: Session, run_id: int, step: int, files: dict[str, str],
                      key_counts: dict[str, int] | None = None) -> Checkpoint:
    """Insert or update the checkpoint row of ``step``; ``files`` maps official|diffusers|state to paths under DATA_DIR."""
    row = session.scalar(select(Checkpoint).where(Checkpoint.run_id == run_id, Checkpoint.step == step))
    if row is None:
        row = Checkpoint(run_id=run_id, step=step)
        session.add(row)
    row.files = dict(files)
    if key_counts is not None or not row.key_counts:
        row.key_counts = dict(key_counts or {})
    return row


def record_sample(session: Session, run_id: int, *, step: int, prompt_index: int, variant: str, seed: int,
                  wav: str, mp4: str, metrics: dict[str, Any] | None = None,
                  source_clip_id: int | None = None) -> Sample:
    """Insert or update one validation sample (paths under DATA_DIR; ``source_clip_id``: the
    training clip of a v2a sample)."""
    row = session.scalar(select(Sample).where(
        Sample.run_id == run_id, Sample.step == step, Sample.prompt_index == prompt_index, Sample.variant == variant))
    if row is None:
        row = Sample(run_id=run_id, step=step, prompt_index=prompt_index, variant=variant)
        session.add(row)
    row.seed, row.wav, row.mp4, row.source_clip_id = int(seed), wav, mp4, source_clip_id
    row.metrics = dict(metrics or {})
    row.created_at = utcnow()
    return row


def add_log_line(session: Session, job_id: int, level: str, text: str) -> LogLine:
    """Append a line to a job's log (``level``: info, warning or error)."""
    line = LogLine(job_id=job_id, level=level if level in LOG_LEVELS else "info", text=text[:MAX_LOG_TEXT])
    session.add(line)
    return line


def forget_after_step(session: Session, run_id: int, step: int) -> int:
    """Delete metrics, samples and checkpoints of steps after ``step`` (they are about to be redone).

    Called when a run resumes from its checkpoint at ``step``: the steps after it are trained
    again, and their rows are written anew (so a live chart receives them as new events).
    Returns the number of rows removed.
    """
    removed = 0
    for model in (Metric, Sample, Checkpoint):
        result = session.execute(delete(model).where(model.run_id == run_id, model.step > step))
        removed += result.rowcount or 0
    return removed
