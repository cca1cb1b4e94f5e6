"""Whisper backend through ``transformers``, loaded only from a local directory.

The directory (``AVLORA_ASR_MODEL_DIR``) holds what ``save_pretrained`` writes for a
``WhisperForConditionalGeneration`` and a ``WhisperProcessor``; it is opened with
``local_files_only=True`` so nothing is ever downloaded. Its generation config must carry
``alignment_heads`` (every released Whisper checkpoint has them): word times come from
``generate(..., return_token_timestamps=True)``, which aligns the decoder's cross-attention
of those heads to the audio frames with dynamic time warping (20 ms resolution).

Tokens are grouped into words at the tokens that start with a space (punctuation stays on
its word); a word starts at its first token's time and ends at the next token's time. Its
confidence is the mean probability of its tokens. Audio longer than 30 s is decoded in
chunks cut at pauses. Word edges are then tightened to where there is sound
(:mod:`worker.speech.refine`), since cross-attention times are coarse.
"""

from __future__ import annotations

import threading
import unicodedata
from pathlib import Path

import numpy as np

from worker.speech.audio import SAMPLE_RATE, duration_s, to_mono_16k
from worker.speech.refine import snap_to_sound
from worker.speech.vad import chunk_at_pauses
from worker.speech.words import Transcript, Word

_models: dict[str, tuple] = {}
_models_lock = threading.Lock()


class WhisperModelError(RuntimeError):
    """The model directory is missing, incomplete, or lacks what word timings need."""


def load_whisper(model_dir: str | Path):
    """``(processor, model, lock)`` for ``model_dir``, loaded once per process."""
    key = str(Path(model_dir).resolve())
    with _models_lock:
        if key not in _models:
            _models[key] = _load(Path(key))
        return _models[key]


def _load(path: Path):
    if not path.is_dir():
        raise WhisperModelError(f"AVLORA_ASR_MODEL_DIR={path} is not a directory")
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    try:
        processor = WhisperProcessor.from_pretrained(path, local_files_only=True)
        model = WhisperForConditionalGeneration.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise WhisperModelError(f"cannot load a Whisper model from {path}: {exc}") from exc
    if not getattr(model.generation_config, "alignment_heads", None):
        raise WhisperModelError(f"{path}/generation_config.json has no alignment_heads: no word timings")
    return processor, model.eval(), threading.Lock()


def group_words(tokenizer, token_ids: list[int], starts: list[float], ends: list[float],
                probabilities: list[float]) -> list[Word]:
    """Text tokens grouped into words: a new word at each token that begins with a space, so
    punctuation stays on its word ("today." keeps the sentence end the split planner looks for)."""
    groups: list[list[int]] = []
    for index, token_id in enumerate(token_ids):
        if not groups or tokenizer.decode([token_id]).startswith(" "):
            groups.append([index])
        else:
            groups[-1].append(index)
    words = []
    for group in groups:
        text = tokenizer.decode([token_ids[i] for i in group]).strip()
        if not text or all(unicodedata.category(c).startswith("P") for c in text):
            continue
        confidence = float(np.mean([probabilities[i] for i in group]))
        words.append(Word(text, starts[group[0]], max(ends[group[-1]], starts[group[0]]), confidence))
    return words


class WhisperRecognizer:
    """Multilingual recognition with word timings from a local Whisper checkpoint."""

    name = "whisper"

    def __init__(self, model_dir: str | Path):
        self.model_dir = Path(model_dir)

    def transcribe(self, wav: np.ndarray, sr: int, language: str | None = None) -> Transcript:
        """Recognise ``wav``; ``language`` is a code such as ``en`` (``None``: let Whisper detect)."""
        if language:  # "en-US" / "en_us" -> "en", the form Whisper's generate takes
            language = language.replace("_", "-").split("-")[0].lower()
        audio = to_mono_16k(wav, sr)
        processor, model, lock = load_whisper(self.model_dir)
        words: list[Word] = []
        with lock:
            for start, end in chunk_at_pauses(audio, target_s=25.0, max_s=30.0):
                piece = _transcribe_chunk(processor, model, audio[start:end], language)
                offset = start / SAMPLE_RATE
                words += [Word(w.word, w.start_s + offset, w.end_s + offset, w.confidence) for w in piece]
        words = snap_to_sound(words, audio)
        return Transcript(" ".join(w.word for w in words), words)


def _transcribe_chunk(processor, model, audio: np.ndarray, language: str | None) -> list[Word]:
    import torch

    features = processor.feature_extractor(audio, sampling_rate=SAMPLE_RATE, return_tensors="pt",
                                           return_attention_mask=True)
    options = {"return_token_timestamps": True, "return_dict_in_generate": True,
               "max_new_tokens": max(model.config.max_target_positions // 2, 1)}
    if getattr(model.generation_config, "is_multilingual", False):
        options.update(language=language, task="transcribe")
    with torch.inference_mode():
        out = model.generate(features.input_features, attention_mask=features.attention_mask, **options)
    sequence = out["sequences"][0].tolist()
    times = out["token_timestamps"][0].tolist()
    prompt = len(sequence) - len(out["scores"])
    probabilities = [float(torch.softmax(score[0].float(), -1)[token])
                     for score, token in zip(out["scores"], sequence[prompt:], strict=True)]
    limit = duration_s(audio)
    text_ids, starts, ends, probs = [], [], [], []
    special_from = processor.tokenizer.eos_token_id
    for k, token in enumerate(sequence[prompt:]):
        index = prompt + k
        if token >= special_from:
            continue
        text_ids.append(token)
        starts.append(min(max(times[index], 0.0), limit))
        ends.append(min(max(times[index + 1] if index + 1 < len(times) else limit, 0.0), limit))
        probs.append(probabilities[k])
    return group_words(processor.tokenizer, text_ids, starts, ends, probs)
