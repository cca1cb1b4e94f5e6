"""Load LTX-2.5's official one-file-per-component weights into a diffusers ``LTX2Pipeline``.

Which tensors each file holds (ltx-core ``loader``/configurators and ltx-pipelines
``utils/model_paths.py``, ``ModelPaths.from_split``; docs/corrections.md "LTX-2.5"):

- transformer file: ``model.diffusion_model.*`` (the 2.3 names, ``prompt_adaln_single`` included,
  less the video feed-forward biases, plus ``keyframes_abs_pos_embedding``), the video / audio
  embeddings connectors included (same prefix); its ``model_version`` / ``config`` metadata say the
  generation;
- packed text encoder: Gemma 4, its config and tokenizer, and the text projection
  (``text_embedding_projection.*``: the connectors' ``video_text_proj_in`` / ``audio_text_proj_in``),
  converted by :mod:`worker.engine.model.packed_gemma`; connector tensors are taken from either file;
- video VAE: ``vae.*`` or the same names without the prefix (ltx-core accepts both);
- audio VAE: ``audio_vae.*`` and the vocoder ``vocoder.*``.

Each key is renamed with the 2.3 tables (``single_file.convert_key``), read one tensor at a time
with ``safe_open`` and cast to its component's dtype on the way; each component is built empty and
filled with ``load_state_dict(assign=True)``; a parameter no file provides is an error.

Each component's size comes from the ``config`` metadata of the file that holds it (ltx-core's
JSON, read the way ltx-core's configurators read it, a key it lacks taking ltx-core's default:
``split_configs``); the tables of ``single_file_configs`` are used only for a file without one.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

from core.model_files_25 import other_generation, read_safetensors_header
from core.presets import PRESETS, PresetInfo
from worker.engine.model import single_file_configs as cfg
from worker.engine.model.loading import component_dtypes
from worker.engine.model.packed_gemma import PackedGemmaError, read_packed_gemma, read_packed_parts
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
    """Refuse a transformer file of another LTX generation: the rule of the web's preflight
    (``core.model_files_25.other_generation``), checked again here for a caller that skipped it."""
    known = tuple(sorted({p.version for p in PRESETS.values()}))
    version = other_generation(path, info.version, known)
    if version is not None:
        preset = "ltx-2.3" if version == "2.3" else "ltx-2"
        raise CheckpointMismatch(
            f"{path.name} is an LTX-{version} transformer but preset {info.name!r} is LTX-{info.version}; "
            f"use --preset {preset} with its single-file checkpoint"
        )


def flags_from_names(keys) -> dict:
    """The 2.5 transformer flags that add or drop tensors, read from the file's tensor names (for a
    file without ``config`` metadata): the prompt AdaLN, the video / audio feed-forward biases and
    the keyframe embedding are there or not, whatever a table assumes."""
    names = set(keys)
    block = "model.diffusion_model.transformer_blocks.0."
    flags = {"use_prompt_adaln_single": "model.diffusion_model.prompt_adaln_single.linear.weight" in names,
             "use_keyframes_abs_pos_embedding": "model.diffusion_model.keyframes_abs_pos_embedding" in names}
    for flag, family in (("ff_bias", "ff"), ("audio_ff_bias", "audio_ff")):
        if f"{block}{family}.net.0.proj.weight" in names:
            flags[flag] = f"{block}{family}.net.0.proj.bias" in names
    return flags


def default_split_configs(keys_of: dict[str, list[str]], gemma_text_config) -> dict[str, dict]:
    """Full-size configs: the 2.5 transformer (its flags from the tensor names) and 2.3-shaped parts,
    layer counts from the files, the connectors' input width from the packed Gemma config (hidden
    size x (layers + 1))."""
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
        "transformer": {**cfg.transformer_config("2.5", layers), **flags_from_names(transformer_keys)},
        "connectors": connectors,
        "vae": vae,
        "audio_vae": dict(cfg.AUDIO_VAE),
        "vocoder": dict(cfg.VOCODER["2.5"]),
    }


def metadata_config(path: Path) -> tuple[dict, dict]:
    """``(config, header)`` of an official file: its ``config`` metadata (ltx-core's JSON; ``{}``
    when absent or unreadable) and its safetensors header (tensor names and shapes)."""
    header = read_safetensors_header(path)
    raw = (header.get("__metadata__") or {}).get("config")
    try:
        config = json.loads(raw) if isinstance(raw, str) else {}
    except json.JSONDecodeError:
        config = {}
    return (config if isinstance(config, dict) else {}), header


def _from_rows(section: dict, rows, prefix: str = "") -> dict:
    return {prefix + ours: section.get(theirs, default) for theirs, ours, default in rows}


def transformer_from_metadata(section: dict, table: dict) -> dict:
    """The diffusers transformer config from ltx-core's ``transformer`` section (absent keys: ltx-core's defaults)."""
    config = {**table, **_from_rows(section, cfg.TRANSFORMER_FROM_METADATA)}
    config["rope_double_precision"] = section.get("frequencies_precision") == "float64"
    config["use_prompt_embeddings"] = not section.get("caption_proj_before_connector", False)
    return config


def connectors_from_metadata(section: dict, table: dict, header: dict) -> dict:
    """The connectors' config from the same section; the register count (not in ltx-core's config:
    128 there) from the tensor's shape."""
    config = dict(table)
    for side in ("video", "audio"):
        for key, default in cfg.CONNECTOR_FROM_METADATA:
            value = section.get(f"connector_{key}", default)
            config[f"{side}_connector_{key}"] = section.get(f"audio_connector_{key}", value) if side == "audio" else value
        heads, dim = config[f"{side}_connector_num_attention_heads"], config[f"{side}_connector_attention_head_dim"]
        config[f"{side}_hidden_dim"] = heads * dim
        config[f"{side}_gated_attn"] = section.get("connector_apply_gated_attention", False)
        registers = header.get(f"model.diffusion_model.{side}_embeddings_connector.learnable_registers", {})
        if registers.get("shape"):
            config[f"{side}_connector_num_learnable_registers"] = registers["shape"][0]
    config["rope_type"] = section.get("rope_type", "split")
    config["rope_double_precision"] = section.get("frequencies_precision") == "float64"
    return config


def audio_vae_from_metadata(section: dict, table: dict) -> dict:
    """The audio VAE config from ltx-core's ``audio_vae`` section (``model.params.ddconfig``, its STFT)."""
    params = (section.get("model") or {}).get("params") or {}
    ddconfig = params.get("ddconfig") or {}
    preprocessing = section.get("preprocessing") or {}
    stft, mel = preprocessing.get("stft") or {}, preprocessing.get("mel") or {}
    config = {**table, **_from_rows(ddconfig, cfg.AUDIO_VAE_FROM_METADATA)}
    config["ch_mult"] = tuple(config["ch_mult"])
    config["attn_resolutions"] = tuple(config["attn_resolutions"]) if config["attn_resolutions"] else None
    config["sample_rate"] = params.get("sampling_rate", 16000)
    config["mel_hop_length"] = stft.get("hop_length", 160)
    config["is_causal"] = stft.get("causal", True)
    mel_bins = ddconfig.get("mel_bins") or mel.get("n_mel_channels") or (section.get("variables") or {}).get("mel_bins")
    config["mel_bins"] = mel_bins or table["mel_bins"]
    return config


def vocoder_from_metadata(section: dict, table: dict, name: str) -> dict:
    """The BWE vocoder config from ltx-core's ``vocoder`` section (its ``vocoder`` and ``bwe`` parts)."""
    if "bwe" not in section:
        raise CheckpointMismatch(f"{name} holds a vocoder without bandwidth extension: not an LTX-2.5 audio file")
    bwe = section["bwe"]
    config = {**table, **_from_rows(section.get("vocoder") or {}, cfg.VOCODER_FROM_METADATA),
              **_from_rows(bwe, cfg.VOCODER_FROM_METADATA, prefix="bwe_")}
    config.update(filter_length=bwe.get("n_fft", table["filter_length"]),
                  window_length=bwe.get("n_fft", table["window_length"]),
                  hop_length=bwe.get("hop_length", table["hop_length"]),
                  num_mel_channels=bwe.get("num_mels", table["num_mel_channels"]),
                  input_sampling_rate=bwe.get("input_sampling_rate", table["input_sampling_rate"]),
                  output_sampling_rate=bwe.get("output_sampling_rate", table["output_sampling_rate"]))
    return config


def _block_list(blocks: list, samplers: dict, name: str) -> tuple[list[dict], list[tuple[str, dict]]]:
    """ltx-core's ``[res_x, <sampler>, res_x, ..., res_x]`` as (the res_x parameters, the samplers'
    (diffusers type, parameters)); another shape has no diffusers equivalent."""
    parsed = [(block, {"num_layers": params} if isinstance(params, int) else dict(params)) for block, params in blocks]
    resnets, sampling = parsed[0::2], parsed[1::2]
    if (not resnets or len(resnets) != len(sampling) + 1 or any(block != "res_x" for block, _ in resnets)
            or any(block not in samplers for block, _ in sampling)):
        raise CheckpointMismatch(f"{name}: video VAE blocks {[b for b, _ in parsed]} have no diffusers equivalent")
    return [params for _, params in resnets], [(samplers[block], params) for block, params in sampling]


def _encoder_fields(section: dict, name: str) -> dict:
    """diffusers' encoder stages: each ``res_x`` then ``compress_*_res`` multiplying the channels
    (from the latent channels: ltx-core's encoder widens the patches to them first)."""
    layers, downs = _block_list(section.get("encoder_blocks", []), cfg.ENCODER_DOWNSAMPLES, name)
    channels, block_out = section.get("latent_channels", 128), []
    for _, params in downs:
        channels *= params.get("multiplier", 2)
        block_out.append(channels)
    patch = section.get("patch_size", 4)
    return {"block_out_channels": tuple(block_out), "layers_per_block": tuple(p["num_layers"] for p in layers),
            "down_block_types": ("LTX2VideoDownBlock3D",) * len(downs),
            "spatio_temporal_scaling": (True,) * len(downs), "downsample_type": tuple(kind for kind, _ in downs),
            "spatial_compression_ratio": patch * math.prod(cfg.SAMPLING_STRIDES[k][1] for k, _ in downs),
            "temporal_compression_ratio": math.prod(cfg.SAMPLING_STRIDES[k][0] for k, _ in downs)}


def _decoder_fields(section: dict, name: str) -> dict:
    """diffusers' decoder stages. ltx-core builds ``decoder_blocks`` reversed, from a bottleneck of
    ``decoder_base_channels`` x every upsampler's channel divisor; diffusers takes each stage's
    entering channels and divisor in the encoder's order (it reverses them), its types in build order."""
    layers, ups = _block_list(list(reversed(section.get("decoder_blocks", []))), cfg.DECODER_UPSAMPLES, name)
    factors = [params.get("multiplier", 1) for _, params in ups]
    channels, entering = section.get("decoder_base_channels", 128) * math.prod(factors), []
    for factor in factors:
        entering.append(channels)
        channels //= factor
    return {"decoder_block_out_channels": tuple(reversed(entering)),
            "decoder_layers_per_block": tuple(reversed([p["num_layers"] for p in layers])),
            "decoder_spatio_temporal_scaling": (True,) * len(ups),
            "decoder_inject_noise": tuple(reversed([p.get("inject_noise", False) for p in layers])),
            "upsample_type": tuple(kind for kind, _ in ups),
            "upsample_residual": tuple(reversed([p.get("residual", False) for _, p in ups])),
            "upsample_factor": tuple(reversed(factors))}


def video_vae_from_metadata(section: dict, table: dict, name: str) -> dict:
    """The conv video VAE config from ltx-core's ``vae`` section (``timestep_conditioning``, when
    the section does not say, from the tensors as before)."""
    if section.get("_class_name", "CausalVideoAutoencoder") != "CausalVideoAutoencoder" or "encoder" in section:
        raise CheckpointMismatch(f"{name} is a {section.get('_class_name')} (diffusion-decoder) video VAE, which "
                                 "diffusers cannot load: use ltx-2.5-video-vae-conv-bf16.safetensors")
    if section.get("norm_layer", "pixel_norm") != "pixel_norm" or section.get("latent_log_var", "uniform") != "uniform":
        raise CheckpointMismatch(f"{name}: a video VAE with {section.get('norm_layer')} / "
                                 f"{section.get('latent_log_var')} has no diffusers equivalent")
    padding = section.get("spatial_padding_mode")
    return {**table, **_encoder_fields(section, name), **_decoder_fields(section, name),
            "in_channels": section.get("in_channels", 3), "out_channels": section.get("out_channels", 3),
            "latent_channels": section.get("latent_channels", 128), "patch_size": section.get("patch_size", 4),
            "encoder_spatial_padding_mode": padding or section.get("encoder_spatial_padding_mode", "zeros"),
            "decoder_spatial_padding_mode": padding or "reflect",
            "decoder_causal": section.get("causal_decoder", False),
            "timestep_conditioning": section.get("timestep_conditioning", table["timestep_conditioning"])}


def split_configs(files: dict[str, Path], keys_of: dict[str, list[str]], gemma_text_config) -> dict[str, dict]:
    """Full-size configs: each component's from the ``config`` metadata of the file that holds it
    (ltx-core's layout, read as ltx-core reads it), the tables (``default_split_configs``) for a
    component whose file carries no config."""
    configs = default_split_configs(keys_of, gemma_text_config)
    transformer, header = metadata_config(files["transformer"])
    if isinstance(transformer.get("transformer"), dict):
        configs["transformer"] = transformer_from_metadata(transformer["transformer"], configs["transformer"])
        configs["connectors"] = connectors_from_metadata(transformer["transformer"], configs["connectors"], header)
    vae, _ = metadata_config(files["vae"])
    if isinstance(vae.get("vae"), dict):
        configs["vae"] = video_vae_from_metadata(vae["vae"], configs["vae"], files["vae"].name)
    audio, _ = metadata_config(files["audio_vae"])
    if isinstance(audio.get("audio_vae"), dict):
        configs["audio_vae"] = audio_vae_from_metadata(audio["audio_vae"], configs["audio_vae"])
    if isinstance(audio.get("vocoder"), dict):
        configs["vocoder"] = vocoder_from_metadata(audio["vocoder"], configs["vocoder"], files["audio_vae"].name)
    return configs


def load_split_pipeline(info: PresetInfo, location, *, dtype, component_configs: dict | None = None,
                        with_text_encoder: bool = True):
    """An ``LTX2Pipeline`` from LTX-2.5's official component files (``location.files``).

    ``component_configs`` overrides the full-size configs (used to test with a toy's files).
    ``with_text_encoder`` False (the trainer's load): Gemma 4 is neither built nor read; the packed
    file gives only its config, tokenizer and the connectors' projection.
    """
    from diffusers import FlowMatchEulerDiscreteScheduler, LTX2Pipeline

    files = dict(location.files)
    check_transformer_generation(info, files["transformer"])
    dtypes = component_dtypes(dtype)
    try:
        if with_text_encoder:
            text_encoder, tokenizer, others = read_packed_gemma(files["text_encoder"], dtype=dtype)
            text_config = text_encoder.config.text_config
        else:
            text_encoder = None
            text_config, tokenizer, others = read_packed_parts(files["text_encoder"])
    except PackedGemmaError as error:
        raise CheckpointMismatch(str(error)) from error
    state, keys_of = read_split_state(files, dtypes)
    for key, tensor in others.items():
        add_converted(state, "text_encoder", key, lambda t=tensor: t, dtypes)
    configs = component_configs or split_configs(files, keys_of, text_config)
    components = {}
    for name, cls in component_classes("2.5").items():
        if name not in state:
            source = next(f for f, parts in FILE_COMPONENTS.items() if name in parts)
            raise CheckpointMismatch(f"{files[source].name} holds no {name} tensors")
        components[name] = build_component(name, cls, configs[name], state.pop(name))
    scheduler = FlowMatchEulerDiscreteScheduler.from_config(configs.get("scheduler", cfg.SCHEDULER))
    return LTX2Pipeline(scheduler=scheduler, text_encoder=text_encoder, tokenizer=tokenizer, **components)
