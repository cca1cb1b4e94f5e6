"""Module names of the LTX-2 transformer and text connectors: diffusers <-> official (ltx-core).

diffusers renames the official ltx-core modules when it converts a checkpoint
(``scripts/convert_ltx2_to_diffusers.py``, and for LoRA files
``loaders/lora_conversion_utils._convert_non_diffusers_ltx2_lora_to_diffusers``). ComfyUI and the
official trainer use the ltx-core names, so an official-format LoRA must carry them. The
rename is done per dotted path segment (never by substring), so ``audio_proj_in`` and
``proj_in`` cannot clash.

Also here: the family of a module (attn1, audio_ff, connectors, ...) and its side of the model
(video / audio, as DESIGN.md defines them), used for reports and per-side LoRA strength.
"""

from __future__ import annotations

import re

from core.recipe.architecture import AUDIO_FAMILIES, BLOCK_FAMILIES, VIDEO_FAMILIES, family_side

# First path segment of a transformer module: diffusers name -> ltx-core name.
_TOP_LEVEL_TO_OFFICIAL = {
    "proj_in": "patchify_proj",
    "audio_proj_in": "audio_patchify_proj",
    "time_embed": "adaln_single",
    "audio_time_embed": "audio_adaln_single",
    "av_cross_attn_video_scale_shift": "av_ca_video_scale_shift_adaln_single",
    "av_cross_attn_video_a2v_gate": "av_ca_a2v_gate_adaln_single",
    "av_cross_attn_audio_scale_shift": "av_ca_audio_scale_shift_adaln_single",
    "av_cross_attn_audio_v2a_gate": "av_ca_v2a_gate_adaln_single",
    "prompt_adaln": "prompt_adaln_single",  # LTX-2.3
    "audio_prompt_adaln": "audio_prompt_adaln_single",  # LTX-2.3
}
# Any path segment (attention q/k norms, per-block cross-modal modulation tables).
_ANY_SEGMENT_TO_OFFICIAL = {
    "norm_q": "q_norm",
    "norm_k": "k_norm",
    "video_a2v_cross_attn_scale_shift_table": "scale_shift_table_a2v_ca_video",
    "audio_a2v_cross_attn_scale_shift_table": "scale_shift_table_a2v_ca_audio",
}
# Text connectors (diffusers ``LTX2TextConnectors``) -> ltx-core names.
_CONNECTOR_TOP_TO_OFFICIAL = {
    "video_connector": "video_embeddings_connector",
    "audio_connector": "audio_embeddings_connector",
}
_CONNECTOR_PROJECTIONS_TO_OFFICIAL = {
    "text_proj_in": "text_embedding_projection.aggregate_embed",  # LTX-2.0
    "video_text_proj_in": "text_embedding_projection.video_aggregate_embed",  # LTX-2.3
    "audio_text_proj_in": "text_embedding_projection.audio_aggregate_embed",  # LTX-2.3
}

_TOP_LEVEL_TO_DIFFUSERS = {v: k for k, v in _TOP_LEVEL_TO_OFFICIAL.items()}
_ANY_SEGMENT_TO_DIFFUSERS = {v: k for k, v in _ANY_SEGMENT_TO_OFFICIAL.items()}
_CONNECTOR_TOP_TO_DIFFUSERS = {v: k for k, v in _CONNECTOR_TOP_TO_OFFICIAL.items()}
_CONNECTOR_PROJECTIONS_TO_DIFFUSERS = {v: k for k, v in _CONNECTOR_PROJECTIONS_TO_OFFICIAL.items()}

OFFICIAL_PREFIX = "diffusion_model."
DIFFUSERS_TRANSFORMER_PREFIX = "transformer."
DIFFUSERS_CONNECTORS_PREFIX = "connectors."

FAMILIES = BLOCK_FAMILIES + ("connectors", "other")
VIDEO_SIDE_FAMILIES = VIDEO_FAMILIES
AUDIO_SIDE_FAMILIES = AUDIO_FAMILIES

_BLOCK_RE = re.compile(r"^transformer_blocks\.\d+\.([a-z0-9_]+)(\.|$)")


def _rename_segments(name: str, top: dict[str, str], anywhere: dict[str, str]) -> str:
    parts = name.split(".")
    if parts and parts[0] in top:
        parts[0] = top[parts[0]]
    return ".".join(anywhere.get(p, p) for p in parts)


def transformer_module_to_official(name: str) -> str:
    """diffusers transformer module name -> ltx-core name (``proj_in`` -> ``patchify_proj``)."""
    return _rename_segments(name, _TOP_LEVEL_TO_OFFICIAL, _ANY_SEGMENT_TO_OFFICIAL)


def transformer_module_to_diffusers(name: str) -> str:
    """ltx-core transformer module name -> diffusers name (``q_norm`` -> ``norm_q``)."""
    return _rename_segments(name, _TOP_LEVEL_TO_DIFFUSERS, _ANY_SEGMENT_TO_DIFFUSERS)


def connector_module_to_official(name: str) -> str:
    """diffusers connectors module name -> official key prefix (without ``diffusion_model.``).

    ``video_connector.transformer_blocks.0.attn1.to_q`` ->
    ``video_embeddings_connector.transformer_1d_blocks.0.attn1.to_q``;
    ``text_proj_in`` -> ``text_embedding_projection.aggregate_embed`` (which lives outside
    ``diffusion_model.`` in the official files).
    """
    head, _, rest = name.partition(".")
    if head in _CONNECTOR_PROJECTIONS_TO_OFFICIAL:
        return ".".join(filter(None, [_CONNECTOR_PROJECTIONS_TO_OFFICIAL[head], rest]))
    parts = name.split(".")
    parts[0] = _CONNECTOR_TOP_TO_OFFICIAL.get(parts[0], parts[0])
    if len(parts) > 1 and parts[1] == "transformer_blocks":
        parts[1] = "transformer_1d_blocks"
    return ".".join(_ANY_SEGMENT_TO_OFFICIAL.get(p, p) for p in parts)


def connector_module_to_diffusers(name: str) -> str:
    """Inverse of :func:`connector_module_to_official`."""
    for official, diffusers_name in _CONNECTOR_PROJECTIONS_TO_DIFFUSERS.items():
        if name == official or name.startswith(official + "."):
            return diffusers_name + name[len(official) :]
    parts = name.split(".")
    parts[0] = _CONNECTOR_TOP_TO_DIFFUSERS.get(parts[0], parts[0])
    if len(parts) > 1 and parts[1] == "transformer_1d_blocks":
        parts[1] = "transformer_blocks"
    return ".".join(_ANY_SEGMENT_TO_DIFFUSERS.get(p, p) for p in parts)


def is_official_connector_name(name: str) -> bool:
    """True for ltx-core connector module names (with ``diffusion_model.`` already removed)."""
    head = name.split(".", 1)[0]
    return head in _CONNECTOR_TOP_TO_DIFFUSERS or head == "text_embedding_projection"


def module_family(qualified_name: str) -> str:
    """Family of a module given its diffusers name with component prefix.

    ``transformer.transformer_blocks.3.audio_attn2.to_k`` -> ``audio_attn2``;
    ``connectors.video_connector...`` -> ``connectors``; anything else -> ``other``.
    Names without a component prefix are read as transformer names.
    """
    if qualified_name.startswith(DIFFUSERS_CONNECTORS_PREFIX):
        return "connectors"
    name = qualified_name.removeprefix(DIFFUSERS_TRANSFORMER_PREFIX)
    if is_official_connector_name(name) or name.split(".", 1)[0] in _CONNECTOR_TOP_TO_OFFICIAL:
        return "connectors"
    match = _BLOCK_RE.match(name)
    if match and match.group(1) in BLOCK_FAMILIES:
        return match.group(1)
    return "other"


def family_of_key(key: str) -> str:
    """Best-effort family of any LoRA file key, in any layout (used for reports)."""
    name = key
    for prefix in (OFFICIAL_PREFIX, "model." + OFFICIAL_PREFIX):
        if name.startswith(prefix):
            name = name[len(prefix) :]
    if name.startswith(DIFFUSERS_CONNECTORS_PREFIX) or is_official_connector_name(name):
        return "connectors"
    name = name.removeprefix(DIFFUSERS_TRANSFORMER_PREFIX)
    match = re.search(r"transformer_blocks[._](\d+)[._]", name)
    if match:
        rest = name[match.end() :]
        for family in sorted(BLOCK_FAMILIES, key=len, reverse=True):
            if rest.startswith(family + ".") or rest.startswith(family + "_"):
                return family
    return "other"


def side_of_family(family: str) -> str | None:
    """``video`` or ``audio`` for block families (DESIGN.md's sides, from core.recipe.architecture)."""
    return family_side(family)
