"""Load LTX-2.5's official one-file-per-component weights into a diffusers ``LTX2Pipeline``.

Which tensors each file holds (ltx-core ``loader``/configurators and ltx-pipelines
``utils/model_paths.py``, ``ModelPaths.from_split``; docs/corrections.md "LTX-2.5"):

- transformer file: ``model.diffusion_model.*`` (the 2.3 names, without ``prompt_adaln_single``),
  the video / audio embeddings connectors included (same prefix); its ``model_version`` /
  ``config`` metadata say the generation;
- packed text encoder: Gemma 4, its config and tokenizer, and the text projection
  (``text_embedding_projection.*``: the connectors' ``video_text_proj_in`` / ``audio_text_proj_in``),
  converted by :mod:`worker.engine.model.packed_gemma`; connector tensors are taken from either file;
- video VAE: ``vae.*`` or the same names without the prefix (ltx-core accepts both);
- audio VAE: ``audio_vae.*`` and the vocoder ``vocoder.*``.

Each key is renamed with the 2.3 tables (``single_file.convert_key``), read one tensor at a time
with ``safe_open`` and cast to its component's dtype on the way; each component is built empty and
filled with ``load_state_dict(assign=True)``; a parameter no file provides is an error.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from core.model_files_25 import checkpoint_version
from core.presets import PresetInfo
from worker.engine.model import single_file_configs as cfg
from worker.engine.model.loading import component_dtypes
from worker.engine.model.packed_gemma import PackedGemmaError, read_packed_gemma
from worker.engine.model.single_file import (
    CheckpointMismatch,
    build_component,
    component_classes,
    component_of,
    convert_key,
    count_layers,
)

# The components each official file may hold.
FILE_COMPONENTS = {
    "transformer": ("transformer", "connectors"),
    "text_encoder": ("connectors",),
    "vae": ("vae",),
    "audio_vae": ("audio_vae", "vocoder"),
}
BARE_VAE_PREFIXES = ("encoder.", "decoder.", "per_channel_statistics.")


def _official_key(file_component: str, key: str) -> str:
    """A video VAE file may store its keys without the ``vae.`` prefix."""
    if file_component == "vae" and key.startswith(BARE_VAE_PREFIXES):
        return "vae." + key
    return key


def add_converted(state: dict, file_component: str, key: str, read, dtypes: dict) -> None:
    """Put official ``key`` of ``file_component``'s file into ``state`` under its diffusers name,
    read with ``read()`` only when it is used, in its component's dtype."""
    located = component_of(_official_key(file_component, key))
    if located is None or located[0] not in FILE_COMPONENTS[file_component]:
        return
    component, rest = located
    new_key = convert_key(component, rest)
    if new_key is None:
        return
    tensor = read()
    target = dtypes.get(component, dtypes["default"])
    state[component][new_key] = tensor.to(target) if tensor.is_floating_point() else tensor


def read_split_state(files: dict[str, Path], dtypes: dict) -> tuple[dict[str, dict], dict[str, list[str]]]:
    """``({component: diffusers state dict}, {file component: its keys})`` from the non-Gemma files."""
    from safetensors import safe_open

    state: dict[str, dict] = defaultdict(dict)
    keys_of: dict[str, list[str]] = {}
    for file_component in ("transformer", "vae", "audio_vae"):
        with safe_open(str(files[file_component]), framework="pt") as handle:
            keys_of[file_component] = list(handle.keys())
            for key in keys_of[file_component]:
                add_converted(state, file_component, key, lambda k=key: handle.get_tensor(k), dtypes)
    return state, keys_of


def check_transformer_generation(info: PresetInfo, path: Path) -> None:
    """Refuse a transformer file that declares (or, by its tensors, is) another LTX generation."""
    from safetensors import safe_open

    version = checkpoint_version(path)
    if version in (None, "2.5"):
        return
    with safe_open(str(path), framework="pt") as handle:
        declared = bool((handle.metadata() or {}).get("model_version"))
        has_prompt_adaln = any("prompt_adaln_single" in key for key in handle.keys())  # noqa: SIM118
    if declared or has_prompt_adaln:
        preset = "ltx-2.3" if version == "2.3" else "ltx-2"
        raise CheckpointMismatch(
            f"{path.name} is an LTX-{version} transformer but preset {info.name!r} is LTX-{info.version}; "
            f"use --preset {preset} with its single-file checkpoint"
        )


def default_split_configs(keys_of: dict[str, list[str]], gemma_text_config) -> dict[str, dict]:
    """Full-size configs: the 2.5 transformer and 2.3-shaped parts, layer counts from the files,
    the connectors' input width from the packed Gemma config (hidden size x (layers + 1))."""
    transformer_keys = keys_of["transformer"]
    layers = count_layers(transformer_keys, r"^model\.diffusion_model\.transformer_blocks\.(\d+)\.") or 48
    connectors = dict(cfg.CONNECTORS["2.3"])
    connectors["caption_channels"] = gemma_text_config.hidden_size
    connectors["text_proj_in_factor"] = gemma_text_config.num_hidden_layers + 1
    for side in ("video", "audio"):
        count = count_layers(transformer_keys, rf"{side}_embeddings_connector\.transformer_1d_blocks\.(\d+)\.")
        if count:
            connectors[f"{side}_connector_num_layers"] = count
    vae = dict(cfg.VIDEO_VAE["2.5"])
    vae["timestep_conditioning"] = any("last_time_embedder" in key for key in keys_of["vae"])
    return {
        "transformer": cfg.transformer_config("2.5", layers),
        "connectors": connectors,
        "vae": vae,
        "audio_vae": dict(cfg.AUDIO_VAE),
        "vocoder": dict(cfg.VOCODER["2.5"]),
    }


def load_split_pipeline(info: PresetInfo, location, *, dtype, component_configs: dict | None = None):
    """An ``LTX2Pipeline`` from LTX-2.5's official component files (``location.files``).

    ``component_configs`` overrides the full-size configs (used to test with a toy's files).
    """
    from diffusers import FlowMatchEulerDiscreteScheduler, LTX2Pipeline

    files = dict(location.files)
    check_transformer_generation(info, files["transformer"])
    dtypes = component_dtypes(dtype)
    try:
        text_encoder, tokenizer, others = read_packed_gemma(files["text_encoder"], dtype=dtype)
    except PackedGemmaError as error:
        raise CheckpointMismatch(str(error)) from error
    state, keys_of = read_split_state(files, dtypes)
    for key, tensor in others.items():
        add_converted(state, "text_encoder", key, lambda t=tensor: t, dtypes)
    configs = component_configs or default_split_configs(keys_of, text_encoder.config.text_config)
    components = {}
    for name, cls in component_classes("2.5").items():
        if name not in state:
            source = next(f for f, parts in FILE_COMPONENTS.items() if name in parts)
            raise CheckpointMismatch(f"{files[source].name} holds no {name} tensors")
        components[name] = build_component(name, cls, configs[name], state.pop(name))
    scheduler = FlowMatchEulerDiscreteScheduler.from_config(configs.get("scheduler", cfg.SCHEDULER))
    return LTX2Pipeline(scheduler=scheduler, text_encoder=text_encoder, tokenizer=tokenizer, **components)
