"""Audio for the LTX-2 audio VAE: decode a clip's sound, make the log-mel it encodes.

The audio VAE encodes a stereo log-mel spectrogram ``[B, 2, T, 64]``: 16 kHz audio, a centred
(reflect-padded) STFT with n_fft 1024, a 1024-sample periodic Hann window and hop 160 (100 frames
per second), magnitudes (power 1), 64 Slaney-scale mel bands up to 8 kHz with Slaney area
normalisation, then ``log(clamp(x, 1e-5))``. This is what Lightricks' trainer computes with
``torchaudio.transforms.MelSpectrogram`` (f_max = sample_rate / 2); torchaudio is not a
dependency here, so the same computation is written with ``torch.stft``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

MEL_SAMPLE_RATE = 16000
N_FFT = 1024
WIN_LENGTH = 1024
HOP_LENGTH = 160
N_MELS = 64
F_MIN = 0.0
F_MAX = 8000.0
LOG_FLOOR = 1e-5


class AudioDecodeError(RuntimeError):
    """A clip's audio could not be used; the message names the clip and the reason."""


class NoAudioTrack(AudioDecodeError):
    """The clip has no audio stream at all."""


@dataclass(frozen=True)
class DecodedAudio:
    """A stereo waveform ``[2, samples]`` (float32 in [-1, 1]) at ``sample_rate``.

    ``source_channels`` is the channel count of the file's track (1 = mono duplicated,
    more than 2 = downmixed to stereo).
    """

    waveform: torch.Tensor
    sample_rate: int
    source_channels: int

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.waveform.shape[-1] / self.sample_rate


def _hz_to_slaney_mel(freq: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz (3 mels per 200 Hz), logarithmic above."""
    freq = np.asarray(freq, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(
        freq >= min_log_hz,
        min_log_mel + np.log(np.maximum(freq, min_log_hz) / min_log_hz) / logstep,
        freq / f_sp,
    )


def _slaney_mel_to_hz(mels: np.ndarray) -> np.ndarray:
    """Inverse of ``_hz_to_slaney_mel``."""
    mels = np.asarray(mels, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(
        mels >= min_log_mel,
        min_log_hz * np.exp(logstep * (mels - min_log_mel)),
        mels * f_sp,
    )


def mel_filterbank(
    *,
    sample_rate: int = MEL_SAMPLE_RATE,
    n_fft: int = N_FFT,
    n_mels: int = N_MELS,
    f_min: float = F_MIN,
    f_max: float = F_MAX,
) -> np.ndarray:
    """Triangular Slaney-scale mel filters with Slaney (area) normalisation, ``[n_mels, n_fft//2+1]``."""
    n_freqs = n_fft // 2 + 1
    fft_freqs = np.linspace(0.0, sample_rate / 2, n_freqs)
    mel_points = np.linspace(_hz_to_slaney_mel(f_min), _hz_to_slaney_mel(f_max), n_mels + 2)
    hz_points = _slaney_mel_to_hz(mel_points)
    widths = np.diff(hz_points)
    ramps = hz_points[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    filters = np.maximum(0.0, np.minimum(lower, upper))
    filters *= (2.0 / (hz_points[2 : n_mels + 2] - hz_points[:n_mels]))[:, None]
    return filters.astype(np.float32)


_FILTERBANK_CACHE: dict[tuple, torch.Tensor] = {}


def log_mel_spectrogram(waveform: torch.Tensor, *, n_mels: int = N_MELS) -> torch.Tensor:
    """Log-mel of a 16 kHz waveform, shaped for the audio VAE.

    ``waveform`` is ``[channels, samples]`` or ``[B, channels, samples]``; the result is
    ``[B, channels, frames, n_mels]`` with ``frames = samples // 160 + 1``.
    """
    if waveform.ndim == 2:
        waveform = waveform.unsqueeze(0)
    if waveform.ndim != 3:
        raise ValueError(f"waveform must be [channels, samples] or [B, channels, samples], got {tuple(waveform.shape)}")
    batch, channels, samples = waveform.shape
    if samples <= N_FFT // 2:
        raise ValueError(f"audio too short for the mel spectrogram: {samples} samples (need more than {N_FFT // 2})")
    flat = waveform.reshape(batch * channels, samples).to(torch.float32)
    window = torch.hann_window(WIN_LENGTH, periodic=True, dtype=torch.float32, device=flat.device)
    spectrum = torch.stft(
        flat,
        n_fft=N_FFT,
        hop_length=HOP_LENGTH,
        win_length=WIN_LENGTH,
        window=window,
        center=True,
        pad_mode="reflect",
        return_complex=True,
    )
    magnitude = spectrum.abs()  # power 1: [BC, freqs, frames]
    key = (n_mels, str(flat.device))
    if key not in _FILTERBANK_CACHE:
        _FILTERBANK_CACHE[key] = torch.from_numpy(mel_filterbank(n_mels=n_mels)).to(flat.device)
    mel = torch.matmul(_FILTERBANK_CACHE[key], magnitude)  # [BC, mels, frames]
    log_mel = torch.log(torch.clamp(mel, min=LOG_FLOOR))
    return log_mel.reshape(batch, channels, n_mels, -1).transpose(2, 3).contiguous()


def mel_frames_for(duration_s: float) -> int:
    """Number of mel frames for ``duration_s`` seconds of 16 kHz audio."""
    return round(duration_s * MEL_SAMPLE_RATE) // HOP_LENGTH + 1


def decode_audio(
    path: Path | str,
    *,
    duration_s: float | None = None,
    sample_rate: int = MEL_SAMPLE_RATE,
    start_s: float = 0.0,
) -> DecodedAudio:
    """Decode a file's first audio track to stereo float32 at ``sample_rate`` with PyAV.

    Mono is duplicated to both channels; surround is downmixed to stereo by libswresample's
    standard matrix. With ``duration_s`` the result is trimmed, or padded with silence, to exactly
    that many seconds from ``start_s``. Raises ``NoAudioTrack`` when the file has no audio
    stream and ``AudioDecodeError`` (naming the file) when decoding fails or yields no samples.
    """
    import av

    path = Path(path)
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as exc:
        raise AudioDecodeError(f"{path.name}: cannot open the file ({exc})") from exc
    try:
        if not container.streams.audio:
            raise NoAudioTrack(f"{path.name}: the clip has no audio track")
        stream = container.streams.audio[0]
        source_channels = stream.codec_context.channels or len(stream.layout.channels)
        layout = "mono" if source_channels == 1 else "stereo"
        resampler = av.AudioResampler(format="fltp", layout=layout, rate=sample_rate)
        chunks: list[np.ndarray] = []
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray())
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray())
        except av.error.FFmpegError as exc:
            raise AudioDecodeError(f"{path.name}: audio decoding failed ({exc})") from exc
    finally:
        container.close()
    if not chunks:
        raise AudioDecodeError(f"{path.name}: the audio track decoded to no samples")
    samples = np.concatenate(chunks, axis=1).astype(np.float32)
    if samples.shape[0] == 1:
        samples = np.repeat(samples, 2, axis=0)
    waveform = torch.from_numpy(np.ascontiguousarray(samples))
    start = int(round(start_s * sample_rate))
    waveform = waveform[:, start:]
    if duration_s is not None:
        wanted = int(round(duration_s * sample_rate))
        if waveform.shape[-1] >= wanted:
            waveform = waveform[:, :wanted]
        else:
            waveform = torch.nn.functional.pad(waveform, (0, wanted - waveform.shape[-1]))
    return DecodedAudio(waveform=waveform, sample_rate=sample_rate, source_channels=source_channels)
