"""Numbers a clip's card, page and findings agree on: its duration (frames at the rate the trainer
reads them), an SNR only when there is a noise floor to measure, and noise found even when it
hides the voice from the VAD (issue 19)."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from core.media import analysis
from core.media.findings import clip_seconds, compute_findings, format_seconds
from core.recipe import qa_rules
from tests.media_factory import speech_samples
from tests.unit.media.conftest import TEST_BUCKETS

TRANSCRIPT = "I think we should start again from the beginning."


def _codes(result) -> set[str]:
    return {f["code"] for f in compute_findings(result.to_dict(), TEST_BUCKETS, None, TRANSCRIPT)}


def test_a_one_frame_clip_lasts_one_frame_not_zero_seconds(media, analysed):
    result = analysed(media.one_frame_video(audio="none"))
    seconds = clip_seconds(result.probe)
    assert seconds == pytest.approx(0.04)
    assert format_seconds(seconds) == "0.04 s"


def test_a_variable_rate_clip_names_the_length_the_trainer_reads(media, analysed):
    # Read from a real VFR file, then given the header rates some phones write: 100 frames whose
    # rate reads as 41.7 fps, in a file that plays 4.02 s (what a newcomer saw: 4.02 s on the card,
    # 2.4 s in the finding).
    probe = copy.deepcopy(analysed(media.clip(variable_frame_rate=True)).probe)
    probe["video"].update(fps=41.667, frame_count=100, duration=4.02)
    probe["duration"] = 4.02
    assert clip_seconds(probe) == pytest.approx(2.4, abs=0.01)
    findings = compute_findings({"probe": probe}, TEST_BUCKETS, None, TRANSCRIPT)
    vfr = next(f for f in findings if f["code"] == "variable_frame_rate")
    assert "plays for 4.02 s" in vfr["message"] and "as 2.40 s" in vfr["message"]
    assert vfr["detail"]["seconds"] == 2.4 and vfr["detail"]["plays_seconds"] == 4.02
    short = next(f for f in findings if f["code"] == "duration_outside_recommended")
    assert "2.40 s long" in short["message"] and short["detail"]["seconds"] == 2.4


def test_a_clean_clip_has_no_snr_instead_of_a_capped_99_db(media, analysed):
    audio = analysed(media.talking_clip()).audio
    assert audio["snr_db"] is None and audio["noise_floor_dbfs"] is None
    assert "no noise floor" in audio["snr_reason"]
    # speech over a real (quiet) room tone still gets a number, and no cap
    rng = np.random.default_rng(1)
    speech = 0.5 * speech_samples(TRANSCRIPT, analysis.ANALYSIS_RATE)
    voiced = np.concatenate([np.zeros(8000, np.float32), speech, np.zeros(8000, np.float32)])
    room = (voiced + 10 ** (-70 / 20) * rng.standard_normal(voiced.size)).astype(np.float32)
    is_speech, masked = analysis.speech_frames(room)
    snr, reason = analysis.estimate_snr(room, is_speech)
    assert 30 < snr < 80 and reason is None and not masked


def test_speech_buried_under_loud_noise_is_noisy_audio_not_low_speech(media, analysed):
    buried = analysed(media.clip(audio="buried"))
    assert buried.audio["speech_masked_by_noise"] and buried.audio["speech_ratio"] > qa_rules.LOW_SPEECH_RATIO
    assert buried.audio["noise_floor_dbfs"] > -20 and buried.audio["snr_db"] < qa_rules.NOISY_SNR_DB
    codes = _codes(buried)
    assert "noisy_audio" in codes and "low_speech" not in codes
    finding = next(f for f in compute_findings(buried.to_dict(), TEST_BUCKETS, None, TRANSCRIPT)
                   if f["code"] == "noisy_audio")
    assert "masks the voice" in finding["message"] and finding["detail"]["speech_masked_by_noise"]
    # noise alone stays "little speech": stray detections in a noise-reduced copy are not a voice
    noise = analysed(media.clip(audio="noise"))
    assert not noise.audio["speech_masked_by_noise"] and "low_speech" in _codes(noise)
