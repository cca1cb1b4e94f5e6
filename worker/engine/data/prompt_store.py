"""Validation prompts' embeddings kept on disk in the run folder, so Gemma is loaded only to encode new text.

A run's validation prompts (and its negative prompt) are encoded by Gemma, a 12B model that
training itself never needs (the captions are in the ``.precomputed`` cache). Their embeddings
are written to ``<run>/prompt_embeddings/<hash>.safetensors``, one file per text, named by a hash
of what they depend on: the model identity (:func:`worker.engine.model.pipelines.model_identity`),
the exact text, the prompt length and the precision (dtype, and whether an 8-bit Gemma made them).
A resume, ``avlora validate RUN_DIR`` and the strength samples read them back and never load the
text encoder; a changed prompt is the only text encoded again.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from core.files import atomic_write
from worker.engine.data.prompt_cache import (
    PIPELINE_PROMPT_LENGTH,
    LogFn,
    PromptCache,
    PromptEmbedding,
    eight_bit_refusal,
    encode_and_release,
    release_text_encoder,
)

EMBEDDINGS_DIR = "prompt_embeddings"


class PromptStore:
    """Embeddings on disk in ``folder``, one safetensors file per text (see the module docstring)."""

    def __init__(self, folder: str | Path, identity: str, precision: str,
                 max_sequence_length: int = PIPELINE_PROMPT_LENGTH):
        self.folder = Path(folder)
        self.identity, self.precision, self.max_sequence_length = identity, precision, max_sequence_length

    def path(self, text: str) -> Path:
        """The file of ``text``'s embedding."""
        key = json.dumps([self.identity, text, self.max_sequence_length, self.precision])
        return self.folder / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.safetensors"

    def load(self, text: str) -> PromptEmbedding | None:
        """``text``'s embedding from disk, or ``None`` when absent or unreadable (then it is encoded again)."""
        from safetensors import SafetensorError, safe_open

        path = self.path(text)
        if not path.is_file():
            return None
        try:
            with safe_open(str(path), framework="pt") as handle:
                if (handle.metadata() or {}).get("text") != text:
                    return None
                return PromptEmbedding(handle.get_tensor("embeds"), handle.get_tensor("mask"))
        except (OSError, SafetensorError):
            return None

    def save(self, text: str, embedding: PromptEmbedding) -> Path:
        """Write ``text``'s embedding (atomically: a crash never leaves half a file)."""
        from safetensors.torch import save_file

        tensors = {"embeds": embedding.embeds.contiguous(), "mask": embedding.mask.contiguous()}
        metadata = {"text": text, "model": self.identity, "precision": self.precision,
                    "max_sequence_length": str(self.max_sequence_length)}
        self.folder.mkdir(parents=True, exist_ok=True)
        return atomic_write(self.path(text), lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def precision_of(dtype: torch.dtype, eight_bit: bool) -> str:
    """The precision part of a stored embedding's name: ``"bfloat16"``, ``"bfloat16+int8"``, ..."""
    return str(dtype).removeprefix("torch.") + ("+int8" if eight_bit else "")


def _store(folder, model, precision: str, on_log: LogFn) -> PromptStore | None:
    """The store of ``model``'s embeddings in ``folder``; ``None`` (said in the log) when the
    model's identity cannot be read, or without a folder or a model."""
    from core.model_files import ModelFilesMissing
    from worker.engine.model.pipelines import model_identity

    if folder is None or model is None:
        return None
    preset, data_dir, model_dir = model
    try:
        identity = model_identity(preset, data_dir=Path(data_dir), model_dir=Path(model_dir) if model_dir else None)
    except (OSError, ModelFilesMissing) as exc:
        on_log("info", f"The validation prompts' embeddings are not kept on disk: {exc}")
        return None
    return PromptStore(folder, identity, precision)


def stored_prompt_embeddings(pipe, texts: list[str], *, folder: str | Path | None, device: str, dtype: torch.dtype,
                             load_in_8bit: bool = False, model: tuple | None = None,
                             on_log: LogFn | None = None) -> PromptCache:
    """The embeddings of ``texts``: read from ``folder`` where they are, the rest encoded
    (:func:`encode_and_release`: a text encoder loaded for that alone, then freed) and written there.

    ``model``: ``(preset, data_dir, model_dir)``, the identity the files are keyed by and where a
    text encoder is loaded from; a caller's pipeline (one with its text encoder) encodes with its
    own in its dtype, and is keyed by ``model`` too. Nothing to encode: no text encoder is loaded.
    """
    on_log = on_log or (lambda *_: None)
    texts = list(dict.fromkeys(texts))
    if pipe.text_encoder is not None:
        dtype = pipe.text_encoder.dtype
    eight_bit = load_in_8bit and eight_bit_refusal(pipe, device=device, load_in_8bit=True) is None
    store = _store(folder, model, precision_of(dtype, eight_bit), on_log)
    found = {}
    for text in texts if store is not None else ():
        embedding = store.load(text)
        if embedding is not None:
            found[text] = embedding
    missing = [text for text in texts if text not in found]
    if missing:
        encoded = encode_and_release(pipe, missing, device=device, dtype=dtype, load_in_8bit=load_in_8bit,
                                     model=model, on_log=on_log)
        for text in missing:
            found[text] = encoded.get(text)
            if store is not None:
                store.save(text, found[text])
    else:
        release_text_encoder(pipe)
        on_log("info", f"Validation prompts' embeddings read from {folder} ({len(texts)} texts): "
                       "the text encoder is not loaded.")
    return PromptCache({text: found[text] for text in texts})
