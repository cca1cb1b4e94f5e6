"""The voice measures of a validation sample on espeak-ng speech made at test time: speaker
similarity to the training voice, word error rate against the prompt's words, DNSMOS quality,
and a reason instead of a number when there is nothing to measure."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.media.sample_metrics import measure_sample
from core.media.voices import mean_voice
from tests.unit.speech.conftest import SENTENCES, VOICE_A, VOICE_B, silence, synth, write_wav
from worker.speech.cli import main
from worker.speech.quality import speech_quality
from worker.speech.sample_voice import NO_REFERENCE, NO_SPEECH_PART, voice_measures
from worker.speech.speaker import embed_voice

RATE = 16000
PROMPT = f'ema_voice, a man at a table. Speech: "{SENTENCES[4]}". Sounds: a quiet room.'


def _padded(audio: np.ndarray) -> np.ndarray:
    return np.concatenate([silence(0.3), 0.7 * audio / np.abs(audio).max(), silence(0.3)]).astype(np.float32)


def _buzzed(audio: np.ndarray, below_peak_db: float = 12.0) -> np.ndarray:
    t = np.arange(audio.size) / RATE
    return np.clip(audio + 0.7 * 10 ** (-below_peak_db / 20) * np.sign(np.sin(2 * np.pi * 100.0 * t)), -1, 1)


def _noisy(audio: np.ndarray, snr_db: float = 5.0) -> np.ndarray:
    noise = np.random.default_rng(0).standard_normal(audio.size)
    noise *= np.sqrt(np.mean(audio ** 2) / np.mean(noise ** 2)) * 10 ** (-snr_db / 20)
    return np.clip(audio + noise, -1, 1).astype(np.float32)


@pytest.fixture(scope="module")
def reference():
    """The training voice: unit mean of VOICE_A's embeddings of four other sentences."""
    return [float(x) for x in mean_voice(embed_voice(synth(s, VOICE_A), RATE) for s in SENTENCES[:4])]


def _measures(tmp_path, name: str, audio: np.ndarray, prompt: str | None = PROMPT, reference=None) -> dict:
    path = write_wav(tmp_path / f"{name}.wav", audio)
    return voice_measures(path, measure_sample(path), prompt, reference)


def test_a_sample_in_the_training_voice_is_more_similar_than_another_voice(tmp_path, reference):
    same = _measures(tmp_path, "same", _padded(synth(SENTENCES[4], VOICE_A)), reference=reference)
    other = _measures(tmp_path, "other", _padded(synth(SENTENCES[4], VOICE_B)), reference=reference)
    # measured: 0.82 (en-us+m3, the training voice) vs 0.54 (en-us+f4); over four sentences 0.81-0.87
    # vs 0.53-0.59 (and 0.74-0.82 for espeak-ng's default en-us voice)
    assert same["speaker_similarity"] >= 0.75 > other["speaker_similarity"]
    assert same["speaker_similarity"] - other["speaker_similarity"] > 0.15
    assert same["voice_reasons"] == {} and other["voice_reasons"] == {}


def test_a_sample_saying_the_prompts_words_has_the_lower_word_error_rate(tmp_path):
    said = _measures(tmp_path, "said", _padded(synth(SENTENCES[4])))
    other = _measures(tmp_path, "other_words", _padded(synth(SENTENCES[5])))
    assert said["expected"] == SENTENCES[4] and "window" in said["heard"]
    assert said["wer"] <= 0.15 < 0.6 <= other["wer"]  # measured: 0.0 vs 1.14 ("i need to buy some bread and real")
    assert said["speaker_similarity"] is None and said["voice_reasons"] == {"speaker_similarity": NO_REFERENCE}


def test_buzz_or_noise_lowers_the_speech_quality():
    clean = _padded(np.concatenate([synth(s, VOICE_A) for s in SENTENCES[4:6]]))
    scores = {name: speech_quality(audio, RATE) for name, audio in
              (("clean", clean), ("buzz", _buzzed(clean)), ("noise", _noisy(clean)))}
    # measured (DNSMOS OVRL / SIG / BAK): clean 2.78 / 3.08 / 3.82; a 100 Hz buzz 12 dB under the
    # peak 1.07 / 1.13 / 1.10; white noise at 5 dB SNR 1.87 / 3.31 / 1.72 (the speech itself still
    # rates well, its background does not). Milder: buzz 30 dB under 2.38, noise at 20 dB SNR 2.48.
    assert scores["clean"]["quality_mos"] > 2.5
    assert scores["buzz"]["quality_mos"] < scores["clean"]["quality_mos"] - 1.0
    assert scores["noise"]["quality_mos"] < scores["clean"]["quality_mos"] - 0.6
    assert scores["noise"]["quality_bak"] < scores["clean"]["quality_bak"] - 1.5  # the background got worse
    assert all(1.0 <= value <= 5.0 for s in scores.values() for value in s.values())


def test_no_speech_gives_reasons_not_numbers(tmp_path, reference):
    noise = (0.3 * np.random.default_rng(1).standard_normal(2 * RATE)).astype(np.float32)
    measured = _measures(tmp_path, "noise", noise, reference=reference)
    assert {k: measured[k] for k in ("speaker_similarity", "wer", "quality_mos", "heard")} == dict.fromkeys(
        ("speaker_similarity", "wer", "quality_mos", "heard"))
    assert set(measured["voice_reasons"]) == {"speaker_similarity", "wer", "quality_mos"}
    assert all(r.startswith("no speech in the sample") for r in measured["voice_reasons"].values())

    silent = _measures(tmp_path, "no_words", _padded(synth(SENTENCES[4])), prompt="ema_voice, a man nods.",
                       reference=reference)
    assert silent["wer"] is None and silent["voice_reasons"] == {"wer": NO_SPEECH_PART}
    assert silent["speaker_similarity"] is not None and silent["quality_mos"] is not None
    assert voice_measures("x.wav", {"error": "unreadable"}, PROMPT, reference) == {}


def test_quality_cli_json_and_too_short_audio(capsys, tmp_path):
    path = write_wav(tmp_path / "q.wav", _padded(synth(SENTENCES[6])))
    assert main(["speech", "quality", path, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"quality_mos", "quality_sig", "quality_bak"} and 1 <= result["quality_mos"] <= 5
    assert main(["speech", "quality", path]) == 0 and "overall" in capsys.readouterr().out
    assert main(["speech", "quality", write_wav(tmp_path / "blip.wav", silence(0.05))]) == 2
    assert "too little audio" in capsys.readouterr().err
