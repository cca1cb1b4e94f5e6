"""Load the official single-file LTX-2 / LTX-2.3 checkpoint (+ a local Gemma-3 directory).

The official file holds every component under a prefix: ``model.diffusion_model.`` (transformer,
and the text connectors), ``text_embedding_projection.`` (sometimes outside that prefix),
``vae.``, ``audio_vae.`` and ``vocoder.``, with ltx-core names. diffusers 0.42.1's
``from_single_file`` misdetects it (as LTX-Video 0.9.7), does not rename
``prompt_adaln_single`` -> ``prompt_adaln``, lacks the 2.3 VAE decoder mapping and cannot load
the connectors or the vocoder. This module does the conversion itself:

- the version is detected from the tensors (``detect_version``), and must match the preset;
- each key is renamed with the tables in ``single_file_configs`` (``convert_key``);
- each component is built from an explicit config (full size, layer counts read from the file),
  filled with ``load_state_dict(assign=True)``; a parameter the file does not provide is an error
  (never silently random weights).
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

from core.presets import PresetInfo
from worker.engine.model import single_file_configs as cfg
from worker.engine.model.loading import component_dtypes

COMPONENT_PREFIXES = (
    ("model.diffusion_model.", "transformer"),
    ("vae.", "vae"),
    ("audio_vae.", "audio_vae"),
    ("vocoder.", "vocoder"),
)


class CheckpointMismatch(ValueError):
    """The single-file checkpoint is not what the preset expects, or lacks tensors."""


def detect_version(keys) -> str:
    """``"2.3"`` or ``"2.0"`` from the tensor names of an official checkpoint."""
    keys = list(keys)
    markers_23 = ("prompt_adaln_single", "video_aggregate_embed", "bwe_generator")
    if any(marker in key for key in keys for marker in markers_23):
        return "2.3"
    if any(key.startswith("model.diffusion_model.") for key in keys):
        return "2.0"
    raise CheckpointMismatch("not an LTX-2 checkpoint: no model.diffusion_model.* tensors")


def component_of(key: str) -> tuple[str, str] | None:
    """``(component, key without its prefix)`` for an official key, or ``None`` when unused."""
    for prefix, component in COMPONENT_PREFIXES:
        if key.startswith(prefix):
            rest = key[len(prefix) :]
            if component == "transformer" and any(rest.startswith(m) for m in cfg.CONNECTOR_MARKERS):
                return "connectors", rest
            return component, rest
    if any(key.startswith(m) for m in cfg.CONNECTOR_MARKERS) or key.startswith("connectors."):
        return "connectors", key
    return None


def _apply(renames, key: str) -> str:
    for old, new in renames:
        key = key.replace(old, new)
    return key


def _convert_video_vae_key(key: str) -> str | None:
    if any(marker in key for marker in cfg.VAE_IGNORED):
        return None
    match = re.match(r"^(encoder|decoder)\.(down_blocks|up_blocks)\.(\d+)\.(.*)$", key)
    if match:
        side, _, index, rest = match.groups()
        key = f"{side}.{cfg.VIDEO_VAE_BLOCKS[side][index]}.{rest}"
    return _apply(cfg.VIDEO_VAE_RENAMES, key)


def convert_key(component: str, key: str) -> str | None:
    """The diffusers name of an official (prefix-stripped) key; ``None`` for tensors diffusers drops."""
    if component == "transformer":
        key = _apply(cfg.TRANSFORMER_RENAMES, key)
        for old, new in cfg.TRANSFORMER_PREFIX_RENAMES:
            if key.startswith(old):
                return new + key[len(old) :]
        return key
    if component == "connectors":
        return _apply(cfg.CONNECTOR_RENAMES, key)
    if component == "vae":
        return _convert_video_vae_key(key)
    if component == "audio_vae":
        if any(marker in key for marker in cfg.VAE_IGNORED):
            return None
        return _apply(cfg.AUDIO_VAE_RENAMES, key)
    if component == "vocoder":
        key = re.sub(r"(^|\.)ups\.", r"\1upsamplers.", key)
        return _apply(cfg.VOCODER_RENAMES, key)
    raise ValueError(f"unknown component {component!r}")


def count_layers(keys, pattern: str) -> int:
    indices = {int(m.group(1)) for key in keys if (m := re.search(pattern, key))}
    return max(indices) + 1 if indices else 0


def default_component_configs(version: str, keys) -> dict[str, dict]:
    """Full-size configs for ``version``, with layer counts read from the checkpoint ``keys``."""
    keys = list(keys)
    layers = count_layers(keys, r"^model\.diffusion_model\.transformer_blocks\.(\d+)\.") or 48
    connectors = dict(cfg.CONNECTORS[version])
    for side in ("video", "audio"):
        count = count_layers(keys, rf"{side}_embeddings_connector\.transformer_1d_blocks\.(\d+)\.")
        if count:
            connectors[f"{side}_connector_num_layers"] = count
    vae = dict(cfg.VIDEO_VAE[version])
    vae["timestep_conditioning"] = any("last_time_embedder" in key for key in keys if key.startswith("vae."))
    return {
        "transformer": cfg.transformer_config(version, layers),
        "connectors": connectors,
        "vae": vae,
        "audio_vae": dict(cfg.AUDIO_VAE),
        "vocoder": dict(cfg.VOCODER[version]),
    }


def component_classes(version: str) -> dict:
    from diffusers import AutoencoderKLLTX2Audio, AutoencoderKLLTX2Video, LTX2VideoTransformer3DModel
    from diffusers.pipelines.ltx2 import LTX2TextConnectors
    from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder, LTX2VocoderWithBWE

    return {
        "transformer": LTX2VideoTransformer3DModel,
        "connectors": LTX2TextConnectors,
        "vae": AutoencoderKLLTX2Video,
        "audio_vae": AutoencoderKLLTX2Audio,
        "vocoder": LTX2VocoderWithBWE if version in ("2.3", "2.5") else LTX2Vocoder,
    }


def read_converted_state_dicts(path: Path, *, dtype=None) -> tuple[str, dict[str, dict]]:
    """``(version, {component: diffusers state dict})`` from an official checkpoint file.

    Floating-point tensors are cast to ``dtype`` when given, else kept as stored.
    """
    from safetensors import safe_open

    state: dict[str, dict] = defaultdict(dict)
    with safe_open(str(path), framework="pt") as handle:
        keys = list(handle.keys())
        version = detect_version(keys)
        for key in keys:
            located = component_of(key)
            if located is None:
                continue
            component, rest = located
            new_key = convert_key(component, rest)
            if new_key is None:
                continue
            tensor = handle.get_tensor(key)
            if dtype is not None and tensor.is_floating_point():
                tensor = tensor.to(dtype)
            state[component][new_key] = tensor
    return version, dict(state)


def build_component(component: str, cls, config: dict, state_dict: dict):
    """Instantiate ``cls(**config)`` without allocating weights, fill it from ``state_dict``.

    Raises ``CheckpointMismatch`` naming the parameters the file did not provide.
    """
    from accelerate import init_empty_weights

    with init_empty_weights():
        model = cls.from_config(config)
    result = model.load_state_dict(state_dict, strict=False, assign=True)
    missing = [k for k in result.missing_keys if k not in _computed_buffers(model)]
    if missing:
        shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
        raise CheckpointMismatch(f"the checkpoint has no weights for {component}: {shown}")
    return model.eval()


def _computed_buffers(model) -> set[str]:
    """Non-persistent buffers: computed at construction, never stored in a checkpoint."""
    names = set()
    for module_name, module in model.named_modules():
        for buffer_name in getattr(module, "_non_persistent_buffers_set", ()):
            names.add(f"{module_name}.{buffer_name}" if module_name else buffer_name)
    return names


def load_single_file_pipeline(info: PresetInfo, location, *, dtype, component_configs: dict | None = None,
                              with_text_encoder: bool = True):
    """An ``LTX2Pipeline`` from an official checkpoint and the Gemma-3 directory beside it.

    ``component_configs`` overrides the full-size configs (used to test with a toy checkpoint).
    """
    from diffusers import FlowMatchEulerDiscreteScheduler, LTX2Pipeline
    from safetensors import safe_open
    from transformers import AutoTokenizer, Gemma3ForConditionalGeneration

    with safe_open(str(location.path), framework="pt") as handle:
        keys = list(handle.keys())
    version = detect_version(keys)
    if version != info.version:
        raise CheckpointMismatch(
            f"{location.path.name} is an LTX-{version} checkpoint but preset {info.name!r} is LTX-{info.version}; "
            f"use --preset {'ltx-2.3' if version == '2.3' else 'ltx-2'}"
        )
    configs = component_configs or default_component_configs(version, keys)
    dtypes = component_dtypes(dtype)
    _, state = read_converted_state_dicts(location.path)
    classes = component_classes(version)
    components = {}
    for name, cls in classes.items():
        if name not in state:
            raise CheckpointMismatch(f"{location.path.name} holds no {name} tensors")
        tensors = state.pop(name)
        component_dtype = dtypes.get(name, dtype)
        tensors = {k: v.to(component_dtype) if v.is_floating_point() else v for k, v in tensors.items()}
        components[name] = build_component(name, cls, configs[name], tensors)
    gemma = Path(location.gemma_dir)
    text_encoder = (Gemma3ForConditionalGeneration.from_pretrained(str(gemma), dtype=dtype, local_files_only=True)
                    .eval() if with_text_encoder else None)
    tokenizer = AutoTokenizer.from_pretrained(str(gemma), local_files_only=True)
    tokenizer.padding_side = "left"
    scheduler = FlowMatchEulerDiscreteScheduler.from_config(configs.get("scheduler", cfg.SCHEDULER))
    return LTX2Pipeline(scheduler=scheduler, text_encoder=text_encoder, tokenizer=tokenizer, **components)
