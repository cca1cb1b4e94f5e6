"""Export to and import from the official ltx-trainer YAML config (``LtxTrainerConfig``).

Field names follow ``packages/ltx-trainer/src/ltx_trainer/config.py`` of Lightricks/LTX-2.
Two ``training_strategy`` forms exist and the current trainer accepts both:

* legacy ``{name: text_to_video, first_frame_conditioning_p, with_audio, audio_latents_dir}``
  (as in the former ``configs/ltx2_av_lora.yaml``); video and audio share one timestep;
* ``{name: flexible, video: {is_generated, latents_dir, conditions: [{type: first_frame,
  probability}]}, audio: {is_generated, latents_dir}}`` (as in ``configs/t2v_lora.yaml``).

Settings the official file cannot hold (trigger and buckets are preprocessing arguments there;
audio loss weight; warmup; sample variants) come back as ``notes`` on export and are taken from a
``base`` config on import. What depends on the model version (the split LTX-2.5 checkpoint
paths, per-modality guidance and its legacy forms) is in :mod:`core.recipe.official_models`.
Pure Python: no torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from core.recipe.config_yaml import ConfigFileError, load_yaml_mapping
from core.recipe.official_models import (
    guidance_notes,
    imported_model,
    model_notes,
    model_section,
    read_guidance,
    validation_guidance,
)
from core.recipe.official_modes import export_mode, read_mode
from core.recipe.run_config import TRIGGER_PLACEHOLDER, RunConfig, parse_run_config

StrategyForm = Literal["text_to_video", "flexible"]
LATENTS_DIR = "latents"
AUDIO_LATENTS_DIR = "audio_latents"
_QUANTIZATION = {"none": None, "int8": "int8-quanto"}
_OFFICIAL_WEIGHT_DECAY = 0.01  # torch AdamW and bitsandbytes AdamW8bit default; the trainer passes none


class OfficialConfigError(ValueError):
    """An official config that cannot be expressed in ours, or ours that cannot be exported."""


@dataclass
class OfficialExport:
    """An official config dict plus the notes on what did not carry over."""

    data: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    def to_yaml(self) -> str:
        """YAML text for the official trainer; the notes become a comment header."""
        header = "# Official ltx-trainer config exported by AV-LoRA Studio.\n"
        header += "".join(f"# NOTE: {note}\n" for note in self.notes)
        return header + yaml.safe_dump(self.data, sort_keys=False, allow_unicode=True, width=100)


def _check_exportable(config: RunConfig, form: str) -> None:
    if form not in ("text_to_video", "flexible"):
        raise OfficialConfigError(f"unknown training_strategy form '{form}': use text_to_video or flexible")
    if isinstance(config.lora.target_modules, str):
        raise OfficialConfigError(
            "the official trainer takes target_modules as a list of names; "
            f"write the regular expression {config.lora.target_modules!r} as a list"
        )


def _optimization(config: RunConfig) -> dict[str, Any]:
    """The official ``optimization`` section."""
    opt = config.optimization
    return {
        "learning_rate": opt.learning_rate,
        "steps": opt.steps,
        "batch_size": opt.batch_size,
        "gradient_accumulation_steps": opt.gradient_accumulation_steps,
        "max_grad_norm": opt.max_grad_norm,
        "optimizer_type": opt.optimizer,
        "scheduler_type": opt.scheduler,
        "scheduler_params": {"start_factor": 1.0, "end_factor": opt.lr_end_factor} if opt.scheduler == "linear" else {},
        "enable_gradient_checkpointing": opt.gradient_checkpointing,
    }


def to_official(
    config: RunConfig,
    form: StrategyForm = "text_to_video",
    *,
    model_path: str | None = None,
    text_encoder_path: str | None = None,
    video_vae_path: str | None = None,
    audio_vae_path: str | None = None,
) -> OfficialExport:
    """Translate our run config to the official trainer's config dict (with notes).

    Paths not given are placeholders named after the model's official files (LTX-2.5: the split
    pack, with its two VAE paths).
    """
    _check_exportable(config, form)
    paths = {"model_path": model_path, "text_encoder_path": text_encoder_path, "video_vae_path": video_vae_path,
             "audio_vae_path": audio_vae_path}
    data: dict[str, Any] = {
        "model": model_section(config, paths),
        "lora": {
            "rank": config.lora.rank,
            "alpha": config.lora.alpha,
            "dropout": config.lora.dropout,
            "target_modules": list(config.lora.target_modules),
        },
        "training_strategy": _strategy(config, form),
        "optimization": _optimization(config),
        "acceleration": {
            "mixed_precision_mode": config.optimization.mixed_precision,
            "quantization": _QUANTIZATION[config.quantization],
            "load_text_encoder_in_8bit": config.load_text_encoder_in_8bit,
        },
        "data": {"preprocessed_data_root": config.data.preprocessed_dir, "num_dataloader_workers": 2},
        "validation": _validation(config, form),
        "checkpoints": {
            "interval": config.checkpoints.interval,
            "keep_last_n": config.checkpoints.keep_last_n,
            "precision": "bfloat16",
        },
        "flow_matching": {
            "timestep_sampling_mode": config.training.timesteps.mode,
            "timestep_sampling_params": _timestep_params(config),
        },
        "seed": config.seed,
        "output_dir": config.output_dir,
    }
    return OfficialExport(*export_mode(config, form, data, _export_notes(config, form)))


def to_official_yaml(config: RunConfig, form: StrategyForm = "text_to_video", **paths: str) -> str:
    """YAML text of :func:`to_official`, with its notes as comments."""
    return to_official(config, form, **paths).to_yaml()


def from_official(data: dict[str, Any], base: RunConfig | None = None, source: str = "official config") -> RunConfig:
    """Read an official config dict into ours; fields it lacks come from ``base`` (or defaults).

    Raises :class:`OfficialConfigError` for official settings we cannot train with (full
    fine-tuning, video-to-video, a modality used only as conditioning, other quantizations).
    """
    return import_official(data, base, source).config


@dataclass
class OfficialImport:
    """Our config read from an official one, and the notes on what it will not follow."""

    config: RunConfig
    notes: list[str] = field(default_factory=list)


def import_official(data: dict[str, Any], base: RunConfig | None = None,
                    source: str = "official config") -> OfficialImport:
    """:func:`from_official` with the notes: the model chosen from ``model_path``, guidance not followed."""
    base = base or RunConfig()
    ours = base.model_dump(mode="json")
    problems: list[str] = []
    data, mode_training, notes = read_mode(data)  # the voice-focused modes (core.recipe.official_modes)
    section = _section_reader(data, problems)

    model = section("model")
    if model.get("training_mode", "lora") != "lora":
        problems.append("model.training_mode: only LoRA training is supported here")
    ours["model"] = imported_model(model, base.model)
    if ours["model"] != base.model:
        notes.append(f"model {ours['model']}: model_path {model.get('model_path')!r} names that version")
    lora = section("lora")
    for key in ("rank", "alpha", "dropout", "target_modules"):
        if key in lora:
            ours["lora"][key] = lora[key]

    _read_strategy(section("training_strategy"), ours, problems)
    ours["training"].update(mode_training)
    _read_optimization(section("optimization"), ours, problems)
    _read_acceleration(section("acceleration"), ours, problems)

    data_section = section("data")
    if "preprocessed_data_root" in data_section:
        ours["data"]["preprocessed_dir"] = str(data_section["preprocessed_data_root"])
    checkpoints = section("checkpoints")
    for key in ("interval", "keep_last_n"):
        if checkpoints.get(key) is not None:
            ours["checkpoints"][key] = checkpoints[key]
    notes += _read_validation(section("validation"), ours, base.data.trigger, problems)
    _read_flow_matching(section("flow_matching"), ours, problems)
    for key in ("seed", "output_dir"):
        if key in data:
            ours[key] = data[key]
    if problems:
        raise OfficialConfigError("; ".join(f"{source}: {p}" for p in problems))
    return OfficialImport(parse_run_config(ours, source), notes)


def from_official_yaml(text: str, base: RunConfig | None = None, source: str = "official config") -> RunConfig:
    """Parse official YAML text into our config (see :func:`from_official`)."""
    return import_official_yaml(text, base, source).config


def import_official_yaml(text: str, base: RunConfig | None = None, source: str = "official config") -> OfficialImport:
    """Parse official YAML text into our config with the import notes (see :func:`import_official`)."""
    try:
        return import_official(load_yaml_mapping(text, source), base, source)
    except ConfigFileError as exc:
        raise OfficialConfigError(str(exc)) from None


# --- export helpers ---------------------------------------------------------------------------


def _strategy(config: RunConfig, form: StrategyForm) -> dict[str, Any]:
    training = config.training
    if form == "text_to_video":
        return {
            "name": "text_to_video",
            "first_frame_conditioning_p": training.first_frame_conditioning_p,
            "with_audio": training.with_audio,
            "audio_latents_dir": AUDIO_LATENTS_DIR,
        }
    video: dict[str, Any] = {"is_generated": True, "latents_dir": LATENTS_DIR}
    if training.first_frame_conditioning_p > 0:
        video["conditions"] = [{"type": "first_frame", "probability": training.first_frame_conditioning_p}]
    strategy: dict[str, Any] = {"name": "flexible", "video": video}
    if training.with_audio:
        strategy["audio"] = {"is_generated": True, "latents_dir": AUDIO_LATENTS_DIR}
    return strategy


def _validation(config: RunConfig, form: StrategyForm) -> dict[str, Any]:
    validation = config.validation
    prompts = config.validation_prompts()
    out: dict[str, Any] = {}
    if form == "flexible":
        out["samples"] = [{"prompt": p} for p in prompts]
    else:
        out["prompts"] = prompts
    out.update(
        {
            "negative_prompt": validation.negative_prompt,
            "video_dims": list(validation.video_dims),
            "frame_rate": validation.frame_rate,
            "seed": validation.seed,
            "inference_steps": validation.inference_steps,
            "interval": _validation_interval(config),
            "video_cfg_scale": validation.video_guidance_scale,
            "audio_cfg_scale": validation.audio_guidance_scale,
            **validation_guidance(validation),
            "generate_audio": True,
            "skip_initial_validation": False,
        }
    )
    return out


def _validation_interval(config: RunConfig) -> int | None:
    validation, every = config.validation, config.checkpoints.interval
    if validation.at_checkpoints and validation.interval:
        return math.gcd(every, validation.interval)
    if validation.at_checkpoints:
        return every
    return validation.interval


def _timestep_params(config: RunConfig) -> dict[str, Any]:
    timesteps = config.training.timesteps
    if timesteps.mode == "uniform":
        return {}
    return {"std": timesteps.std, "eps": timesteps.eps, "uniform_prob": timesteps.uniform_prob}


def _export_notes(config: RunConfig, form: StrategyForm) -> list[str]:
    notes = model_notes(config) + guidance_notes()
    if config.model.startswith("toy"):
        notes.append(f"model '{config.model}' is our tiny test model; the official trainer needs real weights")
    if config.lora.alpha != config.lora.rank:
        notes.append(
            f"lora.alpha ({config.lora.alpha}) != rank ({config.lora.rank}): official LoRA files keep no alpha, "
            "so loaders apply them at the wrong strength; set alpha equal to rank"
        )
    if config.data.trigger:
        notes.append(f"trigger '{config.data.trigger}': pass --lora-trigger {config.data.trigger} to process_dataset.py")
    notes.append(f'buckets: pass --resolution-buckets "{config.data.buckets}" to process_dataset.py')
    if config.training.audio_loss_weight != 1.0:
        notes.append(f"training.audio_loss_weight {config.training.audio_loss_weight} is not exported (official: 1)")
    if config.training.independent_audio_timesteps and form == "text_to_video":
        notes.append("independent_audio_timesteps needs the flexible form; text_to_video shares one timestep")
    if not config.training.independent_audio_timesteps and form == "flexible":
        notes.append("the flexible form draws audio timesteps per modality (our run shares one timestep)")
    if config.optimization.warmup_steps:
        notes.append(f"optimization.warmup_steps {config.optimization.warmup_steps} is not exported (no warmup officially)")
    if config.optimization.num_processes > 1:
        notes.append(f"optimization.num_processes {config.optimization.num_processes}: launch the trainer on as many "
                     f"GPUs (accelerate) for the same global batch; batch_size is per GPU")
    if config.optimization.weight_decay != _OFFICIAL_WEIGHT_DECAY:
        notes.append(f"optimization.weight_decay {config.optimization.weight_decay} is not exported (official: 0.01)")
    validation = config.validation
    if validation.at_checkpoints and validation.interval and _validation_interval(config) != validation.interval:
        notes.append(f"validation.interval became {_validation_interval(config)} to also cover every checkpoint")
    if validation.variants != ["lora"]:
        notes.append("validation.variants (base / lora-audio-off comparisons) are ours only")
    return notes


# --- import helpers ---------------------------------------------------------------------------


def _section_reader(data: dict[str, Any], problems: list[str]):
    def section(name: str) -> dict[str, Any]:
        value = data.get(name) or {}
        if not isinstance(value, dict):
            problems.append(f"{name}: expected a mapping, got {type(value).__name__}")
            return {}
        return value

    return section


def _read_strategy(strategy: dict[str, Any], ours: dict[str, Any], problems: list[str]) -> None:
    name = strategy.get("name", "text_to_video")
    training = ours["training"]
    if name == "text_to_video":
        training["first_frame_conditioning_p"] = strategy.get("first_frame_conditioning_p", 0.1)
        training["with_audio"] = bool(strategy.get("with_audio", False))
        training["independent_audio_timesteps"] = False
        return
    if name != "flexible":
        problems.append(f"training_strategy.name '{name}': only text_to_video and flexible are supported")
        return
    video, audio = strategy.get("video") or {}, strategy.get("audio") or {}
    if not video.get("is_generated"):
        problems.append("training_strategy.video: the video must be generated (is_generated: true)")
    if audio and not audio.get("is_generated"):
        problems.append("training_strategy.audio: audio used only as conditioning is not supported")
    probability = 0.0
    for condition in video.get("conditions") or []:
        if condition.get("type") == "first_frame":
            probability = float(condition.get("probability", 1.0))
        else:
            problems.append(f"training_strategy.video.conditions: '{condition.get('type')}' is not supported")
    if audio.get("conditions"):
        problems.append("training_strategy.audio.conditions are not supported")
    training["first_frame_conditioning_p"] = probability
    training["with_audio"] = bool(audio.get("is_generated"))
    training["independent_audio_timesteps"] = True


def _read_optimization(opt: dict[str, Any], ours: dict[str, Any], problems: list[str]) -> None:
    target = ours["optimization"]
    renames = {
        "learning_rate": "learning_rate",
        "steps": "steps",
        "batch_size": "batch_size",
        "gradient_accumulation_steps": "gradient_accumulation_steps",
        "max_grad_norm": "max_grad_norm",
        "optimizer_type": "optimizer",
        "enable_gradient_checkpointing": "gradient_checkpointing",
    }
    for official, mine in renames.items():
        if official in opt:
            target[mine] = opt[official]
    scheduler = opt.get("scheduler_type", "linear")
    if scheduler not in ("linear", "constant"):
        problems.append(f"optimization.scheduler_type '{scheduler}': only linear and constant are supported")
        return
    target["scheduler"] = scheduler
    params = opt.get("scheduler_params") or {}
    if scheduler == "linear":
        if float(params.get("start_factor", 1.0)) != 1.0:
            problems.append("optimization.scheduler_params.start_factor other than 1.0 is not supported")
        target["lr_end_factor"] = params.get("end_factor", 0.1)
    target["warmup_steps"] = 0
    target["weight_decay"] = _OFFICIAL_WEIGHT_DECAY


def _read_acceleration(acceleration: dict[str, Any], ours: dict[str, Any], problems: list[str]) -> None:
    if "mixed_precision_mode" in acceleration:
        ours["optimization"]["mixed_precision"] = acceleration["mixed_precision_mode"] or "no"
    quantization = acceleration.get("quantization")
    by_official = {v: k for k, v in _QUANTIZATION.items()}
    if quantization not in by_official:
        problems.append(f"acceleration.quantization '{quantization}': only null and int8-quanto are supported")
    else:
        ours["quantization"] = by_official[quantization]
    if "load_text_encoder_in_8bit" in acceleration:
        ours["load_text_encoder_in_8bit"] = bool(acceleration["load_text_encoder_in_8bit"])


def _read_validation(validation: dict[str, Any], ours: dict[str, Any], trigger: str, problems: list[str]) -> list[str]:
    target = ours["validation"]
    if validation.get("images") or validation.get("reference_videos") or any(
        s.get("conditions") for s in validation.get("samples") or []
    ):
        problems.append("validation: image or reference conditions on validation samples are not supported")
    prompts = [s.get("prompt", "") for s in validation.get("samples") or []] or list(validation.get("prompts") or [])
    if prompts:
        target["prompts"] = [_placeholder_trigger(p, trigger) for p in prompts]
    renames = {
        "negative_prompt": "negative_prompt",
        "video_dims": "video_dims",
        "frame_rate": "frame_rate",
        "seed": "seed",
        "inference_steps": "inference_steps",
    }
    for official, mine in renames.items():
        if official in validation:
            target[mine] = validation[official]
    notes = read_guidance(validation, target, problems)
    interval, every = validation.get("interval", 100), ours["checkpoints"]["interval"]
    if interval is None:
        target["at_checkpoints"], target["interval"] = False, None
    elif interval == every:
        target["at_checkpoints"], target["interval"] = True, None
    else:
        target["at_checkpoints"], target["interval"] = every % interval == 0, interval
    return notes


def _placeholder_trigger(prompt: str, trigger: str) -> str:
    if trigger and TRIGGER_PLACEHOLDER not in prompt:
        words = prompt.split(" ")
        if words and words[0].rstrip(",.") == trigger:
            return TRIGGER_PLACEHOLDER + prompt[len(trigger):]
    return prompt


def _read_flow_matching(flow: dict[str, Any], ours: dict[str, Any], problems: list[str]) -> None:
    timesteps = ours["training"]["timesteps"]
    mode = flow.get("timestep_sampling_mode", "shifted_logit_normal")
    timesteps["mode"] = mode
    params = flow.get("timestep_sampling_params") or {}
    if mode == "shifted_logit_normal":
        for key in ("std", "eps", "uniform_prob"):
            if key in params:
                timesteps[key] = params[key]
        unknown = set(params) - {"std", "eps", "uniform_prob"}
        if unknown:
            problems.append(f"flow_matching.timestep_sampling_params: unknown {', '.join(sorted(unknown))}")
    elif params:
        problems.append("flow_matching.timestep_sampling_params for uniform sampling are not supported")
