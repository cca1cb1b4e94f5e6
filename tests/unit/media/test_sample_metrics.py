"""Per-sample audio metrics on generated signals with known answers, and checkpoint-vs-base flags."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile
from scipy.signal import resample_poly, square

from core.media.analysis import AudioDecodeError
from core.media.sample_metrics import (
    SampleAudioError,
    compare_to_base,
    measure_sample,
    metrics_series,
    voice_distance,
)
from core.recipe import qa_rules, sample_rules
from tests.media_factory import speech_samples

REPO_ROOT = Path(__file__).resolve().parents[3]
RATE = 16000
TEXTS = (
    "I think we should start again from the beginning.",
    "The weather was bright and the river was calm all morning.",
    "Please bring the red box to the kitchen before dinner.",
)


def _seconds(duration: float) -> np.ndarray:
    return np.arange(int(duration * RATE)) / RATE


def _tone(hz: float = 997.0, amplitude: float = 0.5, duration: float = 3.0) -> np.ndarray:
    return (amplitude * np.sin(2 * np.pi * hz * _seconds(duration))).astype(np.float32)


def _white_noise(amplitude: float = 0.3, duration: float = 3.0, seed: int = 0) -> np.ndarray:
    return (amplitude * np.random.default_rng(seed).standard_normal(int(duration * RATE))).astype(np.float32)


def _buzz(hz: float = 100.0, amplitude: float = 0.01, duration: float = 3.0) -> np.ndarray:
    """A buzzing square wave (odd harmonics of ``hz``), the sound of a bad vocoder or mains hum."""
    return (amplitude * square(2 * np.pi * hz * _seconds(duration))).astype(np.float32)


def _speech(text: str = TEXTS[0]) -> np.ndarray:
    """espeak-ng's default voice at 16 kHz, peak -3 dBFS."""
    return 0.7 * speech_samples(text, RATE)


def _espeak_voice(text: str, voice: str) -> np.ndarray:
    """espeak-ng with another voice (e.g. the female variant ``en+f3``), 16 kHz, peak -3 dBFS."""
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "voice.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(wav), text], check=True, capture_output=True)
        data, rate = soundfile.read(str(wav), dtype="float32")
    divisor = math.gcd(rate, RATE)
    data = resample_poly(data, RATE // divisor, rate // divisor)
    return (0.7 * data / np.abs(data).max()).astype(np.float32)


def _with(speech: np.ndarray, extra: np.ndarray) -> np.ndarray:
    """``speech`` with ``extra`` (at least as long) mixed under it."""
    assert extra.size >= speech.size
    return speech + extra[: speech.size]


@pytest.fixture(scope="module")
def speech_metrics():
    """Metrics of the default espeak-ng speech (the "base model" sample of the flag tests)."""
    return measure_sample((_speech(), RATE))


# ---------------------------------------------------------------- flatness and buzz


def test_pure_tone_is_tonal_and_not_flat():
    metrics = measure_sample((_tone(), RATE))
    assert metrics["spectral_flatness"] < 0.01
    assert metrics["buzz_score_db"] >= sample_rules.BUZZ_TONAL_DB + 20
    assert metrics["buzz_hz"] == pytest.approx(997, abs=1)


def test_buzzing_square_wave_scores_high_at_its_fundamental():
    metrics = measure_sample((_buzz(amplitude=0.5), RATE))
    assert metrics["buzz_score_db"] >= sample_rules.BUZZ_TONAL_DB + 20
    assert metrics["buzz_hz"] == pytest.approx(100, abs=1)


def test_white_noise_is_flat_and_not_tonal():
    metrics = measure_sample((_white_noise(), RATE))
    # Bins of a white-noise periodogram are exponentially distributed: flatness exp(-gamma) = 0.56.
    assert metrics["spectral_flatness"] == pytest.approx(0.56, abs=0.04)
    assert metrics["speech_band_flatness"] == pytest.approx(0.56, abs=0.04)
    assert metrics["buzz_score_db"] < sample_rules.BUZZ_TONAL_DB / 2


def test_clean_speech_is_neither_flat_nor_tonal(speech_metrics):
    assert speech_metrics["spectral_flatness"] < 0.05
    assert speech_metrics["buzz_score_db"] < sample_rules.BUZZ_TONAL_DB


def test_buzz_under_speech_is_found():
    # A 100 Hz buzz 31 dB under the voice's peak: quiet, but there all the time.
    metrics = measure_sample((_with(_speech(), _buzz(amplitude=0.02, duration=5.0)), RATE))
    assert metrics["buzz_score_db"] >= sample_rules.BUZZ_TONAL_DB
    assert metrics["buzz_hz"] == pytest.approx(100, abs=1)


# ---------------------------------------------------------------- levels, clipping, speech


def test_loudness_and_peak_of_a_known_tone():
    # BS.1770: a 1 kHz sine in one channel reads 3.01 dB below its peak level.
    metrics = measure_sample((_tone(1000.0, amplitude=10 ** (-20 / 20)), RATE))
    assert metrics["integrated_lufs"] == pytest.approx(-23.0, abs=0.3)
    assert metrics["sample_peak_dbfs"] == pytest.approx(-20.0, abs=0.05)
    assert metrics["duration"] == pytest.approx(3.0) and metrics["channels"] == 1


def test_clipping_detected_on_a_clipped_signal_and_not_on_a_clean_one():
    clean = measure_sample((_tone(amplitude=0.89), RATE))  # -1 dBFS
    clipped = measure_sample((np.clip(2 * _tone(amplitude=1.0), -1, 1), RATE))
    assert clean["clipping_ratio"] == 0.0
    # 2*sin(x) reaches the clipped-sample level for |sin(x)| >= level/2.
    expected = 1 - 2 / math.pi * math.asin(qa_rules.CLIPPED_SAMPLE_LEVEL / 2)
    assert clipped["clipping_ratio"] == pytest.approx(expected, abs=0.01)


def test_speech_ratio_high_on_speech_and_near_zero_on_noise(speech_metrics):
    noise = measure_sample((_white_noise(), RATE))
    assert speech_metrics["speech_ratio"] > 0.6
    assert noise["speech_ratio"] < 0.05 and noise["snr_db"] is None


def test_silence_has_no_loudness_flatness_or_voice():
    metrics = measure_sample((np.zeros(2 * RATE, np.float32), RATE))
    assert metrics["integrated_lufs"] is None and metrics["sample_peak_dbfs"] is None
    assert metrics["spectral_flatness"] is None and metrics["mfcc"] is None
    assert metrics["buzz_score_db"] == 0.0 and metrics["speech_ratio"] == 0.0


def test_measures_a_stereo_aac_media_file(media):
    metrics = measure_sample(media.talking_clip())  # 48 kHz stereo AAC in MP4
    assert metrics["sample_rate"] == 48000 and metrics["channels"] == 2
    assert metrics["speech_ratio"] > 0.6 and metrics["mfcc"]["source"] == "speech"
    assert metrics["buzz_score_db"] < sample_rules.BUZZ_TONAL_DB
    json.dumps(metrics)  # stored as JSON on the sample


def test_a_wav_file_measures_like_its_samples(tmp_path):
    # The engine writes each sample's audio as a WAV: 24 kHz from the LTX-2.0 vocoder (2.3: 48 kHz).
    speech = resample_poly(_speech(), 3, 2).astype(np.float32)
    wav = tmp_path / "sample.wav"
    soundfile.write(str(wav), speech, 24000, subtype="FLOAT")
    from_file, from_array = measure_sample(wav), measure_sample((speech, 24000))
    assert from_file["sample_rate"] == 24000 and from_file["duration"] == from_array["duration"]
    for name in ("integrated_lufs", "sample_peak_dbfs", "clipping_ratio", "speech_ratio"):
        assert from_file[name] == from_array[name], name
    assert from_file["buzz_score_db"] == pytest.approx(from_array["buzz_score_db"], abs=1.0)
    assert voice_distance(from_file, [from_array]) < 0.1


def test_array_layouts_give_the_same_answer():
    stereo = np.stack([_tone(), _tone()])
    assert measure_sample((stereo, RATE)) == measure_sample((stereo.T.copy(), RATE))


def test_bad_input_gets_a_clear_message(media):
    with pytest.raises(SampleAudioError, match="NaN"):
        measure_sample((np.full(RATE, np.nan, np.float32), RATE))
    with pytest.raises(SampleAudioError, match="not empty"):
        measure_sample((np.zeros(0, np.float32), RATE))
    with pytest.raises(SampleAudioError, match="sample rate"):
        measure_sample((_tone(), 0))
    with pytest.raises(SampleAudioError, match="no audio stream"):
        measure_sample(media.clip(audio="none", duration=1.0))
    with pytest.raises(AudioDecodeError):
        measure_sample(media.text_file())


# ---------------------------------------------------------------- voice distance


@pytest.fixture(scope="module")
def training_voice():
    """Two "training clips": espeak-ng's default voice saying two other lines."""
    return [measure_sample((_speech(text), RATE)) for text in TEXTS[1:]]


def test_voice_distance_is_smaller_for_the_same_voice(speech_metrics, training_voice):
    same = voice_distance(speech_metrics, training_voice)
    other_voice = voice_distance(measure_sample((_espeak_voice(TEXTS[0], "en+f3"), RATE)), training_voice)
    noise = voice_distance(measure_sample((_white_noise(), RATE)), training_voice)
    assert same < other_voice / 2
    assert same < noise / 4
    assert voice_distance(speech_metrics, [speech_metrics]) == pytest.approx(0.0, abs=1e-3)


def test_voice_distance_reads_stored_metrics_and_ignores_loudness(speech_metrics, training_voice):
    stored = json.loads(json.dumps(speech_metrics))
    assert voice_distance(stored, training_voice) == voice_distance(speech_metrics, training_voice)
    quieter = measure_sample((0.1 * _speech(), RATE))  # 20 dB down: same voice
    assert voice_distance(quieter, [speech_metrics]) < 0.1
    silent = measure_sample((np.zeros(RATE, np.float32), RATE))
    assert voice_distance(silent, training_voice) is None
    with pytest.raises(ValueError, match="at least one reference"):
        voice_distance(speech_metrics, [])


# ---------------------------------------------------------------- checkpoint vs base


def _codes(flags):
    return sorted(flag["code"] for flag in flags)


def test_base_against_itself_is_not_flagged(speech_metrics):
    assert compare_to_base(speech_metrics, speech_metrics) == []


def test_buzz_added_to_speech_is_flagged(speech_metrics):
    buzzing = measure_sample((_with(_speech(), _buzz(amplitude=0.02, duration=5.0)), RATE))
    flags = compare_to_base(buzzing, speech_metrics)
    assert _codes(flags) == ["buzz"]
    assert flags[0]["severity"] == "error" and "100 Hz" in flags[0]["message"]
    assert compare_to_base(speech_metrics, buzzing) == []  # the base is not worse than the sample


def test_noise_clipping_loudness_and_lost_speech_are_flagged(speech_metrics):
    speech = _speech()
    cases = [
        (_with(speech, _white_noise(amplitude=0.03, duration=5.0)), ["noise"]),  # about 10 dB SNR
        (_with(speech, _white_noise(amplitude=0.003, duration=5.0)), []),  # about 30 dB SNR: fine
        (np.clip(4 * speech, -1, 1), ["clipping", "loudness_blown_up"]),
        (0.05 * speech, ["loudness_dropped"]),
        (0.5 * speech, []),  # 6 dB quieter: a level change, not a collapse
        (np.zeros_like(speech), ["audio_silent", "speech_lost"]),
        (_white_noise(amplitude=0.1, duration=5.0), ["noise", "speech_lost"]),  # noise instead of a voice
        (np.clip(_white_noise(amplitude=0.5, duration=5.0), -1, 1),
         ["clipping", "loudness_blown_up", "noise", "speech_lost"]),
    ]
    for index, (signal, expected) in enumerate(cases):
        flags = compare_to_base(measure_sample((signal, RATE)), speech_metrics)
        assert _codes(flags) == expected, f"case {index}: {flags}"
        assert all(flag["message"] and flag["severity"] in ("error", "warning") for flag in flags)


def test_voice_similarity_quality_and_intelligibility_flags():
    """The worker's voice measures (worker/speech/sample_voice.py) against the base's, by the
    thresholds of sample_rules; a measure that is None on either side is skipped."""
    base = {"speaker_similarity": 0.80, "quality_mos": 2.9, "wer": 0.1}
    line = sample_rules.SPEAKER_SIMILARITY_MIN
    cases = [
        ({"speaker_similarity": 0.86, "quality_mos": 2.8, "wer": 0.2}, []),  # closer to them, same quality
        ({"speaker_similarity": 0.54}, ["voice_moved_away"]),  # another voice than the base's
        ({"speaker_similarity": line - 0.01}, ["voice_not_theirs"]),  # under the line, near the base
        ({"quality_mos": 2.9 - sample_rules.QUALITY_MOS_DROP}, ["quality_dropped"]),
        ({"quality_mos": 2.9 - sample_rules.QUALITY_MOS_DROP + 0.05}, []),
        ({"wer": 0.1 + sample_rules.WER_RISE}, ["intelligibility_dropped"]),
        ({"wer": 0.1 + sample_rules.WER_RISE - 0.05}, []),
        ({"speaker_similarity": None, "quality_mos": None, "wer": None}, []),  # no speech: nothing to compare
    ]
    for index, (sample, expected) in enumerate(cases):
        flags = compare_to_base(sample, base)
        assert _codes(flags) == expected, f"case {index}: {flags}"
        assert all(flag["severity"] == "warning" and flag["detail"]["metric"] in base for flag in flags)
    # the base without a similarity (no speech in it): only the fixed line counts
    assert _codes(compare_to_base({"speaker_similarity": 0.5}, {"speaker_similarity": None})) == ["voice_not_theirs"]
    assert compare_to_base(base, base) == []


# ---------------------------------------------------------------- series for plots


def test_metrics_series_groups_by_variant_and_averages_prompts():
    samples = [
        {"variant": "lora", "step": 200, "metrics": {"buzz_score_db": 30.0, "mfcc": {"mean": []}}},
        {"variant": "lora", "step": 100, "metrics": {"buzz_score_db": 10.0, "integrated_lufs": None}},
        {"variant": "lora", "step": 200, "metrics": {"buzz_score_db": 40.0}},
        SimpleNamespace(variant="base", step=None, metrics={"buzz_score_db": 12.0, "voice_distance": 0.5}),
    ]
    assert metrics_series(samples) == {
        "lora": {"buzz_score_db": [(100, 10.0), (200, 35.0)]},
        "base": {"buzz_score_db": [(0, 12.0)], "voice_distance": [(0, 0.5)]},
    }
    with pytest.raises(ValueError, match="step"):
        metrics_series([{"variant": "lora", "metrics": {}}])


def test_sample_metrics_never_import_torch():
    # The web process imports app/: the sample metrics must run without torch.
    code = (
        "import json, sys\nimport numpy as np\n"
        "from core.media.sample_metrics import measure_sample\n"
        "m = measure_sample((np.zeros(16000, np.float32), 16000))\n"
        "print(json.dumps({'torch': 'torch' in sys.modules}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"torch": False}
