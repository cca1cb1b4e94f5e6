"""Findings that depend on more than one clip's file: recomputed from stored analyses.

A clip's findings follow from its stored analysis (:mod:`core.media.pipeline`), the dataset's
buckets, the other clips' content hashes (``duplicate_clip``) and its caption's transcript
(``missing_transcript``). Whenever one of those changes, :func:`refresh_dataset_findings`
recomputes every clip of the dataset cheaply (no decoding) and sets ready/rejected.
"""

from __future__ import annotations

from collections import defaultdict

from core.media import speech_findings
from core.media.findings import SEVERITY_BY_CODE, ClipFinding, clip_status, compute_findings
from core.media.voices import group_voices
from core.models import Clip, ClipStatus, Dataset
from core.recipe import qa_rules

ANALYSED_STATES = (ClipStatus.ready.value, ClipStatus.rejected.value)
MIN_CLIPS_FOR_MAIN_VOICE = 3  # with fewer clips there is no majority to differ from

# What a page shows first for each finding code: words. The code follows, small, for the API
# and for searching the docs.
FINDING_LABELS: dict[str, str] = {
    "not_media": "Not a video file",
    "corrupt_media": "Damaged file",
    "no_video_stream": "No video",
    "no_audio_track": "No audio track",
    "silent_audio": "Silent audio",
    "audio_decode_failed": "Audio cannot be decoded",
    "too_short_for_buckets": "Too short for the buckets",
    "duration_outside_recommended":
        f"Length outside {qa_rules.RECOMMENDED_MIN_SECONDS:g}-{qa_rules.RECOMMENDED_MAX_SECONDS:g} s",
    "long_clip": "Long clip",
    "mono_audio": "Mono audio",
    "surround_audio": "Surround audio",
    "clipping": "Clipping",
    "low_loudness": "Too quiet",
    "noisy_audio": "Noisy audio",
    "low_speech": "Little speech",
    "variable_frame_rate": "Variable frame rate",
    "low_resolution": "Low resolution",
    "duplicate_clip": "Duplicate file",
    "missing_transcript": "No transcript",
    "other_speaker": "Another speaker",
    "several_speakers": "Several speakers",
    "transcript_mismatch": "Transcript differs from the speech",
}


def finding_label(code: str) -> str:
    """A finding's name in words (``no_audio_track`` -> "No audio track")."""
    return FINDING_LABELS.get(code) or code.replace("_", " ").capitalize()


def _other_hashes(clip: Clip, by_hash: dict[str, list[Clip]]) -> dict[str, str]:
    others = [c for c in by_hash.get(clip.content_hash, []) if c is not clip]
    return {clip.content_hash: f"'{others[0].original_name}' (clip #{others[0].id})"} if others else {}


def clip_findings(clip: Clip, other_hashes: dict[str, str], voice_similarity: float | None = None) -> list[dict]:
    """Findings of one clip; before analysis only ``duplicate_clip`` can be known.
    ``voice_similarity``: set when the clip's voice is not the dataset's main voice."""
    if clip.analysis:
        transcript = clip.caption.transcript if clip.caption is not None else None
        found = compute_findings(clip.analysis, clip.dataset.buckets, other_hashes, transcript)
        return _with_speech_findings(clip, found, voice_similarity)
    if other_hashes:
        other = other_hashes[clip.content_hash]
        return [ClipFinding(
            "duplicate_clip",
            f"This file is byte-for-byte the same as {other} in this dataset; it would be trained "
            "twice as often. Delete one of them.",
            {"content_hash": clip.content_hash, "duplicate_of": other},
        ).to_dict()]
    return []


def _with_speech_findings(clip: Clip, found: list[dict], voice_similarity: float | None) -> list[dict]:
    caption = clip.caption
    extra = [
        speech_findings.several_speakers_finding(clip.analysis),
        speech_findings.other_speaker_finding(voice_similarity) if voice_similarity is not None else None,
        speech_findings.transcript_mismatch_finding(caption.transcript if caption else None,
                                                    caption.transcript_source if caption else None, clip.speech),
    ]
    found = found + [f.to_dict() for f in extra if f is not None]
    order = {"error": 0, "warning": 1, "info": 2}
    return sorted(found, key=lambda f: order[SEVERITY_BY_CODE.get(f["code"], "warning")])


def refresh_dataset_findings(dataset: Dataset) -> None:
    """Recompute findings (and ready/rejected) of every clip in ``dataset``; the caller commits."""
    by_hash: dict[str, list[Clip]] = defaultdict(list)
    for clip in dataset.clips:
        by_hash[clip.content_hash].append(clip)
    voices = group_voices(c for c in dataset.clips if c.split_into is None)
    for clip in dataset.clips:
        similarity = voices.similarity_to_main.get(clip.id)
        enough = voices.summary()["clips_with_voice"] >= MIN_CLIPS_FOR_MAIN_VOICE
        odd = similarity if (enough and clip.id not in voices.main and similarity is not None) else None
        findings = clip_findings(clip, _other_hashes(clip, by_hash), odd)
        clip.findings = findings
        if clip.status in ANALYSED_STATES:
            clip.status = clip_status(findings)
