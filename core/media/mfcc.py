"""MFCCs and a voice profile (MFCC statistics over voiced frames) for voice distance.

Implemented with numpy/scipy on purpose: ``librosa`` (the maintained MFCC library) pulls numba,
llvmlite and scikit-learn (about 260 MB, 14 packages) and its first MFCC call spends seconds
compiling; what we need is a mel filterbank, a log and a DCT. The conventions follow librosa's
(HTK mel scale, area-normalised triangles, power in dB with an 80 dB range, orthonormal DCT-II),
so the numbers are comparable with ``librosa.feature.mfcc(htk=True, center=False)``.

The voice profile is the mean and standard deviation of MFCCs 1..N (c0, the frame energy, is
left out so loudness does not count as voice) over the frames the VAD calls speech.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass

import numpy as np
from scipy.fft import dct

from core.media.spectral import RATE, active_frame_mask, frame_signal, power_spectrogram
from core.media.vad import FRAME_SAMPLES as VAD_FRAME_SAMPLES  # the VAD's 32 ms grid at 16 kHz
from core.recipe import sample_rules as rules


@dataclass(frozen=True)
class VoiceProfile:
    """MFCC statistics of one clip: per-coefficient ``mean`` and ``std`` over ``frames`` frames.

    ``source`` says which frames: ``"speech"`` (VAD speech frames) or ``"active"`` (every
    non-silent frame, used when the clip holds too little speech, e.g. noise or a drone).
    """

    mean: list[float]
    std: list[float]
    frames: int
    source: str

    def to_dict(self) -> dict:
        """JSON-ready form (stored as a sample's ``mfcc`` metric)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> VoiceProfile:
        """Read back what :meth:`to_dict` wrote."""
        return cls(list(data["mean"]), list(data["std"]), int(data["frames"]), str(data["source"]))


def hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """HTK mel scale."""
    return 2595.0 * np.log10(1.0 + np.asarray(hz, np.float64) / 700.0)


def mel_to_hz(mel: np.ndarray) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    return 700.0 * (10.0 ** (np.asarray(mel, np.float64) / 2595.0) - 1.0)


@functools.lru_cache(maxsize=4)
def mel_filterbank(n_fft: int = rules.MFCC_FRAME, n_mels: int = rules.MFCC_MELS,
                   low_hz: float = rules.MFCC_LOW_HZ, high_hz: float = rules.MFCC_HIGH_HZ,
                   rate: int = RATE) -> np.ndarray:
    """``[n_mels, n_fft // 2 + 1]`` triangular filters, equally spaced in mel, unit area."""
    edges = mel_to_hz(np.linspace(hz_to_mel(low_hz), hz_to_mel(high_hz), n_mels + 2))
    freqs = np.fft.rfftfreq(n_fft, 1 / rate)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs - lower) / (centre - lower)
    falling = (upper - freqs) / (upper - centre)
    triangles = np.maximum(0.0, np.minimum(rising, falling))
    bank = triangles * (2.0 / (upper - lower))  # equal area, so wide high bands do not dominate
    bank.setflags(write=False)  # cached and shared between calls
    return bank


def mfcc_frames(power: np.ndarray, n_coefficients: int = rules.MFCC_COEFFICIENTS) -> np.ndarray:
    """MFCCs ``[n_frames, n_coefficients]`` (c0 first) of power spectra ``[n_frames, bins]``."""
    mel_power = power @ mel_filterbank(n_fft=2 * (power.shape[1] - 1)).T
    log_mel = 10.0 * np.log10(np.maximum(mel_power, 1e-10))
    log_mel = np.maximum(log_mel, log_mel.max() - rules.MFCC_DYNAMIC_RANGE_DB) if log_mel.size else log_mel
    return dct(log_mel, type=2, norm="ortho", axis=1)[:, :n_coefficients]


def voice_profile(mono_16k: np.ndarray, speech_probabilities: np.ndarray | None,
                  speech_threshold: float) -> VoiceProfile | None:
    """MFCC statistics over the speech frames of ``mono_16k``; ``None`` for silence.

    ``speech_probabilities`` are the VAD's per-32 ms-frame probabilities (see
    :func:`core.media.vad.speech_probabilities`); an MFCC frame counts as speech when the VAD frame
    holding its centre does. With fewer than ``MIN_VOICE_FRAMES`` such frames the profile is
    taken over all active frames instead (``source="active"``).
    """
    frames = frame_signal(mono_16k, rules.MFCC_FRAME, rules.MFCC_HOP)
    active = active_frame_mask(frames)
    if not active.any():
        return None
    coefficients = mfcc_frames(power_spectrogram(frames))[:, 1:]  # c0 is loudness, not voice
    speech = active & _speech_mask(frames.shape[0], speech_probabilities, speech_threshold)
    chosen, source = (speech, "speech") if speech.sum() >= rules.MIN_VOICE_FRAMES else (active, "active")
    selected = coefficients[chosen]
    return VoiceProfile(mean=[round(float(v), 4) for v in selected.mean(axis=0)],
                        std=[round(float(v), 4) for v in selected.std(axis=0)],
                        frames=int(chosen.sum()), source=source)


def _speech_mask(n_frames: int, probabilities: np.ndarray | None, threshold: float) -> np.ndarray:
    if probabilities is None or len(probabilities) == 0:
        return np.zeros(n_frames, bool)
    centres = np.arange(n_frames) * rules.MFCC_HOP + rules.MFCC_FRAME // 2
    vad_index = np.minimum(centres // VAD_FRAME_SAMPLES, len(probabilities) - 1)
    return np.asarray(probabilities)[vad_index] >= threshold


def pooled_profile(profiles: list[VoiceProfile]) -> VoiceProfile:
    """One profile for several clips: the statistics of all their frames together."""
    weights = np.array([p.frames for p in profiles], np.float64)
    means = np.array([p.mean for p in profiles])
    variances = np.array([p.std for p in profiles]) ** 2
    mean = weights @ means / weights.sum()
    variance = weights @ (variances + (means - mean) ** 2) / weights.sum()
    sources = {p.source for p in profiles}
    return VoiceProfile(mean=mean.tolist(), std=np.sqrt(variance).tolist(), frames=int(weights.sum()),
                        source=sources.pop() if len(sources) == 1 else "mixed")


def profile_distance(sample: VoiceProfile, reference: VoiceProfile) -> float:
    """How far apart two voice profiles are: 0 for identical statistics, larger is further.

    Two terms, each averaged over the coefficients: the shift of the mean in units of the
    pooled standard deviation (a per-coefficient effect size), and the change of spread as a
    natural log ratio of the standard deviations; the result is the square root of their sum.
    Two espeak-ng utterances of one voice measure about 0.2, a different espeak-ng voice variant
    0.5 to 0.9, white noise against speech about 2. Symmetric and loudness-free (no c0).
    """
    mean_s, mean_r = np.asarray(sample.mean), np.asarray(reference.mean)
    if mean_s.shape != mean_r.shape:
        raise ValueError(f"voice profiles differ in size ({mean_s.size} vs {mean_r.size} coefficients)")
    std_s = np.maximum(np.asarray(sample.std), rules.MFCC_MIN_STD)
    std_r = np.maximum(np.asarray(reference.std), rules.MFCC_MIN_STD)
    mean_shift = np.mean((mean_s - mean_r) ** 2 / ((std_s**2 + std_r**2) / 2))
    spread_change = np.mean(np.log(std_s / std_r) ** 2)
    return float(np.sqrt(mean_shift + spread_change))
