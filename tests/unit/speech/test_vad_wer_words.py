"""Voice activity segments, chunking at pauses, word error rate and text normalisation."""

from __future__ import annotations

import numpy as np
import pytest

from core.recipe.transcripts import corpus_wer, normalise_text, tokenize, word_error_rate, word_errors
from tests.unit.speech.conftest import SENTENCES, sentences_with_pauses, silence
from worker.speech.vad import chunk_at_pauses, segments_from_probabilities, speech_fraction, speech_segments
from worker.speech.words import Transcript, Word, words_between


def test_speech_segments_match_the_spoken_sentences():
    audio, truth = sentences_with_pauses(SENTENCES[:3], [0.8, 1.0, 0.5])
    segments = speech_segments(audio, 16000)
    assert len(segments) == 3, segments
    for (start, end), (_, true_start, true_end) in zip(segments, truth, strict=True):
        assert abs(start - true_start) <= 0.15 and abs(end - true_end) <= 0.25


def test_segments_from_probabilities_use_hysteresis_and_merge_short_gaps():
    p = np.array([0.1, 0.6, 0.45, 0.4, 0.2, 0.9, 0.1, 0.1, 0.1, 0.1, 0.1, 0.7, 0.1])
    assert segments_from_probabilities(p, 0.1, min_silence_s=0.15, min_speech_s=0.05) == [(0.1, 0.6), (1.1, 1.2)]
    assert segments_from_probabilities(p, 0.1, min_silence_s=0.15, min_speech_s=0.2) == [(0.1, 0.6)]
    assert speech_fraction([(0.0, 1.0)], 0.5, 1.5) == pytest.approx(0.5)


def test_long_audio_is_chunked_in_pauses():
    audio, truth = sentences_with_pauses(SENTENCES * 3, [0.7] * 24)
    chunks = chunk_at_pauses(audio, target_s=10.0, max_s=15.0)
    assert chunks[0][0] == 0 and chunks[-1][1] == audio.size
    assert all(b == c for (_, b), (c, _) in zip(chunks, chunks[1:], strict=False))
    for start, end in chunks[:-1]:
        assert 10.0 <= (end - start) / 16000 <= 15.0
        assert all(not (s < end / 16000 < e) for _, s, e in truth), "a cut inside a sentence"
    assert (chunks[-1][1] - chunks[-1][0]) / 16000 <= 15.0
    assert chunk_at_pauses(silence(5.0)) == [(0, 80000)]


def test_word_error_rate_normalises_case_and_punctuation():
    assert word_error_rate("Hello, World!", "hello world") == 0.0
    assert word_error_rate("it's a well-known fact", "its a well known fact") == pytest.approx(1 / 5)
    result = word_errors("the cat sat on the mat", "the cat sat on mat today")
    assert (result.substitutions, result.deletions, result.insertions) == (0, 1, 1)
    assert result.wer == pytest.approx(2 / 6)
    assert word_error_rate("", "") == 0.0 and word_error_rate("", "noise") == 1.0
    assert corpus_wer([("a b c d", "a b c d"), ("e f", "e x")]) == pytest.approx(1 / 6)


def test_text_helpers():
    assert normalise_text("  Don\u2019t STOP -- the 'music', please!") == "don't stop the music please"
    assert tokenize("well-known_fact") == ["well", "known", "fact"]
    words = [Word("a", 0.0, 0.4), Word("b", 0.5, 1.0), Word("c", 1.1, 1.5)]
    assert [w.word for w in words_between(words, 0.3, 1.2)] == ["b"]
    assert Transcript("a", [Word("a", 0.12345, 0.5, 0.91234)]).to_dict() == {
        "text": "a", "words": [{"word": "a", "start_s": 0.123, "end_s": 0.5, "confidence": 0.912}]}
