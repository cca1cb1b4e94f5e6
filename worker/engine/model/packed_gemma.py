"""LTX-2.5's packed text-encoder file: Gemma 4 weights, config and tokenizer in one safetensors file.

The layout (read in ltx-core ``text_encoders/gemma/gemma_assets.py`` and
``encoders/encoder_configurator.py``; nothing copied):

- metadata ``gemma_config``: the Hugging Face config as JSON (``model_type`` ``gemma4_unified``);
- tensor ``tokenizer_json``: the bytes of ``tokenizer.json`` as a uint8 tensor;
- tensors ``hf_asset__<file name>``: the other Hugging Face files (``tokenizer_config.json``,
  ``processor_config.json``, the chat template...), also uint8 bytes; older packs keep the small
  ones as metadata strings under the file name;
- the language model in ComfyUI's flat layout (``model.layers.*``, ``model.embed_tokens.*``,
  ``model.norm.*``; the vision / audio embedders as ``vision_model.*``, ``multi_modal_projector.*``,
  ``audio_projector.*``) or in the Hugging Face layout (``model.language_model.*``); ``lm_head`` is
  tied to the token embedding and not stored;
- the text projection (``text_embedding_projection.*``, the connectors' input Linears).

``read_packed_gemma`` builds ``transformers``' ``Gemma4UnifiedForConditionalGeneration`` and a
fast tokenizer from it, reading one tensor at a time, and hands back the other tensors it found.
"""

from __future__ import annotations

import json
from pathlib import Path

CONFIG_KEY = "gemma_config"
TOKENIZER_KEY = "tokenizer_json"
ASSET_PREFIX = "hf_asset__"
GEMMA4_MODEL_TYPE = "gemma4_unified"

# Official (packed) prefix -> transformers module path, tried in order; the first match wins.
GEMMA_PREFIXES: tuple[tuple[str, str], ...] = (
    ("model.language_model.", "model.language_model."),
    ("model.layers.", "model.language_model.layers."),
    ("model.embed_tokens.", "model.language_model.embed_tokens."),
    ("model.norm.", "model.language_model.norm."),
    ("model.vision_embedder.", "model.embed_vision."),
    ("model.embed_vision.embedding_projection.", "model.embed_vision.multimodal_embedder.embedding_projection."),
    ("model.embed_vision.", "model.embed_vision."),
    ("model.embed_audio.", "model.embed_audio."),
    ("vision_model.", "model.embed_vision."),
    ("multi_modal_projector.", "model.embed_vision.multimodal_embedder."),
    ("audio_projector.", "model.embed_audio."),
)
# Tensors that are not the Gemma model; the caller routes them (text projection, connectors).
FOREIGN_PREFIXES = ("text_embedding_projection.", "model.diffusion_model.")
# tokenizer_config.json entries that describe the saved files rather than the tokenizer.
TOKENIZER_CONFIG_SKIPPED = frozenset({
    "tokenizer_class", "auto_map", "model_max_length", "backend", "is_local", "local_files_only",
    "processor_class", "added_tokens_decoder", "name_or_path",
})


class PackedGemmaError(ValueError):
    """The packed text-encoder file lacks its config, tokenizer or weights, or is not Gemma 4."""


def gemma_key(key: str) -> str | None:
    """The transformers name of a packed Gemma key, or ``None`` when the key is not Gemma's."""
    if key == TOKENIZER_KEY or key.startswith(ASSET_PREFIX) or key.startswith(FOREIGN_PREFIXES):
        return None
    if key == "lm_head.weight":
        return key
    for old, new in GEMMA_PREFIXES:
        if key.startswith(old):
            return new + key[len(old) :]
    return None


def _bytes_of(tensor) -> bytes:
    import numpy as np

    return tensor.cpu().numpy().astype(np.uint8, copy=False).tobytes()


def read_gemma_config(path: Path) -> dict:
    """The Hugging Face config packed in ``path`` (a ``PackedGemmaError`` when absent or not Gemma 4)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        raw = (handle.metadata() or {}).get(CONFIG_KEY)
    if raw is None:
        raise PackedGemmaError(f"{Path(path).name} has no {CONFIG_KEY!r} metadata: not a packed text-encoder file")
    config = json.loads(raw)
    model_type = config.get("model_type")
    if model_type != GEMMA4_MODEL_TYPE:
        raise PackedGemmaError(
            f"{Path(path).name} packs a {model_type!r} text encoder; LTX-2.5 needs its Gemma 4 "
            f"({GEMMA4_MODEL_TYPE!r}, gemma4-12b-with-proj-ltx-2.5-bf16.safetensors)"
        )
    return config


def build_tokenizer(tokenizer_json: bytes, tokenizer_config: dict):
    """A fast tokenizer from ``tokenizer.json``'s bytes and ``tokenizer_config.json``, left-padded."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    options = {k: v for k, v in tokenizer_config.items() if k not in TOKENIZER_CONFIG_SKIPPED}
    options["padding_side"] = "left"
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(tokenizer_json.decode()), **options)
    tokenizer.model_max_length = 1024
    return tokenizer


def _read_tokenizer(handle, keys: set[str], name: str):
    if TOKENIZER_KEY not in keys:
        raise PackedGemmaError(f"{name} has no {TOKENIZER_KEY!r} tensor (the packed tokenizer)")
    asset = f"{ASSET_PREFIX}tokenizer_config.json"
    if asset in keys:
        tokenizer_config = json.loads(_bytes_of(handle.get_tensor(asset)))
    else:
        tokenizer_config = json.loads((handle.metadata() or {}).get("tokenizer_config.json", "{}"))
    return build_tokenizer(_bytes_of(handle.get_tensor(TOKENIZER_KEY)), tokenizer_config)


def read_packed_gemma(path: Path, *, dtype) -> tuple[object, object, dict]:
    """``(text_encoder, tokenizer, other tensors by official name)`` from a packed file.

    Weights are read one at a time and cast to ``dtype``; a Gemma parameter the file does not
    provide is a ``PackedGemmaError`` naming it (never random weights).
    """
    from accelerate import init_empty_weights
    from safetensors import safe_open
    from transformers import Gemma4UnifiedConfig, Gemma4UnifiedForConditionalGeneration

    path = Path(path)
    config = Gemma4UnifiedConfig.from_dict(read_gemma_config(path))
    with init_empty_weights():
        model = Gemma4UnifiedForConditionalGeneration(config)
    state, others = {}, {}
    with safe_open(str(path), framework="pt") as handle:
        keys = set(handle.keys())
        tokenizer = _read_tokenizer(handle, keys, path.name)
        for key in sorted(keys):
            new_key = gemma_key(key)
            if new_key is None:
                if key.startswith(FOREIGN_PREFIXES):
                    others[key] = handle.get_tensor(key)
                continue
            tensor = handle.get_tensor(key)
            state[new_key] = tensor.to(dtype) if tensor.is_floating_point() else tensor
    result = model.load_state_dict(state, strict=False, assign=True)
    _tie_lm_head(model, state)
    missing = [k for k in result.missing_keys if k != "lm_head.weight"]
    if missing or any(p.is_meta for p in model.parameters()):
        shown = ", ".join(missing[:8]) or "lm_head.weight"
        raise PackedGemmaError(f"{path.name} has no weights for the text encoder: {shown}")
    return model.eval(), tokenizer, others


def read_packed_parts(path: Path) -> tuple[object, object, dict]:
    """``(Gemma text config, tokenizer, other tensors by official name)`` from a packed file,
    without building or reading Gemma: what a pipeline loaded without its text encoder needs
    (the connectors' projection and sizes)."""
    from safetensors import safe_open
    from transformers import Gemma4UnifiedConfig

    path = Path(path)
    config = Gemma4UnifiedConfig.from_dict(read_gemma_config(path))
    with safe_open(str(path), framework="pt") as handle:
        keys = set(handle.keys())
        tokenizer = _read_tokenizer(handle, keys, path.name)
        others = {key: handle.get_tensor(key) for key in sorted(keys)
                  if gemma_key(key) is None and key.startswith(FOREIGN_PREFIXES)}
    return config.text_config, tokenizer, others


def _tie_lm_head(model, state: dict) -> None:
    """Gemma's output head shares the token embedding; packed files store the embedding only."""
    if "lm_head.weight" not in state:
        model.lm_head.weight = model.model.language_model.embed_tokens.weight
