"""Speech segments with times from Silero VAD, the studio's own model (:mod:`core.media.vad`).

:func:`core.media.vad.speech_probabilities` gives one probability per 32 ms frame; here they
become ``(start_s, end_s)`` segments with hysteresis (enter speech at ``threshold``, leave it
below ``threshold - 0.15``), short gaps closed and very short blips dropped.
"""

from __future__ import annotations

import numpy as np

from worker.speech.audio import SAMPLE_RATE, duration_s, to_mono_16k

FRAME_S = 512 / SAMPLE_RATE  # core.media.vad.FRAME_SAMPLES at 16 kHz


def speech_segments(wav: np.ndarray, sr: int, threshold: float = 0.5, min_silence_s: float = 0.1,
                    min_speech_s: float = 0.1) -> list[tuple[float, float]]:
    """Speech regions of ``wav`` as ``[(start_s, end_s)]`` in time order."""
    from core.media.vad import speech_probabilities

    audio = to_mono_16k(wav, sr)
    probabilities = speech_probabilities(audio)
    return segments_from_probabilities(probabilities, FRAME_S, threshold, min_silence_s, min_speech_s,
                                       total_s=audio.size / SAMPLE_RATE)


def segments_from_probabilities(probabilities: np.ndarray, frame_s: float, threshold: float = 0.5,
                                min_silence_s: float = 0.1, min_speech_s: float = 0.1,
                                total_s: float | None = None) -> list[tuple[float, float]]:
    """Turn per-frame speech probabilities into merged ``(start_s, end_s)`` segments."""
    low = max(threshold - 0.15, 0.01)
    segments: list[list[float]] = []
    start = None
    for index, p in enumerate(np.asarray(probabilities, dtype=np.float32)):
        if start is None and p >= threshold:
            start = index * frame_s
        elif start is not None and p < low:
            segments.append([start, index * frame_s])
            start = None
    if start is not None:
        segments.append([start, len(probabilities) * frame_s])
    merged: list[list[float]] = []
    for seg in segments:
        if merged and seg[0] - merged[-1][1] < min_silence_s:
            merged[-1][1] = seg[1]
        else:
            merged.append(seg)
    end_cap = total_s if total_s is not None else float("inf")
    return [(round(s, 3), round(min(e, end_cap), 3)) for s, e in merged if e - s >= min_speech_s]


def speech_fraction(segments: list[tuple[float, float]], start_s: float, end_s: float) -> float:
    """Share of ``[start_s, end_s)`` covered by ``segments``."""
    if end_s <= start_s:
        return 0.0
    covered = sum(max(0.0, min(e, end_s) - max(s, start_s)) for s, e in segments)
    return covered / (end_s - start_s)


def chunk_at_pauses(audio: np.ndarray, target_s: float = 20.0, max_s: float = 30.0) -> list[tuple[int, int]]:
    """``[(start, end)]`` sample ranges of 16 kHz ``audio``, each about ``target_s`` long.

    Cuts fall in the middle of the pauses between speech segments; a stretch with no pause is
    cut hard at ``max_s``. Audio no longer than ``max_s`` is one chunk.
    """
    if duration_s(audio) <= max_s:
        return [(0, audio.size)]
    segments = speech_segments(audio, SAMPLE_RATE)
    gaps = zip(segments, segments[1:], strict=False)
    pauses = [int((end + start) / 2 * SAMPLE_RATE) for (_, end), (start, _) in gaps]
    target, longest = int(target_s * SAMPLE_RATE), int(max_s * SAMPLE_RATE)
    cuts, previous = [0], 0
    for pause in pauses + [audio.size]:
        if pause - cuts[-1] > longest and previous > cuts[-1]:
            cuts.append(previous)  # the next pause is too far: cut at the one before
        while pause - cuts[-1] > longest:
            cuts.append(cuts[-1] + longest)
        if pause - cuts[-1] >= target or pause == audio.size:
            cuts.append(pause)
        previous = pause
    return [(a, b) for a, b in zip(cuts, cuts[1:], strict=False) if b > a]
