"""Does it sound like them? The dataset's voice for a run, the words each sample should say, and
the suggested best checkpoint.

- :func:`voice_reference` / :func:`reference_voice`: the run's training clips are those of its
  preprocess run's snapshot (``clip_results``); each analysed clip with enough speech stores a
  unit-length voice embedding (``analysis["voice"]``, written by the worker's speech layer). The
  dataset's voice is their unit mean (:func:`core.media.voices.mean_voice`).
- :func:`sample_prompts`: the text each sample was rendered from (validation prompt with the
  trigger expanded; for the video-to-audio variants, the source clip's caption), so the worker
  can compare what it hears with the prompt's ``Speech: "..."`` words.
- :func:`suggest_best_checkpoint`: the highest mean speaker similarity among checkpoints without
  an error flag or a quality or intelligibility flag; ties go to the later step.

Pure Python (numpy for the mean): the web and the worker's ``sample_metrics`` job both use it.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.media.sample_metrics import ERROR
from core.media.voices import clip_voice, mean_voice
from core.models import Clip, Sample, TrainingRun
from core.names import VARIANT_LORA
from core.services.compare import run_prompts

# Flags that rule a checkpoint out of the suggestion besides every error-severity flag.
DISQUALIFYING_FLAGS = frozenset({"quality_dropped", "intelligibility_dropped"})
SUGGESTION_RULE = ("How the suggestion is chosen: the checkpoint whose LoRA samples sound most like the training "
                   "clips (highest mean voice similarity) among those without an error flag or a speech quality or "
                   "intelligibility flag; ties go to the later step. You decide: listen before you mark it.")


def _training_clips(session: Session, run: TrainingRun) -> list[Clip]:
    prep = run.preprocess_run
    ids = [int(item["clip_id"]) for item in (prep.clip_results if prep else None) or [] if item.get("clip_id") is not None]
    if not ids:
        return []
    return list(session.scalars(select(Clip).where(Clip.id.in_(ids)).order_by(Clip.id)))


def voice_reference(session: Session, run: TrainingRun) -> dict[str, Any]:
    """``{"clips": N, "speech_s": seconds}``: the run's training clips that carry a voice
    embedding, and their seconds of speech."""
    voices = [(c.analysis or {}).get("voice") or {} for c in _training_clips(session, run)]
    with_voice = [v for v in voices if v.get("embedding")]
    return {"clips": len(with_voice), "speech_s": round(sum(float(v.get("speech_s") or 0.0) for v in with_voice), 2)}


def reference_voice(session: Session, run: TrainingRun) -> list[float] | None:
    """The dataset's voice for this run: the unit mean of its training clips' voice embeddings,
    or None when no clip carries one."""
    voice = mean_voice(clip_voice(c) for c in _training_clips(session, run))
    return None if voice is None else [float(x) for x in np.asarray(voice)]


def sample_prompts(run: TrainingRun) -> dict[int, str]:
    """``{sample id: the text it was rendered from}`` for every sample of the run that has one."""
    prompts = run_prompts(run)
    prep = run.preprocess_run
    captions = {item.get("clip_id"): item.get("caption") for item in (prep.clip_results if prep else None) or []}
    found: dict[int, str] = {}
    for sample in run.samples:
        source = getattr(sample, "source_clip_id", None)
        text = captions.get(source) if source is not None else (
            prompts[sample.prompt_index] if 0 <= sample.prompt_index < len(prompts) else None)
        if text:
            found[sample.id] = text
    return found


def _ruled_out(flags: list[dict]) -> bool:
    return any(f.get("severity") == ERROR or f.get("code") in DISQUALIFYING_FLAGS for f in flags)


def _checkpoint_scores(samples: list[Sample]) -> dict[int, tuple[bool, float | None]]:
    """Per step of the LoRA samples: (ruled out?, mean speaker similarity or None)."""
    ruled_out: dict[int, bool] = defaultdict(bool)
    similarities: dict[int, list[float]] = defaultdict(list)
    for sample in samples:
        metrics = sample.metrics or {}
        if sample.variant != VARIANT_LORA or not metrics or "error" in metrics:
            continue
        ruled_out[sample.step] |= _ruled_out(metrics.get("flags") or [])
        if isinstance(metrics.get("speaker_similarity"), (int, float)):
            similarities[sample.step].append(float(metrics["speaker_similarity"]))
    return {step: (out, round(sum(similarities[step]) / len(similarities[step]), 4) if similarities[step] else None)
            for step, out in ruled_out.items()}


def suggest_best_checkpoint(run: TrainingRun) -> dict[str, Any] | None:
    """``{"step", "speaker_similarity", "why", "rule"}`` for the suggested checkpoint, or None when
    no measured checkpoint qualifies. Without any similarity (no voice reference, no speech) the
    latest qualifying checkpoint is suggested, and ``why`` says so."""
    checkpoints = {c.step for c in run.checkpoints}
    scores = {step: score for step, score in _checkpoint_scores(run.samples).items() if step in checkpoints}
    candidates = [(similarity, step) for step, (out, similarity) in scores.items() if not out]
    if not candidates:
        return None
    rated = [(similarity, step) for similarity, step in candidates if similarity is not None]
    if rated:
        similarity, step = max(rated, key=lambda item: (round(item[0], 2), item[1]))  # within 0.005: a tie
        why = (f"highest speaker similarity to the training clips ({similarity:.2f}) of {len(rated)} checkpoint(s) "
               "without a disqualifying flag")
    else:
        similarity, step = None, max(step for _, step in candidates)
        why = "no speaker similarity was measured, so this is the latest checkpoint without a disqualifying flag"
    return {"step": step, "speaker_similarity": similarity, "why": why, "rule": SUGGESTION_RULE}
