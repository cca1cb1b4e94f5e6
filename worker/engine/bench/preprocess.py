"""Benchmark preprocessing: video VAE encodes and caption embeddings per second.

``bench_preprocess(preset, size=(512, 512, 49))`` times, on the device:

- the video VAE encoding one clip of ``size`` (pixels -> posterior mode), the step that
  dominates ``avlora preprocess`` per clip;
- one caption embedding: Gemma-3 over ``max_sequence_length`` tokens with all hidden states,
  then the feature projections and the text connectors (:mod:`worker.engine.data.text`), exactly the
  computation ``encode_caption`` runs after tokenising.

Full-size presets are built with random weights directly on the device (the VAE and the
connectors from the diffusers configs of :mod:`worker.engine.model.single_file_configs`, Gemma-3 12B
from its published shape); the toy loads its saved pipeline. Token ids are random (left
padding as the tokenizer does it), so no tokenizer files are needed.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass

import torch

from worker.engine.step.measure import peak_memory_bytes, reset_peak, timed_calls

# Gemma-3 12B's text tower (the LTX-2 text encoder): 48 layers + embeddings = 49 hidden states.
GEMMA3_12B_TEXT = {
    "vocab_size": 262208,
    "hidden_size": 3840,
    "intermediate_size": 15360,
    "num_hidden_layers": 48,
    "num_attention_heads": 16,
    "num_key_value_heads": 8,
    "head_dim": 256,
    "query_pre_attn_scalar": 256,
    "sliding_window": 1024,
    "max_position_embeddings": 131072,
}


@dataclass
class PreprocessBenchResult:
    """Preprocessing throughput (JSON-ready through :meth:`to_dict`)."""

    preset: str
    device: str
    dtype: str
    size: str
    repeats: int
    vae_s_per_encode: float
    vae_encodes_per_s: float
    vae_peak_memory_bytes: int
    text_tokens: int
    caption_s_per_embedding: float
    caption_embeddings_per_s: float
    text_peak_memory_bytes: int

    def to_dict(self) -> dict:
        """A JSON-ready dict."""
        return asdict(self)


def _build(cls, device: str, dtype: torch.dtype, *args, **kwargs):
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            return cls(*args, **kwargs).eval()
    finally:
        torch.set_default_dtype(previous)


def random_preprocess_models(version: str, device: str, dtype: torch.dtype):
    """(video VAE, Gemma-3 text model, text connectors) of the full-size ``version`` with random
    weights, built on ``device`` in ``dtype``."""
    from diffusers import AutoencoderKLLTX2Video
    from diffusers.pipelines.ltx2 import LTX2TextConnectors
    from transformers import Gemma3TextConfig, Gemma3TextModel

    from worker.engine.model.single_file_configs import CONNECTORS, VIDEO_VAE

    vae = _build(AutoencoderKLLTX2Video, device, dtype, **VIDEO_VAE[version])
    gemma = _build(Gemma3TextModel, device, dtype, Gemma3TextConfig(**GEMMA3_12B_TEXT))
    connectors = _build(LTX2TextConnectors, device, dtype, **CONNECTORS[version])
    return vae, gemma, connectors


def caption_embedding(text_encoder, connectors, input_ids: torch.Tensor, mask: torch.Tensor):
    """Gemma hidden states (all layers, packed as ``LTX2Pipeline`` packs them) -> connector
    outputs: the work of :func:`worker.engine.data.text.encode_caption` after tokenising."""
    from worker.engine.data.text import caption_features, connect_features

    outputs = text_encoder(input_ids=input_ids, attention_mask=mask, output_hidden_states=True)
    hidden = torch.stack(outputs.hidden_states, dim=-1).flatten(2, 3)
    video, audio = caption_features(connectors, hidden, mask)
    return connect_features(connectors, video, audio, mask)


def _random_tokens(vocab: int, length: int, device: str, kept: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(5, vocab - 8, (1, length), generator=generator)
    mask = torch.zeros(1, length, dtype=torch.int64)
    mask[:, length - kept:] = 1  # left padding, as the pipeline tokenises
    ids[:, : length - kept] = 0
    return ids.to(device), mask.to(device)


def _preprocess_models(preset: str, info, device: str, dtype: torch.dtype, data_dir, model_dir):
    """(video VAE, text encoder, connectors, vocabulary size): the toy's saved ones, else random full-size ones."""
    if info.is_toy:
        from worker.engine.model.pipelines import load_pipeline

        if data_dir is None:
            raise ValueError("data_dir is needed to load the toy")
        pipe = load_pipeline(preset, data_dir=data_dir, model_dir=model_dir, device=device, dtype=dtype)
        return pipe.vae, pipe.text_encoder, pipe.connectors, pipe.text_encoder.config.text_config.vocab_size
    vae, gemma, connectors = random_preprocess_models(info.version, device, dtype)
    return vae, gemma, connectors, GEMMA3_12B_TEXT["vocab_size"]


def _random_clip(size: tuple[int, int, int], device: str, dtype: torch.dtype) -> torch.Tensor:
    width, height, frames = size
    generator = torch.Generator().manual_seed(0)
    return (torch.rand(1, 3, frames, height, width, generator=generator) * 2 - 1).to(device, dtype)


def _time_vae_encode(vae, pixels: torch.Tensor, device: str, repeats: int, warmup: int) -> tuple[float, int]:
    """Median seconds per encode of ``pixels`` and the peak memory."""
    reset_peak(device)
    vae_s = statistics.median(
        timed_calls(lambda: vae.encode(pixels).latent_dist.mode(), device, repeats, warmup=warmup)
    )
    return vae_s, peak_memory_bytes(device)


def _time_caption_embedding(gemma, connectors, vocab: int, length: int, kept: int, device: str, repeats: int,
                            warmup: int) -> tuple[float, int]:
    """Median seconds per caption embedding of ``length`` tokens (``kept`` real) and the peak memory."""
    ids, mask = _random_tokens(vocab, length, device, kept)
    reset_peak(device)
    text_s = statistics.median(
        timed_calls(lambda: caption_embedding(gemma, connectors, ids, mask), device, repeats, warmup=warmup)
    )
    return text_s, peak_memory_bytes(device)


@torch.inference_mode()
def bench_preprocess(
    preset: str,
    *,
    size: tuple[int, int, int] = (512, 512, 49),
    repeats: int = 5,
    warmup: int = 1,
    caption_tokens: int = 128,
    device: str | None = None,
    data_dir=None,
    model_dir=None,
) -> PreprocessBenchResult:
    """Time VAE encodes of clips of ``size`` and caption embeddings (see the module docstring).

    ``caption_tokens``: real (non-padding) tokens of the caption; the rest up to the preset's
    prompt length is padding, which Gemma still processes.
    """
    from core.presets import get_preset

    info = get_preset(preset)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    vae, gemma, connectors, vocab = _preprocess_models(preset, info, device, dtype, data_dir, model_dir)
    width, height, frames = size
    pixels = _random_clip(size, device, vae.dtype)  # kept until the end, as the caption timing's peak saw it
    vae_s, vae_peak = _time_vae_encode(vae, pixels, device, repeats, warmup)
    length = info.max_sequence_length
    text_s, text_peak = _time_caption_embedding(gemma, connectors, vocab, length, min(caption_tokens, length),
                                                device, repeats, warmup)
    return PreprocessBenchResult(
        preset=preset,
        device=torch.cuda.get_device_name() if device.startswith("cuda") else "cpu",
        dtype=str(dtype).removeprefix("torch."),
        size=f"{width}x{height}x{frames}",
        repeats=repeats,
        vae_s_per_encode=vae_s,
        vae_encodes_per_s=1.0 / vae_s,
        vae_peak_memory_bytes=vae_peak,
        text_tokens=length,
        caption_s_per_embedding=text_s,
        caption_embeddings_per_s=1.0 / text_s,
        text_peak_memory_bytes=text_peak,
    )
