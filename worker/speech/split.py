"""Split planning: cut a long talking clip into training parts at pauses.

Input: words with times (recognised or aligned), Silero VAD speech segments, and the clip's
frame rate and frame count. Speech the VAD heard but no word covers becomes a word without
text, so no cut lands inside it either. A part is a run of consecutive words:

- it starts ``margin_s`` before its first word and ends ``margin_s`` after its last (leading
  and trailing silence trimmed to that margin), never reaching past the middle of the pause
  to the neighbouring word, so parts do not overlap and no cut falls inside a word; only when
  the frame rule below leaves no other way may a part reach further into that pause (never
  into the neighbouring word), and then two parts can share some silence;
- its start is on a frame boundary and its frame count F has ``F % 8 == 1`` (the LTX VAE's
  rule): the largest such F that fits the margin, or, when that would cut the last word,
  the next larger one (with the start moved earlier into the pause if the end has no room);
- its duration is at least ``min_s`` (default: the smallest default bucket's frames / fps)
  and at most ``max_s`` (10 s); between 3 and 5 s scores best.

Among all ways to group the words, dynamic programming picks the one with the lowest total
cost: each second under 3 s costs 1.5 and each second over 5 s costs 1; a cut costs more the
shorter its pause (nothing from 0.6 s up), half as much at a sentence end (a word ending in
``.?!``) and 2 more through VAD speech; a word left out of every part costs 6. Pure Python.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from core.recipe.speech_rules import EDGE_MARGIN_S, LONGEST_PART_S, TARGET_PART_S
from worker.speech.words import Word

MARGIN_S = EDGE_MARGIN_S
MAX_S = LONGEST_PART_S
IDEAL_S = TARGET_PART_S
SKIP_PENALTY = 6.0
GOOD_PAUSE_S = 0.6
_SENTENCE_END = (".", "?", "!")


@dataclass(frozen=True)
class PartPlan:
    """One proposed part: ``frames`` video frames from ``start_s``; ``end_s = start_s + frames / fps``."""

    start_s: float
    end_s: float
    frames: int
    transcript: str

    def to_dict(self) -> dict:
        """``{"start_s","end_s","frames","transcript"}``."""
        return {"start_s": round(self.start_s, 4), "end_s": round(self.end_s, 4), "frames": self.frames,
                "transcript": self.transcript}


def default_min_s(fps: float) -> float:
    """Seconds of the smallest default bucket at ``fps``."""
    from core.recipe.buckets import DEFAULT_BUCKETS, min_frames

    return min_frames(DEFAULT_BUCKETS) / fps


def valid_frames_at_most(frames: float) -> int:
    """Largest ``8k + 1`` not above ``frames`` (0 when below 1)."""
    return int((math.floor(frames + 1e-9) - 1) // 8) * 8 + 1 if frames >= 1 else 0


def valid_frames_at_least(frames: float) -> int:
    """Smallest ``8k + 1`` not below ``frames``."""
    return int(math.ceil(max(frames - 1, 0) / 8 - 1e-9)) * 8 + 1


def fill_unworded_speech(words: list[Word], speech: list[tuple[float, float]], min_s: float = 0.2) -> list[Word]:
    """``words`` plus text-less words for stretches of VAD speech that no word covers."""
    units = list(words)
    for start, end in speech:
        cursor = start
        for word in sorted(words, key=lambda w: w.start_s):
            if word.end_s <= cursor or word.start_s >= end:
                continue
            if word.start_s - cursor >= min_s:
                units.append(Word("", cursor, word.start_s, 0.0))
            cursor = max(cursor, word.end_s)
        if end - cursor >= min_s:
            units.append(Word("", cursor, end, 0.0))
    return sorted(units, key=lambda w: (w.start_s, w.end_s))


@dataclass(frozen=True)
class _Limits:
    fps: float
    total_s: float
    min_s: float
    max_s: float
    margin_s: float


def fit_part(first: float, last: float, lo: float, hi: float, lim: _Limits) -> tuple[int, int] | None:
    """``(start_frame, frames)`` for speech from ``first`` to ``last`` within ``[lo, hi]``, or None."""
    fps = lim.fps
    start_frame = math.floor(max(first - lim.margin_s, lo) * fps + 1e-9)
    if start_frame / fps < lo - 1e-9:
        start_frame += 1
    if start_frame / fps > first + 1e-9:
        return None
    needed = last * fps - start_frame - 1e-6
    frames = valid_frames_at_most((last + lim.margin_s) * fps - start_frame)
    if frames < needed:
        frames = valid_frames_at_least(needed)
    frames = max(frames, valid_frames_at_least(lim.min_s * fps - 1e-6))
    if frames > lim.max_s * fps + 1e-6:
        return None
    overshoot = math.ceil(start_frame + frames - min(hi, lim.total_s) * fps - 1e-6)
    if overshoot > 0:  # no room at the end: move the start earlier into the pause before
        start_frame -= overshoot
        if start_frame < 0 or start_frame / fps < lo - 1e-9:
            return None
    return start_frame, frames


def _cut_cost(units: list[Word], j: int, speech: list[tuple[float, float]]) -> float:
    """Cost of cutting after unit ``j``: zero at a pause of ``GOOD_PAUSE_S`` or more.

    Only ever a cost (never a reward), so cutting more often is not favoured by itself;
    a sentence end halves it, VAD speech inside the pause adds 2.
    """
    if j + 1 >= len(units):
        return 0.0
    gap = units[j + 1].start_s - units[j].end_s
    cost = 4.0 * max(GOOD_PAUSE_S - gap, 0.0)
    if units[j].word.endswith(_SENTENCE_END):
        cost *= 0.5
    middle = (units[j].end_s + units[j + 1].start_s) / 2
    if any(s < middle < e for s, e in speech):
        cost += 2.0
    return cost


def _duration_cost(seconds: float) -> float:
    low, high = IDEAL_S
    return 1.5 * max(low - seconds, 0.0) + max(seconds - high, 0.0)


def _bounds(units: list[Word], i: int, j: int, total_s: float, to_words: bool) -> tuple[float, float]:
    """Room around units ``i..j``: to the middle of each pause, or (``to_words``) up to the neighbours."""
    before = units[i - 1].end_s if i > 0 else 0.0
    after = units[j + 1].start_s if j + 1 < len(units) else total_s
    if to_words:
        return before, after
    return max((before + units[i].start_s) / 2, before), min((units[j].end_s + after) / 2, after)


def _fit(units: list[Word], i: int, j: int, lim: _Limits) -> tuple[int, int] | None:
    """:func:`fit_part` within half of each pause, else (8k+1 needing room) within the whole pause."""
    for to_words in (False, True):
        lo, hi = _bounds(units, i, j, lim.total_s, to_words)
        fitted = fit_part(units[i].start_s, units[j].end_s, lo, hi, lim)
        if fitted is not None:
            return fitted
    return None


def _best_grouping(units: list[Word], speech, lim: _Limits) -> list[tuple[int, int, int, int]]:
    """Dynamic programming over word groupings: ``[(i, j, start_frame, frames)]``.

    ``score[i]`` is the best total for units ``i..``; ``choice[i]`` how it starts: a part
    ``(j, start_frame, frames)`` over units ``i..j``, or None for leaving unit ``i`` out.
    """
    n = len(units)
    score = [0.0] * (n + 1)
    choice: list[tuple[int, int, int] | None] = [None] * n
    for i in range(n - 1, -1, -1):
        score[i] = score[i + 1] - (SKIP_PENALTY if units[i].word else 0.5)
        for j in range(i, n):
            if units[j].end_s - units[i].start_s > lim.max_s:
                break
            fitted = _fit(units, i, j, lim)
            if fitted is None:
                continue
            total = score[j + 1] - _duration_cost(fitted[1] / lim.fps) - _cut_cost(units, j, speech)
            if total > score[i]:
                score[i], choice[i] = total, (j, *fitted)
    plan, i = [], 0
    while i < n:
        if choice[i] is None:
            i += 1
            continue
        j, start_frame, frames = choice[i]
        plan.append((i, j, start_frame, frames))
        i = j + 1
    return plan


def plan_split(words: list[Word], fps: float, frame_count: int | None = None, *,
               speech: list[tuple[float, float]] | None = None, duration_s: float | None = None,
               min_s: float | None = None, max_s: float = MAX_S, margin_s: float = MARGIN_S) -> list[PartPlan]:
    """Proposed parts of a clip; see the module docstring for the rules."""
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    limits = [t for t in (frame_count / fps if frame_count else None, duration_s) if t]
    total_s = min(limits) if limits else max((w.end_s for w in words), default=0.0) + margin_s
    lim = _Limits(fps, total_s, default_min_s(fps) if min_s is None else min_s, max_s, margin_s)
    if lim.min_s > lim.max_s:
        raise ValueError(f"min_s ({lim.min_s:g}) is above max_s ({lim.max_s:g})")
    speech = list(speech or [])
    units = [w for w in fill_unworded_speech(words, speech) if w.start_s < total_s]
    parts = []
    for i, j, start_frame, frames in _best_grouping(units, speech, lim):
        text = " ".join(u.word for u in units[i:j + 1] if u.word)
        parts.append(PartPlan(start_frame / fps, (start_frame + frames) / fps, frames, text))
    return parts


def plan_split_audio(wav, sr: int, fps: float, frame_count: int | None = None, words: list[Word] | None = None,
                     language: str | None = None, **options) -> list[PartPlan]:
    """:func:`plan_split` for audio: VAD segments computed, words recognised (in ``language``) when not given."""
    from worker.speech.audio import duration_s, to_mono_16k
    from worker.speech.vad import speech_segments

    audio = to_mono_16k(wav, sr)
    if words is None:
        from worker.speech.asr import get_recognizer

        words = get_recognizer().transcribe(audio, 16000, language).words
    return plan_split(words, fps, frame_count, speech=speech_segments(audio, 16000),
                      duration_s=duration_s(audio), **options)
