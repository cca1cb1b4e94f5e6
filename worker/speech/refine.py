"""Word boundaries tightened to where there is sound.

Recognisers place boundaries between words at frame level but often hand a pause to one of
its neighbours: in PocketSphinx alignment a short word such as "the" after a 0.35 s pause
started at the end of the previous word. We measure 10 ms frame levels and move each word's
start forward and end backward over frames quieter than a threshold derived from the clip
(its quiet floor plus 12 dB, and never below its peak minus 45 dB). A blip of at most 40 ms at
a word's edge, cut off from the rest of the word by 80 ms of quiet, is taken for the
neighbour's tail and dropped too. A word keeps at least one frame; words that are silent
throughout are left as they were.
"""

from __future__ import annotations

import numpy as np

from worker.speech.audio import SAMPLE_RATE
from worker.speech.words import Word

FRAME_S = 0.01
FLOOR_MARGIN_DB = 12.0
PEAK_RANGE_DB = 45.0
STRAY_FRAMES = 4  # a sound of at most 40 ms at a word's edge ...
PAUSE_FRAMES = 8  # ... cut off from the rest by 80 ms of quiet belongs to the neighbour


def frame_levels_db(audio: np.ndarray, sr: int = SAMPLE_RATE, frame_s: float = FRAME_S) -> np.ndarray:
    """RMS level in dBFS of each ``frame_s`` frame (the last partial frame included)."""
    size = max(int(round(frame_s * sr)), 1)
    n = -(-audio.size // size)
    padded = np.zeros(n * size, np.float32)
    padded[: audio.size] = audio
    rms = np.sqrt(np.mean(padded.reshape(n, size) ** 2, axis=1))
    return 20.0 * np.log10(np.maximum(rms, 1e-6))


def sound_threshold_db(levels: np.ndarray) -> float:
    """Level above which a frame counts as sound in this clip."""
    if levels.size == 0:
        return 0.0
    floor = float(np.percentile(levels, 10))
    peak = float(levels.max())
    return max(floor + FLOOR_MARGIN_DB, peak - PEAK_RANGE_DB)


def loud_runs(loud: np.ndarray) -> list[tuple[int, int]]:
    """``[(first, end)]`` frame ranges (end exclusive) where ``loud`` is true."""
    edges = np.diff(np.concatenate([[0], loud.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(), strict=True))


def _core_runs(runs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Drop stray blips at either edge: a neighbour's tail or onset cut off by a pause."""
    while len(runs) > 1 and runs[0][1] - runs[0][0] <= STRAY_FRAMES and runs[1][0] - runs[0][1] >= PAUSE_FRAMES:
        runs = runs[1:]
    while len(runs) > 1 and runs[-1][1] - runs[-1][0] <= STRAY_FRAMES and runs[-1][0] - runs[-2][1] >= PAUSE_FRAMES:
        runs = runs[:-1]
    return runs


def snap_to_sound(words: list[Word], audio: np.ndarray, sr: int = SAMPLE_RATE) -> list[Word]:
    """``words`` with silent frames at their edges cut off (times never move outward)."""
    levels = frame_levels_db(audio, sr)
    if not words or levels.size == 0:
        return list(words)
    loud = levels > sound_threshold_db(levels)
    snapped = []
    for word in words:
        first = max(int(word.start_s / FRAME_S), 0)
        last = min(int(np.ceil(word.end_s / FRAME_S)), loud.size)
        runs = _core_runs(loud_runs(loud[first:last]))
        if not runs:
            snapped.append(word)
            continue
        start = max(word.start_s, (first + runs[0][0]) * FRAME_S)
        end = min(word.end_s, (first + runs[-1][1]) * FRAME_S)
        snapped.append(Word(word.word, start, max(end, start + FRAME_S), word.confidence))
    return snapped
