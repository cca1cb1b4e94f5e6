"""strength_samples: render a checkpoint's validation prompts at chosen per-side LoRA strengths (gpu queue).

For run ``params["run_id"]`` and checkpoint ``params["step"]``: a fresh pipeline of the run's
model loads the checkpoint's official-format file as ``avlora validate`` does
(:func:`worker.engine.validate.load_checkpoint_pipeline`), the LoRA's video side is scaled to ``video_strength`` and its audio side to
``audio_strength`` (:func:`worker.engine.lora.adapters.set_side_strength`), and every validation prompt
is sampled with the run's validation settings and seed. Each sample is written beside the others
(``step_000004_01_lora-v1.00-a0.00.mp4`` / ``.wav``) and recorded as a
:class:`core.models.Sample` whose variant encodes the strengths; then ``sample_metrics`` is queued.
Idempotent: running it again overwrites the same files and rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.config import get_settings
from core.db import session_scope
from core.errors import InvalidInput
from core.models import Checkpoint, TrainingRun
from core.names import VARIANT_LORA
from core.recipe.config_yaml import ConfigFileError
from core.recipe.run_config import RunConfig, parse_run_config
from core.services import run_records
from core.services.compare import queue_sample_metrics
from core.services.strength_samples import check_strength, strength_variant
from worker.jobs import JobContext, JobFailed


def _run_and_lora_file(run_id: int, step: int, data_dir: Path) -> tuple[RunConfig, Path, Path]:
    """The run's config, its folder and the official LoRA file of checkpoint ``step``."""
    from sqlalchemy import select

    with session_scope() as session:
        run = session.get(TrainingRun, run_id)
        if run is None:
            raise JobFailed(f"Training run #{run_id} no longer exists.")
        checkpoint = session.scalar(select(Checkpoint).where(Checkpoint.run_id == run_id, Checkpoint.step == step))
        if checkpoint is None or not (checkpoint.files or {}).get("official"):
            raise JobFailed(f"Run #{run_id} has no checkpoint at step {step}.")
        try:
            config = parse_run_config(dict(run.config), source=f"run #{run_id}")
        except ConfigFileError as exc:
            raise JobFailed("The run's config is no longer valid: " + "; ".join(exc.problems)) from exc
        run_dir, lora_file = data_dir / run.output_dir, data_dir / checkpoint.files["official"]
    if not lora_file.is_file():
        raise JobFailed(f"The LoRA file of step {step} is gone ({lora_file.name}): checkpoints pruned by "
                        "keep_last_n lose their files.")
    return config, run_dir, lora_file


def _relative(path: Path, data_dir: Path) -> str:
    return str(Path(path).resolve().relative_to(data_dir.resolve()))


def strength_samples(ctx: JobContext, params: dict[str, Any]) -> dict | None:
    """Sample checkpoint ``params["step"]`` of run ``params["run_id"]`` at ``video_strength`` /
    ``audio_strength``; returns the variant and how many samples were written."""
    from core.model_files import ModelFilesMissing
    from worker.engine.sampling import generate, lora_variant, write_mp4, write_wav
    from worker.engine.validate import load_checkpoint_pipeline, plan_from_config, sample_stem

    settings = get_settings()
    data_dir = settings.data_dir
    run_id, step = int(params["run_id"]), int(params["step"])
    try:
        video = check_strength("video_strength", params["video_strength"])
        audio = check_strength("audio_strength", params["audio_strength"])
    except InvalidInput as exc:
        raise JobFailed(exc.message) from exc
    variant = strength_variant(video, audio)
    config, run_dir, lora_file = _run_and_lora_file(run_id, step, data_dir)
    plan = plan_from_config(config)
    total = len(plan.prompts) + 1
    ctx.progress(0, total, f"loading {config.model} with the LoRA of step {step}")
    try:
        pipe, prompt_cache = load_checkpoint_pipeline(config, lora_file, plan, data_dir=data_dir,
                                                      model_dir=settings.model_dir, run_dir=run_dir)
    except ModelFilesMissing as exc:
        raise JobFailed(str(exc)) from exc
    samples_dir = run_dir / "samples"
    written = 0
    for index, prompt in enumerate(plan.prompts):
        ctx.check_cancelled()
        ctx.progress(index + 1, total, f"prompt {index + 1}/{len(plan.prompts)}, video ×{video:.2f}, audio ×{audio:.2f}")
        with lora_variant(pipe, VARIANT_LORA, video_strength=video, audio_strength=audio):
            sample = generate(pipe, plan.spec(prompt), prompt_cache=prompt_cache)
        stem = sample_stem(step, index, variant)
        wav, mp4 = write_wav(samples_dir / f"{stem}.wav", sample), write_mp4(samples_dir / f"{stem}.mp4", sample)
        with session_scope() as session:
            run_records.record_sample(session, run_id, step=step, prompt_index=index, variant=variant,
                                      seed=plan.seed, wav=_relative(wav, data_dir), mp4=_relative(mp4, data_dir))
        written += 1
    with session_scope() as session:
        queue_sample_metrics(session, run_id)  # loudness, buzz, speech, voice distance, flags vs base
    return {"run_id": run_id, "step": step, "variant": variant, "samples": written}
