"""diffusers configs of the full-size LTX-2.0, LTX-2.3 (and LTX-2.5 transformer) components, and the key renames.

Taken from diffusers' ``scripts/convert_ltx2_to_diffusers.py`` (the 2.3 version), because the
single-file loader in diffusers 0.42.1 misdetects these checkpoints and lacks the 2.3 mappings.
The number of transformer and connector layers is read from the checkpoint itself.
"""

from __future__ import annotations

from typing import Any

TRANSFORMER_COMMON: dict[str, Any] = {
    "in_channels": 128,
    "out_channels": 128,
    "patch_size": 1,
    "patch_size_t": 1,
    "num_attention_heads": 32,
    "attention_head_dim": 128,
    "cross_attention_dim": 4096,
    "vae_scale_factors": (8, 32, 32),
    "pos_embed_max_pos": 20,
    "base_height": 2048,
    "base_width": 2048,
    "audio_in_channels": 128,
    "audio_out_channels": 128,
    "audio_patch_size": 1,
    "audio_patch_size_t": 1,
    "audio_num_attention_heads": 32,
    "audio_attention_head_dim": 64,
    "audio_cross_attention_dim": 2048,
    "audio_scale_factor": 4,
    "audio_pos_embed_max_pos": 20,
    "audio_sampling_rate": 16000,
    "audio_hop_length": 160,
    "num_layers": 48,
    "activation_fn": "gelu-approximate",
    "qk_norm": "rms_norm_across_heads",
    "norm_elementwise_affine": False,
    "norm_eps": 1e-6,
    "caption_channels": 3840,
    "attention_bias": True,
    "attention_out_bias": True,
    "rope_theta": 10000.0,
    "rope_double_precision": True,
    "causal_offset": 1,
    "timestep_scale_multiplier": 1000,
    "cross_attn_timestep_scale_multiplier": 1000,
    "rope_type": "split",
}

LTX23_FLAGS = {
    "gated_attn": True,
    "cross_attn_mod": True,
    "audio_gated_attn": True,
    "audio_cross_attn_mod": True,
    "use_prompt_embeddings": False,
    "perturbed_attn": True,
}
LTX20_FLAGS = {key: (key == "use_prompt_embeddings") for key in LTX23_FLAGS}

CONNECTORS: dict[str, dict[str, Any]] = {
    "2.0": {
        "caption_channels": 3840,
        "text_proj_in_factor": 49,
        "video_connector_num_attention_heads": 30,
        "video_connector_attention_head_dim": 128,
        "video_connector_num_layers": 2,
        "video_connector_num_learnable_registers": 128,
        "video_gated_attn": False,
        "audio_connector_num_attention_heads": 30,
        "audio_connector_attention_head_dim": 128,
        "audio_connector_num_layers": 2,
        "audio_connector_num_learnable_registers": 128,
        "audio_gated_attn": False,
        "connector_rope_base_seq_len": 4096,
        "rope_theta": 10000.0,
        "rope_double_precision": True,
        "causal_temporal_positioning": False,
        "rope_type": "split",
        "per_modality_projections": False,
        "proj_bias": False,
    },
    "2.3": {
        "caption_channels": 3840,
        "text_proj_in_factor": 49,
        "video_connector_num_attention_heads": 32,
        "video_connector_attention_head_dim": 128,
        "video_connector_num_layers": 8,
        "video_connector_num_learnable_registers": 128,
        "video_gated_attn": True,
        "audio_connector_num_attention_heads": 32,
        "audio_connector_attention_head_dim": 64,
        "audio_connector_num_layers": 8,
        "audio_connector_num_learnable_registers": 128,
        "audio_gated_attn": True,
        "connector_rope_base_seq_len": 4096,
        "rope_theta": 10000.0,
        "rope_double_precision": True,
        "causal_temporal_positioning": False,
        "rope_type": "split",
        "per_modality_projections": True,
        "video_hidden_dim": 4096,
        "audio_hidden_dim": 2048,
        "proj_bias": True,
    },
}

_VAE_COMMON: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 128,
    "down_block_types": ("LTX2VideoDownBlock3D",) * 4,
    "spatio_temporal_scaling": (True, True, True, True),
    "downsample_type": ("spatial", "temporal", "spatiotemporal", "spatiotemporal"),
    "patch_size": 4,
    "patch_size_t": 1,
    "resnet_norm_eps": 1e-6,
    "encoder_causal": True,
    "decoder_causal": False,
    "encoder_spatial_padding_mode": "zeros",
    "spatial_compression_ratio": 32,
    "temporal_compression_ratio": 8,
}

VIDEO_VAE: dict[str, dict[str, Any]] = {
    "2.0": {
        **_VAE_COMMON,
        "block_out_channels": (256, 512, 1024, 2048),
        "decoder_block_out_channels": (256, 512, 1024),
        "layers_per_block": (4, 6, 6, 2, 2),
        "decoder_layers_per_block": (5, 5, 5, 5),
        "decoder_spatio_temporal_scaling": (True, True, True),
        "decoder_inject_noise": (False, False, False, False),
        "upsample_type": ("spatiotemporal", "spatiotemporal", "spatiotemporal"),
        "upsample_residual": (True, True, True),
        "upsample_factor": (2, 2, 2),
        "decoder_spatial_padding_mode": "reflect",
    },
    "2.3": {
        **_VAE_COMMON,
        "block_out_channels": (256, 512, 1024, 1024),
        "decoder_block_out_channels": (256, 512, 512, 1024),
        "layers_per_block": (4, 6, 4, 2, 2),
        "decoder_layers_per_block": (4, 6, 4, 2, 2),
        "decoder_spatio_temporal_scaling": (True, True, True, True),
        "decoder_inject_noise": (False, False, False, False, False),
        "upsample_type": ("spatiotemporal", "spatiotemporal", "temporal", "spatial"),
        "upsample_residual": (False, False, False, False),
        "upsample_factor": (2, 2, 1, 2),
        "decoder_spatial_padding_mode": "zeros",
    },
}

AUDIO_VAE: dict[str, Any] = {  # the same for 2.0 and 2.3
    "base_channels": 128,
    "output_channels": 2,
    "ch_mult": (1, 2, 4),
    "num_res_blocks": 2,
    "attn_resolutions": None,
    "in_channels": 2,
    "resolution": 256,
    "latent_channels": 8,
    "norm_type": "pixel",
    "causality_axis": "height",
    "dropout": 0.0,
    "mid_block_add_attention": False,
    "sample_rate": 16000,
    "mel_hop_length": 160,
    "is_causal": True,
    "mel_bins": 64,
    "double_z": True,
}

VOCODER: dict[str, dict[str, Any]] = {
    "2.0": {
        "in_channels": 128,
        "hidden_channels": 1024,
        "out_channels": 2,
        "upsample_kernel_sizes": [16, 15, 8, 4, 4],
        "upsample_factors": [6, 5, 2, 2, 2],
        "resnet_kernel_sizes": [3, 7, 11],
        "resnet_dilations": [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
        "act_fn": "leaky_relu",
        "leaky_relu_negative_slope": 0.1,
        "antialias": False,
        "final_act_fn": "tanh",
        "final_bias": True,
        "output_sampling_rate": 24000,
    },
    "2.3": {
        "in_channels": 128,
        "hidden_channels": 1536,
        "out_channels": 2,
        "upsample_kernel_sizes": [11, 4, 4, 4, 4, 4],
        "upsample_factors": [5, 2, 2, 2, 2, 2],
        "resnet_kernel_sizes": [3, 7, 11],
        "resnet_dilations": [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
        "act_fn": "snakebeta",
        "leaky_relu_negative_slope": 0.1,
        "antialias": True,
        "antialias_ratio": 2,
        "antialias_kernel_size": 12,
        "final_act_fn": None,
        "final_bias": False,
        "bwe_in_channels": 128,
        "bwe_hidden_channels": 512,
        "bwe_out_channels": 2,
        "bwe_upsample_kernel_sizes": [12, 11, 4, 4, 4],
        "bwe_upsample_factors": [6, 5, 2, 2, 2],
        "bwe_resnet_kernel_sizes": [3, 7, 11],
        "bwe_resnet_dilations": [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
        "bwe_act_fn": "snakebeta",
        "bwe_leaky_relu_negative_slope": 0.1,
        "bwe_antialias": True,
        "bwe_antialias_ratio": 2,
        "bwe_antialias_kernel_size": 12,
        "bwe_final_act_fn": None,
        "bwe_final_bias": False,
        "filter_length": 512,
        "hop_length": 80,
        "window_length": 512,
        "num_mel_channels": 64,
        "input_sampling_rate": 16000,
        "output_sampling_rate": 48000,
    },
}

SCHEDULER: dict[str, Any] = {
    "base_image_seq_len": 1024,
    "base_shift": 0.95,
    "invert_sigmas": False,
    "max_image_seq_len": 4096,
    "max_shift": 2.05,
    "num_train_timesteps": 1000,
    "shift": 1.0,
    "shift_terminal": 0.1,
    "stochastic_sampling": False,
    "time_shift_type": "exponential",
    "use_dynamic_shifting": True,
}


# LTX-2.5 ("22b", like 2.3): the 2.3 flags (the prompt AdaLN included), no video feed-forward bias
# and the learned keyframe embedding, as the released 2.5 transformer's ``config`` declares them
# (ltx-core's LTXModelConfigurator: ff_bias, use_keyframes_abs_pos_embedding; use_prompt_adaln_single
# absent, so true). Its conv video VAE and 48 kHz BWE vocoder are taken as 2.3's. These tables are the
# fallback only: the official 2.5 files carry their config in their metadata, which ``single_file_25``
# reads (the ``*_FROM_METADATA`` rows below; docs/corrections.md, "LTX-2.5"), and for a file without
# one ``single_file_25.flags_from_names`` reads these flags from its tensor names.
LTX25_FLAGS = {**LTX23_FLAGS, "ff_bias": False, "audio_ff_bias": True, "use_prompt_adaln_single": True,
               "use_keyframes_abs_pos_embedding": True}
VIDEO_VAE["2.5"] = VIDEO_VAE["2.3"]
VOCODER["2.5"] = VOCODER["2.3"]


# The official files' ``config`` metadata (ltx-core's layout) -> diffusers: rows of (ltx-core key,
# diffusers key, the default ltx-core's configurators use when the key is absent). Read in ltx-core
# ``model/transformer/model_configurator.py`` (section "transformer"),
# ``text_encoders/gemma/embeddings_connector.py`` (the connectors, same section, keys ``connector_*``
# and ``audio_connector_*``), ``model/audio_vae/model_configurator.py`` ("audio_vae": its
# ``model.params.ddconfig``; "vocoder": ``vocoder`` and ``bwe``). What ltx-core does not read from the
# config (patch sizes, scale factors, timestep multipliers, ...) stays the table's.
TRANSFORMER_FROM_METADATA: tuple[tuple[str, str, Any], ...] = (
    ("num_layers", "num_layers", 48),
    ("num_attention_heads", "num_attention_heads", 32),
    ("attention_head_dim", "attention_head_dim", 128),
    ("in_channels", "in_channels", 128),
    ("out_channels", "out_channels", 128),
    ("cross_attention_dim", "cross_attention_dim", 4096),
    ("norm_eps", "norm_eps", 1e-6),
    ("audio_num_attention_heads", "audio_num_attention_heads", 32),
    ("audio_attention_head_dim", "audio_attention_head_dim", 64),
    ("audio_in_channels", "audio_in_channels", 128),
    ("audio_out_channels", "audio_out_channels", 128),
    ("audio_cross_attention_dim", "audio_cross_attention_dim", 2048),
    ("positional_embedding_theta", "rope_theta", 10000.0),
    ("rope_type", "rope_type", "split"),
    ("apply_gated_attention", "gated_attn", False),
    ("apply_gated_attention", "audio_gated_attn", False),
    ("cross_attention_adaln", "cross_attn_mod", False),
    ("cross_attention_adaln", "audio_cross_attn_mod", False),
    ("use_prompt_adaln_single", "use_prompt_adaln_single", True),
    ("ff_bias", "ff_bias", True),
    ("audio_ff_bias", "audio_ff_bias", True),
    ("use_keyframes_abs_pos_embedding", "use_keyframes_abs_pos_embedding", False),
)
# Each side's connector: ``connector_<key>`` (the audio side: ``audio_connector_<key>``, else the
# video side's) -> ``<side>_connector_<key>``.
CONNECTOR_FROM_METADATA: tuple[tuple[str, Any], ...] = (
    ("num_attention_heads", 30), ("attention_head_dim", 128), ("num_layers", 2))
AUDIO_VAE_FROM_METADATA: tuple[tuple[str, str, Any], ...] = (
    ("ch", "base_channels", 128),
    ("out_ch", "output_channels", 2),
    ("ch_mult", "ch_mult", (1, 2, 4)),
    ("num_res_blocks", "num_res_blocks", 2),
    ("attn_resolutions", "attn_resolutions", (8, 16, 32)),
    ("in_channels", "in_channels", 2),
    ("resolution", "resolution", 256),
    ("z_channels", "latent_channels", 8),
    ("norm_type", "norm_type", "pixel"),
    ("causality_axis", "causality_axis", "height"),
    ("dropout", "dropout", 0.0),
    ("mid_block_add_attention", "mid_block_add_attention", True),
    ("double_z", "double_z", True),
)
# The vocoder and its bandwidth extender (diffusers key prefixed ``bwe_`` for the latter).
VOCODER_FROM_METADATA: tuple[tuple[str, str, Any], ...] = (
    ("upsample_initial_channel", "hidden_channels", 1024),
    ("upsample_rates", "upsample_factors", [6, 5, 2, 2, 2]),
    ("upsample_kernel_sizes", "upsample_kernel_sizes", [16, 15, 8, 4, 4]),
    ("resblock_kernel_sizes", "resnet_kernel_sizes", [3, 7, 11]),
    ("resblock_dilation_sizes", "resnet_dilations", [[1, 3, 5], [1, 3, 5], [1, 3, 5]]),
    ("activation", "act_fn", "snake"),
    ("use_bias_at_final", "final_bias", True),
)
# ltx-core's video VAE blocks (``encoder_blocks`` / ``decoder_blocks``) -> diffusers' sampling types.
ENCODER_DOWNSAMPLES = {"compress_space_res": "spatial", "compress_time_res": "temporal",
                       "compress_all_res": "spatiotemporal"}
DECODER_UPSAMPLES = {"compress_space": "spatial", "compress_time": "temporal", "compress_all": "spatiotemporal"}
SAMPLING_STRIDES = {"spatial": (1, 2), "temporal": (2, 1), "spatiotemporal": (2, 2)}  # (time, space)


def transformer_config(version: str, num_layers: int) -> dict[str, Any]:
    """The full-size transformer config of ``version`` with ``num_layers`` blocks."""
    flags = {"2.3": LTX23_FLAGS, "2.5": LTX25_FLAGS}.get(version, LTX20_FLAGS)
    return {**TRANSFORMER_COMMON, **flags, "num_layers": num_layers}


# --- key renames, official (ltx-core) name -> diffusers name, applied in order ----------------

TRANSFORMER_RENAMES: tuple[tuple[str, str], ...] = (
    ("audio_patchify_proj", "audio_proj_in"),
    ("patchify_proj", "proj_in"),
    ("av_ca_video_scale_shift_adaln_single", "av_cross_attn_video_scale_shift"),
    ("av_ca_a2v_gate_adaln_single", "av_cross_attn_video_a2v_gate"),
    ("av_ca_audio_scale_shift_adaln_single", "av_cross_attn_audio_scale_shift"),
    ("av_ca_v2a_gate_adaln_single", "av_cross_attn_audio_v2a_gate"),
    ("scale_shift_table_a2v_ca_video", "video_a2v_cross_attn_scale_shift_table"),
    ("scale_shift_table_a2v_ca_audio", "audio_a2v_cross_attn_scale_shift_table"),
    ("audio_prompt_adaln_single", "audio_prompt_adaln"),  # 2.3; diffusers' from_single_file misses these
    ("prompt_adaln_single", "prompt_adaln"),
    ("q_norm", "norm_q"),
    ("k_norm", "norm_k"),
)
# Top-level modulation: adaln_single -> time_embed, audio_adaln_single -> audio_time_embed.
TRANSFORMER_PREFIX_RENAMES = (("audio_adaln_single.", "audio_time_embed."), ("adaln_single.", "time_embed."))

CONNECTOR_MARKERS = ("video_embeddings_connector", "audio_embeddings_connector", "text_embedding_projection")
CONNECTOR_RENAMES: tuple[tuple[str, str], ...] = (
    ("connectors.", ""),
    ("video_embeddings_connector", "video_connector"),
    ("audio_embeddings_connector", "audio_connector"),
    ("transformer_1d_blocks", "transformer_blocks"),
    ("text_embedding_projection.audio_aggregate_embed", "audio_text_proj_in"),
    ("text_embedding_projection.video_aggregate_embed", "video_text_proj_in"),
    ("text_embedding_projection.aggregate_embed", "text_proj_in"),
    ("q_norm", "norm_q"),
    ("k_norm", "norm_k"),
)

VIDEO_VAE_BLOCKS: dict[str, dict[str, str]] = {
    # official encoder.down_blocks.N / decoder.up_blocks.N -> diffusers block path
    "encoder": {
        "0": "down_blocks.0",
        "1": "down_blocks.0.downsamplers.0",
        "2": "down_blocks.1",
        "3": "down_blocks.1.downsamplers.0",
        "4": "down_blocks.2",
        "5": "down_blocks.2.downsamplers.0",
        "6": "down_blocks.3",
        "7": "down_blocks.3.downsamplers.0",
        "8": "mid_block",
    },
    "decoder": {
        "0": "mid_block",
        "1": "up_blocks.0.upsamplers.0",
        "2": "up_blocks.0",
        "3": "up_blocks.1.upsamplers.0",
        "4": "up_blocks.1",
        "5": "up_blocks.2.upsamplers.0",
        "6": "up_blocks.2",
        "7": "up_blocks.3.upsamplers.0",  # 2.3's fourth decoder stage
        "8": "up_blocks.3",
    },
}
VIDEO_VAE_RENAMES: tuple[tuple[str, str], ...] = (
    ("last_time_embedder", "time_embedder"),
    ("last_scale_shift_table", "scale_shift_table"),
    ("res_blocks", "resnets"),
    ("per_channel_statistics.mean-of-means", "latents_mean"),
    ("per_channel_statistics.std-of-means", "latents_std"),
)
VAE_IGNORED = ("per_channel_statistics.channel", "per_channel_statistics.mean-of-stds")

AUDIO_VAE_RENAMES: tuple[tuple[str, str], ...] = (
    ("per_channel_statistics.mean-of-means", "latents_mean"),
    ("per_channel_statistics.std-of-means", "latents_std"),
)

VOCODER_RENAMES: tuple[tuple[str, str], ...] = (
    ("resblocks", "resnets"),
    ("conv_pre", "conv_in"),
    ("conv_post", "conv_out"),
    ("act_post", "act_out"),
    ("downsample.lowpass", "downsample"),
)
