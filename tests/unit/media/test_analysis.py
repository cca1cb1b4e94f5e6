"""Audio analysis values on generated signals with known properties."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.media.analysis import AudioDecodeError, analyze_audio, decode_audio, true_peak
from core.recipe import qa_rules

REPO_ROOT = Path(__file__).resolve().parents[3]


def _analyse(path):
    return analyze_audio(decode_audio(path))


def test_loudness_and_peak_of_a_known_tone(media):
    # BS.1770: a 1 kHz sine in one channel reads 3.01 dB below its peak level.
    tone = media.clip(container="mkv", audio_codec="pcm_s16le", audio="tone", level_dbfs=-20.0,
                      channels="mono", duration=2.0)
    result = _analyse(tone)
    assert result.integrated_lufs == pytest.approx(-23.0, abs=0.3)
    assert result.sample_peak_dbfs == pytest.approx(-20.0, abs=0.1)
    assert result.true_peak_dbfs == pytest.approx(-20.0, abs=0.2)
    assert result.silence_ratio == 0.0 and result.clipping_ratio == 0.0


def test_clipping_ratio_of_a_clipped_sine(media):
    clipped = media.clip(container="mkv", audio_codec="pcm_s16le", audio="clipped_tone", channels="mono",
                         duration=1.0)
    # 2*sin(x) reaches the clipped-sample level for |sin(x)| >= level/2.
    expected = 1 - 2 / math.pi * math.asin(qa_rules.CLIPPED_SAMPLE_LEVEL / 2)
    assert _analyse(clipped).clipping_ratio == pytest.approx(expected, abs=0.01)


def test_clipping_survives_lossy_audio(media):
    # AAC turns flat tops into ripples; the ratio must still be well above the warning line.
    assert _analyse(media.clip(audio="clipped")).clipping_ratio > 3 * qa_rules.CLIPPING_RATIO_WARN
    assert _analyse(media.clip(level_dbfs=-0.5)).clipping_ratio < qa_rules.CLIPPING_RATIO_WARN


def test_speech_ratio_high_on_speech_and_near_zero_on_noise(media):
    speech = _analyse(media.talking_clip())
    noise = _analyse(media.clip(audio="noise"))
    assert speech.speech_ratio > 0.6 and speech.speech_seconds > 2.0
    assert noise.speech_ratio < 0.05
    assert noise.snr_db is None  # no speech, nothing to compare the noise with


def test_snr_separates_clean_and_noisy_speech(media):
    clean = _analyse(media.talking_clip())
    noisy = _analyse(media.clip(audio="noisy"))
    assert clean.snr_db is None  # digital silence between the words: no noise floor (test_noise.py)
    assert noisy.snr_db < qa_rules.NOISY_SNR_DB
    assert noisy.speech_ratio > 0.5  # the voice is still found under the noise


def test_silence(media):
    silent = _analyse(media.clip(audio="silent", duration=1.0))
    assert silent.silence_ratio == 1.0
    assert silent.sample_peak_dbfs is None and silent.integrated_lufs is None
    assert silent.speech_ratio == 0.0


def test_surround_keeps_its_channels(media):
    result = _analyse(media.clip(channels="5.1", duration=1.0))
    assert result.channels == 6 and result.integrated_lufs is not None


def test_undecodable_audio_raises(media):
    with pytest.raises(AudioDecodeError) as caught:
        decode_audio(media.undecodable_audio())
    assert caught.value.detail["failed_packets"] > 0


def test_no_audio_stream_gives_none(media):
    assert decode_audio(media.clip(audio="none", duration=1.0)) is None


def test_analysis_never_imports_torch(media):
    # The web process imports app/: the whole media pipeline must run without torch.
    code = (
        "import json, sys\n"
        "from core.media.pipeline import analyze_clip\n"
        f"result = analyze_clip({str(media.talking_clip())!r}, {str(media.root / 'no-torch')!r}, '64x64x49')\n"
        "print(json.dumps({'torch': 'torch' in sys.modules, 'speech': result.audio['speech_ratio']}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["torch"] is False and report["speech"] > 0.5


def test_true_peak_sees_inter_sample_peaks():
    # A sine at a quarter of the sample rate, sampled 45 degrees off its crests: every sample
    # reads 0.707 (-3 dBFS) while the waveform between samples reaches 1.0 (0 dBFS).
    n = np.arange(48_000)
    signal = np.sin(2 * np.pi * n / 4 + np.pi / 4)[None].astype(np.float32)
    assert np.abs(signal).max() == pytest.approx(0.707, abs=0.001)
    assert true_peak(signal) == pytest.approx(1.0, abs=0.02)
    assert true_peak(signal, chunk_samples=1000) == pytest.approx(true_peak(signal), abs=1e-6)


def test_analysis_stops_at_the_limit_and_says_so(media):
    decoded = decode_audio(media.clip(duration=11.0, fps=8), max_seconds=3.0)
    assert decoded.duration == pytest.approx(3.0, abs=0.01)
    assert decoded.mono_16k.size == pytest.approx(48_000, abs=10)
    assert analyze_audio(decoded).truncated_to_seconds == pytest.approx(3.0, abs=0.01)
