"""The official single-file checkpoint loader: key renames, version detection, a toy round trip.

The toy pipeline is written out in the official combined layout (ltx-core names under
``model.diffusion_model.``, ``vae.``, ``audio_vae.``, ``vocoder.``, the text projection at top
level) with a Gemma directory beside it, then loaded back through the single-file path.
"""

from __future__ import annotations

import re

import pytest
import torch
from safetensors.torch import save_file

from core.model_files import resolve_real_model
from core.presets import PRESETS
from worker.engine.model.single_file import (
    CheckpointMismatch,
    convert_key,
    detect_version,
    load_single_file_pipeline,
)

# --- diffusers name -> official name, written independently of the loader's tables -------------

_VAE_ENCODER = {"down_blocks.0.downsamplers.0": "1", "down_blocks.1.downsamplers.0": "3",
                "down_blocks.2.downsamplers.0": "5", "down_blocks.3.downsamplers.0": "7",
                "down_blocks.0": "0", "down_blocks.1": "2", "down_blocks.2": "4", "down_blocks.3": "6",
                "mid_block": "8"}
_VAE_DECODER = {"up_blocks.0.upsamplers.0": "1", "up_blocks.1.upsamplers.0": "3",
                "up_blocks.2.upsamplers.0": "5", "up_blocks.3.upsamplers.0": "7",
                "up_blocks.0": "2", "up_blocks.1": "4", "up_blocks.2": "6", "up_blocks.3": "8",
                "mid_block": "0"}


def _official_vae_key(key: str) -> str:
    for side, table, official in (("encoder", _VAE_ENCODER, "down_blocks"), ("decoder", _VAE_DECODER, "up_blocks")):
        for diffusers_block in sorted(table, key=len, reverse=True):
            prefix = f"{side}.{diffusers_block}."
            if key.startswith(prefix):
                key = f"{side}.{official}.{table[diffusers_block]}." + key[len(prefix):]
                break
    key = key.replace("resnets", "res_blocks")
    key = key.replace("latents_mean", "per_channel_statistics.mean-of-means")
    return "vae." + key.replace("latents_std", "per_channel_statistics.std-of-means")


def _official_transformer_key(key: str) -> str:
    if key.startswith("time_embed."):
        key = "adaln_single." + key[len("time_embed."):]
    if key.startswith("audio_time_embed."):
        key = "audio_adaln_single." + key[len("audio_time_embed."):]
    key = re.sub(r"(^|_)proj_in\.", r"\1patchify_proj.", key)
    for new, old in (("av_cross_attn_video_scale_shift", "av_ca_video_scale_shift_adaln_single"),
                     ("av_cross_attn_video_a2v_gate", "av_ca_a2v_gate_adaln_single"),
                     ("av_cross_attn_audio_scale_shift", "av_ca_audio_scale_shift_adaln_single"),
                     ("av_cross_attn_audio_v2a_gate", "av_ca_v2a_gate_adaln_single"),
                     ("video_a2v_cross_attn_scale_shift_table", "scale_shift_table_a2v_ca_video"),
                     ("audio_a2v_cross_attn_scale_shift_table", "scale_shift_table_a2v_ca_audio"),
                     ("norm_q", "q_norm"), ("norm_k", "k_norm")):
        key = key.replace(new, old)
    key = re.sub(r"prompt_adaln\.", "prompt_adaln_single.", key)
    return "model.diffusion_model." + key


def _official_connector_key(key: str) -> str:
    for new, old in (("video_text_proj_in", "text_embedding_projection.video_aggregate_embed"),
                     ("audio_text_proj_in", "text_embedding_projection.audio_aggregate_embed"),
                     ("text_proj_in", "text_embedding_projection.aggregate_embed"),
                     ("video_connector", "video_embeddings_connector"),
                     ("audio_connector", "audio_embeddings_connector"),
                     ("transformer_blocks", "transformer_1d_blocks"),
                     ("norm_q", "q_norm"), ("norm_k", "k_norm")):
        key = key.replace(new, old)
    return key if key.startswith("text_embedding_projection") else "model.diffusion_model." + key


def _official_vocoder_key(key: str) -> str:
    key = key.replace("upsamplers", "ups").replace("resnets", "resblocks").replace("conv_in", "conv_pre")
    key = key.replace("conv_out", "conv_post").replace("act_out", "act_post")
    return "vocoder." + key.replace("downsample.filter", "downsample.lowpass.filter")


def export_official_checkpoint(pipe, path):
    """Write ``pipe``'s weights the way the official combined checkpoint stores them."""
    tensors = {}
    for component, rename in (("transformer", _official_transformer_key), ("connectors", _official_connector_key),
                              ("vae", _official_vae_key), ("vocoder", _official_vocoder_key)):
        for key, value in getattr(pipe, component).state_dict().items():
            tensors[rename(key)] = value.contiguous()
    for key, value in pipe.audio_vae.state_dict().items():
        key = key.replace("latents_mean", "per_channel_statistics.mean-of-means")
        tensors["audio_vae." + key.replace("latents_std", "per_channel_statistics.std-of-means")] = value.contiguous()
    tensors["vae.per_channel_statistics.channel"] = torch.arange(4)  # present in real files, unused
    save_file(tensors, str(path))
    return tensors


@pytest.mark.parametrize(
    ("component", "official", "expected"),
    [
        ("transformer", "transformer_blocks.3.attn1.q_norm.weight", "transformer_blocks.3.attn1.norm_q.weight"),
        ("transformer", "prompt_adaln_single.linear.weight", "prompt_adaln.linear.weight"),
        ("transformer", "audio_prompt_adaln_single.linear.bias", "audio_prompt_adaln.linear.bias"),
        ("transformer", "adaln_single.emb.timestep_embedder.linear_1.weight",
         "time_embed.emb.timestep_embedder.linear_1.weight"),
        ("transformer", "audio_adaln_single.linear.weight", "audio_time_embed.linear.weight"),
        ("transformer", "av_ca_a2v_gate_adaln_single.linear.weight", "av_cross_attn_video_a2v_gate.linear.weight"),
        ("transformer", "audio_patchify_proj.weight", "audio_proj_in.weight"),
        ("connectors", "video_embeddings_connector.transformer_1d_blocks.0.attn1.k_norm.weight",
         "video_connector.transformer_blocks.0.attn1.norm_k.weight"),
        ("connectors", "text_embedding_projection.audio_aggregate_embed.weight", "audio_text_proj_in.weight"),
        ("connectors", "text_embedding_projection.aggregate_embed.weight", "text_proj_in.weight"),
        ("vae", "decoder.up_blocks.7.conv.conv.weight", "decoder.up_blocks.3.upsamplers.0.conv.conv.weight"),
        ("vae", "decoder.up_blocks.8.res_blocks.1.conv1.conv.bias", "decoder.up_blocks.3.resnets.1.conv1.conv.bias"),
        ("vae", "encoder.down_blocks.8.res_blocks.0.conv1.conv.weight", "encoder.mid_block.resnets.0.conv1.conv.weight"),
        ("vae", "decoder.up_blocks.0.res_blocks.0.conv1.conv.weight", "decoder.mid_block.resnets.0.conv1.conv.weight"),
        ("vae", "per_channel_statistics.mean-of-means", "latents_mean"),
        ("vae", "per_channel_statistics.mean-of-stds", None),
        ("vocoder", "ups.0.weight", "upsamplers.0.weight"),
        ("vocoder", "bwe_generator.resblocks.0.acts1.0.downsample.lowpass.filter",
         "bwe_generator.resnets.0.acts1.0.downsample.filter"),
        ("vocoder", "vocoder.act_post.act.alpha", "vocoder.act_out.act.alpha"),
    ],
)
def test_official_names_become_diffusers_names(component, official, expected):
    assert convert_key(component, official) == expected


def test_version_is_detected_from_the_tensors():
    assert detect_version(["model.diffusion_model.prompt_adaln_single.linear.weight"]) == "2.3"
    assert detect_version(["model.diffusion_model.adaln_single.linear.weight", "vocoder.ups.0.weight"]) == "2.0"
    with pytest.raises(CheckpointMismatch):
        detect_version(["first_stage_model.encoder.weight"])


def _write_official_model_dir(pipe, model_dir, checkpoint_name):
    tensors = export_official_checkpoint(pipe, model_dir / checkpoint_name)
    pipe.text_encoder.save_pretrained(model_dir / "gemma-3-12b-it")
    pipe.tokenizer.save_pretrained(model_dir / "gemma-3-12b-it")
    return tensors


@pytest.fixture(scope="module")
def official_toy(tmp_path_factory, toy_pipeline):
    """A MODEL_DIR with the toy as ``ltx-2.3-22b-dev.safetensors`` plus ``gemma-3-12b-it/``."""
    model_dir = tmp_path_factory.mktemp("official-model")
    return model_dir, _write_official_model_dir(toy_pipeline, model_dir, "ltx-2.3-22b-dev.safetensors")


def _toy_configs(pipe):
    names = ("transformer", "connectors", "vae", "audio_vae", "vocoder", "scheduler")
    return {name: dict(getattr(pipe, name).config) for name in names}


def _assert_same_weights(loaded, original):
    for component in ("transformer", "connectors", "vae", "audio_vae", "vocoder", "text_encoder"):
        ours, theirs = getattr(loaded, component).state_dict(), getattr(original, component).state_dict()
        assert ours.keys() == theirs.keys(), component
        for key, value in theirs.items():
            assert torch.equal(ours[key], value), f"{component}.{key}"


def test_toy_checkpoint_in_the_official_layout_loads_every_weight(official_toy, toy_pipeline):
    model_dir, tensors = official_toy
    assert any(k.startswith("model.diffusion_model.prompt_adaln_single.") for k in tensors)
    assert any(k.startswith("text_embedding_projection.") for k in tensors)
    location = resolve_real_model(PRESETS["ltx-2.3"], model_dir)
    assert location.kind == "single_file" and location.gemma_dir.name == "gemma-3-12b-it"

    loaded = load_single_file_pipeline(
        PRESETS["ltx-2.3"], location, dtype=torch.float32, component_configs=_toy_configs(toy_pipeline)
    )
    _assert_same_weights(loaded, toy_pipeline)
    output = loaded(prompt="ema_voice, hello", num_frames=9, height=64, width=64, num_inference_steps=2,
                    guidance_scale=1.0, output_type="pt", max_sequence_length=64,
                    generator=torch.Generator().manual_seed(0))
    assert output.frames.shape == (1, 9, 3, 64, 64) and output.audio.shape[1] == 2


def test_ltx20_toy_checkpoint_round_trips_too(tmp_path, engine_data_dir):
    from worker.engine.model.pipelines import load_pipeline

    original = load_pipeline("toy-2.0", data_dir=engine_data_dir, device="cpu")
    tensors = _write_official_model_dir(original, tmp_path, "ltx-2-19b-dev.safetensors")
    assert "text_embedding_projection.aggregate_embed.weight" in tensors
    assert detect_version(tensors) == "2.0"
    location = resolve_real_model(PRESETS["ltx-2"], tmp_path)
    loaded = load_single_file_pipeline(
        PRESETS["ltx-2"], location, dtype=torch.float32, component_configs=_toy_configs(original)
    )
    _assert_same_weights(loaded, original)


def test_wrong_version_and_missing_tensors_are_refused(official_toy, toy_pipeline, tmp_path):
    model_dir, tensors = official_toy
    with pytest.raises(CheckpointMismatch, match="--preset ltx-2.3"):
        load_single_file_pipeline(
            PRESETS["ltx-2"], resolve_real_model(PRESETS["ltx-2.3"], model_dir), dtype=torch.float32
        )
    partial = {k: v for k, v in tensors.items() if "transformer_blocks.1.audio_attn2" not in k}
    (tmp_path / "gemma-3-12b-it").symlink_to(model_dir / "gemma-3-12b-it")
    save_file(partial, str(tmp_path / "ltx-2.3-22b-dev.safetensors"))
    with pytest.raises(CheckpointMismatch, match=r"no weights for transformer: transformer_blocks\.1\.audio_attn2"):
        load_single_file_pipeline(
            PRESETS["ltx-2.3"], resolve_real_model(PRESETS["ltx-2.3"], tmp_path), dtype=torch.float32,
            component_configs=_toy_configs(toy_pipeline),
        )
