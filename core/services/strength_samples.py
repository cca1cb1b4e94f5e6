"""Per-modality LoRA strengths: sample a checkpoint with the video and audio sides scaled apart.

A strength sample is a validation sample (same prompts, same seed) rendered with the LoRA's
video-side modules at ``video_strength`` and its audio-side modules at ``audio_strength``. Its
:class:`core.models.Sample` variant encodes both, e.g. ``lora-v0.50-a1.00`` (16 characters, within
the column's 20). :func:`queue_strength_samples` checks the request and queues the
``strength_samples`` job (gpu queue, :mod:`worker.handlers.strength_samples`). Pure Python: no torch.
"""

from __future__ import annotations

import re

from sqlalchemy.orm import Session

from core.errors import InvalidInput
from core.models import Job, TrainingRun
from core.names import JobKind, Queue
from core.services.job_queue import queue_job

MIN_STRENGTH, MAX_STRENGTH = 0.0, 2.0
_VARIANT = re.compile(r"^lora-v(\d\.\d\d)-a(\d\.\d\d)$")


def strength_variant(video_strength: float, audio_strength: float) -> str:
    """The sample variant of a pair of strengths: ``lora-v0.50-a1.00``."""
    return f"lora-v{video_strength:.2f}-a{audio_strength:.2f}"


def parse_strength_variant(variant: str) -> tuple[float, float] | None:
    """(video, audio) strengths of a variant made by :func:`strength_variant`, else None."""
    match = _VARIANT.match(variant or "")
    return (float(match.group(1)), float(match.group(2))) if match else None


def strength_label(variant: str) -> str:
    """A short column label for a strength variant: ``video ×0.50 · audio ×1.00``."""
    video, audio = parse_strength_variant(variant) or (1.0, 1.0)
    return f"video ×{video:.2f} · audio ×{audio:.2f}"


def check_strength(name: str, value: float) -> float:
    """``value`` if it lies in 0..2 with at most two decimals (what a variant name holds), else 422."""
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInput("invalid_strength", f"{name} must be a number between 0 and 2.") from exc
    if not MIN_STRENGTH <= number <= MAX_STRENGTH:
        raise InvalidInput("invalid_strength",
                           f"{name} must lie between {MIN_STRENGTH:g} and {MAX_STRENGTH:g} (1 is the trained strength); got {number:g}.")
    if abs(number - round(number, 2)) > 1e-9:
        raise InvalidInput("invalid_strength", f"{name} may have at most two decimals (for example 0.25); got {number:g}.")
    return round(number, 2)


def queue_strength_samples(session: Session, run: TrainingRun, step: int,
                           video_strength: float, audio_strength: float) -> Job:
    """Check the step and strengths, then queue the job that renders checkpoint ``step``'s validation
    prompts at these strengths (422 for an unknown step or a strength outside 0..2). Commits."""
    video = check_strength("video_strength", video_strength)
    audio = check_strength("audio_strength", audio_strength)
    steps = sorted(c.step for c in run.checkpoints)
    if step not in steps:
        listed = ", ".join(str(s) for s in steps) or "none yet"
        raise InvalidInput("unknown_checkpoint", f"Run #{run.id} has no checkpoint at step {step} (checkpoints: {listed}).")
    if not (run.config or {}).get("validation", {}).get("prompts"):
        raise InvalidInput("no_prompts", f"Run #{run.id} has no validation prompts to render.")
    return queue_job(session, JobKind.strength_samples, Queue.gpu, {
        "run_id": run.id, "step": step, "video_strength": video, "audio_strength": audio,
        "variant": strength_variant(video, audio)})
