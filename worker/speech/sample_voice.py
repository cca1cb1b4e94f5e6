"""Does a validation sample sound like them? The voice measures of one sample.

:func:`voice_measures` adds three numbers to a sample's metrics (those of
:func:`core.media.sample_metrics.measure_sample`, whose VAD speech seconds decide whether there
is speech to measure at all):

- ``speaker_similarity``: cosine of the sample's voice embedding (:func:`worker.speech.speaker.embed_voice`,
  the model that embedded the training clips) to the dataset's voice, the unit mean of the
  training clips' embeddings (:func:`core.services.voice_metrics.reference_voice`);
- ``wer`` and ``heard``: what the configured recogniser hears, and its word error rate
  (:func:`core.recipe.transcripts.word_error_rate`) against the words of the prompt's
  ``Speech: "..."`` part;
- ``quality_mos`` (with ``quality_sig`` and ``quality_bak``): DNSMOS P.835 (:mod:`worker.speech.quality`).

A measure that cannot be taken is None, with the reason in ``voice_reasons[name]``. The models
are the speech layer's lazy per-process singletons, so a job pays for loading them once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from core.recipe import sample_rules
from core.recipe.captions import spoken_words
from core.recipe.transcripts import word_error_rate

log = logging.getLogger(__name__)
RATE = 16000
NO_REFERENCE = ("the training clips carry no voice embedding (a clip gets one when it is checked and has at least "
                "a second of speech)")
NO_SPEECH_PART = 'the prompt has no Speech: "..." part to compare the words with'


def voice_measures(path, metrics: Mapping[str, Any], prompt: str | None, reference: Sequence[float] | None,
                   recognizer=None) -> dict[str, Any]:
    """The voice measures of the sample at ``path`` (see the module docstring).

    ``metrics``: its :func:`~core.media.sample_metrics.measure_sample` result; ``prompt``: the
    text it was rendered from; ``reference``: the dataset's unit voice embedding or None;
    ``recognizer``: a :mod:`worker.speech.asr` recogniser (the configured one when None).
    Returns ``{}`` for a sample whose audio could not be measured (``metrics["error"]``).
    """
    if "error" in metrics:
        return {}
    result: dict[str, Any] = {"speaker_similarity": None, "wer": None, "heard": None, "quality_mos": None}
    reasons: dict[str, str] = {}
    speech_s = float(metrics.get("speech_seconds") or 0.0)
    if speech_s < sample_rules.VOICE_MIN_SPEECH_S:
        reason = f"no speech in the sample ({speech_s:.2f} s of voice activity)"
        return {**result, "voice_reasons": dict.fromkeys(("speaker_similarity", "wer", "quality_mos"), reason)}
    try:
        audio = _load(path)
    except Exception as exc:  # noqa: BLE001 - measure_sample read it; say why this read failed
        reason = f"the audio could not be read: {exc}"
        return {**result, "voice_reasons": dict.fromkeys(("speaker_similarity", "wer", "quality_mos"), reason)}
    steps = (("speaker_similarity", lambda: _similarity(audio, reference)),
             ("wer", lambda: _wer(audio, prompt, recognizer)),
             ("quality_mos", lambda: _quality(audio)))
    for name, measure in steps:
        try:
            values, reason = measure()
        except Exception as exc:  # noqa: BLE001 - one failing model must not lose the other measures
            log.warning("%s of %s failed: %s", name, path, exc)
            values, reason = {}, f"could not be measured: {exc}"
        result.update(values)
        if reason:
            reasons[name] = reason
    return {**result, "voice_reasons": reasons}


def _load(path) -> np.ndarray:
    from worker.speech.audio import load_audio

    return load_audio(path)


def _similarity(audio: np.ndarray, reference: Sequence[float] | None) -> tuple[dict, str | None]:
    if reference is None:
        return {}, NO_REFERENCE
    from worker.speech.speaker import embed_voice, similarity

    try:
        embedding = embed_voice(audio, RATE)
    except ValueError as exc:
        return {}, str(exc)
    return {"speaker_similarity": round(similarity(embedding, np.asarray(reference, dtype=np.float32)), 4)}, None


def _wer(audio: np.ndarray, prompt: str | None, recognizer) -> tuple[dict, str | None]:
    expected = spoken_words(prompt)
    if not expected:
        return {}, NO_SPEECH_PART
    if recognizer is None:
        from core.config import get_settings
        from worker.speech.asr import get_recognizer

        recognizer = get_recognizer(get_settings())
    heard = recognizer.transcribe(audio, RATE).text
    return {"wer": round(word_error_rate(expected, heard), 4), "heard": heard, "expected": expected}, None


def _quality(audio: np.ndarray) -> tuple[dict, str | None]:
    from worker.speech.quality import speech_quality

    return speech_quality(audio, RATE), None
