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


def _text_dims(transformer) -> tuple[int, int]:
    config = transformer.config
    if config.use_prompt_embeddings:
        return config.caption_channels, config.caption_channels
    return config.cross_attention_dim, config.audio_cross_attention_dim


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
