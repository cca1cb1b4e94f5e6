"""Resemblyzer voice embeddings: same voice vs different voice, and voices within one clip."""

from __future__ import annotations

import numpy as np
import pytest

from core.media.voices import cluster_voices
from tests.unit.speech.conftest import SENTENCES, VOICE_A, VOICE_B, silence, synth
from worker.speech.speaker import (
    SpeakerBackendNotConfigured,
    check_backend,
    embed_voice,
    similarity,
)
from worker.speech.turns import several_speakers, speaker_turns

# Measured (Resemblyzer 0.1.4, espeak-ng en-us+m3 / en-us+f4, two different sentences each):
# same voice 0.83 (m3) and 0.85 (f4); different voices 0.48-0.56.
MIN_MARGIN = 0.15


def _voice(voice: str, *sentences: str) -> np.ndarray:
    return np.concatenate([np.concatenate([synth(s, voice), silence(0.3)]) for s in sentences])


def test_embedding_is_a_unit_vector_of_256():
    embedding = embed_voice(synth(SENTENCES[0], VOICE_A), 16000)
    assert embedding.shape == (256,) and embedding.dtype == np.float32
    assert abs(float(np.linalg.norm(embedding)) - 1.0) < 1e-4


def test_two_voices_score_lower_than_two_phrases_of_one_voice():
    a1, a2 = embed_voice(_voice(VOICE_A, SENTENCES[0]), 16000), embed_voice(_voice(VOICE_A, SENTENCES[1]), 16000)
    b1, b2 = embed_voice(_voice(VOICE_B, SENTENCES[0]), 16000), embed_voice(_voice(VOICE_B, SENTENCES[1]), 16000)
    same = min(similarity(a1, a2), similarity(b1, b2))
    different = max(similarity(a1, b2), similarity(a2, b1), similarity(a1, b1))
    assert same - different >= MIN_MARGIN, (same, different)


def test_a_two_voice_clip_reveals_two_voices_with_their_times():
    first = _voice(VOICE_A, SENTENCES[0], SENTENCES[1])
    second = _voice(VOICE_B, SENTENCES[2], SENTENCES[3])
    switch = first.size / 16000
    report = several_speakers(np.concatenate([first, second]), 16000)
    assert report.voices == 2 and report.several
    assert report.lowest_voice_similarity < 0.7
    for start, end, voice in report.turns:
        expected = 0 if (start + end) / 2 < switch else 1
        assert voice == expected, report.turns
        assert end <= switch + 0.8 if voice == 0 else start >= switch - 0.8, report.turns


def test_one_voice_throughout_is_one_voice():
    turns = speaker_turns(_voice(VOICE_B, *SENTENCES[:3]), 16000)
    assert turns and {voice for _, _, voice in turns} == {0}


def test_clustering_joins_similar_rows_only():
    base = np.eye(4, dtype=np.float32)
    rows = np.stack([base[0], base[0] * 0.9 + base[1] * 0.1, base[2], base[2] + base[3] * 0.2, base[0]])
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    assert cluster_voices(list(rows), threshold=0.8) == [0, 0, 1, 1, 0]


def test_a_long_take_of_one_voice_is_one_voice():
    # sliding 1.5 s windows split this take into three "voices"; whole stretches of speech do not
    take = _voice("en-us", *SENTENCES[:6])
    assert several_speakers(take, 16000).voices == 1


def test_ecapa_backend_reports_that_it_is_not_configured():
    with pytest.raises(SpeakerBackendNotConfigured, match="torchaudio"):
        check_backend({"AVLORA_SPEAKER_MODEL_DIR": "/models/ecapa"})
    check_backend({})
