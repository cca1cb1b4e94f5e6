"""Audio QA analysis: loudness, peaks, clipping, silence, speech (VAD), noise floor and an SNR estimate.

Audio is decoded once with PyAV into two forms: the native rate and channel layout (for
loudness, peaks and clipping, which resampling would change) and 16 kHz mono (for silence,
voice activity detection and the SNR estimate; also what the waveform and spectrogram images
draw). Thresholds live in :mod:`core.recipe.qa_rules`; this module only measures.

Loud broadband noise can hide a voice from the VAD: when it finds little speech over a noise
floor, the VAD listens again to a noise-reduced copy (:func:`reduce_noise`), so a voice buried in
hiss counts as speech in noise (``speech_masked_by_noise``), not as "no speech". An SNR needs a
noise floor: between the words of a clean, digitally silent track there is none, and the SNR is
then ``None`` with ``snr_reason`` saying so, never a made-up cap.

No torch: the VAD runs Silero's ONNX model through onnxruntime, imported lazily.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass

import av
import numpy as np
import pyloudnorm
from scipy.ndimage import uniform_filter1d
from scipy.signal import istft, resample_poly, stft

from core.media import vad
from core.recipe import qa_rules

ANALYSIS_RATE = vad.VAD_SAMPLE_RATE
SILENCE_FRAME_SAMPLES = 320  # 20 ms at 16 kHz
TRUE_PEAK_OVERSAMPLING = 4  # ITU-R BS.1770 true peak: 4x oversampling
TRUE_PEAK_MARGIN = 64  # samples of context around each chunk (the filter spans about 10)
_LAYOUT_BY_CHANNELS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 8: "7.1"}
PYLOUDNORM_MAX_CHANNELS = 5  # its channel weights cover L, R, C, Ls, Rs
NOISE_STFT_SAMPLES = 512  # 32 ms at 16 kHz: the noise reduction's frequency resolution (31 Hz)
NOISE_SMOOTHING_FRAMES = 5  # magnitudes averaged over 5 hops (40 ms) before the subtraction
# Remove four times the noise power, keep 1 % of each bin: weaker settings leave enough hiss that
# the VAD still misses a voice 14 dB under white noise; pure noise stays "no speech" with these.
NOISE_OVERSUBTRACTION = 4.0
NOISE_GAIN_FLOOR = 0.01


class AudioDecodeError(Exception):
    """The audio stream cannot be decoded reliably (finding ``audio_decode_failed``)."""

    code = "audio_decode_failed"

    def __init__(self, message: str, detail: dict | None = None):
        super().__init__(message)
        self.message = message
        self.detail = detail or {}


@dataclass
class DecodedAudio:
    """Decoded audio: ``native`` is ``[channels, samples]`` float32, ``mono_16k`` is 1-D."""

    native: np.ndarray
    sample_rate: int
    channel_names: list[str]
    mono_16k: np.ndarray
    stream_duration: float | None
    failed_packets: int
    total_packets: int

    @property
    def duration(self) -> float:
        """Seconds of audio decoded."""
        return self.native.shape[1] / self.sample_rate if self.sample_rate else 0.0


@dataclass(frozen=True)
class AudioAnalysis:
    """Measured audio facts for one clip (levels in dBFS/LUFS, ratios in 0..1)."""

    sample_rate: int
    channels: int
    duration: float
    integrated_lufs: float | None  # None when the audio is silent or shorter than 0.4 s
    sample_peak_dbfs: float | None  # None for digital silence
    true_peak_dbfs: float | None
    clipping_ratio: float
    silence_ratio: float
    speech_ratio: float
    speech_seconds: float
    speech_masked_by_noise: bool  # the VAD found the speech only in a noise-reduced copy
    noise_floor_dbfs: float | None  # level of the quietest frames; None for digital silence
    snr_db: float | None  # None when it cannot be estimated: snr_reason says why
    snr_reason: str | None
    truncated_to_seconds: float | None  # set when the audio was longer than the analysis limit

    def to_dict(self) -> dict:
        """A JSON-serialisable dict (the ``audio`` part of a clip's analysis)."""
        return asdict(self)


def decode_audio(path: str | os.PathLike,
                 max_seconds: float = qa_rules.MAX_ANALYSIS_SECONDS) -> DecodedAudio | None:
    """Decode the first audio stream of ``path``; ``None`` when the file has no audio stream.

    Raises :class:`AudioDecodeError` when packets fail to decode or too little audio comes out.
    """
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as exc:
        raise AudioDecodeError(f"the file cannot be opened to read its audio ({exc})") from exc
    with container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        stream_duration = float(stream.duration * stream.time_base) if stream.duration else None
        if stream_duration is None and container.duration:
            stream_duration = container.duration / av.time_base
        native_rs = av.AudioResampler(format="fltp")  # keeps the source rate and layout
        mono_rs = av.AudioResampler(format="flt", layout="mono", rate=ANALYSIS_RATE)
        native_parts: list[np.ndarray] = []
        mono_parts: list[np.ndarray] = []
        failed = total = 0
        rate = int(stream.codec_context.sample_rate or 0)
        channel_names: list[str] = []
        limit = None
        native_samples = 0
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            total += 1
            try:
                frames = packet.decode()
                for frame in frames:
                    rate = frame.sample_rate
                    channel_names = [c.name for c in frame.layout.channels]
                    limit = int(max_seconds * rate)
                    for converted in native_rs.resample(frame):
                        native_parts.append(converted.to_ndarray())
                        native_samples += converted.samples
                    mono_parts.extend(f.to_ndarray().reshape(-1) for f in mono_rs.resample(frame))
            except (av.error.FFmpegError, ValueError):  # ValueError: layout/rate changed mid-stream
                failed += 1
                continue
            if limit is not None and native_samples >= limit:
                break
        if native_parts:  # flush what the resamplers still hold
            native_parts.extend(f.to_ndarray() for f in native_rs.resample(None))
            mono_parts.extend(f.to_ndarray().reshape(-1) for f in mono_rs.resample(None))
    if native_parts:
        native = np.concatenate(native_parts, axis=1)
    else:
        native = np.zeros((max(len(channel_names), 1), 0), np.float32)
    if limit is not None:
        native = native[:, :limit]
    mono = np.concatenate(mono_parts) if mono_parts else np.zeros(0, np.float32)
    mono = mono[: int(max_seconds * ANALYSIS_RATE)]
    decoded = DecodedAudio(native.astype(np.float32), rate, channel_names, mono.astype(np.float32),
                           stream_duration, failed, total)
    _check_decoded_enough(decoded, max_seconds)
    return decoded


def _check_decoded_enough(decoded: DecodedAudio, max_seconds: float) -> None:
    detail = {"failed_packets": decoded.failed_packets, "packets": decoded.total_packets,
              "decoded_seconds": round(decoded.duration, 3), "stream_seconds": decoded.stream_duration}
    allowed_failures = decoded.total_packets * qa_rules.MAX_FAILED_AUDIO_PACKET_FRACTION
    if decoded.total_packets and decoded.failed_packets > allowed_failures:
        raise AudioDecodeError(
            f"{decoded.failed_packets} of {decoded.total_packets} audio packets failed to decode", detail)
    expected = min(decoded.stream_duration or 0.0, max_seconds)
    if decoded.duration <= 0 or (expected and decoded.duration < expected * qa_rules.MIN_DECODED_AUDIO_FRACTION):
        raise AudioDecodeError(
            f"only {decoded.duration:.2f} s of audio decoded out of {expected:.2f} s", detail)


def analyze_audio(decoded: DecodedAudio) -> AudioAnalysis:
    """Measure loudness, peaks, clipping, silence, speech, noise floor and SNR of decoded audio."""
    native, mono = decoded.native, decoded.mono_16k
    peak = float(np.abs(native).max()) if native.size else 0.0
    is_speech, masked = speech_frames(mono)
    frame_seconds = vad.FRAME_SAMPLES / vad.VAD_SAMPLE_RATE
    cut_short = bool(decoded.stream_duration and decoded.stream_duration > decoded.duration + 1.0)
    truncated = decoded.duration if cut_short else None
    snr, snr_reason = estimate_snr(mono, is_speech)
    return AudioAnalysis(
        sample_rate=decoded.sample_rate,
        channels=native.shape[0],
        duration=round(decoded.duration, 4),
        integrated_lufs=_round(integrated_loudness(native, decoded.sample_rate, decoded.channel_names)),
        sample_peak_dbfs=_round(_dbfs(peak)),
        true_peak_dbfs=_round(_dbfs(true_peak(native))),
        clipping_ratio=round(clipping_ratio(native), 6),
        silence_ratio=round(silence_ratio(mono), 4),
        speech_ratio=round(float(is_speech.mean()) if is_speech.size else 0.0, 4),
        speech_seconds=round(float(is_speech.sum()) * frame_seconds, 3),
        speech_masked_by_noise=masked,
        noise_floor_dbfs=_round(noise_floor_dbfs(mono)),
        snr_db=_round(snr),
        snr_reason=snr_reason,
        truncated_to_seconds=round(truncated, 3) if truncated else None,
    )


def speech_frames(mono_16k: np.ndarray) -> tuple[np.ndarray, bool]:
    """VAD speech frames, and whether they were found only in a noise-reduced copy.

    Silero's VAD stops hearing a voice once broadband noise is several dB louder than it, and
    would call the clip music or ambience. So when it finds less than ``LOW_SPEECH_RATIO`` over
    a noise floor, it listens once more to :func:`reduce_noise`'s copy; the copy wins when it
    finds that much speech (a few stray detections in pure noise do not make it speech).
    """
    threshold = qa_rules.VAD_SPEECH_PROBABILITY
    is_speech = vad.speech_probabilities(mono_16k) >= threshold
    ratio = float(is_speech.mean()) if is_speech.size else 0.0
    if ratio >= qa_rules.LOW_SPEECH_RATIO or noise_floor_dbfs(mono_16k) is None:
        return is_speech, False
    cleaned = vad.speech_probabilities(reduce_noise(mono_16k)) >= threshold
    if cleaned.size == is_speech.size and cleaned.mean() >= qa_rules.LOW_SPEECH_RATIO:
        return cleaned, True
    return is_speech, False


def reduce_noise(mono_16k: np.ndarray) -> np.ndarray:
    """Spectral subtraction: each frequency's noise level is its ``NOISE_FLOOR_PERCENTILE``
    over time (noise is always there, a voice is not), removed with over-subtraction from
    magnitudes smoothed over ``NOISE_SMOOTHING_FRAMES`` hops (less random residue).

    Only for listening for speech under noise (the VAD); never stored or played.
    """
    if mono_16k.size < NOISE_STFT_SAMPLES:
        return mono_16k
    overlap = NOISE_STFT_SAMPLES * 3 // 4
    _, _, spectrum = stft(mono_16k, fs=ANALYSIS_RATE, nperseg=NOISE_STFT_SAMPLES, noverlap=overlap)
    noise = np.percentile(np.abs(spectrum), qa_rules.NOISE_FLOOR_PERCENTILE, axis=1, keepdims=True)
    magnitude = uniform_filter1d(np.abs(spectrum), NOISE_SMOOTHING_FRAMES, axis=1)
    power = np.maximum(magnitude**2 - NOISE_OVERSUBTRACTION * noise**2, NOISE_GAIN_FLOOR * magnitude**2)
    gain = np.sqrt(power) / np.maximum(magnitude, 1e-12)
    _, cleaned = istft(spectrum * gain, fs=ANALYSIS_RATE, nperseg=NOISE_STFT_SAMPLES, noverlap=overlap)
    out = np.zeros_like(mono_16k)
    out[: min(out.size, cleaned.size)] = cleaned[: out.size]
    return out.astype(np.float32)


def integrated_loudness(native: np.ndarray, rate: int, channel_names: list[str]) -> float | None:
    """ITU-R BS.1770 integrated loudness (LUFS) with pyloudnorm; ``None`` if silent or < 0.4 s.

    The LFE channel is left out, as BS.1770 says. Layouts with more than five other channels are
    measured on their average (an approximation; such uploads are rare and get a finding anyway).
    """
    if native.shape[1] < int(0.4 * rate) + 1:
        return None
    keep = [i for i, name in enumerate(channel_names) if name != "LFE"] or list(range(native.shape[0]))
    data = native[keep]
    if data.shape[0] > PYLOUDNORM_MAX_CHANNELS:
        data = data.mean(axis=0, keepdims=True)
    value = pyloudnorm.Meter(rate).integrated_loudness(data.T.astype(np.float64))
    return float(value) if math.isfinite(value) else None


def true_peak(native: np.ndarray, chunk_samples: int = 480_000) -> float:
    """Largest absolute value after 4x oversampling (inter-sample peaks included).

    Works through the audio in chunks (10 s at 48 kHz) so memory stays small; each chunk is
    upsampled with ``TRUE_PEAK_MARGIN`` neighbouring samples on both sides and the margins are
    dropped, so chunk edges add no filter ringing.
    """
    if native.size == 0:
        return 0.0
    peak = float(np.abs(native).max())
    total = native.shape[1]
    margin, factor = TRUE_PEAK_MARGIN, TRUE_PEAK_OVERSAMPLING
    for start in range(0, total, chunk_samples):
        stop = min(total, start + chunk_samples)
        left, right = max(0, start - margin), min(total, stop + margin)
        upsampled = resample_poly(native[:, left:right], factor, 1, axis=1)
        inner = upsampled[:, (start - left) * factor : (stop - left) * factor]
        if inner.size:
            peak = max(peak, float(np.abs(inner).max()))
    return peak


def clipping_ratio(native: np.ndarray) -> float:
    """Fraction of samples (all channels) at or within 0.3 dB of full scale."""
    if native.size == 0:
        return 0.0
    return float(np.mean(np.abs(native) >= qa_rules.CLIPPED_SAMPLE_LEVEL))


def silence_ratio(mono_16k: np.ndarray) -> float:
    """Fraction of 20 ms frames whose RMS is below ``SILENCE_FRAME_DBFS``."""
    energies = _frame_energies(mono_16k, SILENCE_FRAME_SAMPLES)
    if energies.size == 0:
        return 1.0
    threshold = 10 ** (qa_rules.SILENCE_FRAME_DBFS / 10)  # energy = RMS squared
    return float(np.mean(energies < threshold))


def noise_floor_dbfs(mono_16k: np.ndarray) -> float | None:
    """RMS level (dBFS) of the quietest frames (``NOISE_FLOOR_PERCENTILE`` of VAD-sized frames);
    ``None`` when they are below ``NO_NOISE_FLOOR_DBFS`` (digital silence, codec residue)."""
    energies = _frame_energies(mono_16k, vad.FRAME_SAMPLES)
    if energies.size == 0:
        return None
    floor = float(np.percentile(energies, qa_rules.NOISE_FLOOR_PERCENTILE))
    level = 10 * math.log10(floor) if floor > 0 else None
    return level if level is not None and level >= qa_rules.NO_NOISE_FLOOR_DBFS else None


def estimate_snr(mono_16k: np.ndarray, is_speech: np.ndarray) -> tuple[float | None, str | None]:
    """Speech-to-noise ratio (dB) from the energy of speech frames vs non-speech frames, or
    ``(None, reason)`` when it cannot be estimated.

    Noise energy is the median of the non-speech frames when there are enough of them, else a
    low percentile of all frames. Speech frames hold speech plus noise, so the noise is
    subtracted first. No estimate without speech, nor without a noise floor: a track that is
    digitally silent between the words has no noise to compare with (any number would be the
    codec's rounding, not the recording).
    """
    energies = _frame_energies(mono_16k, vad.FRAME_SAMPLES, pad=True)[: is_speech.size]
    speech = energies[is_speech[: energies.size]]
    if speech.size == 0:
        return None, "no speech found"
    quiet = energies[~is_speech[: energies.size]]
    min_noise_frames = qa_rules.MIN_NOISE_SECONDS * vad.VAD_SAMPLE_RATE / vad.FRAME_SAMPLES
    if quiet.size >= min_noise_frames:
        # The median, not the mean: VAD edges leave some speech in the "non-speech" frames.
        noise = float(np.median(quiet))
    else:
        noise = float(np.percentile(energies, qa_rules.NOISE_FLOOR_PERCENTILE))
    if noise <= 10 ** (qa_rules.NO_NOISE_FLOOR_DBFS / 10):
        return None, "no noise floor to measure: the track is digitally silent between the words"
    signal = float(speech.mean()) - noise
    if signal <= 0:
        return 0.0, None
    return 10 * math.log10(signal / noise), None


def estimate_snr_db(mono_16k: np.ndarray, is_speech: np.ndarray) -> float | None:
    """:func:`estimate_snr`'s value alone (``None`` when it cannot be estimated)."""
    return estimate_snr(mono_16k, is_speech)[0]


def _frame_energies(mono: np.ndarray, frame: int, pad: bool = False) -> np.ndarray:
    n = -(-mono.size // frame) if pad else mono.size // frame
    if n == 0:
        return np.zeros(0)
    buffer = np.zeros(n * frame, np.float64)
    buffer[: min(mono.size, n * frame)] = mono[: n * frame]
    return np.mean(buffer.reshape(n, frame) ** 2, axis=1)


def _dbfs(amplitude: float) -> float | None:
    return 20 * math.log10(amplitude) if amplitude > 0 else None


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(float(value), digits)
