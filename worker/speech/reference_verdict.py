"""Does a reference sample follow its reference's voice? The voice verdict of ``reference_voice``.

A ``reference_voice`` sample (``ref-lora``, ``ref-other-lora``, ...: :mod:`worker.engine.reference_sampling`)
should speak in the voice of the reference clip it was given, not in the voice the base model
speaks in by itself. :func:`reference_verdict` measures both with the speech layer's GE2E voice
embedding (:func:`worker.speech.speaker.embed_voice`, the model that pairs the clips):

- ``reference_similarity``: cosine of the sample's voice to the reference clip's;
- ``default_voice_similarity``: cosine of the sample's voice to the base model's default voice,
  the ``base`` sample of the same prompt (LoRA off, no reference);
- ``follows_reference``: the first above the second.

A measure that cannot be taken (too little speech in one of the three) is None, with the reason
in ``verdict_reason``. The keys go into a sample's metrics next to the other voice measures
(:mod:`worker.speech.sample_voice`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

RATE = 16000


def _embedding(audio: np.ndarray, what: str) -> tuple[np.ndarray | None, str | None]:
    from worker.speech.speaker import embed_voice

    try:
        return embed_voice(audio, RATE), None
    except ValueError as exc:
        return None, f"{what}: {exc}"


def reference_verdict(sample: np.ndarray, reference: np.ndarray, default_voice: np.ndarray | None) -> dict[str, Any]:
    """The verdict of a sample (16 kHz mono arrays, as :func:`worker.speech.audio.load_audio` reads
    them) against its ``reference`` clip and the base model's ``default_voice`` sample (None: not
    sampled, so only ``reference_similarity`` is measured)."""
    from worker.speech.speaker import similarity

    result: dict[str, Any] = {"reference_similarity": None, "default_voice_similarity": None,
                              "follows_reference": None}
    voice, reason = _embedding(sample, "the sample")
    if voice is None:
        return {**result, "verdict_reason": reason}
    ref_voice, reason = _embedding(reference, "the reference clip")
    if ref_voice is None:
        return {**result, "verdict_reason": reason}
    result["reference_similarity"] = round(similarity(voice, ref_voice), 4)
    if default_voice is None:
        return {**result, "verdict_reason": "no base sample of this prompt to tell the base model's own voice"}
    base_voice, reason = _embedding(default_voice, "the base sample")
    if base_voice is None:
        return {**result, "verdict_reason": reason}
    result["default_voice_similarity"] = round(similarity(voice, base_voice), 4)
    result["follows_reference"] = result["reference_similarity"] > result["default_voice_similarity"]
    return result


def reference_verdict_files(sample_wav, reference_wav, default_wav=None) -> dict[str, Any]:
    """:func:`reference_verdict` of audio files (any format :func:`~worker.speech.audio.load_audio` reads)."""
    from worker.speech.audio import load_audio

    default = load_audio(default_wav) if default_wav is not None else None
    return reference_verdict(load_audio(sample_wav), load_audio(reference_wav), default)
