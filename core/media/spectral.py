"""Spectral measures of 16 kHz mono audio: spectral flatness and a tonal buzz/hum score.

Both answer "does this sound like noise or like a drone rather than a voice?" for generated
samples (see :mod:`core.media.sample_metrics`):

* spectral flatness is the geometric over the arithmetic mean of a frame's power spectrum:
  near 1 for white noise, near 0 for a pure tone; speech sits in between and low.
* the buzz score looks for narrow spectral peaks that persist through the clip (mains hum,
  a buzzing vocoder): a low percentile over time of each bin of a fine-resolution spectrogram
  keeps only what is there nearly all the time (speech harmonics move with the pitch and stop
  between words, so they drop out), and each bin is compared with a low percentile of its
  neighbourhood. The score is the largest such peak-over-floor ratio in dB.

Thresholds live in :mod:`core.recipe.sample_rules`. numpy/scipy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import percentile_filter
from scipy.signal import get_window

from core.recipe import sample_rules as rules

RATE = 16000  # every measure here reads 16 kHz mono (the analysis rate of core.media.analysis)


@dataclass(frozen=True)
class Buzz:
    """The strongest persistent narrow peak: ``score_db`` above its neighbourhood at ``hz``."""

    score_db: float
    hz: float | None


def frame_signal(mono: np.ndarray, frame: int, hop: int) -> np.ndarray:
    """Overlapping frames ``[n_frames, frame]`` of ``mono`` (zero-padded to one frame if shorter)."""
    audio = np.asarray(mono, np.float64).reshape(-1)
    if audio.size < frame:
        audio = np.pad(audio, (0, frame - audio.size))
    n_frames = 1 + (audio.size - frame) // hop
    return np.lib.stride_tricks.sliding_window_view(audio, frame)[::hop][:n_frames]


def power_spectrogram(frames: np.ndarray) -> np.ndarray:
    """Hann-windowed (periodic, as librosa) power spectrum of each frame, ``[n_frames, frame // 2 + 1]``."""
    window = get_window("hann", frames.shape[1])
    return np.abs(np.fft.rfft(frames * window, axis=1)) ** 2


def active_frame_mask(frames: np.ndarray, floor_dbfs: float = rules.ACTIVE_FRAME_DBFS) -> np.ndarray:
    """Frames whose RMS is above ``floor_dbfs`` (digital silence and near-silence left out)."""
    rms = np.sqrt(np.mean(frames**2, axis=1))
    return rms > 10 ** (floor_dbfs / 20)


def spectral_flatness(mono_16k: np.ndarray, low_hz: float = rules.FLATNESS_LOW_HZ,
                      high_hz: float = rules.FLATNESS_HIGH_HZ) -> float | None:
    """Median over active frames of the power spectrum's geometric/arithmetic mean in a band.

    0 for a pure tone, about 0.56 for white noise (the flatness of a single Hann frame of white
    noise: its bins are exponentially distributed, and exp(-Euler's gamma) = 0.56), low for
    voiced speech. ``None`` when no frame is louder than the activity floor.
    """
    frames = frame_signal(mono_16k, rules.FLATNESS_FRAME, rules.FLATNESS_HOP)
    active = active_frame_mask(frames)
    if not active.any():
        return None
    power = power_spectrogram(frames[active])
    freqs = np.fft.rfftfreq(rules.FLATNESS_FRAME, 1 / RATE)
    band = power[:, (freqs >= low_hz) & (freqs <= high_hz)]
    # A floor 120 dB under the frame's mean keeps log() finite on exact zeros (synthetic tones).
    band = np.maximum(band, band.mean(axis=1, keepdims=True) * 1e-12 + 1e-30)
    flatness = np.exp(np.mean(np.log(band), axis=1)) / np.mean(band, axis=1)
    return float(np.median(flatness))


def buzz(mono_16k: np.ndarray) -> Buzz:
    """Strength (dB) and frequency of the most prominent persistent narrow peak.

    The spectrogram uses long frames (``BUZZ_FRAME`` samples: about 4 Hz bins, so a 50 Hz comb
    stays resolved), keeps active frames, and takes the ``BUZZ_TIME_PERCENTILE`` percentile of
    each bin over time (what is present in most frames). Each bin is
    then compared with the ``BUZZ_FLOOR_PERCENTILE`` percentile of the bins within
    ``BUZZ_NEIGHBOURHOOD_HZ``; the score is the largest ratio between ``BUZZ_LOW_HZ`` and
    ``BUZZ_HIGH_HZ``, capped at ``BUZZ_MAX_SCORE_DB``. Silence scores 0.
    """
    frames = frame_signal(mono_16k, rules.BUZZ_FRAME, rules.BUZZ_HOP)
    active = active_frame_mask(frames)
    if not active.any():
        return Buzz(0.0, None)
    persistent = np.percentile(power_spectrogram(frames[active]), rules.BUZZ_TIME_PERCENTILE, axis=0)
    # Keep the floor finite: nothing counts below BUZZ_MAX_SCORE_DB under the strongest bin.
    persistent = np.maximum(persistent, persistent.max() * 10 ** (-rules.BUZZ_MAX_SCORE_DB / 10) + 1e-30)
    level_db = 10 * np.log10(persistent)
    bin_hz = RATE / rules.BUZZ_FRAME
    width = 2 * int(rules.BUZZ_NEIGHBOURHOOD_HZ / bin_hz) + 1
    floor_db = percentile_filter(level_db, rules.BUZZ_FLOOR_PERCENTILE, size=width, mode="reflect")
    prominence = level_db - floor_db
    freqs = np.arange(level_db.size) * bin_hz
    in_band = (freqs >= rules.BUZZ_LOW_HZ) & (freqs <= rules.BUZZ_HIGH_HZ)
    prominence = np.where(in_band, prominence, -np.inf)
    peak = int(np.argmax(prominence))
    score = float(min(max(prominence[peak], 0.0), rules.BUZZ_MAX_SCORE_DB))
    if score <= 0:
        return Buzz(0.0, None)
    return Buzz(score, _peak_hz(level_db, peak, bin_hz))


def _peak_hz(level_db: np.ndarray, peak: int, bin_hz: float) -> float:
    """Frequency of a spectral peak, refined between bins by a parabola through three dB values."""
    if 0 < peak < level_db.size - 1:
        left, centre, right = level_db[peak - 1 : peak + 2]
        curvature = left - 2 * centre + right
        if curvature < 0:
            return float((peak + 0.5 * (left - right) / curvature) * bin_hz)
    return float(peak * bin_hz)
