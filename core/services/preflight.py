"""Preflight before a GPU job is queued: enough free disk space, model files present.

A job that would fail an hour in (disk full while writing a checkpoint, weights missing) is
refused at once with a message that says what to do. Estimates are deliberately generous.
Pure Python: the model checks read files only (``core.model_files``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from core.config import get_settings
from core.errors import ApiError
from core.model_files import ModelFilesMissing, resolve_real_model
from core.presets import UnknownPreset, get_preset, toy_dir
from core.recipe.architecture import MODEL_CONFIGS
from core.recipe.lint import LAYOUT_OF_MODEL
from core.recipe.run_config import RunConfig
from core.recipe.targets import TargetError, match_targets

SAFETY_MARGIN_BYTES = 256 * 2**20  # never fill a disk to the last byte
CACHE_BYTES_PER_CLIP = 8 * 2**20  # latents, audio latents and text features of one clip (full size)
# bytes per LoRA parameter in one checkpoint: two bf16 LoRA files (2 + 2) and the resumable
# state (fp32 tensors 4 + AdamW moments 8)
CHECKPOINT_BYTES_PER_PARAM = 16
TOY_CHECKPOINT_BYTES = 8 * 2**20


class InsufficientDiskSpace(ApiError):
    """The data directory has less free space than the job will write (507)."""

    def __init__(self, needed: int, free: int, where: Path, what: str):
        super().__init__(
            507, "disk_full",
            f"Not enough free disk space in {where} for {what}: about {human_bytes(needed)} needed, "
            f"{human_bytes(free)} free. Free some space (old runs, caches) or move DATA_DIR to a larger disk.",
            {"needed_bytes": needed, "free_bytes": free},
        )


class ModelNotAvailable(ApiError):
    """The model preset's weights are not on disk (422); the message lists what to put where."""

    def __init__(self, message: str):
        super().__init__(422, "model_files_missing", message)


def human_bytes(count: int | float | None) -> str:
    """``1536`` -> ``1.5 KiB``; empty for None."""
    if count is None:
        return ""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"


def free_bytes(path: Path) -> int:
    """Free bytes on the file system holding ``path`` (its nearest existing parent)."""
    probe = Path(path)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def check_disk_space(needed: int, what: str, where: Path | None = None) -> None:
    """Raise :class:`InsufficientDiskSpace` when ``where`` (DATA_DIR) lacks ``needed`` bytes plus a margin."""
    where = where or get_settings().data_dir
    free = free_bytes(where)
    if free < needed + SAFETY_MARGIN_BYTES:
        raise InsufficientDiskSpace(needed + SAFETY_MARGIN_BYTES, free, where, what)


def check_model_files(preset: str) -> None:
    """Raise :class:`ModelNotAvailable` when a real preset's weights are not in MODEL_DIR.

    The toy presets are built on first use and need nothing on disk.
    """
    try:
        info = get_preset(preset)
    except UnknownPreset as exc:
        raise ModelNotAvailable(str(exc)) from exc
    if info.is_toy:
        return
    try:
        resolve_real_model(info, get_settings().model_dir)
    except ModelFilesMissing as exc:
        raise ModelNotAvailable(str(exc)) from exc


def estimate_preprocess_bytes(source_bytes: int, clip_count: int) -> int:
    """Caches plus decoded previews for ``clip_count`` clips whose files hold ``source_bytes``."""
    return clip_count * CACHE_BYTES_PER_CLIP + 2 * source_bytes


def lora_parameter_count(config: RunConfig) -> int | None:
    """LoRA parameters the config trains at full model size (None if the targets are invalid)."""
    layout = MODEL_CONFIGS[LAYOUT_OF_MODEL[config.model]]
    try:
        return match_targets(config.lora.target_modules, layout).lora_parameters(config.lora.rank)
    except TargetError:
        return None


def _toy_transformer_config(config: RunConfig) -> dict | None:
    path = toy_dir(get_preset(config.model), get_settings().data_dir) / "transformer" / "config.json"
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def estimate_checkpoint_bytes(config: RunConfig) -> int:
    """Bytes of one checkpoint (both LoRA layouts and the resumable state)."""
    if config.model.startswith("toy"):
        toy_config = _toy_transformer_config(config)
        if toy_config is None:
            return TOY_CHECKPOINT_BYTES
        try:
            params = match_targets(config.lora.target_modules, toy_config).lora_parameters(config.lora.rank)
        except TargetError:
            return TOY_CHECKPOINT_BYTES
        return params * CHECKPOINT_BYTES_PER_PARAM
    params = lora_parameter_count(config) or 0
    return params * CHECKPOINT_BYTES_PER_PARAM


def estimate_sample_bytes(config: RunConfig) -> int:
    """Bytes of one validation sample: a 16-bit stereo 48 kHz wav and a generously coded mp4."""
    width, height, frames = config.validation.video_dims
    seconds = frames / config.validation.frame_rate
    return int(seconds * 48000 * 2 * 2 + width * height * frames * 0.2)


def estimate_run_bytes(config: RunConfig) -> int:
    """Checkpoints kept plus every validation sample the run will write."""
    checkpoints = len(config.checkpoint_steps())
    if config.checkpoints.keep_last_n > 0:
        checkpoints = min(checkpoints, config.checkpoints.keep_last_n + 1)  # +1: the one being written
    validations = 0
    if config.validation.at_checkpoints:
        validations = len(config.checkpoint_steps()) + 1  # and step 0
    if config.validation.interval:
        validations += config.optimization.steps // config.validation.interval
    samples = validations * len(config.validation.prompts) * len(config.validation.variants)
    return checkpoints * estimate_checkpoint_bytes(config) + samples * estimate_sample_bytes(config)
