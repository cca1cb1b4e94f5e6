"""espeak-ng helpers for the speech tests: words and sentences synthesised at test time.

Clips come from :func:`worker.speech.synth.espeak` (16 kHz mono float32) and are cached per
process, because several tests speak the same phrases. Two voice variants that Resemblyzer
separates clearly are ``VOICE_A`` and ``VOICE_B`` (cosine about 0.5 between them against
0.83-0.85 within each).
"""

from __future__ import annotations

import functools
import wave

import numpy as np

from worker.speech.audio import SAMPLE_RATE
from worker.speech.synth import BENCH_SENTENCES, espeak, espeak_available

VOICE_A = "en-us+m3"  # a low male variant
VOICE_B = "en-us+f4"  # a high female variant
# simple sentences PocketSphinx mostly gets right in espeak-ng's default voice (the benchmark's)
SENTENCES = BENCH_SENTENCES

# espeak-ng is installed by `make test` (scripts/setup.sh --test); without it these tests fail
# loudly rather than being skipped.
assert espeak_available(), "espeak-ng is not installed: run scripts/setup.sh --test"


@functools.lru_cache(maxsize=256)
def _synth_cached(text: str, voice: str, speed: int) -> np.ndarray:
    audio = espeak(text, voice, speed)
    audio.setflags(write=False)
    return audio


def synth(text: str, voice: str = "en-us", speed: int = 150) -> np.ndarray:
    """``text`` spoken by espeak-ng (read-only, cached)."""
    return _synth_cached(text, voice, speed)


def trim(audio: np.ndarray, level: float = 1e-3) -> np.ndarray:
    """``audio`` without its leading and trailing near-silence."""
    loud = np.flatnonzero(np.abs(audio) > level)
    return audio[loud[0]: loud[-1] + 1] if loud.size else audio[:0]


def silence(seconds: float) -> np.ndarray:
    """Digital silence of ``seconds`` at 16 kHz."""
    return np.zeros(int(round(seconds * SAMPLE_RATE)), np.float32)


def concat_words(words: list[str], gaps: list[float], voice: str = "en-us", lead_s: float = 0.3):
    """Words synthesised one by one, joined with known silences (``gaps[i]`` after word ``i``).

    Returns ``(audio, [(word, start_s, end_s)])`` with each word's true span (its trimmed
    synthesis).
    """
    parts, truth, t = [silence(lead_s)], [], lead_s
    for word, gap in zip(words, gaps, strict=True):
        spoken = trim(synth(word, voice))
        truth.append((word, t, t + spoken.size / SAMPLE_RATE))
        parts += [spoken, silence(gap)]
        t += spoken.size / SAMPLE_RATE + gap
    return np.concatenate(parts), truth


def sentences_with_pauses(sentences, pauses, voice: str = "en-us", lead_s: float = 0.4):
    """Whole sentences joined with known pauses; returns ``(audio, [(sentence, start_s, end_s)])``."""
    parts, truth, t = [silence(lead_s)], [], lead_s
    for sentence, pause in zip(sentences, pauses, strict=True):
        spoken = trim(synth(sentence, voice))
        truth.append((sentence, t, t + spoken.size / SAMPLE_RATE))
        parts += [spoken, silence(pause)]
        t += spoken.size / SAMPLE_RATE + pause
    return np.concatenate(parts), truth


def write_wav(path, audio: np.ndarray, rate: int = SAMPLE_RATE) -> str:
    """Write mono float audio as a 16-bit WAV file; returns the path as a string."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())
    return str(path)
