"""LTX-2.5's official files are built at the size their own ``config`` metadata says, not the tables'.

Each official file carries ltx-core's config JSON in its safetensors metadata (key ``config``:
``transformer`` in the transformer file, ``vae`` in the video VAE file, ``audio_vae`` and
``vocoder`` in the audio file). The toy-2.5 pipeline (with a small conv VAE that ltx-core's block
lists can describe) is written in the official layout with such configs, written here in ltx-core's
key names, and loaded back with no config given: every component comes out at the toy's size and
samples like the original. Without the metadata the full-size tables are used, which the files do
not fit.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from core.model_files import resolve_real_model
from core.presets import PRESETS
from tests.unit.engine._official_25 import AUDIO_VAE, TRANSFORMER, VIDEO_VAE, write_official_25
from worker.engine.model import single_file_configs as cfg
from worker.engine.model.pipelines import load_pipeline
from worker.engine.model.single_file import CheckpointMismatch
from worker.engine.model.single_file_25 import (
    audio_vae_from_metadata,
    load_split_pipeline,
    video_vae_from_metadata,
    vocoder_from_metadata,
)

COMPONENTS = ("transformer", "connectors", "vae", "audio_vae", "vocoder", "text_encoder")

# A conv video VAE at test size, described twice: as diffusers builds it, and as ltx-core's
# ``vae`` config describes the same network (blocks in encoder order; ltx-core builds the decoder's
# reversed, from 16 base channels times every upsampler's divisor).
SMALL_VAE = {
    "in_channels": 3, "out_channels": 3, "latent_channels": 128, "patch_size": 4, "patch_size_t": 1,
    "block_out_channels": (128, 128, 128, 128), "layers_per_block": (1, 2, 1, 1, 1),
    "down_block_types": ("LTX2VideoDownBlock3D",) * 4, "spatio_temporal_scaling": (True,) * 4,
    "downsample_type": ("spatial", "temporal", "spatiotemporal", "spatiotemporal"),
    "decoder_block_out_channels": (32, 64, 64, 128), "decoder_layers_per_block": (1, 1, 2, 1, 1),
    "decoder_spatio_temporal_scaling": (True,) * 4, "decoder_inject_noise": (False,) * 5,
    "upsample_type": ("spatiotemporal", "spatiotemporal", "temporal", "spatial"),
    "upsample_residual": (False,) * 4, "upsample_factor": (2, 2, 1, 2), "timestep_conditioning": False,
    "encoder_causal": True, "decoder_causal": False, "encoder_spatial_padding_mode": "zeros",
    "decoder_spatial_padding_mode": "zeros", "spatial_compression_ratio": 32, "temporal_compression_ratio": 8,
}
SMALL_VAE_LTX_CORE = {
    "_class_name": "CausalVideoAutoencoder", "dims": 3, "in_channels": 3, "out_channels": 3,
    "latent_channels": 128, "patch_size": 4, "norm_layer": "pixel_norm", "latent_log_var": "uniform",
    "spatial_padding_mode": "zeros", "causal_decoder": False, "timestep_conditioning": False,
    "decoder_base_channels": 16,
    "encoder_blocks": [["res_x", {"num_layers": 1}], ["compress_space_res", {"multiplier": 1}],
                       ["res_x", {"num_layers": 2}], ["compress_time_res", {"multiplier": 1}],
                       ["res_x", {"num_layers": 1}], ["compress_all_res", {"multiplier": 1}],
                       ["res_x", {"num_layers": 1}], ["compress_all_res", {"multiplier": 1}],
                       ["res_x", {"num_layers": 1}]],
    "decoder_blocks": [["res_x", {"num_layers": 1}], ["compress_space", {"multiplier": 2}],
                       ["res_x", {"num_layers": 1}], ["compress_time", {"multiplier": 2}],
                       ["res_x", {"num_layers": 2}], ["compress_all", {"multiplier": 1}],
                       ["res_x", {"num_layers": 1}], ["compress_all", {"multiplier": 2}],
                       ["res_x", {"num_layers": 1}]],
}


def ltx_core_sections(pipe) -> dict:
    """ltx-core's config sections for ``pipe`` (its keys as ltx-core's configurators read them)."""
    t, c, a, v = (getattr(pipe, name).config for name in ("transformer", "connectors", "audio_vae", "vocoder"))
    transformer = {
        "num_layers": t.num_layers, "num_attention_heads": t.num_attention_heads,
        "attention_head_dim": t.attention_head_dim, "in_channels": t.in_channels, "out_channels": t.out_channels,
        "cross_attention_dim": t.cross_attention_dim, "norm_eps": t.norm_eps,
        "audio_num_attention_heads": t.audio_num_attention_heads, "audio_attention_head_dim": t.audio_attention_head_dim,
        "audio_in_channels": t.audio_in_channels, "audio_out_channels": t.audio_out_channels,
        "audio_cross_attention_dim": t.audio_cross_attention_dim, "positional_embedding_theta": 10000.0,
        "positional_embedding_max_pos": [20, 2048, 2048], "rope_type": "split", "frequencies_precision": "float32",
        "apply_gated_attention": True, "cross_attention_adaln": True, "caption_proj_before_connector": True,
        # As the released 2.5 file: use_prompt_adaln_single and audio_ff_bias left to ltx-core's defaults (true).
        "ff_bias": t.ff_bias, "use_keyframes_abs_pos_embedding": t.use_keyframes_abs_pos_embedding,
        "connector_num_attention_heads": c.video_connector_num_attention_heads,
        "connector_attention_head_dim": c.video_connector_attention_head_dim,
        "connector_num_layers": c.video_connector_num_layers,
        "audio_connector_num_attention_heads": c.audio_connector_num_attention_heads,
        "audio_connector_attention_head_dim": c.audio_connector_attention_head_dim,
        "audio_connector_num_layers": c.audio_connector_num_layers, "connector_apply_gated_attention": True,
    }
    ddconfig = {"ch": a.base_channels, "out_ch": a.output_channels, "ch_mult": list(a.ch_mult),
                "num_res_blocks": a.num_res_blocks, "attn_resolutions": [], "resolution": a.resolution,
                "z_channels": a.latent_channels, "norm_type": "pixel", "causality_axis": "height", "dropout": 0.0,
                "mid_block_add_attention": False, "double_z": True, "in_channels": 2}
    audio_vae = {"model": {"params": {"sampling_rate": 16000, "ddconfig": ddconfig}},
                 "preprocessing": {"stft": {"hop_length": 160, "causal": True}, "mel": {"n_mel_channels": a.mel_bins}}}

    def generator(prefix: str) -> dict:
        return {"upsample_initial_channel": v[f"{prefix}hidden_channels"],
                "upsample_rates": v[f"{prefix}upsample_factors"],
                "upsample_kernel_sizes": v[f"{prefix}upsample_kernel_sizes"],
                "resblock_kernel_sizes": v[f"{prefix}resnet_kernel_sizes"],
                "resblock_dilation_sizes": v[f"{prefix}resnet_dilations"], "resblock": "AMP1", "stereo": True,
                "activation": "snakebeta", "use_tanh_at_final": False, "use_bias_at_final": False}

    bwe = {**generator("bwe_"), "n_fft": 512, "hop_length": 80, "num_mels": 64, "input_sampling_rate": 16000,
           "output_sampling_rate": 48000}
    return {"transformer": transformer, "vae": SMALL_VAE_LTX_CORE, "audio_vae": audio_vae,
            "vocoder": {"vocoder": generator(""), "bwe": bwe}}


def _with_config(path, config: dict | None, extra: dict | None = None):
    """Rewrite official file ``path`` with ``config`` (ltx-core's JSON) in its metadata."""
    metadata = {**(extra or {}), **({"config": json.dumps(config)} if config is not None else {})}
    save_file(load_file(str(path)), str(path), metadata=metadata or None)


@pytest.fixture(scope="module")
def small_vae_pipe(engine_data_dir):
    """The toy-2.5 pipeline with the small conv VAE (fixed seed)."""
    from diffusers import AutoencoderKLLTX2Video, LTX2Pipeline

    toy25 = load_pipeline("toy-2.5", data_dir=engine_data_dir, device="cpu", dtype=torch.float32)
    torch.manual_seed(7)
    vae = AutoencoderKLLTX2Video(**SMALL_VAE).eval()
    vae.latents_mean.copy_(0.1 * torch.randn(128))
    vae.latents_std.copy_(0.5 + torch.rand(128))
    return LTX2Pipeline(**{**toy25.components, "vae": vae})


def _write(pipe, model_dir, *, with_config: bool):
    sections = ltx_core_sections(pipe)
    paths = write_official_25(pipe, model_dir)
    version = {"model_version": "2.5.0"}
    _with_config(paths[TRANSFORMER], {"transformer": sections["transformer"]} if with_config else None, version)
    _with_config(paths[VIDEO_VAE], {"vae": sections["vae"]} if with_config else None)
    _with_config(paths[AUDIO_VAE], {key: sections[key] for key in ("audio_vae", "vocoder")} if with_config else None)
    return resolve_real_model(PRESETS["ltx-2.5"], model_dir)


def test_official_25_files_are_built_at_the_size_their_metadata_says(small_vae_pipe, tmp_path):
    pipe = small_vae_pipe
    loaded = load_split_pipeline(PRESETS["ltx-2.5"], _write(pipe, tmp_path, with_config=True), dtype=torch.float32)

    assert loaded.transformer.config.num_layers == 2 != cfg.TRANSFORMER_COMMON["num_layers"]
    flags = loaded.transformer.config
    assert (flags.use_prompt_adaln_single, flags.ff_bias, flags.audio_ff_bias,
            flags.use_keyframes_abs_pos_embedding) == (True, False, True, True)  # the absent keys: ltx-core's defaults
    assert loaded.transformer.config.attention_head_dim == pipe.transformer.config.attention_head_dim == 8
    assert loaded.connectors.config.video_connector_num_layers == 1 != cfg.CONNECTORS["2.3"]["video_connector_num_layers"]
    assert loaded.connectors.config.video_connector_num_learnable_registers == 8  # from the tensor's shape
    for key, value in SMALL_VAE.items():
        assert tuple(value) == tuple(loaded.vae.config[key]) if isinstance(value, tuple) else \
            value == loaded.vae.config[key], key
    assert loaded.vae.config.decoder_block_out_channels != cfg.VIDEO_VAE["2.5"]["decoder_block_out_channels"]
    assert tuple(loaded.audio_vae.config.ch_mult) == tuple(pipe.audio_vae.config.ch_mult) != cfg.AUDIO_VAE["ch_mult"]
    assert loaded.vocoder.config.hidden_channels == 16 != cfg.VOCODER["2.5"]["hidden_channels"]
    for component in COMPONENTS:
        ours, theirs = getattr(loaded, component).state_dict(), getattr(pipe, component).state_dict()
        assert ours.keys() == theirs.keys(), component
        assert all(torch.equal(ours[key], value) for key, value in theirs.items()), component

    loaded.scheduler = pipe.scheduler  # the scheduler is not in the files: sample both with the same one
    ours, theirs = (p(prompt="ema_voice, a woman says hello", num_frames=9, height=64, width=64,
                      num_inference_steps=2, guidance_scale=1.0, output_type="pt", max_sequence_length=64,
                      generator=torch.Generator().manual_seed(0)) for p in (loaded, pipe))
    assert ours.frames.shape == (1, 9, 3, 64, 64)
    assert torch.allclose(ours.frames, theirs.frames, atol=1e-5)
    assert torch.allclose(ours.audio, theirs.audio, atol=1e-5)


def test_without_config_metadata_the_full_size_tables_are_used(small_vae_pipe, tmp_path):
    location = _write(small_vae_pipe, tmp_path, with_config=False)
    with pytest.raises(RuntimeError, match="size mismatch"):  # a 22B-sized transformer for the toy's weights
        load_split_pipeline(PRESETS["ltx-2.5"], location, dtype=torch.float32)


def test_without_config_metadata_the_transformer_flags_come_from_its_tensor_names(small_vae_pipe, tmp_path):
    from worker.engine.model.single_file_25 import default_split_configs, flags_from_names

    paths = write_official_25(small_vae_pipe, tmp_path)
    names = list(load_file(str(paths[TRANSFORMER])).keys())
    gemma = small_vae_pipe.text_encoder.config.text_config
    table = default_split_configs({"transformer": names, "vae": []}, gemma)["transformer"]
    assert {key: table[key] for key in ("use_prompt_adaln_single", "ff_bias", "audio_ff_bias",
                                         "use_keyframes_abs_pos_embedding")} == {
        "use_prompt_adaln_single": True, "ff_bias": False, "audio_ff_bias": True,
        "use_keyframes_abs_pos_embedding": True}
    # A file without the keyframe embedding or the prompt AdaLN is built without them, not refused as
    # missing weights (diffusers' converter says the embedding is in "2.5.1+" files).
    fewer = [n for n in names if "keyframes_abs_pos" not in n and "prompt_adaln_single" not in n]
    assert flags_from_names(fewer) == {"use_prompt_adaln_single": False, "use_keyframes_abs_pos_embedding": False,
                                       "ff_bias": False, "audio_ff_bias": True}


def _blanked(table: dict, keys) -> dict:
    """``table`` with ``keys`` set to None: what the metadata must fill in."""
    return {**table, **dict.fromkeys(keys)}


def test_the_ltx23_configs_in_ltx_core_keys_give_the_ltx23_tables():
    """ltx-core's 2.3 video VAE, audio VAE and vocoder, described in its own keys (diffusers' 2.5
    conversion found the 2.5 files' VAE block lists identical to 2.3's), read back as the tables
    taken from diffusers' converter: every field the metadata gives is its own, not the table's."""
    vae = {"encoder_blocks": [["res_x", {"num_layers": 4}], ["compress_space_res", {"multiplier": 2}],
                              ["res_x", {"num_layers": 6}], ["compress_time_res", {"multiplier": 2}],
                              ["res_x", {"num_layers": 4}], ["compress_all_res", {"multiplier": 2}],
                              ["res_x", {"num_layers": 2}], ["compress_all_res", {"multiplier": 1}],
                              ["res_x", {"num_layers": 2}]],
           "decoder_blocks": [["res_x", {"num_layers": 4}], ["compress_space", {"multiplier": 2}],
                              ["res_x", {"num_layers": 6}], ["compress_time", {"multiplier": 2}],
                              ["res_x", {"num_layers": 4}], ["compress_all", {"multiplier": 1}],
                              ["res_x", {"num_layers": 2}], ["compress_all", {"multiplier": 2}],
                              ["res_x", {"num_layers": 2}]],
           "spatial_padding_mode": "zeros", "timestep_conditioning": True}
    expected = {**cfg.VIDEO_VAE["2.3"], "timestep_conditioning": True}
    blank = _blanked(expected, [k for k in expected if k not in ("encoder_causal", "resnet_norm_eps", "patch_size_t")])
    assert video_vae_from_metadata(vae, blank, "v") == expected

    ddconfig = {"ch": 128, "out_ch": 2, "ch_mult": [1, 2, 4], "num_res_blocks": 2, "attn_resolutions": None,
                "in_channels": 2, "resolution": 256, "z_channels": 8, "norm_type": "pixel", "causality_axis": "height",
                "dropout": 0.0, "mid_block_add_attention": False, "double_z": True, "mel_bins": 64}
    audio = {"model": {"params": {"sampling_rate": 16000, "ddconfig": ddconfig}},
             "preprocessing": {"stft": {"hop_length": 160, "causal": True}}}
    assert audio_vae_from_metadata(audio, _blanked(cfg.AUDIO_VAE, cfg.AUDIO_VAE)) == cfg.AUDIO_VAE

    def generator(hidden, rates, kernels) -> dict:
        return {"upsample_initial_channel": hidden, "upsample_rates": rates, "upsample_kernel_sizes": kernels,
                "resblock_kernel_sizes": [3, 7, 11], "resblock_dilation_sizes": [[1, 3, 5]] * 3,
                "resblock": "AMP1", "activation": "snakebeta", "use_bias_at_final": False}

    vocoder = {"vocoder": generator(1536, [5, 2, 2, 2, 2, 2], [11, 4, 4, 4, 4, 4]),
               "bwe": {**generator(512, [6, 5, 2, 2, 2], [12, 11, 4, 4, 4]), "n_fft": 512, "hop_length": 80,
                       "num_mels": 64, "input_sampling_rate": 16000, "output_sampling_rate": 48000}}
    mapped = [ours for _, ours, _ in cfg.VOCODER_FROM_METADATA]
    blank = _blanked(cfg.VOCODER["2.3"], [*mapped, *(f"bwe_{key}" for key in mapped), "filter_length",
                                          "window_length", "hop_length", "num_mel_channels"])
    assert vocoder_from_metadata(vocoder, blank, "a") == cfg.VOCODER["2.3"]


@pytest.mark.parametrize(
    ("reader", "section", "said"),
    [
        (video_vae_from_metadata, {"_class_name": "CausalDiffusionVAE", "encoder": {}},
         "diffusion-decoder.*use ltx-2.5-video-vae-conv-bf16.safetensors"),
        (video_vae_from_metadata, {"encoder_blocks": [["res_x", 2], ["attn", {}], ["res_x", 2]]},
         "have no diffusers equivalent"),
        (vocoder_from_metadata, {"upsample_initial_channel": 1024}, "without bandwidth extension"),
    ],
    ids=["diffusion-decoder VAE", "attention block", "vocoder without BWE"],
)
def test_a_config_diffusers_cannot_build_is_refused_by_name(reader, section, said):
    with pytest.raises(CheckpointMismatch, match=said):
        reader(section, {}, "ltx-2.5-x.safetensors")
