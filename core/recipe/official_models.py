"""The official ltx-trainer YAML, where it depends on the model version (LTX-2 / 2.3 / 2.5).

Read from Lightricks/LTX-2 ``packages/ltx-trainer`` (CHANGELOG 1.2.0, ``config.py``,
``docs/configuration-reference.md``):

* ``model``: the trainer tells the version from the checkpoint's metadata (no version field).
  LTX-2 and 2.3 ship one *unified* ``.safetensors`` (transformer, both VAEs, vocoder) plus a
  Gemma 3 directory. LTX-2.5 also ships a *split* pack: ``model_path`` is the transformer alone,
  ``text_encoder_path`` the packed Gemma 4 file (the LTX fine-tuned Gemma 4, not Google's), and
  ``video_vae_path`` / ``audio_vae_path`` are required because the transformer holds no VAE.
* ``validation``: per-modality guidance, ``video_cfg_scale`` / ``audio_cfg_scale`` (3 / 7) and
  ``video_stg_scale`` / ``audio_stg_scale`` (1 / 1 on ``stg_blocks`` [28]), ``guidance_rescale``
  0.7 and modality guidance 3 / 3. The legacy ``guidance_scale`` (both CFG scales) and
  ``stg_scale`` + ``stg_mode`` (``stg_av``: both STG scales, ``stg_v``: video only) are still
  read and migrated; mixing a legacy field with its replacements is refused.

Our validation samples use the same CFG, modality guidance and rescale but no STG (diffusers'
LTX2Pipeline with ``stg_scale=0``), so an export writes the STG scales as 0 and says so, and an
import names the guidance settings our samples do not follow. Pure Python: no torch.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any

from core.presets import PRESETS, get_preset
from core.recipe.run_config import RunConfig

# Placeholders named after each version's official files (configuration-reference.md).
UNIFIED_PATHS = {
    "2.3": ("path/to/ltx-2.3-22b-dev.safetensors", "path/to/gemma-3-12b-it"),
    "2.0": ("path/to/ltx-2-19b-dev.safetensors", "path/to/gemma-3-12b-it"),
}
SPLIT_PATHS_25 = {
    "model_path": "path/to/ltx-2.5/diffusion_models/ltx-2.5-22b-dev-transformer-bf16.safetensors",
    "text_encoder_path": "path/to/ltx-2.5/text_encoders/gemma4-12b-with-proj-ltx-2.5-bf16.safetensors",
    "video_vae_path": "path/to/ltx-2.5/vae/ltx-2.5-video-vae-bf16.safetensors",
    "audio_vae_path": "path/to/ltx-2.5/vae/ltx-2.5-audio-vae-bf16.safetensors",
}
COMPONENT_PATHS = ("video_vae_path", "audio_vae_path")
# The official validation defaults (config.py ValidationConfig) our samples differ from or share.
OFFICIAL_STG_SCALE = 1.0
OFFICIAL_STG_BLOCKS = [28]
SHARED_GUIDANCE = {"guidance_rescale": 0.7}
MODALITY_KEYS = ("video_modality_guidance_scale", "audio_modality_guidance_scale")
_VERSION_IN_NAME = (
    ("2.5", re.compile(r"ltx[-_ ]?(?:video[-_ ]?)?2[._-]5", re.IGNORECASE)),
    ("2.3", re.compile(r"ltx[-_ ]?(?:video[-_ ]?)?2[._-]3", re.IGNORECASE)),
    ("2.0", re.compile(r"ltx[-_ ]?(?:video[-_ ]?)?2[-_](?:19b|0)\b", re.IGNORECASE)),
)


def model_section(config: RunConfig, paths: dict[str, str | None]) -> dict[str, Any]:
    """The official ``model`` section: the given paths, else placeholders in the model's layout."""
    version = get_preset(config.model).version
    given = {key: value for key, value in paths.items() if value}
    if version == "2.5":
        defaults = dict(SPLIT_PATHS_25)
    else:
        model_path, text_encoder = UNIFIED_PATHS.get(version, UNIFIED_PATHS["2.3"])
        defaults = {"model_path": model_path, "text_encoder_path": text_encoder}
    section = {**defaults, **given}
    ordered = {key: section[key] for key in ("model_path", "text_encoder_path", *COMPONENT_PATHS) if key in section}
    return {**ordered, "training_mode": "lora", "load_checkpoint": None}


def model_notes(config: RunConfig) -> list[str]:
    """What a person must know about the model paths of an export."""
    if get_preset(config.model).version != "2.5":
        return []
    return ["LTX-2.5: model_path is the split transformer file and text_encoder_path the packed LTX fine-tuned "
            "Gemma 4 text encoder (Google's Gemma 4 does not fit); video_vae_path and audio_vae_path are required. "
            "With the unified single file, set model_path to it and text_encoder_path to the Gemma 4 folder, "
            "and drop the two VAE paths"]


def validation_guidance(validation=None) -> dict[str, Any]:
    """The guidance fields an export writes: our samples take no STG, and one modality-isolation
    scale for both streams (``validation.modality_guidance_scale``)."""
    modality = 3.0 if validation is None else validation.modality_guidance_scale
    return {"video_stg_scale": 0.0, "audio_stg_scale": 0.0, **{key: modality for key in MODALITY_KEYS}}


def guidance_notes() -> list[str]:
    """The export note on guidance."""
    return [f"validation STG is 0 because our samples use none (official default {OFFICIAL_STG_SCALE:g} on blocks "
            f"{OFFICIAL_STG_BLOCKS}); CFG, modality guidance and guidance_rescale match the official defaults"]


def version_of_model_path(path: Any) -> str | None:
    """The LTX version a checkpoint file or folder name says (``"2.5"``, ``"2.3"``, ``"2.0"``), else None."""
    if not isinstance(path, str) or not path.strip():
        return None
    parts = PurePosixPath(path.replace("\\", "/")).parts
    for part in reversed(parts):
        for version, pattern in _VERSION_IN_NAME:
            if pattern.search(part):
                return version
    return None


def imported_model(model: dict[str, Any], base_model: str) -> str:
    """The preset an imported official config trains: ``base_model`` unless ``model_path`` names
    another version, then that version's preset (a toy stays a toy)."""
    version = version_of_model_path(model.get("model_path"))
    base = get_preset(base_model)
    if version is None or version == base.version:
        return base_model
    return next(p.name for p in PRESETS.values() if p.version == version and p.is_toy == base.is_toy)


def read_guidance(validation: dict[str, Any], target: dict[str, Any], problems: list[str]) -> list[str]:
    """Read the official guidance fields (migrating the legacy ones) into ``target`` (our
    validation section); returns notes on the guidance our samples will not follow."""
    if "guidance_scale" in validation:
        if {"video_cfg_scale", "audio_cfg_scale"} & validation.keys():
            problems.append("validation: guidance_scale is the legacy form of video_cfg_scale and audio_cfg_scale; "
                            "give one or the other, not both")
        else:
            target["video_guidance_scale"] = target["audio_guidance_scale"] = validation["guidance_scale"]
    for official, mine in (("video_cfg_scale", "video_guidance_scale"), ("audio_cfg_scale", "audio_guidance_scale")):
        if official in validation:
            target[mine] = validation[official]
    stg = _stg_scales(validation, problems)
    notes = _read_modality(validation, target)
    if any(scale for scale in stg.values()):
        shown = ", ".join(f"{name} {value:g}" for name, value in stg.items())
        notes.append(f"validation STG ({shown}) is not used: our samples take no spatio-temporal guidance")
    for key, value in SHARED_GUIDANCE.items():
        if key in validation and validation[key] != value:
            notes.append(f"validation.{key} {validation[key]} is not used: our samples use {value:g}")
    return notes


def _read_modality(validation: dict[str, Any], target: dict[str, Any]) -> list[str]:
    """Our one modality-isolation scale from the official per-stream ones (the video's when they differ)."""
    given = [float(validation[key]) for key in MODALITY_KEYS if key in validation]
    if not given:
        return []
    target["modality_guidance_scale"] = given[0]
    if len(set(given)) > 1:
        return [f"validation modality guidance {given[0]:g} (video) and {given[1]:g} (audio): our samples use one "
                f"scale for both streams, {given[0]:g}"]
    return []


def _stg_scales(validation: dict[str, Any], problems: list[str]) -> dict[str, float]:
    """The per-modality STG scales, from the legacy ``stg_scale`` / ``stg_mode`` when given."""
    legacy = {"stg_scale", "stg_mode"} & validation.keys()
    if legacy and {"video_stg_scale", "audio_stg_scale"} & validation.keys():
        problems.append("validation: stg_scale / stg_mode are the legacy form of video_stg_scale and "
                        "audio_stg_scale; give one or the other, not both")
        return {}
    if legacy:
        scale, mode = float(validation.get("stg_scale", OFFICIAL_STG_SCALE)), validation.get("stg_mode", "stg_av")
        if mode not in ("stg_av", "stg_v"):
            problems.append(f"validation.stg_mode '{mode}': use stg_av or stg_v")
            return {}
        return {"video_stg_scale": scale, "audio_stg_scale": scale if mode == "stg_av" else 0.0}
    return {key: float(validation.get(key, OFFICIAL_STG_SCALE)) for key in ("video_stg_scale", "audio_stg_scale")}
