"""Findings about voices and words, from what the speech layer stored and from the other clips."""

from types import SimpleNamespace

import numpy as np

from core.media.findings import SEVERITY_BY_CODE
from core.media.speech_findings import (
    other_speaker_finding,
    several_speakers_finding,
    transcript_mismatch_finding,
)
from core.media.voices import group_voices


def _clip(clip_id, vector):
    vector = np.asarray(vector, float)
    return SimpleNamespace(id=clip_id, analysis={"voice": {"embedding": list(vector / np.linalg.norm(vector))}})


def test_the_dataset_voice_is_the_largest_group_and_the_odd_one_is_scored_against_it():
    base = np.eye(4)
    clips = [_clip(1, base[0]), _clip(2, base[0] + 0.1 * base[1]), _clip(3, base[0] + 0.1 * base[2]),
             _clip(4, base[3]), SimpleNamespace(id=5, analysis={"voice": None})]
    groups = group_voices(clips)
    assert groups.main == {1, 2, 3}
    assert groups.summary() == {"distinct": 2, "clips_with_voice": 4, "main_voice_clips": 3}
    assert groups.similarity_to_main[4] < 0.1 < 0.9 < groups.similarity_to_main[2]
    finding = other_speaker_finding(groups.similarity_to_main[4])
    assert finding.code == "other_speaker" and finding.severity == SEVERITY_BY_CODE["other_speaker"] == "warning"


def test_several_speakers_names_each_voice_with_its_times():
    one = {"voice": {"turns": []}}
    two = {"voice": {"turns": [{"start_s": 0.2, "end_s": 2.0, "voice": 0}, {"start_s": 2.5, "end_s": 4.0, "voice": 1}]}}
    assert several_speakers_finding(one) is None and several_speakers_finding(None) is None
    finding = several_speakers_finding(two)
    assert finding.code == "several_speakers" and "2.5-4.0 s (voice 2)" in finding.message
    assert finding.detail["voices"] == 2


def test_a_typed_transcript_other_than_what_is_heard_is_flagged_as_info():
    speech = {"heard": "please call me tomorrow morning"}
    assert transcript_mismatch_finding("please call me tomorrow morning.", "user", speech) is None
    assert transcript_mismatch_finding("the weather is nice", "auto", speech) is None  # the recogniser's own
    assert transcript_mismatch_finding("the weather is nice", "user", None) is None  # nothing heard yet
    finding = transcript_mismatch_finding("the weather is nice on the island", "user", speech)
    assert finding.severity == "info" and finding.detail["wer"] >= 0.5
    assert finding.detail["heard"] == "please call me tomorrow morning"
