"""Caption embeddings: Gemma hidden states -> feature projections -> text connectors.

The official trainer (``process_captions.py``) caches the text features *after* the feature
extractor projection and *before* the connector transformers, under ``video_prompt_embeds``,
``audio_prompt_embeds`` and ``prompt_attention_mask``; its training step runs the connectors.
``encode_caption`` stores exactly that, plus the connector outputs under keys of our own
(``CONNECTOR_KEYS``) so our trainer can skip the connectors when they are frozen.

In diffusers the two halves live in ``LTX2TextConnectors.forward``; ``caption_features`` and
``connect_features`` split it at the same point (``connect_features(caption_features(h, m))``
equals ``connectors(h, m)``).
"""

from __future__ import annotations

import math

import torch

OFFICIAL_KEYS = ("video_prompt_embeds", "audio_prompt_embeds", "prompt_attention_mask")
CONNECTOR_KEYS = ("connector_video_embeds", "connector_audio_embeds", "connector_attention_mask")


def tokenize_caption(tokenizer, text: str, *, max_sequence_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(input_ids, attention_mask)`` ``[1, L]``: left padding to ``max_sequence_length``, one leading BOS.

    Gemma 3's tokenizer emits the BOS itself (then this equals the pipeline's own tokenisation);
    Gemma 4's does not, and LTX-2.5 was trained with it, so it is prepended here as ltx-core's
    ``LTXGemmaTokenizer`` does (never twice). No EOS is appended.
    """
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    ids = tokenizer(text.strip(), truncation=True, max_length=max_sequence_length, add_special_tokens=True).input_ids
    bos = tokenizer.bos_token_id
    if bos is not None and (not ids or ids[0] != bos):
        ids = [bos, *ids][:max_sequence_length]
    padded = tokenizer.pad(
        {"input_ids": [ids]}, padding="max_length", max_length=max_sequence_length, return_tensors="pt",
        return_attention_mask=True,
    )
    return padded.input_ids, padded.attention_mask


def gemma_hidden_states(pipe, text: str, *, max_sequence_length: int, encoder=None, dtype=None):
    """All Gemma hidden states of ``text`` stacked and packed ``[1, L, C*layers]``, and the mask ``[1, L]``.

    Packed as ``LTX2Pipeline`` packs them (embeddings, then every layer); tokenised by
    :func:`tokenize_caption`. ``encoder`` defaults to ``pipe.text_encoder``; only its language
    model runs (``.model``: no vocabulary logits, about 2 GB at 1,024 tokens for a 262k vocabulary).
    """
    encoder = encoder if encoder is not None else pipe.text_encoder
    ids, mask = tokenize_caption(pipe.tokenizer, text, max_sequence_length=max_sequence_length)
    ids, mask = ids.to(encoder.device), mask.to(encoder.device)
    body = getattr(encoder, "model", encoder)
    outputs = body(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    hidden = torch.stack(outputs.hidden_states, dim=-1).flatten(2, 3)
    return hidden.to(dtype or encoder.dtype), mask


def caption_features(connectors, hidden_states: torch.Tensor, attention_mask: torch.Tensor):
    """The feature-extractor half of the connectors: ``(video_features, audio_features)``.

    LTX-2.3: per-token RMS norm, padding zeroed, rescaled per modality and projected by
    ``video_text_proj_in`` / ``audio_text_proj_in``. LTX-2.0: per-layer masked mean/range norm and
    one shared ``text_proj_in`` (the same features feed both connectors).
    """
    from diffusers.pipelines.ltx2.connectors import per_layer_masked_mean_norm, per_token_rms_norm

    config = connectors.config
    if hidden_states.ndim == 3:
        hidden_states = hidden_states.unflatten(2, (config.caption_channels, -1))
    hidden_states = hidden_states.to(connectors.dtype)
    if config.per_modality_projections:
        normed = per_token_rms_norm(hidden_states).flatten(2, 3)
        normed = torch.where(attention_mask.bool().unsqueeze(-1), normed, torch.zeros_like(normed))
        video = connectors.video_text_proj_in(normed * math.sqrt(config.video_hidden_dim / config.caption_channels))
        audio = connectors.audio_text_proj_in(normed * math.sqrt(config.audio_hidden_dim / config.caption_channels))
        return video, audio
    normed = per_layer_masked_mean_norm(
        text_hidden_states=hidden_states,
        sequence_lengths=attention_mask.sum(dim=-1),
        device=hidden_states.device,
        padding_side="left",
        scale_factor=8,
    )
    shared = connectors.text_proj_in(normed)
    return shared, shared


def connect_features(connectors, video_features, audio_features, attention_mask):
    """The connector half: ``(video_embeds, audio_embeds, mask)`` as ``LTX2TextConnectors.forward`` returns.

    Accepts the cached official features (``[B, L, D]`` each) and mask (``[B, L]``); this is what
    a training step runs when the connectors are part of the model being trained.
    """
    dtype = video_features.dtype
    additive = (attention_mask.to(torch.int64) - 1).to(dtype)
    additive = additive.reshape(additive.shape[0], 1, -1, additive.shape[-1]) * torch.finfo(dtype).max
    video, video_mask = connectors.video_connector(video_features, additive)
    binary = (video_mask < 1e-6).to(torch.int64).reshape(video.shape[0], video.shape[1], 1)
    video = video * binary
    audio, _ = connectors.audio_connector(audio_features, additive)
    return video, audio, binary.squeeze(-1)


@torch.inference_mode()
def encode_caption(pipe, text: str, *, max_sequence_length: int) -> dict[str, torch.Tensor]:
    """The ``conditions/*.pt`` payload for one caption (batch dimension removed).

    Official keys: ``video_prompt_embeds`` ``[L, Dv]`` and ``audio_prompt_embeds`` ``[L, Da]``
    (bfloat16 features before the connectors), ``prompt_attention_mask`` ``[L]`` (int64).
    Our keys: ``connector_video_embeds`` / ``connector_audio_embeds`` (bfloat16 connector outputs)
    and ``connector_attention_mask`` ``[L]`` (int64, all ones: padding became registers).
    """
    hidden, mask = gemma_hidden_states(pipe, text, max_sequence_length=max_sequence_length)
    hidden = hidden.to(pipe.connectors.device)
    mask = mask.to(pipe.connectors.device)
    video_features, audio_features = caption_features(pipe.connectors, hidden, mask)
    video_embeds, audio_embeds, connector_mask = connect_features(
        pipe.connectors, video_features, audio_features, mask
    )

    def _keep(tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        return tensor[0].to("cpu", dtype).contiguous()

    return {
        "video_prompt_embeds": _keep(video_features, torch.bfloat16),
        "audio_prompt_embeds": _keep(audio_features, torch.bfloat16),
        "prompt_attention_mask": _keep(mask, torch.int64),
        "connector_video_embeds": _keep(video_embeds, torch.bfloat16),
        "connector_audio_embeds": _keep(audio_embeds, torch.bfloat16),
        "connector_attention_mask": _keep(connector_mask, torch.int64),
    }


def text_encoder_8bit_unavailable(device: str) -> str | None:
    """Why Gemma cannot be loaded in 8-bit (bitsandbytes) on ``device`` here; ``None`` when it can."""
    import importlib.util

    if not str(device).startswith("cuda"):
        return f"8-bit loading needs a CUDA GPU and this process runs on {device}"
    if not torch.cuda.is_available():
        return f"8-bit loading was asked for on {device}, but no CUDA GPU is visible"
    if importlib.util.find_spec("bitsandbytes") is None:
        return "the bitsandbytes package is not installed (pip install bitsandbytes)"
    return None


def load_text_encoder_8bit(encoder_class, gemma_dir, *, device: str, dtype: torch.dtype):
    """Load the Gemma text encoder from ``gemma_dir`` with bitsandbytes 8-bit weights on ``device``.

    ``encoder_class`` is the pipeline's text encoder class (``Gemma3ForConditionalGeneration``);
    layers bitsandbytes leaves alone keep ``dtype``. Check :func:`text_encoder_8bit_unavailable`
    first: this raises whatever transformers raises where 8-bit cannot run.
    """
    from transformers import BitsAndBytesConfig

    index = torch.device(device).index
    index = torch.cuda.current_device() if index is None else index
    return encoder_class.from_pretrained(
        str(gemma_dir), quantization_config=BitsAndBytesConfig(load_in_8bit=True), dtype=dtype, device_map={"": index}
    ).eval()
