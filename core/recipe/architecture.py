"""The LTX-2 transformer's module names, derived from its config alone (no torch).

This mirrors ``diffusers.LTX2VideoTransformer3DModel`` (diffusers 0.42.1): the list returned by
:func:`transformer_modules` equals ``[(name, type(m).__name__) for name, m in
model.named_modules()]`` (root left out), with in/out features for every ``nn.Linear``. A unit
test builds a small real model and compares. From it the web form can tell which layers a
LoRA ``target_modules`` setting reaches, with PEFT's matching rule (:mod:`core.recipe.targets`).

Families: each transformer block has eight sub-modules a LoRA may target, ``attn1``,
``audio_attn1`` (self-attention), ``attn2``, ``audio_attn2`` (text cross-attention),
``audio_to_video_attn``, ``video_to_audio_attn`` (cross-modal) and ``ff``, ``audio_ff``.
Everything else is ``other``. Sides: the video side is the families whose queries come from
and whose output writes the video stream; the audio side likewise.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

VIDEO_FAMILIES = ("attn1", "attn2", "audio_to_video_attn", "ff")
AUDIO_FAMILIES = ("audio_attn1", "audio_attn2", "video_to_audio_attn", "audio_ff")
CROSS_MODAL_FAMILIES = ("audio_to_video_attn", "video_to_audio_attn")
ATTENTION_FAMILIES = ("attn1", "audio_attn1", "attn2", "audio_attn2", "audio_to_video_attn", "video_to_audio_attn")
BLOCK_FAMILIES = ATTENTION_FAMILIES + ("ff", "audio_ff")
FAMILIES = BLOCK_FAMILIES + ("other",)

# diffusers 0.42.1 LTX2VideoTransformer3DModel.__init__ defaults (only what shapes the modules).
DIFFUSERS_DEFAULTS: dict[str, Any] = {
    "in_channels": 128,
    "out_channels": 128,
    "num_attention_heads": 32,
    "attention_head_dim": 128,
    "cross_attention_dim": 4096,
    "gated_attn": False,
    "cross_attn_mod": False,
    "audio_in_channels": 128,
    "audio_out_channels": 128,
    "audio_num_attention_heads": 32,
    "audio_attention_head_dim": 64,
    "audio_cross_attention_dim": 2048,
    "audio_gated_attn": False,
    "audio_cross_attn_mod": False,
    "num_layers": 48,
    "activation_fn": "gelu-approximate",
    "caption_channels": 3840,
    "use_prompt_embeddings": True,
    "perturbed_attn": False,
    "use_prompt_adaln_single": True,
    "ff_bias": True,
    "audio_ff_bias": True,
}

# Full-size transformer configs, as diffusers' LTX-2 converter writes them.
LTX2_FULL_CONFIG: dict[str, Any] = {**DIFFUSERS_DEFAULTS, "rope_type": "split"}
LTX23_FULL_CONFIG: dict[str, Any] = {
    **LTX2_FULL_CONFIG,
    "gated_attn": True,
    "audio_gated_attn": True,
    "cross_attn_mod": True,
    "audio_cross_attn_mod": True,
    "perturbed_attn": True,
    "use_prompt_embeddings": False,
}
# LTX-2.5 keeps the 2.3 layout, prompt AdaLN included (the released files carry prompt_adaln_single);
# its video feed-forward has no bias, and it adds the learned keyframe embedding, a parameter and no
# module (nothing a LoRA can target), as ltx-core's LTXModelConfigurator reads the released 2.5
# transformer's config (ff_bias, use_keyframes_abs_pos_embedding; docs/corrections.md, "LTX-2.5").
LTX25_FULL_CONFIG: dict[str, Any] = {**LTX23_FULL_CONFIG, "ff_bias": False, "use_keyframes_abs_pos_embedding": True}
MODEL_CONFIGS: dict[str, dict[str, Any]] = {
    "ltx-2.3": LTX23_FULL_CONFIG,
    "ltx-2": LTX2_FULL_CONFIG,
    "ltx-2.5": LTX25_FULL_CONFIG,
}

# FeedForward activation -> (class name, proj out multiplier, extra child class or None)
_ACTIVATIONS: dict[str, tuple[str, int, str | None]] = {
    "gelu": ("GELU", 1, None),
    "gelu-approximate": ("GELU", 1, None),
    "geglu": ("GEGLU", 2, None),
    "geglu-approximate": ("ApproximateGELU", 1, None),
    "swiglu": ("SwiGLU", 2, "SiLU"),
    "linear-silu": ("LinearActivation", 1, "SiLU"),
}
_BLOCK_NAME = re.compile(r"transformer_blocks\.(\d+)\.([a-z0-9_]+)(?:\.|$)")
_TIMESTEP_CHANNELS = 256
_FF_MULT = 4


class ArchitectureError(ValueError):
    """A transformer config this module cannot describe; the message names the field."""


@dataclass(frozen=True)
class ModuleInfo:
    """One sub-module of the transformer: dotted name, class name, Linear shape (and bias) if any."""

    name: str
    kind: str
    in_features: int | None = None
    out_features: int | None = None
    bias: bool | None = None  # for a Linear: whether it has a bias (LTX-2.5's video ff has none)

    @property
    def is_linear(self) -> bool:
        """True for ``torch.nn.Linear`` modules (the only kind a LoRA wraps here)."""
        return self.kind == "Linear"

    @property
    def family(self) -> str:
        """The block family this module belongs to, or ``"other"``."""
        return module_family(self.name)

    @property
    def side(self) -> str | None:
        """``"video"``, ``"audio"`` or ``None`` (not in a block family)."""
        return family_side(self.family)

    @property
    def block_index(self) -> int | None:
        """Index of the transformer block holding this module, or ``None``."""
        match = _BLOCK_NAME.match(self.name)
        return int(match.group(1)) if match else None


def module_family(name: str) -> str:
    """Family of a module name: one of :data:`BLOCK_FAMILIES`, else ``"other"``."""
    match = _BLOCK_NAME.match(name)
    if match and match.group(2) in BLOCK_FAMILIES:
        return match.group(2)
    return "other"


def family_side(family: str) -> str | None:
    """``"video"`` for :data:`VIDEO_FAMILIES`, ``"audio"`` for :data:`AUDIO_FAMILIES`, else ``None``."""
    if family in VIDEO_FAMILIES:
        return "video"
    if family in AUDIO_FAMILIES:
        return "audio"
    return None


def resolve_config(config: Mapping[str, Any] | str) -> dict[str, Any]:
    """A full config: a preset name from :data:`MODEL_CONFIGS` or a dict over the defaults.

    Keys the module layout does not depend on (``rope_theta``, ``_class_name``, ...) are kept
    but ignored, so a diffusers ``config.json`` can be passed as it is.
    """
    if isinstance(config, str):
        if config not in MODEL_CONFIGS:
            raise ArchitectureError(f"unknown model '{config}': choose one of {', '.join(MODEL_CONFIGS)}")
        return dict(MODEL_CONFIGS[config])
    merged = {**DIFFUSERS_DEFAULTS, **config}
    # diffusers: out_channels=None means "same as in_channels"
    merged["out_channels"] = merged["out_channels"] or merged["in_channels"]
    merged["audio_out_channels"] = merged["audio_out_channels"] or merged["audio_in_channels"]
    for key in ("in_channels", "num_attention_heads", "attention_head_dim", "cross_attention_dim",
                "audio_in_channels", "audio_num_attention_heads", "audio_attention_head_dim",
                "audio_cross_attention_dim", "num_layers", "caption_channels"):
        value = merged[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < (0 if key == "num_layers" else 1):
            raise ArchitectureError(f"transformer config '{key}' must be a positive integer, got {value!r}")
    if merged["activation_fn"] not in _ACTIVATIONS:
        raise ArchitectureError(
            f"transformer config 'activation_fn' {merged['activation_fn']!r} is not one of {', '.join(_ACTIVATIONS)}"
        )
    return merged


def transformer_modules(config: Mapping[str, Any] | str) -> list[ModuleInfo]:
    """Every sub-module of the transformer, in ``named_modules()`` order (root left out)."""
    cfg = resolve_config(config)
    return list(_cached_modules(json.dumps(cfg, sort_keys=True, default=str)))


@functools.lru_cache(maxsize=16)
def _cached_modules(cfg_json: str) -> tuple[ModuleInfo, ...]:
    # The full-size list has ~5,000 entries; the web form lints often, so build it once per config.
    return tuple(_build_modules(json.loads(cfg_json)))


def _build_modules(cfg: dict[str, Any]) -> list[ModuleInfo]:
    dim = cfg["num_attention_heads"] * cfg["attention_head_dim"]
    audio_dim = cfg["audio_num_attention_heads"] * cfg["audio_attention_head_dim"]
    modules: list[ModuleInfo] = [
        _linear("proj_in", cfg["in_channels"], dim),
        _linear("audio_proj_in", cfg["audio_in_channels"], audio_dim),
    ]
    if cfg["use_prompt_embeddings"]:
        modules += _text_projection("caption_projection", cfg["caption_channels"], dim)
        modules += _text_projection("audio_caption_projection", cfg["caption_channels"], audio_dim)
    modules += _adaln_single("time_embed", dim, 9 if cfg["cross_attn_mod"] else 6)
    modules += _adaln_single("audio_time_embed", audio_dim, 9 if cfg["audio_cross_attn_mod"] else 6)
    modules += _adaln_single("av_cross_attn_video_scale_shift", dim, 4)
    modules += _adaln_single("av_cross_attn_audio_scale_shift", audio_dim, 4)
    modules += _adaln_single("av_cross_attn_video_a2v_gate", dim, 1)
    modules += _adaln_single("av_cross_attn_audio_v2a_gate", audio_dim, 1)
    if (cfg["cross_attn_mod"] or cfg["audio_cross_attn_mod"]) and cfg["use_prompt_adaln_single"]:
        modules += _adaln_single("prompt_adaln", dim, 2)
        modules += _adaln_single("audio_prompt_adaln", audio_dim, 2)
    modules += [ModuleInfo(n, "LTX2AudioVideoRotaryPosEmbed") for n in
                ("rope", "audio_rope", "cross_attn_rope", "cross_attn_audio_rope")]
    modules.append(ModuleInfo("transformer_blocks", "ModuleList"))
    for index in range(cfg["num_layers"]):
        modules += _block(f"transformer_blocks.{index}", cfg, dim, audio_dim)
    modules += [
        ModuleInfo("norm_out", "LayerNorm"),
        _linear("proj_out", dim, cfg["out_channels"]),
        ModuleInfo("audio_norm_out", "LayerNorm"),
        _linear("audio_proj_out", audio_dim, cfg["audio_out_channels"]),
    ]
    return modules


def linear_modules(config: Mapping[str, Any] | str) -> list[ModuleInfo]:
    """Only the ``nn.Linear`` modules, in model order."""
    return [m for m in transformer_modules(config) if m.is_linear]


def linear_module_names(config: Mapping[str, Any] | str) -> list[str]:
    """Names of every ``nn.Linear`` in the transformer, in model order."""
    return [m.name for m in linear_modules(config)]


def family_linear_counts(config: Mapping[str, Any] | str) -> dict[str, int]:
    """How many ``nn.Linear`` modules each family holds (every family present)."""
    counts = dict.fromkeys(FAMILIES, 0)
    for module in linear_modules(config):
        counts[module.family] += 1
    return counts


# --- builders, one per diffusers class --------------------------------------------------------


def _linear(name: str, in_features: int, out_features: int, bias: bool = True) -> ModuleInfo:
    return ModuleInfo(name, "Linear", in_features, out_features, bias)


def _text_projection(name: str, in_features: int, hidden: int) -> list[ModuleInfo]:
    return [
        ModuleInfo(name, "PixArtAlphaTextProjection"),
        _linear(f"{name}.linear_1", in_features, hidden),
        ModuleInfo(f"{name}.act_1", "GELU"),
        _linear(f"{name}.linear_2", hidden, hidden),
    ]


def _adaln_single(name: str, dim: int, num_mod_params: int) -> list[ModuleInfo]:
    emb = f"{name}.emb"
    return [
        ModuleInfo(name, "LTX2AdaLayerNormSingle"),
        ModuleInfo(emb, "PixArtAlphaCombinedTimestepSizeEmbeddings"),
        ModuleInfo(f"{emb}.time_proj", "Timesteps"),
        ModuleInfo(f"{emb}.timestep_embedder", "TimestepEmbedding"),
        _linear(f"{emb}.timestep_embedder.linear_1", _TIMESTEP_CHANNELS, dim),
        ModuleInfo(f"{emb}.timestep_embedder.act", "SiLU"),
        _linear(f"{emb}.timestep_embedder.linear_2", dim, dim),
        ModuleInfo(f"{name}.silu", "SiLU"),
        _linear(f"{name}.linear", dim, num_mod_params * dim),
    ]


def _attention(name: str, query_dim: int, kv_dim: int, heads: int, head_dim: int, gated: bool) -> list[ModuleInfo]:
    inner = heads * head_dim
    modules = [
        ModuleInfo(name, "LTX2Attention"),
        ModuleInfo(f"{name}.norm_q", "RMSNorm"),
        ModuleInfo(f"{name}.norm_k", "RMSNorm"),
        _linear(f"{name}.to_q", query_dim, inner),
        _linear(f"{name}.to_k", kv_dim, inner),
        _linear(f"{name}.to_v", kv_dim, inner),
        ModuleInfo(f"{name}.to_out", "ModuleList"),
        _linear(f"{name}.to_out.0", inner, query_dim),
        ModuleInfo(f"{name}.to_out.1", "Dropout"),
    ]
    if gated:
        modules.append(_linear(f"{name}.to_gate_logits", query_dim, heads))
    return modules


def _feed_forward(name: str, dim: int, activation_fn: str, bias: bool) -> list[ModuleInfo]:
    act_class, proj_mult, act_child = _ACTIVATIONS[activation_fn]
    inner = dim * _FF_MULT
    modules = [
        ModuleInfo(name, "FeedForward"),
        ModuleInfo(f"{name}.net", "ModuleList"),
        ModuleInfo(f"{name}.net.0", act_class),
        _linear(f"{name}.net.0.proj", dim, inner * proj_mult, bias),
    ]
    if act_child:
        modules.append(ModuleInfo(f"{name}.net.0.activation", act_child))
    modules += [ModuleInfo(f"{name}.net.1", "Dropout"), _linear(f"{name}.net.2", inner, dim, bias)]
    return modules


def _block(prefix: str, cfg: dict[str, Any], dim: int, audio_dim: int) -> list[ModuleInfo]:
    heads, head_dim = cfg["num_attention_heads"], cfg["attention_head_dim"]
    a_heads, a_head_dim = cfg["audio_num_attention_heads"], cfg["audio_attention_head_dim"]
    video_gated, audio_gated = bool(cfg["gated_attn"]), bool(cfg["audio_gated_attn"])
    p = prefix
    return [
        ModuleInfo(p, "LTX2VideoTransformerBlock"),
        ModuleInfo(f"{p}.norm1", "RMSNorm"),
        *_attention(f"{p}.attn1", dim, dim, heads, head_dim, video_gated),
        ModuleInfo(f"{p}.audio_norm1", "RMSNorm"),
        *_attention(f"{p}.audio_attn1", audio_dim, audio_dim, a_heads, a_head_dim, audio_gated),
        ModuleInfo(f"{p}.norm2", "RMSNorm"),
        *_attention(f"{p}.attn2", dim, cfg["cross_attention_dim"], heads, head_dim, video_gated),
        ModuleInfo(f"{p}.audio_norm2", "RMSNorm"),
        *_attention(f"{p}.audio_attn2", audio_dim, cfg["audio_cross_attention_dim"], a_heads, a_head_dim,
                    audio_gated),
        ModuleInfo(f"{p}.audio_to_video_norm", "RMSNorm"),
        *_attention(f"{p}.audio_to_video_attn", dim, audio_dim, a_heads, a_head_dim, video_gated),
        ModuleInfo(f"{p}.video_to_audio_norm", "RMSNorm"),
        *_attention(f"{p}.video_to_audio_attn", audio_dim, dim, a_heads, a_head_dim, audio_gated),
        ModuleInfo(f"{p}.norm3", "RMSNorm"),
        *_feed_forward(f"{p}.ff", dim, cfg["activation_fn"], bool(cfg["ff_bias"])),
        ModuleInfo(f"{p}.audio_norm3", "RMSNorm"),
        *_feed_forward(f"{p}.audio_ff", audio_dim, cfg["activation_fn"], bool(cfg["audio_ff_bias"])),
    ]
