"""The training run config: one strict pydantic schema shared by the web form, the CLI and the worker.

Every field is described and bounded, unknown keys are refused (``extra="forbid"``), and choices
are ``Literal``. Defaults follow the official ltx-trainer audio-video LoRA recipe (rank 32,
alpha 32, ``to_k/to_q/to_v/to_out.0``, AdamW at 1e-4 with linear decay, grad clip 1.0, bf16,
gradient checkpointing, seed 42). Presets: ``sanity`` (short run proving the pipeline learns),
``full`` and ``low-vram`` (rank 16, 8-bit AdamW, int8 transformer, 8-bit text encoder).
:mod:`core.recipe.fingerprint` hashes the settings a resumed run must share. Pure Python: no torch.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from core.names import (
    SAMPLE_VARIANTS,
    VARIANT_LORA,
    CheckpointPolicy,
    ModelPreset,
    SampleVariant,
)
from core.recipe.buckets import DEFAULT_BUCKETS_STRING, Bucket, BucketError, format_buckets, parse_buckets
from core.recipe.captions import trigger_problem
from core.recipe.config_yaml import ConfigFileError, dump_commented_yaml, load_yaml_mapping, validation_problems
from core.recipe.memory_plan import MEMORY_PLAN_HELP, MemoryPlanChoice
from core.recipe.modes import TrainingMode
from core.recipe.run_presets import PRESET_DESCRIPTIONS, PRESET_OVERRIDES

PresetName = Literal["sanity", "full", "low-vram", "voice", "audio-only", "reference-voice"]
PRESET_NAMES: tuple[str, ...] = get_args(PresetName)
TRIGGER_PLACEHOLDER = "{trigger}"
DEFAULT_TARGET_MODULES = ["to_k", "to_q", "to_v", "to_out.0"]
DEFAULT_VALIDATION_PROMPTS = [
    "{trigger}, a woman sits in a quiet, softly lit room and speaks to the camera in a calm, warm voice. "
    'Speech: "I think we should start again from the beginning." Sounds: clear female speech, '
    "quiet room tone, no music.",
    "{trigger}, a man stands outdoors on a windy day and talks cheerfully to someone beside him. "
    'Speech: "It is colder than yesterday, but the sun is out." Sounds: male speech, light wind, '
    "distant traffic.",
]
DEFAULT_NEGATIVE_PROMPT = (
    "blurry, low quality, distorted face, jittery motion, mismatched lip sync, muffled or robotic voice, "
    "buzzing, distortion, background noise, silent audio"
)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class LoraSettings(_Section):
    """LoRA adapter shape (PEFT ``LoraConfig`` on the transformer only)."""

    rank: int = Field(32, ge=1, le=512, description="LoRA rank r: capacity of the adapter (official default 32).")
    alpha: int = Field(
        32, ge=1, le=4096,
        description="LoRA alpha; the update is scaled by alpha/rank. Keep alpha == rank: most loaders ignore alpha.",
    )
    dropout: float = Field(0.0, ge=0.0, le=0.9, description="Dropout on the LoRA input (0 = off, the official default).")
    target_modules: list[str] | str = Field(
        default_factory=lambda: list(DEFAULT_TARGET_MODULES),
        description=(
            "Layers that get a LoRA, by PEFT's rule: a list entry matches a layer name or its ending after a dot "
            "('to_k' reaches video, audio and cross-modal attention; 'attn1.to_k' only video self-attention); "
            "a single string is a regular expression that must match the whole name."
        ),
    )

    @field_validator("target_modules")
    @classmethod
    def _targets_not_empty(cls, value: list[str] | str) -> list[str] | str:
        if isinstance(value, str):
            if not value.strip():
                raise ValueError("give at least one target module, e.g. [to_k, to_q, to_v, to_out.0]")
            return value
        cleaned = [v.strip() for v in value]
        if not cleaned or any(not v for v in cleaned):
            raise ValueError("give at least one non-empty target module, e.g. [to_k, to_q, to_v, to_out.0]")
        if len(set(cleaned)) != len(cleaned):
            raise ValueError("a target module is listed twice")
        return cleaned


class OptimizationSettings(_Section):
    """Optimizer, schedule, precision and memory settings."""

    steps: int = Field(2000, ge=1, le=1_000_000, description="Optimizer steps to train in total.")
    batch_size: int = Field(1, ge=1, le=64, description="Clips per step. Must be 1 when several buckets are used.")
    gradient_accumulation_steps: int = Field(1, ge=1, le=1024, description="Steps whose gradients are summed per update.")
    num_processes: int = Field(
        1, ge=1, le=64,
        description="Processes (one per GPU) training this run together, each on batch_size clips: the global "
        "batch is batch_size x num_processes (avlora train --gpus N / --num-processes N override it).",
    )
    learning_rate: float = Field(1e-4, gt=0.0, le=1.0, description="Peak learning rate (official LoRA default 1e-4).")
    optimizer: Literal["adamw", "adamw8bit"] = Field(
        "adamw", description="adamw, or adamw8bit (bitsandbytes 8-bit states: about a quarter of the memory)."
    )
    weight_decay: float = Field(0.01, ge=0.0, le=1.0, description="AdamW weight decay.")
    scheduler: Literal["linear", "constant"] = Field(
        "linear", description="Learning-rate schedule after warmup: linear decay (to lr_end_factor), or constant."
    )
    lr_end_factor: float = Field(
        0.1, ge=0.0, le=1.0,
        description="Linear schedule: learning rate at the last step as a fraction of the peak "
        "(official ltx-trainer: 0.1).",
    )
    warmup_steps: int = Field(0, ge=0, le=100_000, description="Steps of linear warmup from 0 to the learning rate.")
    max_grad_norm: float = Field(1.0, gt=0.0, le=1000.0, description="Gradient norm clip.")
    mixed_precision: Literal["bf16", "fp16", "no"] = Field("bf16", description="Autocast precision (bf16 recommended).")
    gradient_checkpointing: bool = Field(
        True, description="Recompute activations in the backward pass: far less memory, about 1.5x the compute."
    )
    compile: bool = Field(
        True,
        description="torch.compile each transformer block on a CUDA GPU (ignored on the CPU and with an int8 "
        "base): faster steps after a one-time compile of about a minute; the results are the same.",
    )
    checkpointing_policy: CheckpointPolicy = Field(
        "full",
        description="What gradient checkpointing recomputes: full (the whole block), attention (keep the attention "
        "outputs: less recompute, a little more memory), matmul (keep every matmul and attention output, recompute "
        "only norms and pointwise ops: almost no recompute, much more memory) or none (keep everything). "
        "The results are the same.",
    )
    checkpointing_ratio: float = Field(
        1.0, gt=0.0, le=1.0,
        description="Share of the transformer blocks (evenly spread) that use the checkpointing policy; the others "
        "use checkpointing_rest_policy. Lower it when the policy does not fit in memory on every block. "
        "1 = every block.",
    )
    checkpointing_rest_policy: CheckpointPolicy = Field(
        "full",
        description="The checkpointing policy of the blocks outside checkpointing_ratio (default full). On an 80 GB "
        "card at 768x768x121, policy matmul on 0.25 of the blocks and attention on the rest is the fastest measured "
        "mix (docs/benchmarks.md).",
    )
    memory_plan: MemoryPlanChoice = Field("manual", description=MEMORY_PLAN_HELP)
    cuda_graph: bool = Field(
        True,
        description="On a CUDA GPU, record each step's forward and backward once as a CUDA graph and replay it, so "
        "the GPU no longer waits on Python between kernels. One graph per bucket (up to 4, while memory allows); other "
        "shapes and gradient accumulation run without it. The results are the same.",
    )


class TimestepSettings(_Section):
    """Flow-matching timestep sampling."""

    mode: Literal["shifted_logit_normal", "uniform"] = Field(
        "shifted_logit_normal",
        description="shifted_logit_normal (official: shift grows with sequence length) or uniform.",
    )
    std: float = Field(1.0, gt=0.0, le=5.0, description="Standard deviation of the logit-normal.")
    uniform_prob: float = Field(0.1, ge=0.0, le=1.0, description="Share of timesteps drawn uniformly instead.")
    eps: float = Field(1e-3, ge=0.0, le=0.1, description="Keeps timesteps inside [eps, 1].")


class TrainingSettings(_Section):
    """What the loss trains."""

    mode: TrainingMode = Field(
        "audio_video",
        description="audio_video: picture and sound are noised and learnt together (the normal LoRA). voice: the "
        "clip's video is given clean and only its audio is learnt (video-to-audio; the LoRA stays on the audio "
        "side). audio_only: only the sound is learnt, from the caption, with no picture (text-to-audio). "
        "reference_voice: another clip of the same speaker is given clean as a reference voice and the clip "
        "is learnt (a reusable voice given by a reference clip; two clips or more per speaker).",
    )
    video_frozen: bool = Field(
        False,
        description="audio_video only: no LoRA on the video side (attn1, attn2, ff, audio_to_video_attn); both "
        "streams are still denoised together and both losses still count.",
    )
    with_audio: bool = Field(
        True, description="Train the audio stream too (joint audio-video loss). Off trains video only."
    )
    first_frame_conditioning_p: float = Field(
        0.5, ge=0.0, le=1.0,
        description="Probability that the first latent frame stays clean (image-to-video conditioning) and "
        "is left out of the video loss.",
    )
    audio_loss_weight: float = Field(
        1.0, ge=0.0, le=10.0, description="Weight of the audio loss in the total (official: 1, unweighted sum)."
    )
    independent_audio_timesteps: bool = Field(
        False,
        description="Draw the audio timestep separately from the video one (newer official strategy); "
        "off uses the same timestep for both (legacy text_to_video strategy).",
    )
    timesteps: TimestepSettings = Field(default_factory=TimestepSettings, description="Timestep sampling.")


class DataSettings(_Section):
    """Where the preprocessed clips are and how they were made."""

    preprocessed_dir: str = Field(
        ".precomputed", min_length=1, max_length=4096,
        description="Folder with the precomputed layout (latents/, audio_latents/, conditions/).",
    )
    buckets: str = Field(
        DEFAULT_BUCKETS_STRING,
        description="Resolution buckets WxHxF;WxHxF (W, H multiples of 32, F = 8k+1). Must match preprocessing.",
    )
    trigger: str = Field(
        "", max_length=64,
        description="Trigger word every caption begins with (one word: letters, digits, _ or -).",
    )

    @field_validator("buckets")
    @classmethod
    def _valid_buckets(cls, value: str) -> str:
        try:
            return format_buckets(parse_buckets(value))
        except BucketError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("trigger")
    @classmethod
    def _valid_trigger(cls, value: str) -> str:
        if value and (problem := trigger_problem(value)):
            raise ValueError(problem)
        return value

    @property
    def bucket_list(self) -> list[Bucket]:
        """The buckets as :class:`Bucket` objects."""
        return parse_buckets(self.buckets)


class CheckpointSettings(_Section):
    """When LoRA files are written."""

    interval: int = Field(250, ge=1, le=1_000_000, description="Save a LoRA checkpoint every N steps (and at the end).")
    keep_last_n: int = Field(-1, ge=-1, le=10_000, description="Checkpoints to keep; -1 keeps all.")

    @field_validator("keep_last_n")
    @classmethod
    def _not_zero(cls, value: int) -> int:
        if value == 0:
            raise ValueError("keep_last_n must be -1 (keep all) or at least 1")
        return value


class ValidationSettings(_Section):
    """Samples generated while training, with fixed prompts and seed."""

    prompts: list[str] = Field(
        default_factory=lambda: list(DEFAULT_VALIDATION_PROMPTS), max_length=16,
        description="Prompts sampled at each validation; {trigger} is replaced by the trigger word. "
        "Describe the voice, the speech and the sounds.",
    )
    negative_prompt: str = Field(DEFAULT_NEGATIVE_PROMPT, max_length=4000, description="Negative prompt for guidance.")
    seed: int = Field(42, ge=0, le=2**32 - 1, description="Sampling seed (same every time, so steps compare).")
    at_checkpoints: bool = Field(True, description="Sample at every checkpoint, so every LoRA file has samples.")
    interval: int | None = Field(
        None, ge=1, le=1_000_000, description="Also sample every N steps (null: only at checkpoints)."
    )
    video_dims: tuple[int, int, int] = Field(
        (512, 512, 49), description="Sample size [width, height, frames] (W, H multiples of 32, F = 8k+1)."
    )
    frame_rate: float = Field(24.0, gt=0.0, le=120.0, description="Frame rate of the samples.")
    inference_steps: int = Field(30, ge=1, le=200, description="Denoising steps per sample.")
    video_guidance_scale: float = Field(3.0, ge=1.0, le=20.0, description="Video classifier-free guidance scale.")
    audio_guidance_scale: float = Field(7.0, ge=1.0, le=20.0, description="Audio classifier-free guidance scale.")
    modality_guidance_scale: float = Field(
        3.0, ge=1.0, le=10.0, description="Modality-isolation guidance (both streams; the pipeline's and the official "
        "trainer's default 3.0): above 1 each denoising step makes a third pass with the cross-modal attention off. "
        "1 turns it off: sampling takes about a third less time.",
    )
    identity_guidance_scale: float = Field(
        3.0, ge=0.0, le=20.0, description="reference_voice samples: identity guidance, as ComfyUI's "
        "LTXVReferenceAudio applies it (its default 3): each step one more pass without the reference, and the "
        "output pushed away from it by this much, towards the reference's voice. 0 turns it off.",
    )
    variants: list[SampleVariant] = Field(
        default_factory=lambda: [VARIANT_LORA], min_length=1, max_length=len(SAMPLE_VARIANTS),
        description="What to sample: lora, base (LoRA off), lora-audio-off (LoRA on the video side only), and "
        "the voice test v2a-lora / v2a-base: training clips' own video and caption, audio generated with the "
        "LoRA on / off.",
    )
    v2a_clips: int = Field(
        2, ge=1, le=16, description="How many training clips the v2a variants sample (the first ones of the cache)."
    )

    @field_validator("prompts")
    @classmethod
    def _prompts_not_blank(cls, value: list[str]) -> list[str]:
        cleaned = [p.strip() for p in value]
        if any(not p for p in cleaned):
            raise ValueError("a validation prompt is empty")
        if any(len(p) > 4000 for p in cleaned):
            raise ValueError("a validation prompt is longer than 4000 characters")
        return cleaned

    @field_validator("video_dims")
    @classmethod
    def _valid_dims(cls, value: tuple[int, int, int]) -> tuple[int, int, int]:
        try:
            parse_buckets("x".join(str(v) for v in value))
        except BucketError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("variants")
    @classmethod
    def _unique_variants(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("a sample variant is listed twice")
        return value


class RunConfig(_Section):
    """A complete LoRA training run."""

    version: Literal[1] = Field(1, description="Schema version of this file.")
    preset: str | None = Field(None, max_length=32, description="The preset this config started from (information).")
    model: ModelPreset = Field(
        "ltx-2.3",
        description="Base model: ltx-2.3, ltx-2.5, ltx-2, or toy / toy-2.5 / toy-2.0 (tiny random weights, for tests). "
        "The preprocessed cache must be made for the same model.",
    )
    quantization: Literal["none", "int8"] = Field(
        "none", description="Quantise the frozen transformer weights: none, or int8 (about half the memory)."
    )
    load_text_encoder_in_8bit: bool = Field(False, description="Load Gemma in 8-bit (only when captions are encoded).")
    seed: int = Field(42, ge=0, le=2**32 - 1, description="Training seed (noise, timesteps, data order).")
    output_dir: str = Field(
        "outputs/run", min_length=1, max_length=4096,
        description="Run folder: checkpoints/, samples/ and training_config.yaml go here.",
    )
    lora: LoraSettings = Field(default_factory=LoraSettings, description="LoRA adapter.")
    optimization: OptimizationSettings = Field(default_factory=OptimizationSettings, description="Optimizer.")
    training: TrainingSettings = Field(default_factory=TrainingSettings, description="Loss.")
    data: DataSettings = Field(default_factory=DataSettings, description="Preprocessed data.")
    checkpoints: CheckpointSettings = Field(default_factory=CheckpointSettings, description="Checkpoints.")
    validation: ValidationSettings = Field(default_factory=ValidationSettings, description="Validation samples.")

    @model_validator(mode="after")
    def _consistent(self) -> RunConfig:
        if self.optimization.warmup_steps >= self.optimization.steps:
            raise ValueError(
                f"optimization.warmup_steps ({self.optimization.warmup_steps}) must be below "
                f"optimization.steps ({self.optimization.steps})"
            )
        return self

    def validation_prompts(self) -> list[str]:
        """The validation prompts with ``{trigger}`` replaced by the trigger word."""
        return [expand_trigger(p, self.data.trigger) for p in self.validation.prompts]

    def checkpoint_steps(self) -> list[int]:
        """Steps at which a checkpoint is written: every ``interval`` and the last step."""
        steps = list(range(self.checkpoints.interval, self.optimization.steps + 1, self.checkpoints.interval))
        if not steps or steps[-1] != self.optimization.steps:
            steps.append(self.optimization.steps)
        return steps


def expand_trigger(prompt: str, trigger: str) -> str:
    """Replace ``{trigger}`` in a prompt (with nothing left dangling when the trigger is empty)."""
    if TRIGGER_PLACEHOLDER not in prompt:
        return prompt
    if trigger:
        return prompt.replace(TRIGGER_PLACEHOLDER, trigger)
    return prompt.replace(TRIGGER_PLACEHOLDER + ", ", "").replace(TRIGGER_PLACEHOLDER, "").strip()


# --- presets ---------------------------------------------------------------------------------

def preset_config(name: str, **overrides: Any) -> RunConfig:
    """The run config of preset ``name`` with top-level ``overrides`` (e.g. ``model="toy"``)."""
    if name not in PRESET_OVERRIDES:
        raise ValueError(f"unknown preset '{name}': choose one of {', '.join(PRESET_NAMES)}")
    data = _deep_merge({"preset": name}, PRESET_OVERRIDES[name])
    data = _deep_merge(data, overrides)
    return parse_run_config(data, source=f"preset {name}")


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


# --- parsing and YAML ------------------------------------------------------------------------


def parse_run_config(data: dict[str, Any], source: str = "config") -> RunConfig:
    """Validate a dict into a :class:`RunConfig`; raise :class:`ConfigFileError` with readable lines."""
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigFileError([f"{source}: {line}" for line in validation_problems(exc)]) from None


def run_config_to_yaml(config: RunConfig) -> str:
    """Commented YAML for a person to edit; :func:`run_config_from_yaml` reads it back unchanged."""
    header = "AV-LoRA Studio run config" + (f" (preset: {config.preset})" if config.preset else "")
    if config.preset in PRESET_DESCRIPTIONS:
        header += f"\n{PRESET_DESCRIPTIONS[config.preset]}"
    return dump_commented_yaml(config, header=header)


def run_config_from_yaml(text: str, source: str = "config") -> RunConfig:
    """Parse YAML text into a :class:`RunConfig` with readable errors."""
    return parse_run_config(load_yaml_mapping(text, source), source)
