"""sample_metrics: measure a run's validation samples and flag where a checkpoint's audio degrades (cpu queue).

For run ``params["run_id"]``, every :class:`core.models.Sample` without metrics is measured
(:func:`core.media.sample_metrics.measure_sample` on its wav), gets its ``voice_distance`` to the
training clips (their decoded audio from the run's preprocess run, pooled into one MFCC voice
profile), its voice measures (:func:`worker.speech.sample_voice.voice_measures`: speaker
similarity to the dataset's voice, word error rate against the prompt's words, DNSMOS quality;
a sample measured before these existed gets them on the next run, and its flags again) and, for
LoRA variants, ``flags`` from
:func:`core.media.sample_metrics.compare_to_base` against the base-model sample of the same
prompt. Base samples are measured first; a LoRA sample measured before its base gets its flags
on a later run of this job. A sample whose audio cannot be measured stores ``{"error": ...}``
so it is not retried for ever. Idempotent: measured samples are left as they are. The training
clips the compare grid plays as references are measured the same way, once
(:mod:`core.services.compare_references`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlalchemy import select

from core.config import get_settings
from core.db import session_scope
from core.media.analysis import AudioDecodeError
from core.media.sample_metrics import SampleAudioError, compare_to_base, measure_sample, voice_distance
from core.models import PreprocessRun, Sample, TrainingRun
from core.names import (
    LORA_OFF_VARIANTS,
    REFERENCE_VARIANTS,
    V2A_VARIANTS,
    VARIANT_BASE,
    VARIANT_REF_BASE,
    VARIANT_REF_LORA,
    VARIANT_REF_OTHER_BASE,
    VARIANT_REF_OTHER_LORA,
    VARIANT_V2A_BASE,
)
from core.services import compare_references
from core.services.compare import run_prompts
from core.services.voice_metrics import reference_voice, sample_prompts
from worker.jobs import JobContext, JobFailed

log = logging.getLogger(__name__)
MAX_REFERENCE_CLIPS = 50  # the pooled voice profile is stable long before this many clips
# a reference_voice LoRA sample is compared with the LoRA-off sample given the same reference
REFERENCE_BASE_OF = {VARIANT_REF_LORA: VARIANT_REF_BASE, VARIANT_REF_OTHER_LORA: VARIANT_REF_OTHER_BASE}


def _reference_paths(preprocess_run: PreprocessRun | None, data_dir: Path) -> list[Path]:
    """Decoded audio of the clips the run trained on (paths that exist)."""
    if preprocess_run is None:
        return []
    paths = []
    for item in preprocess_run.clip_results or []:
        relative = item.get("decoded_audio")
        if relative and (data_dir / relative).is_file():
            paths.append(data_dir / relative)
    return paths[:MAX_REFERENCE_CLIPS]


def _measure(path: Path) -> dict[str, Any]:
    try:
        return measure_sample(path)
    except (SampleAudioError, AudioDecodeError, OSError) as exc:
        return {"error": f"{path.name}: {exc}"}


def reference_profiles(paths: list[Path]) -> list[dict]:
    """The measured metrics of each training clip that has a voice profile."""
    measured = [_measure(path) for path in paths]
    return [m for m in measured if m.get("mfcc")]


def _with_distance(metrics: dict[str, Any], references: list[dict]) -> dict[str, Any]:
    if "error" not in metrics:
        metrics["voice_distance"] = voice_distance(metrics, references) if references else None
    return metrics


def _needs_voice(metrics: dict | None) -> bool:
    """Measured before the voice measures existed (and measurable)."""
    return bool(metrics) and "error" not in metrics and "voice_reasons" not in metrics


def _plan(run_id: int, data_dir: Path) -> tuple[list[Path], list[tuple], list[float] | None, list[tuple]]:
    """The training clips' audio, the samples to (re)measure, the dataset's voice and the
    compare grid's reference clips to measure."""
    with session_scope() as session:
        run = session.get(TrainingRun, run_id)
        if run is None:
            raise JobFailed(f"Training run #{run_id} no longer exists.")
        prompts = sample_prompts(run)
        todo = [(s.id, s.variant, data_dir / s.wav, dict(s.metrics or {}), prompts.get(s.id))
                for s in run.samples if not s.metrics or _needs_voice(s.metrics)]
        shown = [(run.preprocess_run_id, clip_id, data_dir / wav, caption) for clip_id, wav, caption
                 in compare_references.references_to_measure(run, run_prompts(run))]
        voice = reference_voice(session, run) if todo or shown else None
        return _reference_paths(run.preprocess_run, data_dir), todo, voice, shown


def _measure_shown_references(shown: list[tuple], references: list[dict], voice) -> None:
    """Measure the reference clips the compare grid plays, like the samples."""
    for preprocess_run_id, clip_id, wav, caption in shown:
        metrics = _measured(wav, {}, caption, references, voice)
        with session_scope() as session:
            compare_references.record_reference_metrics(session, preprocess_run_id, clip_id, metrics)


def _measured(wav: Path, old: dict, prompt: str | None, references: list[dict], voice) -> dict[str, Any]:
    from worker.speech.sample_voice import voice_measures

    metrics = {k: v for k, v in old.items() if k != "flags"} if old else _with_distance(_measure(wav), references)
    return {**metrics, **voice_measures(wav, metrics, prompt, voice)}


def sample_metrics(ctx: JobContext, params: dict[str, Any]) -> dict | None:
    """Measure the unmeasured samples of run ``params["run_id"]``; returns how many were measured and flagged."""
    run_id = int(params["run_id"])
    references_paths, todo, voice, shown = _plan(run_id, get_settings().data_dir)
    todo.sort(key=lambda item: item[1] not in LORA_OFF_VARIANTS)  # LoRA-off samples first: the others compare with them
    references = reference_profiles(references_paths) if shown or any(not item[3] for item in todo) else []
    _measure_shown_references(shown, references, voice)
    for index, (sample_id, _variant, wav, old, prompt) in enumerate(todo):
        ctx.check_cancelled()
        ctx.progress(index, len(todo) + 1, f"measuring {wav.name}")
        metrics = _measured(wav, old, prompt, references, voice)
        with session_scope() as session:
            sample = session.get(Sample, sample_id)
            if sample is not None:
                sample.metrics = metrics
    verdicts = reference_verdicts(run_id, get_settings().data_dir)
    with session_scope() as session:
        flagged = flag_against_base(session, run_id)
    measured = f"{len(todo)} sample{'s' if len(todo) != 1 else ''} measured"
    ctx.progress(len(todo) + 1, len(todo) + 1, f"{measured}, {flagged} compared with the base model")
    return {"run_id": run_id, "measured": len(todo), "flagged": flagged, "references": len(references),
            "voice_reference": voice is not None, "reference_verdicts": verdicts}


def reference_verdicts(run_id: int, data_dir: Path) -> int:
    """Add the voice verdict (:func:`worker.speech.reference_verdict.reference_verdict_files`) to each
    measured reference_voice sample that lacks it: its similarity to the reference clip it was given
    (that clip's decoded audio) against its similarity to the base model's default voice (the
    ``base`` sample of its prompt). Returns how many samples got one."""
    from worker.speech.reference_verdict import reference_verdict_files

    with session_scope() as session:
        run = session.get(TrainingRun, run_id)
        if run is None:
            return 0
        prep = run.preprocess_run
        clips = {item.get("clip_id"): item.get("decoded_audio") for item in (prep.clip_results if prep else []) or []}
        defaults = {s.prompt_index: s.wav for s in run.samples if s.variant == VARIANT_BASE}
        todo = [(s.id, s.wav, clips.get(s.source_clip_id), defaults.get(s.prompt_index)) for s in run.samples
                if s.variant in REFERENCE_VARIANTS and s.metrics and "error" not in s.metrics
                and "follows_reference" not in s.metrics]
    for sample_id, wav, reference, default in todo:
        if not reference or not (data_dir / reference).is_file():
            verdict = {"follows_reference": None, "verdict_reason": "the reference clip's decoded audio is gone"}
        else:
            try:
                verdict = reference_verdict_files(data_dir / wav, data_dir / reference,
                                                  data_dir / default if default else None)
            except (OSError, ValueError, AudioDecodeError) as exc:
                verdict = {"follows_reference": None, "verdict_reason": f"{Path(wav).name}: {exc}"}
        with session_scope() as session:
            sample = session.get(Sample, sample_id)
            if sample is not None:
                sample.metrics = {**(sample.metrics or {}), **verdict}
    return len(todo)


def _base_key(sample: Sample) -> tuple:
    """What a sample is compared with: a text-prompt sample with the base sample of its prompt, a
    video-to-audio sample with the LoRA-off video-to-audio sample of the same training clip, a
    reference_voice sample with the LoRA-off one given the same kind of reference."""
    if sample.variant in V2A_VARIANTS:
        return (VARIANT_V2A_BASE, sample.source_clip_id)
    if sample.variant in REFERENCE_VARIANTS:
        return (REFERENCE_BASE_OF.get(sample.variant, sample.variant), sample.prompt_index)
    return (VARIANT_BASE, sample.prompt_index)


def flag_against_base(session, run_id: int) -> int:
    """Add ``flags`` to every measured LoRA sample of the run whose LoRA-off counterpart is measured."""
    samples = list(session.scalars(select(Sample).where(Sample.run_id == run_id)))
    bases = {_base_key(s): s.metrics for s in samples
             if s.variant in LORA_OFF_VARIANTS and s.metrics and "error" not in s.metrics}
    changed = 0
    for sample in samples:
        metrics = sample.metrics or {}
        if sample.variant in LORA_OFF_VARIANTS or not metrics or "error" in metrics or "flags" in metrics:
            continue
        base = bases.get(_base_key(sample))
        if base is None:
            continue
        sample.metrics = {**metrics, "flags": compare_to_base(metrics, base)}
        changed += 1
    return changed
