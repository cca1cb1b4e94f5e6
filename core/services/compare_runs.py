"""Which way of training learned the voice best? One summary per run of a dataset for the dataset
compare view: the run's training mode and model, the checkpoint it is judged at (marked best, else
the suggested one, else the latest) and that checkpoint's voice measures, averaged over its
text-to-audio-video samples (``lora``) and, apart, over its v2a voice-test samples (``v2a-lora``:
a training clip's own video with the voice generated, what a voice-mode run is trained to do).

Pure Python: reads the measures the ``sample_metrics`` job stored on each sample.
"""

from __future__ import annotations

from typing import Any

from core.models import TrainingRun
from core.names import VARIANT_LORA, VARIANT_V2A_LORA
from core.recipe.modes import MODE_AUDIO_VIDEO, MODES
from core.services import voice_metrics

# The measures the summary shows: (metric key, whether higher is better).
SUMMARY_METRICS = {"speaker_similarity": True, "quality_mos": True, "wer": False}
SUMMARY_SETS = {"prompts": VARIANT_LORA, "v2a": VARIANT_V2A_LORA}


def run_mode(run: TrainingRun) -> dict[str, Any]:
    """``{"mode", "title", "video_frozen", "label"}`` of the run's ``training.mode`` (audio_video when unset)."""
    training = (run.config or {}).get("training") or {}
    mode = training.get("mode") or MODE_AUDIO_VIDEO
    rules = MODES.get(mode)
    frozen = mode == MODE_AUDIO_VIDEO and bool(training.get("video_frozen"))
    title = rules.title if rules else mode
    return {"mode": mode, "title": title, "video_frozen": frozen, "label": f"{title}, video frozen" if frozen else title}


def _judged_step(run: TrainingRun) -> tuple[int | None, str]:
    """The step the run is judged at, and why: marked best, suggested, or the latest sampled one."""
    if run.best_checkpoint_step is not None:
        return run.best_checkpoint_step, "marked best"
    suggestion = voice_metrics.suggest_best_checkpoint(run)
    if suggestion:
        return suggestion["step"], "suggested"
    steps = [s.step for s in run.samples if s.variant in (VARIANT_LORA, VARIANT_V2A_LORA)]
    return (max(steps), "latest") if steps else (None, "no checkpoint sampled yet")


def _means(run: TrainingRun, step: int | None, variant: str) -> dict[str, Any]:
    """``{metric: mean or None, "samples": n, "measured": n}`` over the run's ``variant`` samples at ``step``."""
    samples = [s for s in run.samples if s.step == step and s.variant == variant]
    out: dict[str, Any] = {"samples": len(samples), "measured": sum(1 for s in samples if s.metrics)}
    for metric in SUMMARY_METRICS:
        values = [float(s.metrics[metric]) for s in samples
                  if isinstance((s.metrics or {}).get(metric), (int, float))]
        out[metric] = round(sum(values) / len(values), 3) if values else None
    return out


def run_summaries(runs: list[TrainingRun]) -> list[dict[str, Any]]:
    """One row per run: id, mode, model, judged step and why, and the measures per sample set
    (``prompts``, ``v2a``); ``leads`` names the sets and metrics where this run is the best of them."""
    rows = []
    for run in runs:
        step, why = _judged_step(run)
        rows.append({"run_id": run.id, "mode": run_mode(run), "model": (run.config or {}).get("model") or "",
                     "step": step, "why": why,
                     "sets": {name: _means(run, step, variant) for name, variant in SUMMARY_SETS.items()}})
    _mark_leaders(rows)
    return rows


def _mark_leaders(rows: list[dict[str, Any]]) -> None:
    """Mark, per set and metric, the run(s) with the best value when more than one run has one."""
    for row in rows:
        row["leads"] = []
    for name in SUMMARY_SETS:
        for metric, higher in SUMMARY_METRICS.items():
            valued = [(row["sets"][name][metric], row) for row in rows if row["sets"][name][metric] is not None]
            if len(valued) < 2:
                continue
            best = max(v for v, _ in valued) if higher else min(v for v, _ in valued)
            for value, row in valued:
                if value == best:
                    row["leads"].append(f"{name}.{metric}")
