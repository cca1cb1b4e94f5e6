"""Who speaks when: the voices within one clip, from one embedding per stretch of speech.

Silero VAD finds the stretches of speech; stretches closer than ``JOIN_GAP_S`` are joined, those
shorter than ``MIN_TURN_S`` are ignored (too short for a reliable voice), and long ones are cut
into pieces of at most ``MAX_PIECE_S`` so that a change of speaker without a pause still shows.
Each piece gets a whole-utterance voice embedding (:func:`worker.speech.speaker.embed_voice`),
and the pieces are grouped by :func:`core.media.voices.cluster_voices` at the same similarity
that tells a dataset's clips apart (:data:`core.recipe.speech_rules.OTHER_SPEAKER_SIMILARITY`).
Measured on espeak-ng voices: pieces of one voice score 0.84-0.90, of two voices 0.55
(sliding 1.5 s windows scored as low as 0.54 within one voice, which is why whole pieces are used).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from core.media.voices import cluster_voices
from core.recipe.speech_rules import OTHER_SPEAKER_SIMILARITY
from worker.speech.audio import SAMPLE_RATE, to_mono_16k

JOIN_GAP_S = 0.25
MIN_TURN_S = 0.8
MAX_PIECE_S = 3.0


@dataclass
class SpeakerReport:
    """How many voices a clip has, their turns ``(start_s, end_s, voice_index)`` and how alike they are."""

    voices: int
    turns: list[tuple[float, float, int]] = field(default_factory=list)
    lowest_voice_similarity: float | None = None  # between the two least alike voices

    @property
    def several(self) -> bool:
        """True when more than one voice was found."""
        return self.voices > 1

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {"voices": self.voices, "several_speakers": self.several,
                "turns": [{"start_s": round(a, 3), "end_s": round(b, 3), "voice": v} for a, b, v in self.turns],
                "lowest_voice_similarity": None if self.lowest_voice_similarity is None
                else round(self.lowest_voice_similarity, 3)}


def speech_pieces(audio: np.ndarray) -> list[tuple[float, float]]:
    """Stretches of speech in 16 kHz ``audio``, joined across short gaps, long ones cut in pieces."""
    from worker.speech.vad import speech_segments

    joined: list[list[float]] = []
    for start, end in speech_segments(audio, SAMPLE_RATE):
        if joined and start - joined[-1][1] < JOIN_GAP_S:
            joined[-1][1] = end
        else:
            joined.append([start, end])
    pieces = []
    for start, end in joined:
        if end - start < MIN_TURN_S:
            continue
        count = int(np.ceil((end - start) / MAX_PIECE_S))
        step = (end - start) / count
        pieces += [(start + i * step, start + (i + 1) * step) for i in range(count)]
    return pieces


def _turns(pieces: list[tuple[float, float]], labels: list[int]) -> list[tuple[float, float, int]]:
    turns: list[list] = []
    for (start, end), label in zip(pieces, labels, strict=True):
        if turns and turns[-1][2] == label:
            turns[-1][1] = end
        else:
            turns.append([start, end, label])
    return [(round(a, 3), round(b, 3), v) for a, b, v in turns]


def several_speakers(wav: np.ndarray, sr: int, threshold: float = OTHER_SPEAKER_SIMILARITY) -> SpeakerReport:
    """The voices of a clip, with the times each one speaks."""
    from worker.speech.speaker import embed_voice

    audio = to_mono_16k(wav, sr)
    pieces = speech_pieces(audio)
    if not pieces:
        return SpeakerReport(0)
    embeddings = np.stack([embed_voice(audio[int(a * SAMPLE_RATE):int(b * SAMPLE_RATE)], SAMPLE_RATE)
                           for a, b in pieces])
    labels = cluster_voices(list(embeddings), threshold)
    voices = max(labels) + 1
    lowest = None
    if voices > 1:
        centroids = np.stack([embeddings[np.asarray(labels) == v].mean(axis=0) for v in range(voices)])
        centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
        lowest = float((centroids @ centroids.T).min())
    return SpeakerReport(voices, _turns(pieces, labels), lowest)


def speaker_turns(wav: np.ndarray, sr: int, **options) -> list[tuple[float, float, int]]:
    """``[(start_s, end_s, voice_index)]`` of a clip; see :func:`several_speakers`."""
    return several_speakers(wav, sr, **options).turns
