"""Write a pipeline in LTX-2.5's official one-file-per-component layout (test support).

The inverse of ``worker/engine/model/single_file_25.py``, written from the official layout
(docs/corrections.md "LTX-2.5") rather than from the loader's tables: the ltx-core names come from
``test_models_single_file.export_official_checkpoint``; the text encoder is packed the way
ltx-core's ``gemma_assets`` packs it (config in the ``gemma_config`` metadata, ``tokenizer.json``
and the other Hugging Face files as uint8 tensors, the language model in ComfyUI's flat names,
no ``lm_head``, the text projection beside it).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch
from safetensors.torch import save_file

from tests.unit.engine.test_models_single_file import export_official_checkpoint

TRANSFORMER = "diffusion_models/ltx-2.5-22b-dev-transformer-bf16.safetensors"
TEXT_ENCODER = "text_encoders/gemma4-12b-with-proj-ltx-2.5-bf16.safetensors"
VIDEO_VAE = "vae/ltx-2.5-video-vae-conv-bf16.safetensors"
AUDIO_VAE = "vae/ltx-2.5-audio-vae-bf16.safetensors"
# The flags the released 2.5 transformer's config declares (use_prompt_adaln_single and audio_ff_bias
# absent: ltx-core's defaults, true; docs/corrections.md "LTX-2.5").
TRANSFORMER_METADATA = {
    "model_version": "2.5.0",
    "config": json.dumps({"transformer": {"ff_bias": False, "use_keyframes_abs_pos_embedding": True}}),
}


def _bytes_tensor(data: bytes) -> torch.Tensor:
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).clone()


def packed_text_encoder(pipe) -> tuple[dict, dict]:
    """``(tensors, metadata)`` of the packed Gemma 4 file, without the text projection."""
    tensors = {}
    for key, value in pipe.text_encoder.state_dict().items():
        if key == "lm_head.weight":
            continue  # tied to the token embedding: not stored
        if key.startswith("model.language_model."):
            key = "model." + key[len("model.language_model.") :]
        tensors[key] = value.contiguous()
    with tempfile.TemporaryDirectory() as scratch:
        pipe.tokenizer.save_pretrained(scratch)
        tensors["tokenizer_json"] = _bytes_tensor((Path(scratch) / "tokenizer.json").read_bytes())
        for name in ("tokenizer_config.json",):
            tensors[f"hf_asset__{name}"] = _bytes_tensor((Path(scratch) / name).read_bytes())
    tensors["hf_asset__processor_config.json"] = _bytes_tensor(b'{"processor_class": "Gemma4UnifiedProcessor"}')
    metadata = {"format": "pt", "gemma_config": json.dumps(pipe.text_encoder.config.to_dict())}
    return tensors, metadata


def write_official_25(pipe, model_dir: Path, *, transformer_metadata: dict | None = None) -> dict[str, Path]:
    """Write ``pipe`` as the four official LTX-2.5 files under ``model_dir``; returns their paths."""
    model_dir = Path(model_dir)
    with tempfile.TemporaryDirectory() as scratch:
        combined = export_official_checkpoint(pipe, Path(scratch) / "combined.safetensors")
    gemma, gemma_metadata = packed_text_encoder(pipe)
    parts = {
        TRANSFORMER: ({k: v for k, v in combined.items() if k.startswith("model.diffusion_model.")},
                      transformer_metadata or TRANSFORMER_METADATA),
        TEXT_ENCODER: ({**gemma, **{k: v for k, v in combined.items() if k.startswith("text_embedding_projection.")}},
                       gemma_metadata),
        # ltx-core reads a standalone video VAE with or without the ``vae.`` prefix: write it without.
        VIDEO_VAE: ({k[len("vae."):]: v for k, v in combined.items() if k.startswith("vae.")}, None),
        AUDIO_VAE: ({k: v for k, v in combined.items() if k.startswith(("audio_vae.", "vocoder."))}, None),
    }
    paths = {}
    for relative, (tensors, metadata) in parts.items():
        path = model_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(path), metadata=metadata)
        paths[relative] = path
    return paths
