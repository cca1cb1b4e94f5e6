"""Findings about what is said and who says it: several voices in a clip, a voice other than the
dataset's, a typed transcript the recogniser hears as other words.

They follow from what the worker's speech layer stored on the clip (``analysis["voice"]``: the
voice embedding and the voice of each stretch of speech; ``clip.speech``: the words heard) and
from the other clips (the dataset's main voice, :mod:`core.media.voices`).
"""

from __future__ import annotations

from collections.abc import Mapping

from core.media.findings import ClipFinding
from core.recipe import speech_rules
from core.recipe.transcripts import word_error_rate


def several_speakers_finding(analysis: Mapping | None) -> ClipFinding | None:
    """``several_speakers`` when the stretches of speech in the clip carry more than one voice."""
    voice = (analysis or {}).get("voice") or {}
    turns = voice.get("turns") or []
    voices = {turn.get("voice") for turn in turns}
    if len(voices) < 2:
        return None
    spans = ", ".join(f"{t['start_s']:.1f}-{t['end_s']:.1f} s (voice {t['voice'] + 1})" for t in turns)
    return ClipFinding(
        "several_speakers",
        f"More than one voice speaks in this clip: {spans}. A voice LoRA learns best from one speaker "
        "per clip: split it or drop the other speaker's lines.",
        {"turns": turns, "voices": len(voices)},
    )


def other_speaker_finding(similarity: float) -> ClipFinding:
    """``other_speaker``: the clip's voice is not the dataset's main voice."""
    return ClipFinding(
        "other_speaker",
        f"This voice differs from the voice of most clips in the dataset (similarity {similarity:.2f}, "
        f"the same voice scores above {speech_rules.OTHER_SPEAKER_SIMILARITY:.2f}). Listen to it: a "
        "second speaker blurs the voice the LoRA learns.",
        {"similarity": round(similarity, 3), "limit": speech_rules.OTHER_SPEAKER_SIMILARITY},
    )


def transcript_mismatch_finding(transcript: str | None, source: str | None,
                                speech: Mapping | None) -> ClipFinding | None:
    """``transcript_mismatch`` (info) when a typed transcript and the recognised words differ a lot."""
    heard = (speech or {}).get("heard")
    if source == "auto" or not (transcript or "").strip() or heard is None:
        return None
    wer = word_error_rate(transcript, heard)
    if wer < speech_rules.TRANSCRIPT_MISMATCH_WER:
        return None
    return ClipFinding(
        "transcript_mismatch",
        f"The recogniser hears other words than the transcript (word error rate {wer:.0%}): "
        f"\"{heard}\". Check the transcript against the audio; the recogniser can be wrong too.",
        {"wer": round(wer, 3), "heard": heard},
    )
