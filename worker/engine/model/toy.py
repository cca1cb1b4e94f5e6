"""Tiny LTX-2 pipelines: the real diffusers classes at toy size with seeded random weights.

``build_toy_pipeline("2.3")`` assembles a real ``diffusers.LTX2Pipeline`` with the LTX-2.3
architecture (gated attention, cross-attention modulation, perturbed attention, no prompt
embedding projection, split RoPE, per-modality connector projections, the BWE vocoder, the
4-stage VAE decoder), ``build_toy_pipeline("2.0")`` the LTX-2.0 one and ``build_toy_pipeline("2.5")``
the LTX-2.5 one (the 2.3 layout with the differences in :mod:`worker.engine.model.toy_25`).
Nothing is downloaded: the Gemma text encoder is built from a config and its tokenizer from an
in-memory vocabulary.

Shapes that matter downstream are the real ones: 128 video latent channels with 32x spatial and
8x temporal compression, a 64-bin 16 kHz log-mel audio input, audio latents of 16 mel bins.
Constraints the real classes impose (checked in the diffusers 0.42.1 source):

- transformer: ``cross_attention_dim == heads * head_dim`` on both sides; video and audio head
  counts equal (the cross-modal RoPE is built with the video head count);
  ``audio_in_channels == audio latent_channels * mel_bins / 4``.
- audio VAE: ``base_channels == latent_channels * mel_bins / 4`` (its ``latents_mean/std`` are
  sized by ``base_channels`` and applied to packed ``[B, L, C*M/4]`` latents); 3 ``ch_mult``
  entries give the 4x time and mel downsampling.
- vocoder: ``in_channels == 2 * mel_bins``; the upsample factors multiply to
  ``output_rate / 100`` (one mel frame per 10 ms); ``kernel - factor`` even for each stage.
- connectors: the text length is a multiple of the learnable register count; for 2.3 the
  connector width equals the transformer's ``cross_attention_dim`` / ``audio_cross_attention_dim``,
  for 2.0 it equals ``caption_channels`` (the Gemma width).
"""

from __future__ import annotations

import math
import string

import torch

from worker.engine.model.toy_25 import MODULATED_VERSIONS, TOY_VERSIONS, build_toy_gemma4, transformer_flags_25

TOY_SEED = 1234

# Gemma-3 text encoder (tiny): the connectors read all hidden states (layers + embeddings).
GEMMA_HIDDEN = 16
GEMMA_LAYERS = 2

# Transformer (tiny): 2 heads on both sides (equal head counts are required).
HEADS = 2
VIDEO_HEAD_DIM = 8
AUDIO_HEAD_DIM = 4
VIDEO_LATENT_CHANNELS = 128
AUDIO_LATENT_CHANNELS = 8
MEL_BINS = 64
AUDIO_IN_CHANNELS = AUDIO_LATENT_CHANNELS * MEL_BINS // 4  # 128, as in the real model
CONNECTOR_REGISTERS = 8  # the prompt length (PRESETS max_sequence_length) is a multiple of this

SPECIAL_TOKENS = ("<pad>", "<eos>", "<bos>", "<unk>", "<mask>")
TOY_CHARACTERS = string.ascii_letters + string.digits + string.punctuation + "▁"


def build_toy_tokenizer(*, add_bos_token: bool = True):
    """A ``GemmaTokenizer`` over an in-memory vocabulary: specials, 256 byte tokens, characters.

    Every text tokenizes (unknown characters fall back to UTF-8 byte tokens); padding is on the
    left as the LTX-2 pipeline expects for Gemma.
    """
    from transformers import GemmaTokenizer

    vocab: dict[str, int] = {}
    for token in SPECIAL_TOKENS:
        vocab[token] = len(vocab)
    for byte in range(256):
        vocab[f"<0x{byte:02X}>"] = len(vocab)
    for char in TOY_CHARACTERS:
        vocab.setdefault(char, len(vocab))
    tokenizer = GemmaTokenizer(vocab=vocab, merges=[], add_bos_token=add_bos_token, padding_side="left")
    tokenizer.model_max_length = 1024
    return tokenizer


def _build_text_encoder(vocab_size: int):
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    config = Gemma3Config(
        text_config={
            "vocab_size": vocab_size,
            "hidden_size": GEMMA_HIDDEN,
            "intermediate_size": 32,
            "num_hidden_layers": GEMMA_LAYERS,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "head_dim": 8,
            "query_pre_attn_scalar": 8,
            "sliding_window": 64,
            "max_position_embeddings": 2048,
        },
        vision_config={
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 16,
            "patch_size": 4,
        },
        mm_tokens_per_image=4,
        boi_token_index=vocab_size - 3,
        eoi_token_index=vocab_size - 2,
        image_token_index=vocab_size - 1,
    )
    return Gemma3ForConditionalGeneration(config).eval()


def build_toy_transformer(version: str = "2.3"):
    """The toy LTX-2 transformer alone (random weights from torch's current seed), e.g. on a GPU."""
    from diffusers import LTX2VideoTransformer3DModel

    is_23 = version in MODULATED_VERSIONS
    return LTX2VideoTransformer3DModel(
        **transformer_flags_25(version),
        in_channels=VIDEO_LATENT_CHANNELS,
        out_channels=VIDEO_LATENT_CHANNELS,
        num_attention_heads=HEADS,
        attention_head_dim=VIDEO_HEAD_DIM,
        cross_attention_dim=HEADS * VIDEO_HEAD_DIM,
        audio_in_channels=AUDIO_IN_CHANNELS,
        audio_out_channels=AUDIO_IN_CHANNELS,
        audio_num_attention_heads=HEADS,
        audio_attention_head_dim=AUDIO_HEAD_DIM,
        audio_cross_attention_dim=HEADS * AUDIO_HEAD_DIM,
        num_layers=2,
        caption_channels=GEMMA_HIDDEN,
        gated_attn=is_23,
        cross_attn_mod=is_23,
        audio_gated_attn=is_23,
        audio_cross_attn_mod=is_23,
        perturbed_attn=is_23,
        use_prompt_embeddings=not is_23,
        rope_type="split",
        rope_double_precision=False,
    )


def _build_connectors(version: str):
    from diffusers.pipelines.ltx2 import LTX2TextConnectors

    is_23 = version in MODULATED_VERSIONS
    # 2.3 and 2.5: per-modality projections straight to the transformer widths; 2.0: one shared projection
    # back to the Gemma width, which the transformer's caption projection then maps.
    video_dim = HEADS * VIDEO_HEAD_DIM if is_23 else GEMMA_HIDDEN
    audio_dim = HEADS * AUDIO_HEAD_DIM if is_23 else GEMMA_HIDDEN
    return LTX2TextConnectors(
        caption_channels=GEMMA_HIDDEN,
        text_proj_in_factor=GEMMA_LAYERS + 1,
        video_connector_num_attention_heads=2,
        video_connector_attention_head_dim=video_dim // 2,
        video_connector_num_layers=1,
        video_connector_num_learnable_registers=CONNECTOR_REGISTERS,
        video_gated_attn=is_23,
        audio_connector_num_attention_heads=2,
        audio_connector_attention_head_dim=audio_dim // 2,
        audio_connector_num_layers=1,
        audio_connector_num_learnable_registers=CONNECTOR_REGISTERS,
        audio_gated_attn=is_23,
        connector_rope_base_seq_len=4096,
        rope_double_precision=False,
        rope_type="split",
        per_modality_projections=is_23,
        video_hidden_dim=video_dim,
        audio_hidden_dim=audio_dim,
        proj_bias=is_23,
    )


def _build_video_vae(version: str):
    from diffusers import AutoencoderKLLTX2Video

    common = dict(
        in_channels=3,
        out_channels=3,
        latent_channels=VIDEO_LATENT_CHANNELS,
        down_block_types=("LTX2VideoDownBlock3D",) * 4,
        spatio_temporal_scaling=(True, True, True, True),
        downsample_type=("spatial", "temporal", "spatiotemporal", "spatiotemporal"),
        timestep_conditioning=False,
        patch_size=4,
        patch_size_t=1,
        encoder_causal=True,
        decoder_causal=False,
        encoder_spatial_padding_mode="zeros",
        spatial_compression_ratio=32,
        temporal_compression_ratio=8,
    )
    if version in MODULATED_VERSIONS:
        # The 2.3 (and 2.5 conv) decoder: four upsampling stages (spatiotemporal, spatiotemporal, temporal,
        # spatial) without residual upsampling, zero padding.
        vae = AutoencoderKLLTX2Video(
            **common,
            block_out_channels=(8, 16, 32, 32),
            layers_per_block=(1, 1, 1, 1, 1),
            decoder_block_out_channels=(8, 16, 16, 32),
            decoder_layers_per_block=(1, 1, 1, 1, 1),
            decoder_spatio_temporal_scaling=(True, True, True, True),
            decoder_inject_noise=(False,) * 5,
            upsample_type=("spatiotemporal", "spatiotemporal", "temporal", "spatial"),
            upsample_residual=(False, False, False, False),
            upsample_factor=(2, 2, 1, 2),
            decoder_spatial_padding_mode="zeros",
        )
    else:
        vae = AutoencoderKLLTX2Video(
            **common,
            block_out_channels=(8, 16, 32, 64),
            layers_per_block=(1, 1, 1, 1, 1),
            decoder_block_out_channels=(8, 16, 32),
            decoder_layers_per_block=(1, 1, 1, 1),
            decoder_spatio_temporal_scaling=(True, True, True),
            decoder_inject_noise=(False,) * 4,
            upsample_type=("spatiotemporal",) * 3,
            upsample_residual=(True, True, True),
            upsample_factor=(2, 2, 2),
            decoder_spatial_padding_mode="reflect",
        )
    # Per-channel statistics as a trained VAE has them (not identity), so normalisation matters.
    generator = torch.Generator().manual_seed(TOY_SEED)
    vae.latents_mean.copy_(0.1 * torch.randn(VIDEO_LATENT_CHANNELS, generator=generator))
    vae.latents_std.copy_(0.5 + torch.rand(VIDEO_LATENT_CHANNELS, generator=generator))
    return vae


def _build_audio_vae():
    from diffusers import AutoencoderKLLTX2Audio

    vae = AutoencoderKLLTX2Audio(
        base_channels=AUDIO_IN_CHANNELS,
        output_channels=2,
        ch_mult=(1, 1, 1),
        num_res_blocks=1,
        attn_resolutions=None,
        in_channels=2,
        resolution=256,
        latent_channels=AUDIO_LATENT_CHANNELS,
        norm_type="pixel",
        causality_axis="height",
        dropout=0.0,
        mid_block_add_attention=False,
        sample_rate=16000,
        mel_hop_length=160,
        is_causal=True,
        mel_bins=MEL_BINS,
        double_z=True,
    )
    generator = torch.Generator().manual_seed(TOY_SEED + 1)
    vae.latents_mean.copy_(0.1 * torch.randn(AUDIO_IN_CHANNELS, generator=generator))
    vae.latents_std.copy_(0.5 + torch.rand(AUDIO_IN_CHANNELS, generator=generator))
    return vae


def _build_vocoder(version: str):
    from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder, LTX2VocoderWithBWE

    if version == "2.0":
        # 24 kHz from 100 mel frames/s: 240x upsampling (kernel - factor even in every stage).
        return LTX2Vocoder(
            in_channels=2 * MEL_BINS,
            hidden_channels=16,
            out_channels=2,
            upsample_kernel_sizes=[20, 24],
            upsample_factors=[12, 20],
            resnet_kernel_sizes=[3],
            resnet_dilations=[[1, 3]],
            act_fn="leaky_relu",
            antialias=False,
            final_act_fn="tanh",
            final_bias=True,
            output_sampling_rate=24000,
        )
    # 2.3: a 16 kHz vocoder (160x) then a bandwidth extender to 48 kHz (hop 80 -> 240x).
    vocoder = LTX2VocoderWithBWE(
        in_channels=2 * MEL_BINS,
        hidden_channels=16,
        out_channels=2,
        upsample_kernel_sizes=[20, 32],
        upsample_factors=[10, 16],
        resnet_kernel_sizes=[3],
        resnet_dilations=[[1, 3]],
        act_fn="snakebeta",
        antialias=True,
        final_act_fn=None,
        final_bias=False,
        bwe_in_channels=2 * MEL_BINS,
        bwe_hidden_channels=16,
        bwe_out_channels=2,
        bwe_upsample_kernel_sizes=[24, 20],
        bwe_upsample_factors=[12, 20],
        bwe_resnet_kernel_sizes=[3],
        bwe_resnet_dilations=[[1, 3]],
        bwe_act_fn="snakebeta",
        bwe_antialias=True,
        bwe_final_act_fn=None,
        bwe_final_bias=False,
        filter_length=512,
        hop_length=80,
        window_length=512,
        num_mel_channels=MEL_BINS,
        input_sampling_rate=16000,
        output_sampling_rate=48000,
    )
    _fill_mel_stft_buffers(vocoder.mel_stft)
    return vocoder


def _fill_mel_stft_buffers(mel_stft) -> None:
    """Fill the BWE's causal STFT and mel buffers as a trained checkpoint carries them.

    The buffers start as zeros (the real values come from the checkpoint); a Hann-windowed DFT
    basis and a Slaney mel filterbank make the toy's bandwidth extender see a real spectrogram.
    """
    from worker.engine.data.audio import mel_filterbank

    basis = mel_stft.stft_fn.forward_basis
    n_fft = basis.shape[-1]
    n_freqs = n_fft // 2 + 1
    window = torch.hann_window(mel_stft.stft_fn.window_length, periodic=True, dtype=torch.float64)
    time = torch.arange(n_fft, dtype=torch.float64)
    freqs = torch.arange(n_freqs, dtype=torch.float64)
    angle = 2 * math.pi * freqs[:, None] * time[None, :] / n_fft
    real = torch.cos(angle) * window
    imag = -torch.sin(angle) * window
    forward = torch.cat([real, imag], dim=0).unsqueeze(1)
    basis.copy_(forward.to(basis.dtype))
    mel_stft.stft_fn.inverse_basis.copy_(forward.to(basis.dtype))
    mel = mel_filterbank(sample_rate=16000, n_fft=n_fft, n_mels=mel_stft.mel_basis.shape[0], f_max=8000.0)
    mel_stft.mel_basis.copy_(torch.from_numpy(mel).to(mel_stft.mel_basis.dtype))


def build_toy_pipeline(version: str):
    """A real ``LTX2Pipeline`` with the ``version`` ("2.3", "2.0" or "2.5") architecture at toy size.

    Weights are random from a fixed seed, so two builds are identical.
    """
    from diffusers import FlowMatchEulerDiscreteScheduler, LTX2Pipeline

    if version not in TOY_VERSIONS:
        raise ValueError(f"toy version must be one of {', '.join(TOY_VERSIONS)}, got {version!r}")
    tokenizer = build_toy_tokenizer(add_bos_token=version != "2.5")
    torch.manual_seed(TOY_SEED)
    if version == "2.5":
        text_encoder = build_toy_gemma4(vocab_size=len(tokenizer), hidden=GEMMA_HIDDEN, layers=GEMMA_LAYERS)
    else:
        text_encoder = _build_text_encoder(vocab_size=len(tokenizer))
    torch.manual_seed(TOY_SEED + 1)
    connectors = _build_connectors(version)
    torch.manual_seed(TOY_SEED + 2)
    transformer = build_toy_transformer(version)
    torch.manual_seed(TOY_SEED + 3)
    vae = _build_video_vae(version)
    torch.manual_seed(TOY_SEED + 4)
    audio_vae = _build_audio_vae()
    torch.manual_seed(TOY_SEED + 5)
    vocoder = _build_vocoder(version)
    scheduler = FlowMatchEulerDiscreteScheduler(
        use_dynamic_shifting=True,
        base_shift=0.95,
        max_shift=2.05,
        base_image_seq_len=1024,
        max_image_seq_len=4096,
        shift_terminal=0.1,
    )
    return LTX2Pipeline(
        scheduler=scheduler,
        vae=vae,
        audio_vae=audio_vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        connectors=connectors,
        transformer=transformer,
        vocoder=vocoder,
    )
