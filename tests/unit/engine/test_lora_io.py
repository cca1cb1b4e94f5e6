"""LoRA module names (diffusers <-> ltx-core) and the two file layouts."""

import json

import pytest
import torch
from diffusers.loaders.lora_conversion_utils import _convert_non_diffusers_ltx2_lora_to_diffusers
from safetensors import safe_open

from core.recipe.architecture import linear_module_names
from worker.engine.lora.files import (
    LoraWeights,
    expected_diffusers_module,
    load_lora_weights_file,
    save_diffusers,
    save_official,
)
from worker.engine.lora.names import (
    connector_module_to_diffusers,
    connector_module_to_official,
    family_of_key,
    module_family,
    transformer_module_to_diffusers,
    transformer_module_to_official,
)


@pytest.mark.parametrize("model", ["ltx-2.3", "ltx-2"])
def test_official_names_convert_back_through_diffusers_own_converter(model):
    """Every linear layer of the full-size transformer: our official name, read by diffusers'
    LTX-2 LoRA converter, lands on the original diffusers module."""
    names = linear_module_names(model)
    assert len(names) > 1000
    official = {f"diffusion_model.{transformer_module_to_official(n)}.lora_A.weight": n for n in names}
    converted = _convert_non_diffusers_ltx2_lora_to_diffusers({k: torch.zeros(1) for k in official})
    assert len(converted) == len(official)
    back = {k.removeprefix("transformer.").removesuffix(".lora_A.weight") for k in converted}
    assert back == set(names)
    for name in names:
        assert transformer_module_to_diffusers(transformer_module_to_official(name)) == name


def test_known_official_names():
    assert transformer_module_to_official("proj_in") == "patchify_proj"
    assert transformer_module_to_official("audio_proj_in") == "audio_patchify_proj"
    assert transformer_module_to_official("time_embed.linear") == "adaln_single.linear"
    assert transformer_module_to_official("audio_time_embed.linear") == "audio_adaln_single.linear"
    assert transformer_module_to_official("prompt_adaln.linear") == "prompt_adaln_single.linear"
    assert transformer_module_to_official("audio_prompt_adaln.linear") == "audio_prompt_adaln_single.linear"
    assert transformer_module_to_official("av_cross_attn_video_a2v_gate.linear") == "av_ca_a2v_gate_adaln_single.linear"
    assert transformer_module_to_official("transformer_blocks.3.audio_attn2.norm_q") == "transformer_blocks.3.audio_attn2.q_norm"
    assert (
        transformer_module_to_official("transformer_blocks.0.video_to_audio_attn.to_out.0")
        == "transformer_blocks.0.video_to_audio_attn.to_out.0"
    )
    assert (
        connector_module_to_official("video_connector.transformer_blocks.0.attn1.to_q")
        == "video_embeddings_connector.transformer_1d_blocks.0.attn1.to_q"
    )
    assert connector_module_to_official("video_text_proj_in") == "text_embedding_projection.video_aggregate_embed"
    assert connector_module_to_diffusers("audio_embeddings_connector.transformer_1d_blocks.1.ff.net.2") == (
        "audio_connector.transformer_blocks.1.ff.net.2"
    )


def test_families():
    assert module_family("transformer.transformer_blocks.2.audio_to_video_attn.to_k") == "audio_to_video_attn"
    assert module_family("transformer_blocks.0.audio_ff.net.2") == "audio_ff"
    assert module_family("connectors.video_connector.transformer_blocks.0.attn1.to_q") == "connectors"
    assert module_family("proj_out") == "other"
    assert family_of_key("diffusion_model.transformer_blocks.7.video_to_audio_attn.to_v.lora_B.weight") == "video_to_audio_attn"
    assert family_of_key("diffusion_model.video_embeddings_connector.transformer_1d_blocks.0.attn1.to_q.lora_A.weight") == "connectors"
    assert family_of_key("lora_unet_transformer_blocks_0_audio_attn1_to_k.lora_down.weight") == "audio_attn1"
    assert expected_diffusers_module("diffusion_model.patchify_proj.lora_A.weight") == "transformer.proj_in"
    assert expected_diffusers_module("model.diffusion_model.patchify_proj.lora_A.weight") is None


def _weights(rank=4, alpha=8.0):
    gen = torch.Generator().manual_seed(0)
    tensors = {}
    for name in ("transformer_blocks.0.attn1.to_k", "transformer_blocks.0.audio_attn1.norm_q", "proj_in"):
        tensors[f"{name}.lora_A.weight"] = torch.randn(rank, 16, generator=gen)
        tensors[f"{name}.lora_B.weight"] = torch.randn(16, rank, generator=gen)
    return LoraWeights(tensors=tensors, rank=rank, alpha=alpha)


def test_official_file_folds_alpha_into_lora_b(tmp_path):
    weights = _weights()
    path = save_official(weights, tmp_path / "lora.safetensors")
    with safe_open(str(path), "pt") as handle:
        keys = set(handle.keys())
        b = handle.get_tensor("diffusion_model.patchify_proj.lora_B.weight")
        a = handle.get_tensor("diffusion_model.transformer_blocks.0.audio_attn1.q_norm.lora_A.weight")
        assert "lora_adapter_metadata" not in handle.metadata()  # loaders must assume alpha == rank
    assert all(k.startswith("diffusion_model.") for k in keys) and not any(k.endswith("alpha") for k in keys)
    assert b.dtype == torch.bfloat16
    expected_b = (weights.tensors["proj_in.lora_B.weight"] * 2.0).to(torch.bfloat16)
    assert torch.equal(b, expected_b)  # alpha / rank = 8 / 4 folded in
    assert torch.equal(a, weights.tensors["transformer_blocks.0.audio_attn1.norm_q.lora_A.weight"].to(torch.bfloat16))
    back = load_lora_weights_file(path)
    assert back.alpha == back.rank == 4
    assert set(back.tensors) == set(weights.tensors)


def test_diffusers_file_keeps_rank_and_alpha_in_metadata(tmp_path):
    weights = _weights()
    path = save_diffusers(weights, tmp_path / "lora.safetensors")
    with safe_open(str(path), "pt") as handle:
        keys = set(handle.keys())
        meta = json.loads(handle.metadata()["lora_adapter_metadata"])
        b = handle.get_tensor("transformer.proj_in.lora_B.weight")
    assert all(k.startswith("transformer.") for k in keys)
    assert meta["transformer.r"] == 4 and meta["transformer.lora_alpha"] == 8.0
    assert torch.equal(b, weights.tensors["proj_in.lora_B.weight"].to(torch.bfloat16))
    back = load_lora_weights_file(path)
    assert back.alpha == 8.0 and back.rank == 4


def test_a_failed_write_leaves_no_file(tmp_path, monkeypatch):
    import worker.engine.lora.files as lora_io

    def broken(state, filename, metadata=None):
        with open(filename, "wb") as handle:
            handle.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(lora_io, "save_file", broken)
    with pytest.raises(OSError, match="disk full"):
        save_official(_weights(), tmp_path / "lora.safetensors")
    assert list(tmp_path.iterdir()) == []
