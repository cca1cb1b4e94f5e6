"""Validation samples of a run: fixed prompts (trigger included), fixed seed, several variants.

For each prompt: ``lora`` (LoRA on, per-side strengths), ``lora-audio-off`` (audio-side modules
off), and ``base`` (LoRA off, sampled once per run since it never changes). For each of the first
``v2a_clips`` training clips of the cache: ``v2a-lora`` and ``v2a-base`` (once per run), the
clip's own video with the audio generated (:mod:`worker.engine.v2a`). Each sample is an mp4 with
the audio muxed in plus a wav, under ``<run>/samples/``:

- ``step_000100_01.mp4`` / ``.wav``: LoRA at step 100, prompt 1 (the official trainer's naming);
- ``step_000100_01_lora-audio-off.mp4``;
- ``base_01.mp4``;
- ``step_000100_v2a_01.mp4``: LoRA at step 100, the first v2a clip; ``v2a_base_01.mp4``.

A ``voice`` run (:mod:`core.recipe.modes`) always samples the v2a variants besides its prompts:
the voice test of what it trains, and the prompts show whether it still works in normal
generation. A ``reference_voice`` run samples each prompt with a reference clip's voice in context
(:mod:`worker.engine.reference_sampling`), LoRA on and off: ``ref-lora`` / ``ref-base`` with the
reference of the dataset's first clip, ``ref-other-lora`` / ``ref-other-base`` with a clip of another
voice (left out, and said in the log, when the dataset has one voice); files
``step_000100_01_ref-lora.mp4``, ``ref_base_01.mp4``, ``ref_other_base_01.mp4``. Used by the trainer
(at step 0 and every checkpoint) and by ``avlora validate RUN_DIR``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import torch

from core.names import (
    LORA_OFF_VARIANTS,
    REFERENCE_VARIANTS,
    V2A_VARIANTS,
    VARIANT_BASE,
    VARIANT_LORA,
    VARIANT_REF_BASE,
    VARIANT_REF_LORA,
    VARIANT_REF_OTHER_BASE,
    VARIANT_V2A_BASE,
    VARIANT_V2A_LORA,
)
from core.recipe.modes import MODE_REFERENCE_VOICE, MODE_VOICE
from core.recipe.run_config import RunConfig
from worker.engine.lora.writer import CheckpointWriter
from worker.engine.progress import SampleEvent, TrainCallbacks
from worker.engine.sampling import SampleSpec, generate, lora_variant, write_mp4, write_wav

RUN_CONFIG_NAME = "training_config.yaml"


@dataclass
class ValidationPlan:
    """What every validation samples."""

    prompts: list[str]
    negative_prompt: str
    seed: int
    width: int
    height: int
    num_frames: int
    frame_rate: float
    inference_steps: int
    video_guidance_scale: float
    audio_guidance_scale: float
    variants: list[str]
    modality_scale: float = 3.0
    v2a_clips: int = 0
    identity_guidance_scale: float = 3.0  # the reference variants only

    @property
    def prompt_variants(self) -> list[str]:
        """The variants sampled per prompt."""
        return [v for v in self.variants if v not in V2A_VARIANTS and v not in REFERENCE_VARIANTS]

    @property
    def reference_variants(self) -> list[str]:
        """The variants sampled per prompt with a reference clip in context (reference_voice)."""
        return [v for v in self.variants if v in REFERENCE_VARIANTS]

    @property
    def v2a_variants(self) -> list[str]:
        """The variants sampled per training clip (video-to-audio)."""
        return [v for v in self.variants if v in V2A_VARIANTS]

    @property
    def samples_anything(self) -> bool:
        """False when a validation would write nothing (no prompt, no v2a variant)."""
        return (bool(self.prompts and (self.prompt_variants or self.reference_variants))
                or bool(self.v2a_variants and self.v2a_clips))

    def v2a_spec(self):
        """The :class:`worker.engine.v2a.V2ASpec` of the v2a samples (the seed, steps, audio guidance)."""
        from worker.engine.v2a import V2ASpec

        return V2ASpec(seed=self.seed, num_inference_steps=self.inference_steps,
                       audio_guidance_scale=self.audio_guidance_scale)

    def spec(self, prompt: str) -> SampleSpec:
        """The :class:`SampleSpec` of one prompt."""
        return SampleSpec(
            prompt=prompt,
            seed=self.seed,
            width=self.width,
            height=self.height,
            num_frames=self.num_frames,
            frame_rate=self.frame_rate,
            num_inference_steps=self.inference_steps,
            guidance_scale=self.video_guidance_scale,
            audio_guidance_scale=self.audio_guidance_scale,
            negative_prompt=self.negative_prompt,
            modality_scale=self.modality_scale,
            identity_guidance_scale=self.identity_guidance_scale,
        )


def plan_variants(config: RunConfig) -> list[str]:
    """The variants a run samples: its config's, plus both v2a variants for a ``voice`` run."""
    variants = list(config.validation.variants)
    extra = {MODE_VOICE: (VARIANT_V2A_LORA, VARIANT_V2A_BASE), MODE_REFERENCE_VOICE: REFERENCE_VARIANTS}
    variants += [v for v in extra.get(config.training.mode, ()) if v not in variants]
    return variants


def plan_from_config(config: RunConfig) -> ValidationPlan:
    """The plan of a run config."""
    v = config.validation
    width, height, frames = v.video_dims
    return ValidationPlan(
        prompts=config.validation_prompts(),
        negative_prompt=v.negative_prompt,
        seed=v.seed,
        width=width,
        height=height,
        num_frames=frames,
        frame_rate=v.frame_rate,
        inference_steps=v.inference_steps,
        video_guidance_scale=v.video_guidance_scale,
        audio_guidance_scale=v.audio_guidance_scale,
        variants=plan_variants(config),
        modality_scale=v.modality_guidance_scale,
        v2a_clips=v.v2a_clips,
        identity_guidance_scale=v.identity_guidance_scale,
    )


def trigger_warnings(prompts: list[str], trigger: str) -> list[str]:
    """Advice lines for prompts that lack the trigger (the LoRA would not be activated)."""
    if not trigger:
        return ["The run has no trigger word: validation prompts cannot activate the LoRA specifically."]
    return [f"Validation prompt {i + 1} does not contain the trigger {trigger!r}." for i, p in enumerate(prompts) if trigger not in p]


def sample_stem(step: int, prompt_index: int, variant: str) -> str:
    """File stem of one sample (``prompt_index`` is 0-based, the v2a clip's for v2a; names count from 1)."""
    number = f"{prompt_index + 1:02d}"
    if variant == VARIANT_BASE:
        return f"base_{number}"
    if variant == VARIANT_V2A_BASE:
        return f"v2a_base_{number}"
    if variant in (VARIANT_REF_BASE, VARIANT_REF_OTHER_BASE):
        return f"{variant.replace('-', '_')}_{number}"
    if variant == VARIANT_V2A_LORA:
        return f"step_{step:06d}_v2a_{number}"
    stem = f"step_{step:06d}_{number}"
    return stem if variant == VARIANT_LORA else f"{stem}_{variant}"


def v2a_sources(plan: ValidationPlan, clips) -> list:
    """The training clips the v2a variants sample: the first ``plan.v2a_clips`` of ``clips`` (a
    :class:`worker.engine.data.dataset.PrecomputedDataset`, in its sorted name order), or none."""
    if clips is None or not plan.v2a_variants:
        return []
    return [clips[index] for index in range(min(plan.v2a_clips, len(clips)))]


def _reference_jobs(pipe, plan: ValidationPlan, prompt_cache, clips, on_log):
    """The reference variants' jobs (:func:`_sample_jobs`): ``source`` is the reference clip's name."""
    if not plan.prompts or not plan.reference_variants:
        return
    if clips is None:
        on_log("warning", "The reference samples need the run's cached clips: left out.")
        return
    from worker.engine.reference_sampling import ReferenceSampler, reference_tokens, validation_references

    own, other = validation_references(clips, on_log)
    position = {name: i for i, name in enumerate(clips.names)}
    sampler = ReferenceSampler(pipe, prompt_cache)
    for index, prompt in enumerate(plan.prompts):
        for variant in plan.reference_variants:
            source = own if variant in (VARIANT_REF_BASE, VARIANT_REF_LORA) else other
            if source is not None:
                tokens = reference_tokens(clips[position[source]].audio)
                yield index, variant, source, functools.partial(sampler.generate, plan.spec(prompt), tokens)


def _sample_jobs(pipe, plan: ValidationPlan, prompt_cache, clips, on_log=lambda *_: None):
    """``(index, variant, source, make)`` of every sample: ``make()`` generates it, ``source`` is
    the cache entry name of a v2a sample's clip or a reference sample's reference (None for a prompt's)."""
    for index, prompt in enumerate(plan.prompts):
        for variant in plan.prompt_variants:
            yield index, variant, None, functools.partial(generate, pipe, plan.spec(prompt), prompt_cache)
    yield from _reference_jobs(pipe, plan, prompt_cache, clips, on_log)
    sources = v2a_sources(plan, clips)
    if not sources:
        return
    from worker.engine.v2a import V2ASampler

    negative = prompt_cache.get(plan.negative_prompt or "") if prompt_cache is not None else None
    sampler = V2ASampler(pipe, plan.v2a_spec(), negative)
    for index, clip in enumerate(sources):
        for variant in plan.v2a_variants:
            yield index, variant, clip.name, functools.partial(sampler.generate, clip)


def run_validation(
    pipe,
    plan: ValidationPlan,
    samples_dir: str | Path,
    step: int,
    *,
    callbacks: TrainCallbacks | None = None,
    video_strength: float = 1.0,
    audio_strength: float = 1.0,
    adapter_name: str = "default",
    overwrite_base: bool = False,
    prompt_cache=None,
    clips=None,
    cancel=None,
    missing_only: bool = False,
) -> list[SampleEvent]:
    """Generate every (prompt, variant) and (v2a clip, v2a variant) of ``plan``; write mp4 + wav files.

    Runs under ``torch.random.fork_rng`` so sampling never shifts the training's random
    streams. LoRA-off samples (``base``, ``v2a-base``) already on disk are kept unless
    ``overwrite_base``. ``prompt_cache``: the plan's texts encoded once
    (:func:`encode_plan_prompts`); without it the pipeline runs its text encoder for every sample
    (and the v2a samples go without guidance). ``clips``: the run's cached training clips (a
    ``PrecomputedDataset``), which the v2a variants need; without it they are skipped. ``cancel``: a
    :class:`CancelToken` looked at before each sample; once cancelled, the rest are left for a resume
    (``missing_only``: keep every sample on disk). A sample's files are written on a background
    thread while the next denoises; its event follows once both exist; a failed write is the error.
    """
    callbacks = callbacks or TrainCallbacks()
    samples_dir = Path(samples_dir)
    events: list[SampleEvent] = []
    was_training = pipe.transformer.training
    pipe.transformer.eval()
    writer = CheckpointWriter()  # one sample's files are written while the next one denoises

    def written(event: SampleEvent) -> None:  # on this thread, once both files are whole
        events.append(event)
        callbacks.on_sample(event)

    try:
        with writer.draining(), torch.random.fork_rng(devices=_cuda_devices()):
            for index, variant, source, make in _sample_jobs(pipe, plan, prompt_cache, clips, callbacks.on_log):
                writer.poll()  # the previous sample's event now, or its write's error
                stem = sample_stem(step, index, variant)
                mp4, wav = samples_dir / f"{stem}.mp4", samples_dir / f"{stem}.wav"
                if (missing_only or (variant in LORA_OFF_VARIANTS and not overwrite_base)) and mp4.is_file() and wav.is_file():
                    continue
                if cancel is not None and cancel.is_cancelled():
                    break
                callbacks.on_phase("sampling")
                with lora_variant(pipe, variant, video_strength=video_strength, audio_strength=audio_strength,
                                  adapter_name=adapter_name):
                    sample = make()
                callbacks.on_phase("sample_write")
                event = SampleEvent(step, index, variant, mp4, wav, plan.seed, source)
                writer.submit(functools.partial(write_sample, sample, wav, mp4, event), written)
                callbacks.on_sample_generated()
    finally:
        pipe.transformer.train(was_training)
    return events


def _cuda_devices() -> list[int]:
    """The devices whose random streams sampling must leave untouched."""
    return [torch.cuda.current_device()] if torch.cuda.is_available() else []


def write_sample(sample, wav: Path, mp4: Path, result=None):
    """Write ``sample``'s wav and mp4 (each atomically); returns ``result``."""
    write_wav(wav, sample)
    write_mp4(mp4, sample)
    return result


def validate_run(
    run_dir: str | Path,
    *,
    data_dir: str | Path,
    model_dir: str | Path | None = None,
    step: int | None = None,
    video_strength: float = 1.0,
    audio_strength: float = 1.0,
    variants: list[str] | None = None,
    device: str | None = None,
    callbacks: TrainCallbacks | None = None,
) -> list[SampleEvent]:
    """Sample a finished (or running) run's checkpoint: the CLI's ``avlora validate``.

    Loads the run's config, a fresh pipeline, and the official-format LoRA file of ``step``
    (default: the latest) through diffusers' ``load_lora_weights``, the loading path users take;
    the prompts' embeddings the run kept on disk are used (Gemma is loaded only for new text).
    """
    from core.recipe.run_config import run_config_from_yaml
    from worker.engine.lora.checkpoint import checkpoint_paths, list_checkpoint_steps
    run_dir = Path(run_dir)
    config_file = run_dir / RUN_CONFIG_NAME
    if not config_file.is_file():
        raise FileNotFoundError(f"{run_dir} is not a training run folder: {RUN_CONFIG_NAME} is missing.")
    config = run_config_from_yaml(config_file.read_text(), source=str(config_file))
    steps = list_checkpoint_steps(run_dir)
    if not steps:
        raise FileNotFoundError(f"{run_dir}/checkpoints holds no checkpoint yet.")
    if step is None:
        step = steps[-1]
    elif step not in steps:
        raise FileNotFoundError(f"No checkpoint at step {step} in {run_dir}; available: {steps}")
    plan = plan_from_config(config)
    if variants:
        plan.variants = list(variants)
    pipe, prompt_cache = load_checkpoint_pipeline(
        config, checkpoint_paths(run_dir, step).official, plan, data_dir=data_dir, model_dir=model_dir,
        device=device, on_log=(callbacks or TrainCallbacks()).on_log, run_dir=run_dir,
    )
    clips = None
    if plan.v2a_variants or plan.reference_variants:
        from worker.engine.data.dataset import PrecomputedDataset

        clips = PrecomputedDataset(config.data.preprocessed_dir, with_audio=config.training.with_audio,
                                   connectors=pipe.connectors)
    return run_validation(
        pipe, plan, run_dir / "samples", step, callbacks=callbacks,
        video_strength=video_strength, audio_strength=audio_strength, prompt_cache=prompt_cache, clips=clips,
    )


def load_checkpoint_pipeline(config: RunConfig, lora_file: str | Path, plan: ValidationPlan, *, data_dir: str | Path,
                             model_dir: str | Path | None = None, device: str | None = None, on_log=None,
                             run_dir: str | Path | None = None):
    """A fresh pipeline of ``config.model`` holding the LoRA file (diffusers' ``load_lora_weights``,
    the path users take), with the plan's prompts' embeddings; returns ``(pipe, prompt_cache)``.

    Loaded without its text encoder: the embeddings come from ``run_dir``'s store where the run
    wrote them, and only texts missing there load Gemma (encoded on the device, then freed).
    """
    from worker.engine.data.prompt_cache import move_pipeline_except_text_encoder
    from worker.engine.model.loading import default_device, default_dtype
    from worker.engine.model.pipelines import load_pipeline

    device = device or default_device()
    pipe = load_pipeline(config.model, data_dir=Path(data_dir), model_dir=model_dir, device="cpu",
                         dtype=default_dtype(device), with_text_encoder=False)
    pipe.set_progress_bar_config(disable=True)
    prompt_cache = encode_plan_prompts(
        pipe, plan, device=device, dtype=default_dtype(device), load_in_8bit=config.load_text_encoder_in_8bit,
        model=(config.model, data_dir, model_dir), run_dir=run_dir, on_log=on_log,
    )
    move_pipeline_except_text_encoder(pipe, device)
    pipe.load_lora_weights(str(lora_file), adapter_name="default")
    return pipe, prompt_cache


def encode_plan_prompts(pipe, plan: ValidationPlan, *, device: str, dtype=None, load_in_8bit: bool = False,
                        model=None, run_dir: str | Path | None = None, on_log=None):
    """The embeddings of the plan's prompts and negative prompt, the text encoder never left on ``device``.

    ``model``: ``(preset, data_dir, model_dir)`` the pipeline was loaded from (a pipeline without
    its text encoder loads Gemma from there, only for texts not yet encoded); ``run_dir``: where
    the embeddings are kept on disk (:mod:`worker.engine.data.prompt_store`); ``dtype``: the
    embeddings' dtype without a text encoder in ``pipe`` (default: the device's). Returns the
    :class:`worker.engine.data.prompt_cache.PromptCache` for :func:`run_validation`, or ``None``
    when the plan has no prompt and no v2a variant (a caller's encoder leaves the device all the
    same); with v2a variants the negative prompt is encoded for their guidance.
    """
    from worker.engine.data.prompt_cache import release_text_encoder, sampling_texts
    from worker.engine.data.prompt_store import EMBEDDINGS_DIR, stored_prompt_embeddings
    from worker.engine.model.loading import default_dtype

    if not plan.prompts and not plan.v2a_variants:
        release_text_encoder(pipe)
        return None
    return stored_prompt_embeddings(
        pipe, sampling_texts(plan.prompts, plan.negative_prompt),
        folder=Path(run_dir) / EMBEDDINGS_DIR if run_dir is not None else None, device=device,
        dtype=dtype or default_dtype(device), load_in_8bit=load_in_8bit, model=model, on_log=on_log,
    )
