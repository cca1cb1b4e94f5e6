"""Audio for the audio VAE: the log-mel matches an independent reference; decoding makes stereo 16 kHz."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from worker.engine.data.audio import (
    AudioDecodeError,
    NoAudioTrack,
    decode_audio,
    log_mel_spectrogram,
    mel_filterbank,
)

# --- an independent reference: numpy framing + rfft, filters built one triangle at a time ---------


def _reference_slaney_mel(hz: float) -> float:
    if hz < 1000.0:
        return 3.0 * hz / 200.0
    return 15.0 + 27.0 * math.log(hz / 1000.0) / math.log(6.4)


def _reference_slaney_hz(mel: float) -> float:
    if mel < 15.0:
        return 200.0 * mel / 3.0
    return 1000.0 * 6.4 ** ((mel - 15.0) / 27.0)


def _reference_filters(sample_rate=16000, n_fft=1024, n_mels=64, f_max=8000.0) -> np.ndarray:
    bins = np.arange(n_fft // 2 + 1) * sample_rate / n_fft
    top = _reference_slaney_mel(f_max)
    edges = [_reference_slaney_hz(top * i / (n_mels + 1)) for i in range(n_mels + 2)]
    filters = np.zeros((n_mels, bins.size))
    for m in range(n_mels):
        low, centre, high = edges[m], edges[m + 1], edges[m + 2]
        for k, f in enumerate(bins):
            if low < f <= centre:
                filters[m, k] = (f - low) / (centre - low)
            elif centre < f < high:
                filters[m, k] = (high - f) / (high - centre)
        filters[m] *= 2.0 / (high - low)  # Slaney: equal area per filter
    return filters


def _reference_log_mel(channel: np.ndarray) -> np.ndarray:
    n_fft, hop = 1024, 160
    padded = np.pad(channel, n_fft // 2, mode="reflect")
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann
    count = 1 + (padded.size - n_fft) // hop
    frames = np.stack([padded[i * hop : i * hop + n_fft] * window for i in range(count)])
    magnitude = np.abs(np.fft.rfft(frames, axis=1))  # [T, 513], power 1
    mel = magnitude @ _reference_filters().T  # [T, 64]
    return np.log(np.maximum(mel, 1e-5))


def test_filterbank_matches_the_reference_slaney_filters():
    ours = mel_filterbank()
    assert ours.shape == (64, 513)
    np.testing.assert_allclose(ours, _reference_filters(), rtol=1e-5, atol=1e-8)
    assert ours[:, -1].max() == 0.0  # nothing above f_max = 8 kHz (the Nyquist bin)


def test_log_mel_matches_reference_on_speechlike_stereo():
    rng = np.random.default_rng(7)
    seconds, rate = 1.0, 16000
    t = np.arange(int(seconds * rate)) / rate
    left = 0.4 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t)) + 0.05 * rng.standard_normal(t.size)
    right = 0.3 * np.sin(2 * np.pi * 1800 * t) + 0.02 * rng.standard_normal(t.size)
    waveform = torch.tensor(np.stack([left, right]), dtype=torch.float32)

    mel = log_mel_spectrogram(waveform)
    assert mel.shape == (1, 2, 101, 64)  # [B, stereo, frames, mel bins]; 1 s -> 101 frames
    for channel, signal in enumerate((left, right)):
        reference = _reference_log_mel(signal.astype(np.float32))
        np.testing.assert_allclose(mel[0, channel].numpy(), reference, atol=2e-3, rtol=1e-3)


def test_a_tone_lights_the_band_around_its_frequency_and_silence_hits_the_floor():
    rate = 16000
    t = np.arange(rate // 2) / rate
    tone = torch.tensor(np.stack([np.sin(2 * np.pi * 1000 * t)] * 2), dtype=torch.float32)
    mel = log_mel_spectrogram(tone)[0, 0, 10]
    centres = [_reference_slaney_hz(45.245640471924965 * (i + 1) / 65) for i in range(64)]
    expected_band = int(np.argmin([abs(c - 1000) for c in centres]))
    assert abs(int(mel.argmax()) - expected_band) <= 1
    silence = log_mel_spectrogram(torch.zeros(2, rate // 2))
    assert torch.allclose(silence, torch.full_like(silence, math.log(1e-5)))


@pytest.mark.parametrize(
    ("layout", "channels"),
    [("stereo", 2), ("mono", 1), ("5.1", 6)],
)
def test_decode_gives_16k_stereo_trimmed_to_the_requested_duration(make_clip, layout, channels):
    clip = make_clip(f"{layout}.mp4", frames=24, fps=24, audio=layout, audio_rate=48000, tone_hz=440)
    decoded = decode_audio(clip, duration_s=0.75)
    assert decoded.sample_rate == 16000
    assert decoded.waveform.shape == (2, 12000)
    assert decoded.source_channels == channels
    left, right = decoded.waveform
    if layout == "mono":
        assert torch.equal(left, right)  # duplicated, not attenuated differently
    else:
        assert not torch.allclose(left, right, atol=1e-3)
    # The 440 Hz tone survives resampling from 48 kHz (left channel carries the base tone).
    spectrum = np.abs(np.fft.rfft(left[2000:10000].numpy()))
    peak_hz = np.argmax(spectrum) * 16000 / 8000
    if layout != "5.1":
        assert abs(peak_hz - 440) < 5


def test_decode_pads_short_audio_with_silence(make_clip):
    clip = make_clip("short-audio.mp4", frames=24, fps=24, audio="stereo", audio_seconds=0.5)
    decoded = decode_audio(clip, duration_s=1.0)
    assert decoded.waveform.shape == (2, 16000)
    assert decoded.waveform[:, 14000:].abs().max() == 0
    assert decoded.waveform[:, 2000:6000].abs().max() > 0.1


def test_clip_without_audio_track_is_an_error_naming_it(make_clip):
    clip = make_clip("no-sound.mp4", audio=None)
    with pytest.raises(NoAudioTrack, match="no-sound.mp4: the clip has no audio track"):
        decode_audio(clip)


def test_undecodable_file_is_an_error_naming_it(tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 100)
    with pytest.raises(AudioDecodeError, match="broken.mp4"):
        decode_audio(broken)
