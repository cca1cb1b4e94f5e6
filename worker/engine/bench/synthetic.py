"""What the training benchmark trains on without any file: the full-size transformer with random
weights built directly on the device, and random latents shaped like one clip."""

from __future__ import annotations

import contextlib

import torch

from worker.engine.data.dataset import AUDIO_LATENTS_PER_SECOND
from worker.engine.step.flow import FlowBatch


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype):
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def build_random_transformer(model: str, device: str, dtype: torch.dtype):
    """The full-size transformer of ``model`` (``ltx-2.3`` / ``ltx-2``) with random weights,
    allocated and initialised directly on ``device`` in ``dtype``."""
    from diffusers import LTX2VideoTransformer3DModel

    from core.recipe.architecture import MODEL_CONFIGS

    if model not in MODEL_CONFIGS:
        raise ValueError(f"no full-size config for {model!r}: choose one of {', '.join(MODEL_CONFIGS)}")
    return build_on_device(LTX2VideoTransformer3DModel, dict(MODEL_CONFIGS[model]), device, dtype)


def build_on_device(cls, config: dict, device: str, dtype: torch.dtype):
    """``cls(**config)`` allocated and initialised on ``device`` in ``dtype``."""
    with torch.device(device), _default_dtype(dtype):
        return cls(**config)


def text_dims(config) -> tuple[int, int]:
    """(video, audio) width of the text a transformer of ``config`` (a mapping) cross-attends to:
    the connectors' outputs as the cache stores them."""
    if config["use_prompt_embeddings"]:
        return config["caption_channels"], config["caption_channels"]
    return config["cross_attention_dim"], config["audio_cross_attention_dim"]


def _text_dims(transformer) -> tuple[int, int]:
    return text_dims(transformer.config)


def synthetic_batch(transformer, size: tuple[int, int, int], text_tokens: int, device: str, dtype,
                    fps: float = 24.0) -> FlowBatch:
    """Random latents, text embeddings and mask shaped like one clip of ``size``."""
    width, height, frames = size
    latent_frames, latent_h, latent_w = (frames - 1) // 8 + 1, height // 32, width // 32
    audio_frames = round(frames / fps * AUDIO_LATENTS_PER_SECOND)
    generator = torch.Generator().manual_seed(0)
    video_dim, audio_dim = _text_dims(transformer)

    def rand(*shape):
        return torch.randn(*shape, generator=generator).to(device=device, dtype=dtype)

    return FlowBatch(
        video=rand(1, latent_frames * latent_h * latent_w, transformer.config.in_channels),
        audio=rand(1, audio_frames, transformer.config.audio_in_channels),
        video_text=rand(1, text_tokens, video_dim),
        audio_text=rand(1, text_tokens, audio_dim),
        text_mask=torch.ones(1, text_tokens, device=device, dtype=torch.int64),
        latent_frames=latent_frames,
        latent_height=latent_h,
        latent_width=latent_w,
        fps=fps,
        audio_frames=audio_frames,
    )


# Gemma-3 12B's vision tower (SigLIP so400m at 896 px): LTX-2 never runs it, but it holds memory
GEMMA3_12B_VISION = {"hidden_size": 1152, "intermediate_size": 4304, "num_hidden_layers": 27,
                     "num_attention_heads": 16, "image_size": 896, "patch_size": 14, "vision_use_head": False}


def build_random_pipeline(preset: str, device: str, dtype: torch.dtype):
    """A full-size ``LTX2Pipeline`` of ``preset`` with random weights, every component built on
    ``device``: the transformer, text connectors, video VAE and Gemma-3 12B (text and vision
    towers of the published shape) in ``dtype``; the audio VAE and vocoder in float32, as
    :func:`worker.engine.model.pipelines.load_pipeline` gives them. The tokenizer is the toy's:
    the pipeline pads every prompt to 1,024 tokens, so Gemma's work is the same."""
    from diffusers import AutoencoderKLLTX2Audio, AutoencoderKLLTX2Video, FlowMatchEulerDiscreteScheduler, LTX2Pipeline
    from diffusers.pipelines.ltx2 import LTX2TextConnectors
    from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder, LTX2VocoderWithBWE
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    from core.presets import get_preset
    from worker.engine.bench.preprocess import GEMMA3_12B_TEXT
    from worker.engine.model import single_file_configs as cfg
    from worker.engine.model.toy import _fill_mel_stft_buffers, build_toy_tokenizer

    version = get_preset(preset).version
    vocoder = build_on_device(LTX2VocoderWithBWE if version == "2.3" else LTX2Vocoder, dict(cfg.VOCODER[version]),
                              device, torch.float32)
    if version == "2.3":  # the BWE's STFT and mel buffers, as a trained checkpoint carries them
        _fill_mel_stft_buffers(vocoder.mel_stft)
    gemma = Gemma3Config(text_config=GEMMA3_12B_TEXT, vision_config=GEMMA3_12B_VISION)
    with torch.device(device), _default_dtype(dtype):
        text_encoder = Gemma3ForConditionalGeneration(gemma)
    parts = {
        "transformer": build_random_transformer(preset, device, dtype),
        "connectors": build_on_device(LTX2TextConnectors, dict(cfg.CONNECTORS[version]), device, dtype),
        "vae": build_on_device(AutoencoderKLLTX2Video, dict(cfg.VIDEO_VAE[version]), device, dtype),
        "audio_vae": build_on_device(AutoencoderKLLTX2Audio, dict(cfg.AUDIO_VAE), device, torch.float32),
        "vocoder": vocoder,
        "text_encoder": text_encoder,
    }
    return LTX2Pipeline(scheduler=FlowMatchEulerDiscreteScheduler.from_config(cfg.SCHEDULER),
                        tokenizer=build_toy_tokenizer(), **{name: part.eval() for name, part in parts.items()})


def write_synthetic_precomputed(root, config, size: tuple[int, int, int], clips: int, text_tokens: int,
                                fps: float = 24.0):
    """A ``.precomputed`` cache under ``root`` of ``clips`` random clips of ``size``, in the layout
    ``avlora preprocess`` writes and :class:`worker.engine.data.dataset.PrecomputedDataset` reads:
    normalised video and audio latents and the connectors' text outputs, shaped for a transformer
    of ``config`` (a mapping). Returns the ``.precomputed`` folder."""
    from pathlib import Path

    from worker.engine.data.dataset import PRECOMPUTED_DIRNAME

    width, height, frames = size
    folder = Path(root) / PRECOMPUTED_DIRNAME
    generator = torch.Generator().manual_seed(0)
    video_dim, audio_dim = text_dims(config)
    audio_frames = round(frames / fps * AUDIO_LATENTS_PER_SECOND)
    for index in range(clips):
        name = f"clip_{index:03d}.pt"
        latents = torch.randn(config["in_channels"], (frames - 1) // 8 + 1, height // 32, width // 32,
                              generator=generator)
        entries = {
            "latents": {"latents": latents, "num_frames": latents.shape[1], "height": latents.shape[2],
                        "width": latents.shape[3], "fps": fps},
            "audio_latents": {"latents": torch.randn(8, audio_frames, config["audio_in_channels"] // 8,
                                                     generator=generator)},
            "conditions": {
                "connector_video_embeds": torch.randn(text_tokens, video_dim, generator=generator).to(torch.bfloat16),
                "connector_audio_embeds": torch.randn(text_tokens, audio_dim, generator=generator).to(torch.bfloat16),
                "connector_attention_mask": torch.ones(text_tokens, dtype=torch.int64),
            },
        }
        for kind, payload in entries.items():
            (folder / kind).mkdir(parents=True, exist_ok=True)
            torch.save(payload, folder / kind / name)
    return folder
