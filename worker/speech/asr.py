"""Speech recognition with word timings: the backend interface and the factory that picks one.

A recognizer has ``name`` and ``transcribe(wav, sr, language) -> Transcript`` (``wav`` mono
float32 at ``sr``; ``language`` a code like ``en`` or ``None``). Two exist:

- :class:`worker.speech.whisper.WhisperRecognizer` when ``AVLORA_ASR_MODEL_DIR`` names a local
  Whisper checkpoint (multilingual, stronger; loaded from that directory only);
- :class:`worker.speech.sphinx.PocketSphinxRecognizer` otherwise: English only, embedded in
  its pip package.

Forced alignment (:func:`align`) always uses PocketSphinx.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np

from worker.speech.words import Transcript, Word

ASR_MODEL_ENV = "AVLORA_ASR_MODEL_DIR"


class Recognizer(Protocol):
    """What every recognition backend offers."""

    name: str

    def transcribe(self, wav: np.ndarray, sr: int, language: str | None = None) -> Transcript:
        """Text and timed words of ``wav``."""


def _model_dir(settings_or_env: Any) -> str | None:
    if settings_or_env is None:
        settings_or_env = os.environ
    if isinstance(settings_or_env, Mapping):
        value = settings_or_env.get(ASR_MODEL_ENV)
    elif hasattr(settings_or_env, "asr_model_dir"):
        value = settings_or_env.asr_model_dir
    else:  # a settings object without the field: the environment variable still counts
        value = os.environ.get(ASR_MODEL_ENV)
    return str(value) if value else None


def get_recognizer(settings_or_env: Any = None) -> Recognizer:
    """Whisper when ``AVLORA_ASR_MODEL_DIR`` (or ``settings.asr_model_dir``) is set, else PocketSphinx.

    ``settings_or_env``: an environment mapping, a settings object (its ``asr_model_dir``
    attribute; ``os.environ`` when it has none), or ``None`` for ``os.environ``.
    """
    model_dir = _model_dir(settings_or_env)
    if model_dir:
        from worker.speech.whisper import WhisperRecognizer

        return WhisperRecognizer(model_dir)
    from worker.speech.sphinx import PocketSphinxRecognizer

    return PocketSphinxRecognizer()


def transcribe(wav: np.ndarray, sr: int, language: str | None = None, settings_or_env: Any = None) -> Transcript:
    """Recognise ``wav`` with the configured backend."""
    return get_recognizer(settings_or_env).transcribe(wav, sr, language)


def align(wav: np.ndarray, sr: int, text: str) -> list[Word]:
    """Where each word of ``text`` is spoken in ``wav`` (PocketSphinx forced alignment).

    Words missing from the dictionary get a pronunciation guessed from their spelling; use
    :func:`worker.speech.sphinx.align_words` to learn which.
    """
    from worker.speech.sphinx import align_words

    return align_words(wav, sr, text).words
