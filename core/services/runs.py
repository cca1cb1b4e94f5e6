"""Training runs: lint and queue a run, read it back with its metrics, checkpoints and samples,
hand out its LoRA files, clone it.

A run is queued only from a succeeded preprocess run with the same model, buckets and trigger
whose dataset has not changed since (its fingerprint still matches). Paths in the stored config
are relative to DATA_DIR (``runs/<id>``, ``preprocess/<id>/.precomputed``); the worker makes
them absolute on its host.

What the studio puts in place of the config's own settings (its paths) or fills in unasked (the
default number of steps) is said, not done silently: a warning in the answer that queues the run,
kept in its first job's params (``config_warnings``) so the run's JSON and page show it for good.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, object_session

from core.config import get_settings
from core.db import get_or_404
from core.errors import Conflict, InvalidInput, NotFound
from core.models import Checkpoint, Dataset, Job, Sample, TrainingRun
from core.names import JobKind, Queue
from core.recipe.config_yaml import ConfigFileError
from core.recipe.lint import ClipShape, DatasetSummary, lint_run_config_data
from core.recipe.reference_pairs import ClipVoice
from core.recipe.run_config import (
    PRESET_NAMES,
    DataSettings,
    OptimizationSettings,
    RunConfig,
    parse_run_config,
    preset_config,
)
from core.services import preflight
from core.services import preprocess_runs as preprocess_service
from core.services.clips import clip_facts
from core.services.datasets import get_dataset
from core.services.job_queue import add_job, send_job_after_commit
from core.services.jobs import dispatch_warning, job_to_dict

LORA_FORMATS = {"comfy": "official", "official": "official", "diffusers": "diffusers"}
CONFIG_WARNINGS_PARAM = "config_warnings"  # in the params of a run's first job


def lint_dataset_summary(dataset: Dataset) -> DatasetSummary:
    """The dataset as the linter sees it: its trainable clips' shapes and every clip's findings."""
    ready = [c for c in dataset.clips if c.status == "ready"]
    shapes = []
    without_audio = 0
    for clip in ready:
        facts = clip_facts(clip)
        if facts["has_audio"] is False:
            without_audio += 1
        if facts["width"] and facts["height"] and facts["frames"]:
            shapes.append(ClipShape(clip.original_name, int(facts["width"]), int(facts["height"]),
                                    int(facts["frames"]), bool(facts["has_audio"])))
    findings = [f for c in dataset.clips for f in (c.findings or [])]
    voices = [ClipVoice(c.original_name, ((c.analysis or {}).get("voice") or {}).get("embedding"),
                        float(((c.analysis or {}).get("voice") or {}).get("speech_s") or 0.0)) for c in ready]
    return DatasetSummary(clip_count=len(ready), has_audio=len(ready) > without_audio,
                          clips_without_audio=without_audio, clips=shapes, findings=findings, voices=voices)


def _with_defaults(data: dict[str, Any], dataset: Dataset, preprocess_run) -> dict[str, Any]:
    """Fill model, buckets and trigger from the preprocess run (or studio and dataset) when absent."""
    data = copy.deepcopy(data or {})
    if not isinstance(data, dict):
        raise InvalidInput("invalid_config", "config must be an object (a run config, as GET /api/v1/presets/{name}).")
    data.setdefault("model", preprocess_run.model if preprocess_run else get_settings().model_preset)
    section = data.setdefault("data", {})
    if not isinstance(section, dict):
        raise InvalidInput("invalid_config", "config.data must be an object.")
    section.setdefault("buckets", preprocess_run.buckets if preprocess_run else dataset.buckets)
    if not section.get("trigger"):
        section["trigger"] = dataset.trigger
    return data


def lint_or_raise(data: dict[str, Any], dataset: Dataset) -> tuple[RunConfig, list[dict[str, Any]]]:
    """Run the recipe linter: errors raise :class:`InvalidInput` (422) with its messages; returns the warnings."""
    issues = lint_run_config_data(data, lint_dataset_summary(dataset))
    errors = [i for i in issues if i.severity == "error"]
    if errors:
        raise InvalidInput("invalid_config", "Fix the run config: " + " ".join(i.message for i in errors),
                           {"issues": [i.to_dict() for i in issues]})
    try:
        config = parse_run_config(data)
    except ConfigFileError as exc:  # the linter reports these first; kept for safety
        raise InvalidInput("invalid_config", "Fix the run config: " + "; ".join(exc.problems)) from exc
    return config, [i.to_dict() for i in issues]


def _preprocess_run_for(session: Session, dataset: Dataset, config: RunConfig, preprocess_run_id: int | None):
    buckets = config.data.buckets
    if preprocess_run_id is None:
        run = preprocess_service.find_ready_run(session, dataset, config.model, buckets)
        if run is None:
            raise Conflict("preprocess_needed", f"Preprocess the dataset with model {config.model} and buckets "
                           f"{buckets} first (its clips or captions changed since, or it was never done).")
        return run
    run = preprocess_service.get_preprocess_run(session, preprocess_run_id)
    if run.dataset_id != dataset.id:
        raise InvalidInput("wrong_dataset", f"Preprocess run #{run.id} belongs to dataset #{run.dataset_id}.")
    if run.status != "succeeded":
        raise Conflict("preprocess_needed", f"Preprocess run #{run.id} is {run.status}: training needs a "
                       "succeeded preprocessing.")
    if (run.model, run.buckets) != (config.model, buckets) or run.trigger != config.data.trigger:
        raise Conflict("preprocess_mismatch", f"Preprocess run #{run.id} used model {run.model}, buckets "
                       f"{run.buckets}, trigger {run.trigger!r}; the config asks for {config.model}, {buckets}, "
                       f"{config.data.trigger!r}. Preprocess with the config's settings, or change the config.")
    if not preprocess_service.is_current(run):
        raise Conflict("preprocess_outdated", f"The dataset changed after preprocess run #{run.id} (clips or "
                       "captions): preprocess it again.")
    return run


def create_run(session: Session, dataset_id: int, config_data: dict[str, Any], *,
               preprocess_run_id: int | None = None, parent_run_id: int | None = None) -> tuple[TrainingRun, list]:
    """Lint, check preprocessing and preflight, then queue a training run; returns it and the lint warnings."""
    dataset = get_dataset(session, dataset_id)
    given = (preprocess_service.get_preprocess_run(session, preprocess_run_id)
             if preprocess_run_id is not None else None)
    data = _with_defaults(config_data, dataset, given)
    config, warnings = lint_or_raise(data, dataset)
    preprocess_run = _preprocess_run_for(session, dataset, config, preprocess_run_id)
    preflight.check_model_files(config.model)
    preflight.check_disk_space(preflight.estimate_run_bytes(config), "this run's checkpoints and samples")
    run = TrainingRun(dataset_id=dataset.id, preprocess_run_id=preprocess_run.id, config={}, output_dir="",
                      parent_run_id=parent_run_id)
    session.add(run)
    session.flush()
    run.output_dir = f"runs/{run.id}"
    stored = config.model_dump(mode="json")
    stored["output_dir"] = run.output_dir
    stored["data"]["preprocessed_dir"] = f"{preprocess_run.output_dir}/{preprocess_service.PRECOMPUTED}"
    run.config = stored
    notes = config_notes(config_data, stored, preprocess_run.id)
    params = {"run_id": run.id, **({CONFIG_WARNINGS_PARAM: notes} if notes else {})}
    job = add_job(session, JobKind.train, Queue.gpu, params)
    run.job_id = job.id
    session.commit()  # run and job together: a run never exists without its job
    send_job_after_commit(session, job)
    return run, warnings + notes + broker_notes(job)


def _note(code: str, message: str, **detail: Any) -> dict[str, Any]:
    """A warning in the linter's shape (``code, severity, message, detail``)."""
    return {"code": code, "severity": "warning", "message": message, "detail": detail}


def config_notes(given: Any, stored: dict[str, Any], preprocess_run_id: int) -> list[dict[str, Any]]:
    """What the studio replaced in the config as ``given`` (its paths) or filled in unasked (the
    number of steps): one warning each. A path left at the schema's default is no request."""
    given = given if isinstance(given, dict) else {}
    notes = []
    output = given.get("output_dir")
    if output not in (None, RunConfig.model_fields["output_dir"].default, stored["output_dir"]):
        notes.append(_note("output_dir_replaced", f"output_dir {output!r} was replaced by the studio's own folder "
                           f"{stored['output_dir']} (in its data folder, where the run page finds checkpoints and "
                           "samples)", given=output, used=stored["output_dir"]))
    section = given.get("data") if isinstance(given.get("data"), dict) else {}
    cache = section.get("preprocessed_dir")
    used = stored["data"]["preprocessed_dir"]
    if cache not in (None, DataSettings.model_fields["preprocessed_dir"].default, used):
        notes.append(_note("preprocessed_dir_replaced", f"data.preprocessed_dir {cache!r} was replaced by {used}, "
                           f"the cache of preprocess run #{preprocess_run_id} (training reads the studio's own "
                           "preprocessing)", given=cache, used=used))
    optimization = given.get("optimization") if isinstance(given.get("optimization"), dict) else {}
    if "steps" not in optimization:
        notes.append(_default_steps_note(given.get("preset")))
    return notes


def _default_steps_note(preset: Any) -> dict[str, Any]:
    """The config named no step count: say which one applies, and where each preset's comes from."""
    default = OptimizationSettings.model_fields["steps"].default
    steps_of = {name: preset_config(name).optimization.steps for name in PRESET_NAMES}
    alike = [name for name, steps in steps_of.items() if steps == default]
    others = "; ".join(f"preset '{name}' has {steps:,}" for name, steps in steps_of.items() if steps != default)
    message = (f"The config sets no optimization.steps: the default {default:,} steps of preset "
               f"'{alike[0] if alike else 'full'}' apply")
    if preset in steps_of and steps_of[preset] != default:
        message += (f" (the config's preset '{preset}' is only a label: that preset has {steps_of[preset]:,} "
                    f"steps; send the whole config of GET /api/v1/presets/{preset})")
    elif others:
        message += f" ({others}: send the whole config of GET /api/v1/presets/{{name}})"
    return _note("default_steps", message, steps=default)


def broker_notes(job: Job | None) -> list[dict[str, Any]]:
    """The broker outage a queued, unsent job waits on, as a warning (none while the broker is reachable)."""
    text = dispatch_warning(job) if job is not None else None
    return [_note("broker_unreachable", f"{text[:1].upper()}{text[1:]}.", job_id=job.id)] if text else []


def stored_config_notes(session: Session | None, run: TrainingRun) -> list[dict[str, Any]]:
    """The config warnings kept when the run was queued: in its first job, found through the
    attempts (a resumed job's params name the job it resumes, ``resume_of``)."""
    job, seen = run.job, set()
    while job is not None and job.id not in seen:
        seen.add(job.id)
        params = job.params or {}
        if CONFIG_WARNINGS_PARAM in params:
            return list(params[CONFIG_WARNINGS_PARAM])
        previous = params.get("resume_of")
        job = session.get(Job, int(previous)) if previous and session is not None else None
    return []


def clone_run(session: Session, run: TrainingRun, config_changes: dict[str, Any] | None = None) -> tuple[TrainingRun, list]:
    """Queue a new run with ``run``'s config (plus ``config_changes`` at the top level), from the current preprocessing."""
    data = copy.deepcopy(run.config)
    data.pop("output_dir", None)
    data.get("data", {}).pop("preprocessed_dir", None)
    data.update(config_changes or {})
    return create_run(session, run.dataset_id, data, parent_run_id=run.id)


def get_run(session: Session, run_id: int) -> TrainingRun:
    """The training run with ``run_id`` or :class:`NotFound`."""
    return get_or_404(session, TrainingRun, run_id, "run")


def list_runs(session: Session, dataset_id: int | None = None, limit: int = 100) -> list[TrainingRun]:
    """Training runs, newest first (optionally of one dataset)."""
    query = select(TrainingRun).order_by(TrainingRun.id.desc()).limit(max(1, min(limit, 500)))
    if dataset_id is not None:
        query = query.where(TrainingRun.dataset_id == dataset_id)
    return list(session.scalars(query))


def run_summary(run: TrainingRun) -> dict[str, Any]:
    """A run for lists: status, job progress and the config's headline settings (no metrics)."""
    config = run.config or {}
    return {"id": run.id, "dataset_id": run.dataset_id, "parent_run_id": run.parent_run_id,
            "status": run.status, "job_id": run.job_id, "step": run.job.step if run.job else 0,
            "steps": config.get("optimization", {}).get("steps"), "model": config.get("model"),
            "preset": config.get("preset"), "checkpoints": [c.step for c in run.checkpoints],
            "created_at": run.created_at.isoformat() if run.created_at else None}


def _data_path(relative: str | None) -> Path | None:
    if not relative:
        return None
    data_dir = get_settings().data_dir
    path = (data_dir / relative).resolve()
    return path if data_dir in path.parents else None


def metric_to_dict(metric) -> dict[str, Any]:
    return {"id": metric.id, "step": metric.step, "loss": metric.loss, "loss_video": metric.loss_video,
            "loss_audio": metric.loss_audio, "lr": metric.lr, "grad_norm": metric.grad_norm,
            "step_time": metric.step_time, "gpu_mem": metric.gpu_mem,
            "created_at": metric.created_at.isoformat() if metric.created_at else None}


def checkpoint_to_dict(checkpoint: Checkpoint) -> dict[str, Any]:
    """A checkpoint with download links; ``available`` is False once its files were pruned (keep_last_n)."""
    base = f"/api/v1/runs/{checkpoint.run_id}/checkpoints/{checkpoint.step}/lora"
    official = _data_path((checkpoint.files or {}).get("official"))
    return {"id": checkpoint.id, "step": checkpoint.step, "key_counts": checkpoint.key_counts,
            "available": bool(official and official.is_file()),
            "downloads": {"comfy": f"{base}?format=comfy", "diffusers": f"{base}?format=diffusers"},
            "created_at": checkpoint.created_at.isoformat() if checkpoint.created_at else None}


def sample_to_dict(sample: Sample) -> dict[str, Any]:
    base = f"/api/v1/runs/{sample.run_id}/samples/{sample.id}"
    return {"id": sample.id, "step": sample.step, "prompt_index": sample.prompt_index, "variant": sample.variant,
            "seed": sample.seed, "source_clip_id": sample.source_clip_id, "metrics": sample.metrics,
            "mp4_url": f"{base}/mp4", "wav_url": f"{base}/wav",
            "created_at": sample.created_at.isoformat() if sample.created_at else None}


def run_to_dict(run: TrainingRun) -> dict[str, Any]:
    """The API form: status, job, config, the warnings (what the studio replaced in the config, a
    broker the job waits for), metrics, checkpoints and samples."""
    return {
        "id": run.id,
        "dataset_id": run.dataset_id,
        "preprocess_run_id": run.preprocess_run_id,
        "parent_run_id": run.parent_run_id,
        "status": run.status,
        "job_id": run.job_id,
        "job": job_to_dict(run.job) if run.job is not None else None,
        "config": run.config,
        "warnings": stored_config_notes(object_session(run), run) + broker_notes(run.job),
        "output_dir": run.output_dir,
        "best_checkpoint_step": run.best_checkpoint_step,
        "metrics": [metric_to_dict(m) for m in run.metrics],
        "checkpoints": [checkpoint_to_dict(c) for c in run.checkpoints],
        "samples": [sample_to_dict(s) for s in run.samples],
        "created_at": run.created_at.isoformat() if run.created_at else None,
    }


def checkpoint_file(run: TrainingRun, step: int, fmt: str) -> Path:
    """The LoRA file of checkpoint ``step`` in ``fmt`` (comfy = official layout, or diffusers)."""
    if fmt not in LORA_FORMATS:
        raise InvalidInput("invalid_format", f"Unknown LoRA format {fmt!r}: use comfy or diffusers.")
    checkpoint = next((c for c in run.checkpoints if c.step == step), None)
    if checkpoint is None:
        steps = ", ".join(str(c.step) for c in run.checkpoints) or "none yet"
        raise NotFound("checkpoint", f"{step} of run #{run.id} (checkpoints: {steps})")
    path = _data_path((checkpoint.files or {}).get(LORA_FORMATS[fmt]))
    if path is None or not path.is_file():
        raise Conflict("checkpoint_pruned", f"The files of checkpoint {step} were removed (keep_last_n): "
                       "download a later checkpoint.")
    return path


def sample_file(run: TrainingRun, sample_id: int, kind: str) -> Path:
    """The mp4 or wav of one of the run's samples."""
    sample = next((s for s in run.samples if s.id == sample_id), None)
    if sample is None or kind not in ("mp4", "wav"):
        raise NotFound("sample", sample_id)
    path = _data_path(getattr(sample, kind))
    if path is None or not path.is_file():
        raise NotFound("sample", f"{sample_id}/{kind}")
    return path
