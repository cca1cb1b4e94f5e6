"""Audio in the form the speech models take: mono float32 at 16 kHz.

Files (any audio or video container) are decoded by :func:`core.media.analysis.decode_audio`,
the studio's PyAV decoder, which already returns 16 kHz mono next to the native audio.
Arrays at other rates are resampled with a polyphase filter.
"""

from __future__ import annotations

import os
from math import gcd

import numpy as np

SAMPLE_RATE = 16000
MAX_FILE_SECONDS = 1800.0  # longest audio read from one file (decode_audio also keeps the native audio)
NOISE_FLOOR_BELOW_SPEECH_DB = 30.0  # see add_noise_floor


class SpeechAudioError(Exception):
    """A file has no audio or cannot be decoded; the message says which and why."""


def load_audio(path: str | os.PathLike, max_seconds: float = MAX_FILE_SECONDS) -> np.ndarray:
    """First audio stream of ``path`` (audio or video) as 16 kHz mono float32."""
    from core.media.analysis import AudioDecodeError, decode_audio

    if not os.path.isfile(path):
        raise SpeechAudioError(f"{path}: no such file")
    try:
        decoded = decode_audio(path, max_seconds=max_seconds)
    except AudioDecodeError as exc:
        raise SpeechAudioError(f"{path}: {exc.message}") from exc
    if decoded is None:
        raise SpeechAudioError(f"{path}: the file has no audio stream")
    return np.ascontiguousarray(decoded.mono_16k, dtype=np.float32)


def to_mono_16k(wav: np.ndarray, sr: int) -> np.ndarray:
    """``wav`` (1-D, or ``[channels, samples]``) as mono float32 at 16 kHz."""
    audio = np.asarray(wav, dtype=np.float32)
    if audio.ndim == 2:
        audio = audio.mean(axis=0 if audio.shape[0] <= audio.shape[1] else 1)
    audio = audio.reshape(-1)
    if sr <= 0:
        raise ValueError(f"sample rate must be positive, got {sr}")
    if sr != SAMPLE_RATE and audio.size:
        from scipy.signal import resample_poly

        common = gcd(int(sr), SAMPLE_RATE)
        audio = resample_poly(audio, SAMPLE_RATE // common, int(sr) // common).astype(np.float32)
    return np.ascontiguousarray(audio, dtype=np.float32)


def speech_level(audio: np.ndarray) -> float:
    """RMS of the louder half of 20 ms frames: the level of the speech, not of the pauses."""
    frames = audio[: audio.size // 320 * 320].reshape(-1, 320)
    if frames.size == 0:
        return 0.0
    energy = np.mean(frames.astype(np.float64) ** 2, axis=1)
    loud = energy[energy >= np.median(energy)]
    return float(np.sqrt(loud.mean())) if loud.size else 0.0


def add_noise_floor(audio: np.ndarray, below_db: float = NOISE_FLOOR_BELOW_SPEECH_DB, seed: int = 0) -> np.ndarray:
    """``audio`` plus a fixed, seeded Gaussian noise floor ``below_db`` under its speech level.

    Digital silence (exact zeros, as synthetic or gated audio has) gives log-energy features
    far below any trained silence, which throws PocketSphinx's cepstral mean normalisation off
    for the whole utterance. Measured on espeak-ng sentences padded with silence: corpus WER
    0.26 with no floor worth the name (-80 dBFS), 0.10 at -60 dBFS and 0.02 at 30 dB under
    the speech (about -50 dBFS). Real recordings usually have a floor at least this high
    already, so adding one changes them little.
    """
    level = speech_level(audio)
    rms = level * 10 ** (-below_db / 20) if level > 0 else 1e-3
    rng = np.random.default_rng(seed)
    return (audio + rms * rng.standard_normal(audio.size).astype(np.float32)).astype(np.float32)


def to_pcm16(audio: np.ndarray) -> bytes:
    """Little-endian signed 16-bit PCM bytes of float audio in -1..1 (clipped)."""
    return (np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def duration_s(audio: np.ndarray, sr: int = SAMPLE_RATE) -> float:
    """Seconds of audio."""
    return float(np.asarray(audio).shape[-1]) / float(sr)
