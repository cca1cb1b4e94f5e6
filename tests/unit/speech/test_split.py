"""Split planning: synthetic word lists for the rules, then ~20 s of real espeak-ng speech."""

from __future__ import annotations

import pytest

from core.recipe.transcripts import tokenize
from tests.unit.speech.conftest import sentences_with_pauses
from worker.speech.split import (
    PartPlan,
    default_min_s,
    plan_split,
    plan_split_audio,
    valid_frames_at_least,
    valid_frames_at_most,
)
from worker.speech.words import Word

FPS = 25.0


def _sentence_words(lengths, word_s=0.3, gap_s=0.08, pause_s=0.7, lead_s=0.5):
    words, t = [], lead_s
    for k, n in enumerate(lengths):
        for i in range(n):
            words.append(Word(f"s{k}w{i}" + ("." if i == n - 1 else ""), t, t + word_s))
            t += word_s + gap_s
        t += pause_s - gap_s
    return words, t + lead_s


def check_rules(parts: list[PartPlan], words: list[Word], fps: float, total_s: float, min_s: float, max_s: float):
    """Every rule a plan must keep; returns nothing, asserts."""
    assert parts, "no parts proposed"
    previous_end = 0.0
    for part in parts:
        assert part.frames % 8 == 1
        assert part.end_s == pytest.approx(part.start_s + part.frames / fps)
        assert abs(part.start_s * fps - round(part.start_s * fps)) < 1e-6  # on a frame boundary
        assert min_s - 1e-6 <= part.end_s - part.start_s <= max_s + 1e-6
        assert part.end_s <= total_s + 1e-6
        shared = [w for w in words if w.end_s > part.start_s + 1e-6 and w.start_s < previous_end - 1e-6]
        assert not shared, f"two parts share the words {shared}"  # they may share silence only
        previous_end = part.end_s
        for word in words:  # no cut inside a word
            inside_start = word.start_s + 1e-6 < part.start_s < word.end_s - 1e-6
            inside_end = word.start_s + 1e-6 < part.end_s < word.end_s - 1e-6
            assert not (inside_start or inside_end), (part, word)
        inside = [w.word for w in words if part.start_s - 1e-6 <= w.start_s and w.end_s <= part.end_s + 1e-6]
        assert part.transcript == " ".join(inside)


def test_valid_frame_counts():
    assert [valid_frames_at_most(x) for x in (0.5, 1, 8.9, 9, 48.99, 49, 56.5)] == [0, 1, 1, 9, 41, 49, 49]
    assert [valid_frames_at_least(x) for x in (0, 1, 1.2, 9, 41.5, 49)] == [1, 1, 9, 9, 49, 49]


def test_default_minimum_is_the_smallest_bucket():
    assert default_min_s(25.0) == pytest.approx(49 / 25)


def test_sentences_become_parts_within_the_rules():
    words, total = _sentence_words([6, 9, 4, 12, 7, 5])
    frame_count = int(total * FPS)
    parts = plan_split(words, FPS, frame_count)
    check_rules(parts, words, FPS, frame_count / FPS, default_min_s(FPS), 10.0)
    assert " ".join(p.transcript for p in parts).split() == [w.word for w in words]  # nothing dropped
    for part in parts:  # cuts only at sentence ends here: every pause inside a sentence is short
        assert part.transcript.endswith(".")
    # sentences of 2.3, 3.4, 1.5, 4.5, 2.6 and 1.9 s: short ones are joined with a neighbour
    assert [round(p.end_s - p.start_s, 2) for p in parts] == [2.6, 5.8, 4.84, 5.48]


def test_silence_is_trimmed_to_a_short_margin():
    words = [Word("hello", 3.0, 3.5), Word("there", 3.6, 4.2), Word("friend.", 4.3, 5.3)]
    (part,) = plan_split(words, FPS, int(12 * FPS), min_s=1.0)
    assert 3.0 - 0.2 <= part.start_s <= 3.0 and 5.3 <= part.end_s <= 5.3 + 0.2
    assert part.transcript == "hello there friend."


def test_a_monologue_without_pauses_is_cut_between_words_at_the_longest_gaps():
    words, t = [], 0.2
    for i in range(40):  # 40 words of 0.35 s, gaps 0.05 s except a few 0.3 s breaths
        words.append(Word(f"w{i}", t, t + 0.35))
        t += 0.35 + (0.3 if i in (9, 19, 29) else 0.05)
    parts = plan_split(words, 24.0, int((t + 0.5) * 24), max_s=10.0)
    check_rules(parts, words, 24.0, (t + 0.5), 49 / 24, 10.0)
    cut_after = {p.transcript.split()[-1] for p in parts[:-1]}
    assert cut_after <= {"w9", "w19", "w29"}


def test_speech_without_words_is_never_cut_and_may_stand_alone():
    speech = [(1.0, 4.2), (5.0, 8.0)]
    parts = plan_split([], FPS, int(10 * FPS), speech=speech)
    assert len(parts) == 2 and all(p.transcript == "" for p in parts)
    for (s, e), part in zip(speech, parts, strict=True):
        assert part.start_s <= s and part.end_s >= e - 0.02


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        plan_split([], 0.0)
    with pytest.raises(ValueError):
        plan_split([Word("a", 0, 1)], FPS, min_s=11.0, max_s=10.0)


SPOKEN = (
    "please call me tomorrow morning.",
    "i would like a cup of coffee and a piece of cake.",
    "we are going to the store.",
    "the children are playing in the park near the river.",
    "open the door and close the window.",
    "i need to buy some bread and milk.",
    "can you help me with this.",
)
PAUSES = (0.9, 0.5, 1.0, 0.6, 0.8, 1.1, 0.6)


def test_twenty_seconds_of_speech_are_split_at_pauses_with_the_right_words():
    from worker.speech.asr import align

    audio, truth = sentences_with_pauses(SPOKEN, PAUSES)
    total_s = audio.size / 16000
    assert 18.0 <= total_s <= 26.0
    words = align(audio, 16000, " ".join(SPOKEN))
    frame_count = int(total_s * FPS)
    parts = plan_split_audio(audio, 16000, FPS, frame_count, words=words)
    check_rules(parts, words, FPS, frame_count / FPS, default_min_s(FPS), 10.0)
    spoken_words = tokenize(" ".join(SPOKEN))
    assert tokenize(" ".join(p.transcript for p in parts)) == spoken_words
    for part in parts:  # cuts fall in pauses: no sentence straddles two parts
        for _, start, end in truth:
            assert not (start + 0.05 < part.start_s < end - 0.05 or start + 0.05 < part.end_s < end - 0.05)
        assert part.end_s - part.start_s <= 10.0
