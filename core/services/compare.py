"""The compare grid: validation prompts x (training reference, base model, every checkpoint).

:func:`compare_grid` lays out one run (or every run of a dataset) as rows (validation prompts,
then one row per training clip of the v2a voice test: the clip's real audio, its v2a-base and
each checkpoint's v2a-lora sample, the clip's own video with the audio generated)
and columns (the training clip's decoded audio, the base model with the LoRA off, each
checkpoint's LoRA sample, and on demand the LoRA with its audio modules off and the samples at
other per-side strengths, :mod:`core.services.strength_samples`). Each cell carries
the URLs of its audio, video, waveform and spectrogram and the sample's metrics and flags
against the base model. :func:`metric_charts` gives the numbers per step for the small charts.
Waveform and spectrogram PNGs are drawn on first request and cached beside the wav
(:func:`sample_image`). Also here: queueing the ``sample_metrics`` job.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.config import get_settings
from core.errors import InvalidInput, NotFound
from core.media import images
from core.media.sample_metrics import SEVERITY_BY_FLAG, metrics_series
from core.models import Job, JobStatus, PreprocessRun, Sample, TrainingRun
from core.names import (
    LORA_OFF_VARIANTS,
    REFERENCE_VARIANTS,
    SAMPLE_VARIANTS,
    V2A_VARIANTS,
    VARIANT_AUDIO_OFF,
    VARIANT_BASE,
    VARIANT_LORA,
    VARIANT_REF_BASE,
    VARIANT_REF_LORA,
    VARIANT_REF_OTHER_BASE,
    VARIANT_REF_OTHER_LORA,
    JobKind,
    Queue,
)
from core.recipe import sample_rules
from core.recipe.run_config import expand_trigger
from core.services import compare_references
from core.services.job_queue import queue_job
from core.services.strength_samples import parse_strength_variant, strength_label

IMAGE_KINDS = ("waveform", "spectrogram")
REFERENCE_CACHE = "compare_cache"
# The metrics the charts plot, with a label and unit for each.
CHART_METRICS = {
    "integrated_lufs": "Loudness (LUFS)",
    "sample_peak_dbfs": "Peak (dBFS)",
    "clipping_ratio": "Clipping (ratio)",
    "spectral_flatness": "Spectral flatness",
    "buzz_score_db": "Buzz score (dB)",
    "speech_ratio": "Speech ratio",
    "voice_distance": "Voice distance (MFCC)",
    "speaker_similarity": "Voice similarity to the dataset",
    "quality_mos": "Speech quality (DNSMOS, 1-5)",
    "wer": "Word error rate",
}
# A dotted guide line on a chart: where a flag starts regardless of the base model.
CHART_GUIDES = {"speaker_similarity": sample_rules.SPEAKER_SIMILARITY_MIN}
CHART_VARIANTS = SAMPLE_VARIANTS


@dataclass
class Column:
    """One column of the grid: ``kind`` is reference | base | lora | lora-audio-off | lora-strength
    (``variant`` then names the strengths, e.g. ``lora-v0.50-a1.00``)."""

    key: str
    label: str
    kind: str
    run_id: int | None = None
    step: int | None = None
    variant: str | None = None


@dataclass
class Cell:
    """What one cell plays and shows; ``missing`` when that sample was not rendered."""

    column: str
    label: str
    missing: bool = False
    sample_id: int | None = None
    audio_url: str | None = None
    video_url: str | None = None
    waveform_url: str | None = None
    spectrogram_url: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    flags: list[dict] = field(default_factory=list)
    worst: str | None = None  # error | warning | None
    note: str | None = None  # why this training clip is the reference (or why there is none)


ROW_PROMPT, ROW_V2A, ROW_REFERENCE = "prompt", "v2a", "reference-voice"
# reference_voice samples: (LoRA-off variant, LoRA variant, what reference they were given)
REFERENCE_ROWS = ((VARIANT_REF_BASE, VARIANT_REF_LORA, "the dataset's reference"),
                  (VARIANT_REF_OTHER_BASE, VARIANT_REF_OTHER_LORA, "another voice's reference"))


@dataclass
class Row:
    """One row: a validation prompt (``prompt``), or a training clip of the v2a voice test
    (``v2a``: ``prompt`` is its caption, ``prompt_index`` its place among the v2a rows)."""

    prompt_index: int
    prompt: str
    cells: list[Cell]
    kind: str = ROW_PROMPT
    source_clip_id: int | None = None
    clip_name: str | None = None


def queue_sample_metrics(session: Session, run_id: int) -> Job | None:
    """Queue a ``sample_metrics`` job for the run unless one is already waiting (call it after a
    checkpoint's samples were recorded). Commits the session. Returns the job, or None when a
    queued one will pick the new samples up."""
    queued = session.scalars(select(Job).where(Job.kind == JobKind.sample_metrics.value,
                                               Job.status == JobStatus.queued.value))
    if any(int((job.params or {}).get("run_id", -1)) == run_id for job in queued):
        return None
    return queue_job(session, JobKind.sample_metrics, Queue.cpu, {"run_id": run_id})


def run_prompts(run: TrainingRun) -> list[str]:
    """The run's validation prompts with its trigger expanded, in prompt-index order."""
    config = run.config or {}
    trigger = config.get("data", {}).get("trigger", "")
    return [expand_trigger(p, trigger) for p in config.get("validation", {}).get("prompts", [])]


def _reference_cell(preprocess_run: PreprocessRun, item: dict, note: str | None = None) -> Cell:
    """A training clip's decoded audio and video, with its measures once the ``sample_metrics`` job took them."""
    base = f"/api/v1/preprocess/{preprocess_run.id}/clips/{item['clip_id']}"
    images_base = f"/compare/references/{preprocess_run.id}/{item['clip_id']}"
    return Cell(column="reference", label=f"training clip {item.get('name', item['clip_id'])}",
                audio_url=f"{base}/decoded_audio",
                video_url=f"{base}/decoded_video" if item.get("decoded_video") else None,
                waveform_url=f"{images_base}/waveform.png", spectrogram_url=f"{images_base}/spectrogram.png",
                metrics={k: v for k, v in (item.get("metrics") or {}).items() if k not in ("mfcc", "flags")},
                note=note)


def _prompt_reference(preprocess_run: PreprocessRun | None, choice: compare_references.Reference) -> Cell:
    if preprocess_run is None or choice.item is None:
        return Cell(column="reference", label="Training clip", missing=True, note=choice.why)
    return _reference_cell(preprocess_run, choice.item, choice.why)


def sample_cell(column: Column, sample: Sample) -> Cell:
    """A cell for one sample, with its media URLs, metrics and flags."""
    metrics = dict(sample.metrics or {})
    flags = list(metrics.pop("flags", None) or [])
    metrics.pop("mfcc", None)
    severities = {flag.get("severity") or SEVERITY_BY_FLAG.get(flag.get("code"), "warning") for flag in flags}
    worst = "error" if "error" in severities else "warning" if severities else None
    media = f"/api/v1/runs/{sample.run_id}/samples/{sample.id}"
    return Cell(column=column.key, label=column.label, sample_id=sample.id, audio_url=f"{media}/wav",
                video_url=f"{media}/mp4", waveform_url=f"/compare/samples/{sample.id}/waveform.png",
                spectrogram_url=f"/compare/samples/{sample.id}/spectrogram.png",
                metrics=metrics, flags=flags, worst=worst)


def _strength_variants(run: TrainingRun, step: int) -> list[str]:
    """The per-side strength variants sampled at ``step``, by video then audio strength."""
    found = {s.variant for s in run.samples if s.step == step and parse_strength_variant(s.variant)}
    return sorted(found, key=parse_strength_variant)


def _columns(runs: list[TrainingRun], audio_off: bool, strengths: bool = False) -> list[Column]:
    columns = [Column("reference", "Training clip", "reference"), Column("base", "Base (LoRA off)", VARIANT_BASE)]
    many = len(runs) > 1
    for run in runs:
        steps = sorted({s.step for s in run.samples if s.variant not in LORA_OFF_VARIANTS})
        for step in steps:
            prefix = f"run #{run.id} · " if many else ""
            columns.append(Column(f"r{run.id}-s{step}", f"{prefix}step {step}", VARIANT_LORA, run.id, step))
            if audio_off and any(s.step == step and s.variant == VARIANT_AUDIO_OFF for s in run.samples):
                columns.append(Column(f"r{run.id}-s{step}-audio-off", f"{prefix}step {step} · audio off",
                                      VARIANT_AUDIO_OFF, run.id, step))
            for variant in _strength_variants(run, step) if strengths else []:
                columns.append(Column(f"r{run.id}-s{step}-{variant}", f"{prefix}step {step} · {strength_label(variant)}",
                                      "lora-strength", run.id, step, variant))
    return columns


def compare_grid(runs: list[TrainingRun], *, audio_off: bool = False, strengths: bool = False) -> dict[str, Any]:
    """Columns and rows of the compare page for ``runs`` (one run, or runs of one dataset);
    ``audio_off`` / ``strengths`` add the LoRA-audio-off and per-side strength columns.

    Rows follow the first run's validation prompts (prompt ``i`` of every run shares row ``i``);
    the base column shows the first run's base sample of the prompt that has one; the
    reference column plays a clean training clip, one saying the prompt's words where there is
    one (:mod:`core.services.compare_references`), with the reason under it.
    """
    if not runs:
        raise InvalidInput("no_runs", "There is no training run to compare yet: train one first.")
    columns = _columns(runs, audio_off, strengths)
    prompts = run_prompts(runs[0])
    prompt_count = max([len(prompts)] + [s.prompt_index + 1 for run in runs for s in run.samples
                                         if s.variant not in V2A_VARIANTS])
    prompts += [f"prompt {index + 1}" for index in range(len(prompts), prompt_count)]
    preprocess_run = runs[0].preprocess_run
    references = compare_references.references_for(preprocess_run, prompts)
    by_key = _samples_by_key(runs, v2a=False)
    rows = []
    for index, prompt in enumerate(prompts):
        reference = _prompt_reference(preprocess_run, references[index])
        rows.append(Row(index, prompt, _row_cells(columns, by_key, index, reference)))
    rows += _v2a_rows(runs, columns)
    rows += _reference_rows(runs, columns, prompts)
    return {"columns": [asdict(c) for c in columns], "rows": [asdict(r) for r in rows],
            "has_audio_off": any(s.variant == VARIANT_AUDIO_OFF for run in runs for s in run.samples),
            "has_strengths": any(parse_strength_variant(s.variant) for run in runs for s in run.samples)}


def _samples_by_key(runs: list[TrainingRun], *, v2a: bool) -> dict[tuple, Sample]:
    """The prompt samples (``v2a`` False) by ``(base, prompt index)`` / ``(run, step, variant,
    prompt index)``, or the v2a samples by ``(base, clip id)`` / ``(run, step, lora, clip id)``
    (so they fall in the base and checkpoint columns); a LoRA-off sample is the first run's."""
    by_key: dict[tuple, Sample] = {}
    for run in runs:
        for sample in run.samples:
            if (sample.variant in V2A_VARIANTS) != v2a or (v2a and sample.source_clip_id is None):
                continue
            if sample.variant in REFERENCE_VARIANTS:  # their own rows (_reference_rows)
                continue
            row_key = sample.source_clip_id if v2a else sample.prompt_index
            if sample.variant in LORA_OFF_VARIANTS:
                by_key.setdefault((VARIANT_BASE, row_key), sample)
            else:
                variant = VARIANT_LORA if v2a else sample.variant
                by_key[(run.id, sample.step, variant, row_key)] = sample
    return by_key


def _row_cells(columns: list[Column], by_key: dict[tuple, Sample], row_key: int, reference: Cell | None) -> list[Cell]:
    """The cells of one row: ``reference`` in the reference column, the samples of ``row_key`` elsewhere."""
    cells = []
    for column in columns:
        if column.kind == "reference":
            cell = reference
        else:
            key = ((VARIANT_BASE, row_key) if column.kind == VARIANT_BASE
                   else (column.run_id, column.step, column.variant or column.kind, row_key))
            found = by_key.get(key)
            cell = sample_cell(column, found) if found else None
        cells.append(cell or Cell(column=column.key, label=column.label, missing=True))
    return cells


def _v2a_rows(runs: list[TrainingRun], columns: list[Column]) -> list[Row]:
    """One row per training clip of the v2a voice test: the clip's real (decoded) audio and video
    in the reference column, its v2a-base sample in the base column, v2a-lora at each checkpoint."""
    by_key = _samples_by_key(runs, v2a=True)
    clip_ids = sorted({key[-1] for key in by_key})
    items = _clip_items(runs)
    rows = []
    for index, clip_id in enumerate(clip_ids):
        prep, item = items.get(clip_id, (None, {}))
        reference = _reference_cell(prep, item, "This clip's own audio.") if item.get("decoded_audio") else None
        name = item.get("name") or f"clip #{clip_id}"
        rows.append(Row(index, item.get("caption") or "", _row_cells(columns, by_key, clip_id, reference),
                        kind=ROW_V2A, source_clip_id=clip_id, clip_name=name))
    return rows


def _clip_items(runs: list[TrainingRun]) -> dict[int, tuple]:
    """``clip id -> (preprocess run, its clip_results item)`` over the runs' caches; the first run's wins."""
    items = {}
    for run in reversed(runs):
        items.update({item["clip_id"]: (run.preprocess_run, item)
                      for item in (run.preprocess_run.clip_results if run.preprocess_run else []) or []})
    return items


def _reference_rows(runs: list[TrainingRun], columns: list[Column], prompts: list[str]) -> list[Row]:
    """The reference_voice samples: per kind of reference and prompt, one row with the reference
    clip that was given in context (its decoded audio) in the reference column, the LoRA-off sample
    in the base column and the LoRA-on sample at each checkpoint."""
    items = _clip_items(runs)
    rows = []
    for off_variant, on_variant, given in REFERENCE_ROWS:
        by_key: dict[tuple, Sample] = {}
        for run in runs:
            for sample in run.samples:
                if sample.variant == off_variant:
                    by_key.setdefault((VARIANT_BASE, sample.prompt_index), sample)
                elif sample.variant == on_variant:
                    by_key[(run.id, sample.step, VARIANT_LORA, sample.prompt_index)] = sample
        for index in sorted({key[-1] for key in by_key}):
            clip_id = next(s.source_clip_id for k, s in by_key.items() if k[-1] == index)
            prep, item = items.get(clip_id, (None, {}))
            reference = (_reference_cell(prep, item, f"The reference clip ({given}) given in context.")
                         if item.get("decoded_audio") else None)
            name = f"{given}: {item.get('name') or f'clip #{clip_id}'}"
            prompt = prompts[index] if index < len(prompts) else f"prompt {index + 1}"
            rows.append(Row(index, prompt, _row_cells(columns, by_key, index, reference),
                            kind=ROW_REFERENCE, source_clip_id=clip_id, clip_name=name))
    return rows


def metric_charts(run: TrainingRun) -> list[dict[str, Any]]:
    """One chart per metric: ``{"metric", "label", "series": {variant: [[step, value], ...]},
    "flags": [[step, code], ...], "guide": value or None}``; base is drawn as a line across every
    step, ``guide`` as a dotted line (a fixed threshold)."""
    series = metrics_series(run.samples)
    flags_by_metric: dict[str, set] = {}
    for sample in run.samples:
        for flag in (sample.metrics or {}).get("flags") or []:
            metric = (flag.get("detail") or {}).get("metric")
            if metric:
                flags_by_metric.setdefault(metric, set()).add((sample.step, flag.get("code")))
    charts = []
    for metric, label in CHART_METRICS.items():
        chart_series = {variant: [list(point) for point in series.get(variant, {}).get(metric, [])]
                        for variant in CHART_VARIANTS if series.get(variant, {}).get(metric)}
        charts.append({"metric": metric, "label": label, "series": chart_series,
                       "flags": sorted([list(f) for f in flags_by_metric.get(metric, set())]),
                       "guide": CHART_GUIDES.get(metric)})
    return charts


def checkpoint_flags(run: TrainingRun) -> dict[int, list[dict]]:
    """Per checkpoint step, the flags of its LoRA samples (every prompt)."""
    found: dict[int, list[dict]] = {}
    for sample in run.samples:
        if sample.variant == VARIANT_LORA:
            for flag in (sample.metrics or {}).get("flags") or []:
                found.setdefault(sample.step, []).append({**flag, "prompt_index": sample.prompt_index})
    return found


def metrics_pending(run: TrainingRun) -> int:
    """How many of the run's samples have not been measured yet."""
    return sum(1 for s in run.samples if not s.metrics)


def set_best_checkpoint(session: Session, run: TrainingRun, step: int | None) -> TrainingRun:
    """Mark checkpoint ``step`` as the run's best (offered for export); None clears it."""
    if step is not None and step not in {c.step for c in run.checkpoints}:
        steps = ", ".join(str(c.step) for c in run.checkpoints) or "none yet"
        raise InvalidInput("unknown_checkpoint", f"Run #{run.id} has no checkpoint at step {step} (checkpoints: {steps}).")
    run.best_checkpoint_step = step
    session.commit()
    return run


# --------------------------------------------------------------------- waveform / spectrogram


def _data_path(relative: str) -> Path:
    data_dir = get_settings().data_dir
    path = (data_dir / relative).resolve()
    if data_dir.resolve() not in path.parents:
        raise NotFound("file", relative)
    return path


def _draw(wav: Path, out: Path, kind: str) -> Path:
    """Draw ``kind`` of ``wav`` into ``out`` unless a newer picture is there already."""
    if out.is_file() and out.stat().st_mtime >= wav.stat().st_mtime:
        return out
    try:
        samples, rate = soundfile.read(str(wav), dtype="float32", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError) as exc:
        raise InvalidInput("unreadable_audio", f"{wav.name} cannot be read as audio ({exc}).") from exc
    mono = samples.mean(axis=1) if samples.size else np.zeros(1, np.float32)
    if kind == "waveform":
        return images.write_waveform(mono, out, width=480, height=80)
    return images.write_spectrogram(mono, rate, out, width=480, height=120)


def sample_image(session: Session, sample_id: int, kind: str) -> Path:
    """The waveform or spectrogram PNG of a sample, drawn beside its wav on first request."""
    sample = session.get(Sample, sample_id)
    if sample is None or kind not in IMAGE_KINDS:
        raise NotFound("sample image", f"{sample_id}/{kind}")
    wav = _data_path(sample.wav)
    if not wav.is_file():
        raise NotFound("sample audio", sample_id)
    return _draw(wav, wav.with_name(f"{wav.stem}.{kind}.png"), kind)


def reference_image(session: Session, preprocess_run_id: int, clip_id: int, kind: str) -> Path:
    """The waveform or spectrogram PNG of a training clip's decoded audio (cached under DATA_DIR)."""
    run = session.get(PreprocessRun, preprocess_run_id)
    item = next((c for c in (run.clip_results if run else []) or [] if c.get("clip_id") == clip_id), None)
    if item is None or not item.get("decoded_audio") or kind not in IMAGE_KINDS:
        raise NotFound("reference image", f"{preprocess_run_id}/{clip_id}/{kind}")
    wav = _data_path(item["decoded_audio"])
    if not wav.is_file():
        raise NotFound("reference audio", clip_id)
    out = get_settings().data_dir / REFERENCE_CACHE / f"preprocess_{preprocess_run_id}" / f"clip_{clip_id}.{kind}.png"
    return _draw(wav, out, kind)

