"""Model presets and pipeline loading: the one entry point every engine step uses.

Public API (stable; the trainer, the CLI and the Celery tasks call exactly this):

``load_pipeline(preset, *, data_dir, model_dir=None, device=None, dtype=None, with_text_encoder=True)``
    A real ``diffusers.LTX2Pipeline`` on ``device`` (default: cuda if available, else cpu) in
    ``dtype`` (default: bfloat16 on GPU, float32 on CPU); the audio VAE and vocoder always run in
    float32, as the official trainer runs them.
    - ``toy`` / ``toy-2.0`` / ``toy-2.5``: the LTX-2.3 / 2.0 / 2.5 architecture at tiny size with seeded random
      weights. Built once and saved with ``save_pretrained`` under ``<data_dir>/models/<preset>/``
      (temp dir, then rename), then always loaded with ``from_pretrained``: the same code path as
      real weights.
    - ``ltx-2.3`` / ``ltx-2`` / ``ltx-2.5``: from ``model_dir`` (MODEL_DIR): either a diffusers-format directory
      (``model_index.json`` + component folders), or the official single-file checkpoint
      (e.g. ``ltx-2.3-22b-dev.safetensors``) with a Gemma-3 directory beside it or LTX-2.5's official
      one-file-per-component layout (``single_file_25``). Nothing is ever
      downloaded; missing files raise ``ModelFilesMissing`` whose message lists what to put where.
    ``with_text_encoder=False``: Gemma is not read (``pipe.text_encoder`` is ``None``; the tokenizer
    is kept), for callers that hand the pipeline embeddings (LTX-2.5's packed file: read, then dropped).
``load_text_encoder(preset, *, data_dir, model_dir=None, dtype) -> Gemma``
    The preset's text encoder alone, on the CPU in ``dtype``.
``PRESETS`` / ``get_preset(name) -> PresetInfo``
    Per-preset facts (name, version "2.3"/"2.0"/"2.5", audio sample rate, mel settings, prompt length).
``model_identity(preset, *, data_dir, model_dir=None) -> str``
    ``"<preset>@<version>:<hash>"``: a stable id of the weights a preset resolves to, for cache
    fingerprints (changes when the weights or configs change).
``resolve_model_path(preset, *, data_dir, model_dir=None) -> Path``
    The directory or checkpoint file ``load_pipeline`` would read (creating the toy if needed).
"""

from __future__ import annotations

from pathlib import Path

from core.model_files import ModelFilesMissing, resolve_real_model
from core.presets import PRESETS, PresetInfo, UnknownPreset, get_preset
from worker.engine.model.loading import (
    default_device,
    default_dtype,
    load_diffusers_dir,
    load_gemma_dir,
    weights_fingerprint,
)
from worker.engine.model.toy_store import ensure_toy_saved

__all__ = [
    "PRESETS",
    "ModelFilesMissing",
    "PresetInfo",
    "UnknownPreset",
    "get_preset",
    "load_pipeline",
    "load_text_encoder",
    "model_identity",
    "resolve_model_path",
]


def resolve_model_path(preset: str, *, data_dir: Path, model_dir: Path | None = None) -> Path:
    """Where ``preset``'s weights are: the toy's saved directory, or the real model's files."""
    info = get_preset(preset)
    if info.is_toy:
        return ensure_toy_saved(info, Path(data_dir))
    return resolve_real_model(info, model_dir).path


def load_pipeline(
    preset: str,
    *,
    data_dir: Path,
    model_dir: Path | None = None,
    device: str | None = None,
    dtype=None,
    with_text_encoder: bool = True,
):
    """Load ``preset`` as a real ``diffusers.LTX2Pipeline`` (see the module docstring)."""
    info = get_preset(preset)
    device = device or default_device()
    dtype = dtype or default_dtype(device)
    if device == "cpu":
        flush_denormals()
    if info.is_toy:
        pipe = load_diffusers_dir(ensure_toy_saved(info, Path(data_dir)), dtype=dtype,
                                  with_text_encoder=with_text_encoder)
    else:
        location = resolve_real_model(info, model_dir)
        if location.kind == "diffusers":
            pipe = load_diffusers_dir(location.path, dtype=dtype, with_text_encoder=with_text_encoder)
        elif location.kind == "split":
            from worker.engine.model.single_file_25 import load_split_pipeline

            pipe = load_split_pipeline(info, location, dtype=dtype, with_text_encoder=with_text_encoder)
        else:
            from worker.engine.model.single_file import load_single_file_pipeline

            pipe = load_single_file_pipeline(info, location, dtype=dtype, with_text_encoder=with_text_encoder)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def load_text_encoder(preset: str, *, data_dir: Path, model_dir: Path | None = None, dtype):
    """``preset``'s Gemma text encoder alone, on the CPU in ``dtype`` (eval mode)."""
    info = get_preset(preset)
    if info.is_toy:
        return load_gemma_dir(ensure_toy_saved(info, Path(data_dir)) / "text_encoder", dtype=dtype)
    location = resolve_real_model(info, model_dir)
    if location.kind == "diffusers":
        return load_gemma_dir(location.path / "text_encoder", dtype=dtype)
    if location.kind == "split":
        from worker.engine.model.packed_gemma import read_packed_gemma

        return read_packed_gemma(dict(location.files)["text_encoder"], dtype=dtype)[0]
    return load_gemma_dir(location.gemma_dir, dtype=dtype)


def flush_denormals() -> None:
    """Compute floats below ~1e-38 as 0 on the CPU. The audio decoder and vocoder of a random-weight
    model (the toy) produce such denormal floats, which x86 computes about 50 times slower: a toy
    run's samples took about 70 s with them and 4 s without (measured for ``avlora bench run``).
    Nothing a person hears or a loss shows changes at that size."""
    import torch

    torch.set_flush_denormal(True)


def model_identity(preset: str, *, data_dir: Path, model_dir: Path | None = None) -> str:
    """A stable id of the weights ``preset`` resolves to: ``"<preset>@<version>:<hash16>"``."""
    info = get_preset(preset)
    if info.is_toy:
        digest = weights_fingerprint(ensure_toy_saved(info, Path(data_dir)))
    else:
        location = resolve_real_model(info, model_dir)
        digest = weights_fingerprint(location.path)
        for _, part in location.files[1:]:  # LTX-2.5's other component files
            digest = f"{digest}+{weights_fingerprint(part)}"
        if location.gemma_dir is not None:
            digest = f"{digest}+{weights_fingerprint(location.gemma_dir)}"
    return f"{info.name}@{info.version}:{digest}"
