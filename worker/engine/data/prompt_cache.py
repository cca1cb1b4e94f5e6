"""Validation prompts' embeddings, and the text encoder that makes them never kept.

Gemma-3 12B takes about 24 GB in bfloat16; training never needs it (captions are cached by
preprocessing), and sampling only needs the embeddings of a few fixed prompts. So the trainer
loads the pipeline without its text encoder; the embeddings of its validation prompts (and the
negative prompt) come from the run folder (:mod:`worker.engine.data.prompt_store`), and only text
not found there is encoded: :func:`encode_and_release` loads Gemma for that alone, encodes on the
device and frees it (deleted, collected, the CUDA cache emptied) before the first training step.
The Gemma hidden states are held on the CPU in a :class:`PromptCache`. Sampling hands them to
``LTX2Pipeline.__call__`` as ``prompt_embeds`` / ``prompt_attention_mask`` (and the negative
pair); the pipeline runs the connectors on them exactly as it would on embeddings it computed
itself, so the samples are the same.

The cache holds what ``LTX2Pipeline._get_gemma_prompt_embeds`` returns (computed by
``worker.engine.data.text.gemma_hidden_states``, which also ensures Gemma 4's leading BOS): all Gemma hidden states
packed ``[1, L, C*layers]`` in the text encoder's dtype, and the ``[1, L]`` mask, with ``L`` the
pipeline's default prompt length (the sampling path never changes it). At full size that is about
385 MB per prompt in bfloat16 (1024 tokens x 3840 x 49 layers), held in CPU memory.

``load_text_encoder_in_8bit``: on CUDA with bitsandbytes, the encoding uses an 8-bit Gemma loaded
from disk (never a bfloat16 copy besides it); elsewhere the run's log says why not and Gemma in the
pipeline's dtype is used (freed before training either way).
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from worker.engine.data.text import gemma_hidden_states, load_text_encoder_8bit, text_encoder_8bit_unavailable

PIPELINE_PROMPT_LENGTH = 1024  # LTX2Pipeline.__call__'s default max_sequence_length

LogFn = Callable[[str, str], None]


TEXTS = "the prompts and the negative prompt"  # what the log's count of encoded texts counts


@dataclass
class PromptEmbedding:
    """One text's Gemma hidden states ``[1, L, D]`` and attention mask ``[1, L]``, on the CPU."""

    embeds: torch.Tensor
    mask: torch.Tensor


class PromptCache:
    """Encoded texts by their exact text; :meth:`pipeline_kwargs` feeds them to the pipeline."""

    def __init__(self, embeddings: dict[str, PromptEmbedding] | None = None):
        self.embeddings = dict(embeddings or {})

    def __contains__(self, text: str) -> bool:
        return text in self.embeddings

    def get(self, text: str) -> PromptEmbedding:
        """The embedding of ``text``; a clear error names a text that was not encoded."""
        try:
            return self.embeddings[text]
        except KeyError:
            raise KeyError(
                f"The prompt {text!r} was not encoded before the text encoder was released; "
                f"encoded prompts: {sorted(self.embeddings)}"
            ) from None

    def pipeline_kwargs(self, prompt: str, negative_prompt: str, device) -> dict:
        """``LTX2Pipeline.__call__`` text arguments for ``prompt`` and ``negative_prompt``, on ``device``.

        An empty negative prompt is the empty string's embedding, as the pipeline encodes it.
        """
        positive, negative = self.get(prompt), self.get(negative_prompt or "")
        return {
            "prompt": None,
            "prompt_embeds": positive.embeds.to(device),
            "prompt_attention_mask": positive.mask.to(device),
            "negative_prompt": None,
            "negative_prompt_embeds": negative.embeds.to(device),
            "negative_prompt_attention_mask": negative.mask.to(device),
        }


@torch.inference_mode()
def encode_prompts(pipe, texts, *, encoder=None, dtype: torch.dtype | None = None) -> PromptCache:
    """Encode each distinct text with ``encoder`` (default: ``pipe.text_encoder``, where it is).

    The tensors are packed as the pipeline packs them (``gemma_hidden_states``: with the leading
    BOS Gemma 4 needs), in ``dtype`` (default: the encoder's dtype), moved to the CPU.
    """
    encoder = encoder if encoder is not None else pipe.text_encoder
    texts = list(dict.fromkeys(texts))
    if encoder is None:
        raise RuntimeError(f"The pipeline was loaded without its text encoder and these texts were not encoded "
                           f"before: {texts}")
    dtype = dtype or encoder.dtype
    embeddings: dict[str, PromptEmbedding] = {}
    for text in texts:
        embeds, mask = gemma_hidden_states(pipe, text, max_sequence_length=PIPELINE_PROMPT_LENGTH, encoder=encoder,
                                           dtype=dtype)
        embeddings[text] = PromptEmbedding(embeds.to("cpu"), mask.to("cpu"))
    return PromptCache(embeddings)


def sampling_texts(prompts: list[str], negative_prompt: str) -> list[str]:
    """Every text a validation pass encodes: the prompts and the negative prompt (``""`` if none)."""
    return [*prompts, negative_prompt or ""]


def release_text_encoder(pipe) -> None:
    """Move the pipeline's text encoder to the CPU and give its accelerator memory back."""
    if pipe.text_encoder is None:
        return
    on_accelerator = pipe.text_encoder.device.type != "cpu"
    pipe.text_encoder.to("cpu")
    if on_accelerator and torch.cuda.is_available():
        torch.cuda.empty_cache()


def move_pipeline_except_text_encoder(pipe, device: str) -> None:
    """Move every module of ``pipe`` but the text encoder to ``device`` (dtypes unchanged)."""
    for name, component in pipe.components.items():
        if name != "text_encoder" and isinstance(component, torch.nn.Module):
            component.to(device)


def text_encoder_dir(preset: str, *, data_dir, model_dir=None) -> Path:
    """The Gemma directory ``preset`` loads its text encoder from (for the 8-bit reload)."""
    from core.model_files import resolve_real_model
    from core.presets import get_preset
    from worker.engine.model.toy_store import ensure_toy_saved

    info = get_preset(preset)
    if info.is_toy:
        return ensure_toy_saved(info, Path(data_dir)) / "text_encoder"
    location = resolve_real_model(info, Path(model_dir) if model_dir else None)
    if location.kind == "diffusers":
        return location.path / "text_encoder"
    if location.gemma_dir is None:
        raise FileNotFoundError(f"No Gemma-3 directory was found beside {location.path}.")
    return location.gemma_dir


def eight_bit_refusal(pipe, *, device: str, load_in_8bit: bool) -> str | None:
    """Why an 8-bit Gemma will not encode here (``None``: it will, or it was not asked for)."""
    if not load_in_8bit:
        return None
    reason = text_encoder_8bit_unavailable(device)
    if reason is None and pipe.text_encoder is not None:
        reason = "the pipeline was built by the caller, so its text encoder is used as loaded"
    return reason


def encode_and_release(pipe, texts: list[str], *, device: str, dtype: torch.dtype, load_in_8bit: bool = False,
                       model: tuple | None = None, on_log: LogFn | None = None) -> PromptCache:
    """Encode ``texts`` on ``device``; the text encoder never stays on the accelerator.

    A pipeline loaded without its text encoder (``pipe.text_encoder is None``): Gemma is loaded
    from ``model`` (``(preset, data_dir, model_dir)``) for this call alone and freed before it
    returns (deleted, collected, the CUDA cache emptied); with ``load_in_8bit`` an 8-bit copy (CUDA
    with bitsandbytes). A caller's pipeline keeps its encoder, moved to the CPU afterwards. Where
    8-bit cannot run, ``on_log("warning", ...)`` says why; never silently.
    """
    on_log = on_log or (lambda *_: None)
    reason = eight_bit_refusal(pipe, device=device, load_in_8bit=load_in_8bit)
    if reason is not None:
        on_log("warning", f"load_text_encoder_in_8bit ignored: {reason}. Gemma runs in {dtype} for the one-time "
                          "encoding of the validation prompts and leaves the accelerator before training.")
    if pipe.text_encoder is not None:
        pipe.text_encoder.to(device)
        try:
            cache = encode_prompts(pipe, texts, dtype=dtype)
        finally:
            release_text_encoder(pipe)
        on_log("info", f"Validation prompts encoded once ({len(cache.embeddings)} texts: {TEXTS}).")
        return cache
    if model is None:
        raise RuntimeError("The pipeline has no text encoder and no model to load one from was given.")
    eight_bit = load_in_8bit and reason is None
    cache = _encode_with_own_encoder(pipe, texts, device=device, dtype=dtype, eight_bit=eight_bit, model=model)
    how = " with Gemma in 8-bit" if eight_bit else ""
    on_log("info", f"Validation prompts encoded once{how} ({len(cache.embeddings)} texts: {TEXTS}); "
                   "the text encoder is freed.")
    return cache


def _encode_with_own_encoder(pipe, texts, *, device, dtype, eight_bit: bool, model: tuple) -> PromptCache:
    """Load the text encoder of ``model``, encode ``texts`` on ``device``, and free it."""
    from worker.engine.model.loading import gemma_class
    from worker.engine.model.pipelines import load_text_encoder

    preset, data_dir, model_dir = model
    if eight_bit:
        gemma = text_encoder_dir(preset, data_dir=data_dir, model_dir=model_dir)
        encoder = load_text_encoder_8bit(gemma_class(gemma), gemma, device=device, dtype=dtype)
    else:
        encoder = load_text_encoder(preset, data_dir=Path(data_dir), model_dir=Path(model_dir) if model_dir else None,
                                    dtype=dtype).to(device)
    try:
        return encode_prompts(pipe, texts, encoder=encoder, dtype=dtype)
    finally:
        del encoder
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
