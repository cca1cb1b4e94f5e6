"""Every finding code: a generated clip that raises it and one that does not."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

from core.media.findings import FINDING_CODES, SEVERITY_BY_CODE, compute_findings, summarize_dataset
from tests.unit.media.conftest import TEST_BUCKETS

TRANSCRIPT = "I think we should start again from the beginning."


@dataclass(frozen=True)
class Case:
    """A clip (MediaFactory method + fields) and the context its findings are computed in."""

    make: str = "clip"
    fields: dict = field(default_factory=dict)
    buckets: str = TEST_BUCKETS
    transcript: str | None = TRANSCRIPT
    duplicate_of_self: bool = False


TALKING = Case()
CASES: dict[str, tuple[Case, Case]] = {
    "not_media": (Case(make="text_file"), TALKING),
    "corrupt_media": (Case(make="truncated"), TALKING),
    "no_video_stream": (Case(make="audio_only"), TALKING),
    "no_audio_track": (Case(fields={"audio": "none"}), TALKING),
    "silent_audio": (Case(fields={"audio": "silent"}), TALKING),
    "audio_decode_failed": (Case(make="undecodable_audio"), TALKING),
    # 48 frames cannot fill a 49-frame bucket; exactly 49 can.
    "too_short_for_buckets": (Case(fields={"frames": 48}, buckets="64x64x49"),
                              Case(fields={"frames": 49}, buckets="64x64x49")),
    "duration_outside_recommended": (Case(fields={"duration": 2.0}), TALKING),
    "long_clip": (Case(fields={"duration": 11.0, "fps": 8}), TALKING),
    "mono_audio": (Case(fields={"channels": "mono", "sample_rate": 44100}), TALKING),
    "surround_audio": (Case(fields={"channels": "5.1"}), TALKING),
    "clipping": (Case(fields={"audio": "clipped"}), Case(fields={"level_dbfs": -0.5})),
    "low_loudness": (Case(fields={"audio": "quiet"}), TALKING),
    "noisy_audio": (Case(fields={"audio": "noisy"}), TALKING),
    "low_speech": (Case(fields={"audio": "noise"}), TALKING),
    "variable_frame_rate": (Case(fields={"variable_frame_rate": True}), TALKING),
    "low_resolution": (Case(buckets="128x128x49"), Case(buckets="64x64x49")),
    "duplicate_clip": (Case(duplicate_of_self=True), TALKING),
    "missing_transcript": (Case(transcript=""), Case(fields={"audio": "noise"}, transcript="")),
}


def _findings(case: Case, media, analysed) -> list[dict]:
    path = getattr(media, case.make)(**case.fields)
    analysis = analysed(path).to_dict()
    others = {"0" * 64: "other.mp4"}
    if case.duplicate_of_self:
        others[analysis["content_hash"]] = "first-upload.mp4"
    # Recompute from the JSON the database would store, with this case's buckets/transcript.
    stored = json.loads(json.dumps(analysis))
    return compute_findings(stored, case.buckets, others, case.transcript)


# Findings about voices and words come from the speech layer's results, not from one file's
# analysis: tests/unit/media/test_speech_findings.py and tests/unit/web/test_speech_api.py.
SPEECH_CODES = {"other_speaker", "several_speakers", "transcript_mismatch"}


def test_every_code_has_a_case():
    assert set(CASES) == set(FINDING_CODES) - SPEECH_CODES


@pytest.mark.parametrize("code", list(CASES))
def test_finding_raised(code, media, analysed):
    findings = _findings(CASES[code][0], media, analysed)
    matching = [f for f in findings if f["code"] == code]
    assert len(matching) == 1, findings
    finding = matching[0]
    assert finding["severity"] == SEVERITY_BY_CODE[code]
    assert isinstance(finding["detail"], dict) and len(finding["message"]) > 40


@pytest.mark.parametrize("code", list(CASES))
def test_finding_not_raised(code, media, analysed):
    findings = _findings(CASES[code][1], media, analysed)
    assert code not in {f["code"] for f in findings}, findings


def test_clean_talking_clip_has_no_findings(media, analysed):
    assert _findings(TALKING, media, analysed) == []


@pytest.mark.parametrize("make", ["damaged", "empty_file"])
def test_other_unusable_files_block_with_one_finding(make, media, analysed):
    findings = _findings(Case(make=make), media, analysed)
    assert [f["code"] for f in findings] == ["corrupt_media" if make == "damaged" else "not_media"]


def test_long_clip_is_not_also_outside_recommended(media, analysed):
    codes = {f["code"] for f in _findings(CASES["long_clip"][0], media, analysed)}
    assert "long_clip" in codes and "duration_outside_recommended" not in codes


def test_errors_come_first_and_set_status(media, analysed):
    result = analysed(media.clip(audio="silent"))
    assert result.status == "rejected"
    assert result.findings[0]["severity"] == "error"
    assert analysed(media.talking_clip()).status == "ready"


def test_too_short_message_names_frames_needed(media, analysed):
    findings = _findings(CASES["too_short_for_buckets"][0], media, analysed)
    finding = next(f for f in findings if f["code"] == "too_short_for_buckets")
    assert finding["detail"]["frames"] == 48 and finding["detail"]["min_frames"] == 49
    assert "49" in finding["message"]


def test_dataset_summary_groups_blocking_reasons():
    ok = [{"code": "mono_audio", "severity": "info", "message": "m", "detail": {}}]
    silent = [{"code": "silent_audio", "severity": "error", "message": "m", "detail": {}}]
    short = [{"code": "too_short_for_buckets", "severity": "error", "message": "m", "detail": {}},
             {"code": "silent_audio", "severity": "error", "message": "m", "detail": {}}]
    summary = summarize_dataset([("a.mp4", ok), ("b.mp4", silent), ("c.mp4", short), ("d.mp4", [])])
    assert (summary.clips, summary.trainable, summary.blocked) == (4, 2, 2)
    reasons = summary.to_dict()["blocked_reasons"]
    assert [r["code"] for r in reasons] == ["silent_audio", "too_short_for_buckets"]
    assert reasons[0]["count"] == 2 and reasons[0]["clips"] == ["b.mp4", "c.mp4"]
    assert "skips" in reasons[1]["impact"]
    assert summary.advice == [{"code": "mono_audio", "severity": "info", "count": 1, "clips": ["a.mp4"]}]
