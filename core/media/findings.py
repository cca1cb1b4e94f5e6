"""Clip QA findings: what is wrong with a clip, how bad it is, and what to do about it.

Findings are computed from the stored analysis JSON (see :mod:`core.media.pipeline`), the
dataset's buckets, the other clips' content hashes and the caption's transcript, so the web
process can recompute them cheaply whenever the buckets or the caption change (no decoding).

An ``error`` blocks the clip: it is what the trainer would drop (or, worse, train on silently
broken) and why. A ``warning`` is advice from the recipe; ``info`` is something we fix for you.
Thresholds come from :mod:`core.recipe.qa_rules`. Pure Python: no torch, no PyAV.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field

from core.recipe import qa_rules
from core.recipe.buckets import Bucket, coerce_buckets, fitting_buckets

ERROR, WARNING, INFO = "error", "warning", "info"

SEVERITY_BY_CODE: dict[str, str] = {
    "not_media": ERROR,
    "corrupt_media": ERROR,
    "no_video_stream": ERROR,
    "no_audio_track": ERROR,
    "silent_audio": ERROR,
    "audio_decode_failed": ERROR,
    "too_short_for_buckets": ERROR,
    "duration_outside_recommended": WARNING,
    "long_clip": WARNING,
    "mono_audio": INFO,
    "surround_audio": INFO,
    "clipping": WARNING,
    "low_loudness": WARNING,
    "noisy_audio": WARNING,
    "low_speech": WARNING,
    "variable_frame_rate": WARNING,
    "low_resolution": WARNING,
    "duplicate_clip": WARNING,
    "missing_transcript": WARNING,
    "other_speaker": WARNING,
    "several_speakers": WARNING,
    "transcript_mismatch": INFO,
}
FINDING_CODES: tuple[str, ...] = tuple(SEVERITY_BY_CODE)

# Why an error blocks training, in the words a dataset summary shows next to the count.
TRAINER_IMPACT: dict[str, str] = {
    "not_media": "the trainer cannot open the file",
    "corrupt_media": "the file is damaged: frames or audio would be missing",
    "no_video_stream": "an audio-video LoRA needs video frames",
    "no_audio_track": "without audio the clip would train the video side only (a silent failure in other tools)",
    "silent_audio": "silent audio teaches the model silence for this caption",
    "audio_decode_failed": "other trainers silently carry on without audio latents for such clips",
    "too_short_for_buckets": "the trainer skips clips shorter than every bucket with only a log line",
}
_SEVERITY_ORDER = {ERROR: 0, WARNING: 1, INFO: 2}


@dataclass(frozen=True)
class ClipFinding:
    """One QA finding: ``code`` from :data:`FINDING_CODES`, severity, message, details."""

    code: str
    message: str
    detail: dict = field(default_factory=dict)

    @property
    def severity(self) -> str:
        """``error`` | ``warning`` | ``info``, fixed per code."""
        return SEVERITY_BY_CODE[self.code]

    def to_dict(self) -> dict:
        """``{"code","severity","message","detail"}`` as stored and sent by the API."""
        return {"code": self.code, "severity": self.severity, "message": self.message, "detail": self.detail}


def compute_findings(
    analysis: Mapping,
    buckets: str | Iterable[Bucket] | Iterable[str],
    other_hashes: Mapping[str, str] | Iterable[str] | None = None,
    transcript: str | None = None,
) -> list[dict]:
    """Every finding for one clip, errors first, as JSON-ready dicts.

    ``analysis`` is :meth:`core.media.pipeline.ClipAnalysis.to_dict` (or the dict stored from it).
    ``buckets`` is the dataset's bucket string or list. ``other_hashes`` are the content hashes
    of the dataset's *other* clips (a mapping hash -> clip name gives a better message).
    ``transcript`` is the caption's transcript; ``None`` or blank means there is none yet.
    """
    found: list[ClipFinding] = []
    probe_error = analysis.get("probe_error")
    if probe_error:
        detail = dict(probe_error.get("detail") or {})
        found.append(ClipFinding(probe_error["code"], probe_error["message"], detail))
    else:
        probe = analysis["probe"]
        found += _video_findings(probe, coerce_buckets(buckets))
        if probe.get("video"):
            found += _audio_findings(probe, analysis.get("audio"), analysis.get("audio_error"), transcript)
    found += _duplicate_findings(analysis.get("content_hash"), other_hashes)
    found.sort(key=lambda f: _SEVERITY_ORDER[f.severity])
    return [f.to_dict() for f in found]


def is_blocked(findings: Iterable[Mapping]) -> bool:
    """True when any finding is an error (the clip must not be trained on)."""
    return any(f["severity"] == ERROR for f in findings)


def clip_status(findings: Iterable[Mapping]) -> str:
    """``rejected`` when a finding blocks the clip, else ``ready``."""
    return "rejected" if is_blocked(findings) else "ready"


# ------------------------------------------------------------------ video and duration


def _video_findings(probe: Mapping, buckets: list[Bucket]) -> list[ClipFinding]:
    video = probe.get("video")
    if not video:
        return [ClipFinding(
            "no_video_stream",
            "This file has audio but no video stream. An audio-video LoRA learns from both: upload "
            "the video the sound belongs to.",
            {"container": probe.get("container")},
        )]
    found: list[ClipFinding] = []
    width, height = video["display_width"], video["display_height"]
    frames, fps = video["frame_count"], video["fps"]
    fitting, reason = fitting_buckets(width, height, frames, buckets)
    if not fitting:
        shortest = min(buckets, key=lambda b: b.frames)
        seconds = shortest.frames / fps if fps else None
        need = f" (about {format_seconds(seconds)} at {fps:g} fps)" if seconds else ""
        found.append(ClipFinding(
            "too_short_for_buckets",
            f"The clip has {frames} frames but the smallest bucket needs {shortest.frames}{need}: "
            f"the trainer would skip it. Use a longer clip or add a bucket with fewer frames.",
            {"frames": frames, "min_frames": shortest.frames, "reason": reason,
             "buckets": [str(b) for b in buckets]},
        ))
    else:
        found += _resolution_findings(width, height, fitting[0])
    found += _duration_findings(clip_seconds(probe) or 0.0)
    if video.get("variable_frame_rate"):
        found.append(_variable_rate_finding(probe))
    return found


def _variable_rate_finding(probe: Mapping) -> ClipFinding:
    """Uneven frame spacing; when the file plays noticeably longer or shorter than its frames at
    the rate the trainer reads them, both numbers are named (the clip's duration is the latter)."""
    video = probe["video"]
    seconds, plays = clip_seconds(probe), video.get("duration") or probe.get("duration")
    differs = ""
    if seconds and plays and abs(plays - seconds) >= 1 / max(video["fps"], 1.0):
        differs = (f" The file plays for {format_seconds(plays)}, but the trainer reads its "
                   f"{video['frame_count']} frames at {video['fps']:g} fps as {format_seconds(seconds)}.")
    return ClipFinding(
        "variable_frame_rate",
        f"The frame rate varies ({video['frame_interval_spread']:.0%} of frame gaps are uneven).{differs} "
        "The trainer reads frames at a fixed rate, so picture and sound drift apart: re-export "
        "the clip at a constant frame rate.",
        {"fps": video["fps"], "irregular_interval_fraction": video["frame_interval_spread"],
         "seconds": round(seconds or 0.0, qa_rules.SECONDS_DECIMALS),
         "plays_seconds": round(plays, qa_rules.SECONDS_DECIMALS) if plays else None},
    )


def clip_seconds(probe: Mapping | None) -> float | None:
    """The clip's length as the trainer sees it: its video frames at the frame rate it reads them
    (``frame_count / fps``), else the container's duration (a file without video); None unknown.

    The one duration of a clip: its card, its page and its findings all show this number. The
    trainer keeps the first F frames at the native rate and cuts the audio to F / fps seconds,
    so for a variable-frame-rate file this can differ from how long the file plays.
    """
    probe = probe or {}
    video = probe.get("video") or {}
    if video.get("fps") and video.get("frame_count"):
        return video["frame_count"] / video["fps"]
    seconds = video.get("duration") or probe.get("duration")
    return float(seconds) if seconds is not None else None


def format_seconds(seconds: float | None) -> str:
    """A duration as every page writes it: two decimals (a one-frame clip is 0.04 s, not 0.0 s)."""
    return "" if seconds is None else f"{seconds:.{qa_rules.SECONDS_DECIMALS}f} s"


def _duration_findings(seconds: float) -> list[ClipFinding]:
    detail = {"seconds": round(seconds, qa_rules.SECONDS_DECIMALS),
              "recommended": [qa_rules.RECOMMENDED_MIN_SECONDS, qa_rules.RECOMMENDED_MAX_SECONDS]}
    if seconds > qa_rules.LONG_CLIP_SECONDS:
        return [ClipFinding(
            "long_clip",
            f"The clip is {format_seconds(seconds)} long (over {qa_rules.LONG_CLIP_SECONDS:g} s). Only its first "
            f"bucket-length frames are trained: split it (the studio proposes cuts at pauses) into "
            f"{qa_rules.RECOMMENDED_MIN_SECONDS:g}-"
            f"{qa_rules.RECOMMENDED_MAX_SECONDS:g} s clips, one spoken line each.",
            {**detail, "limit": qa_rules.LONG_CLIP_SECONDS, "action": "split"},
        )]
    if not qa_rules.RECOMMENDED_MIN_SECONDS <= seconds <= qa_rules.RECOMMENDED_MAX_SECONDS:
        return [ClipFinding(
            "duration_outside_recommended",
            f"The clip is {format_seconds(seconds)} long; {qa_rules.RECOMMENDED_MIN_SECONDS:g}-"
            f"{qa_rules.RECOMMENDED_MAX_SECONDS:g} s with one clear spoken line works best for a "
            "first audio-video LoRA. Trim it if you can.",
            detail,
        )]
    return []


def _resolution_findings(width: int, height: int, bucket: Bucket) -> list[ClipFinding]:
    # The trainer scales the clip to cover the bucket (aspect kept), then centre-crops.
    upscale = max(bucket.width / width, bucket.height / height)
    if upscale <= qa_rules.MAX_UPSCALE_WITHOUT_WARNING:
        return []
    return [ClipFinding(
        "low_resolution",
        f"The clip is {width}x{height}, smaller than its bucket {bucket}: it would be upscaled "
        f"{upscale:.1f}x and look soft. Use a higher-resolution source or a smaller bucket.",
        {"width": width, "height": height, "bucket": str(bucket), "upscale": round(upscale, 2)},
    )]


# ------------------------------------------------------------------ audio


def _audio_findings(probe: Mapping, audio: Mapping | None, audio_error: Mapping | None,
                    transcript: str | None) -> list[ClipFinding]:
    info = probe.get("audio")
    if not info:
        return [ClipFinding(
            "no_audio_track",
            "The clip has no audio track. An audio-video LoRA needs the sound of each clip: upload "
            "the version with audio.",
        )]
    if audio_error:
        return [ClipFinding(
            "audio_decode_failed",
            f"The audio track ({info['codec']}) cannot be decoded: {audio_error['message']}. "
            "Re-export the clip with AAC or Opus audio.",
            dict(audio_error.get("detail") or {}),
        )]
    found = _channel_findings(info)
    if audio is None:
        return found
    peak = audio.get("sample_peak_dbfs")
    if peak is None or peak < qa_rules.SILENT_PEAK_DBFS:
        found.append(ClipFinding(
            "silent_audio",
            "The audio track is silent (peak "
            f"{'-inf' if peak is None else f'{peak:.0f}'} dBFS). The model would learn silence for "
            "this caption: use the clip's real sound or remove the clip.",
            {"sample_peak_dbfs": peak, "limit_dbfs": qa_rules.SILENT_PEAK_DBFS},
        ))
        return found
    found += _level_findings(audio)
    found += _speech_findings(audio, transcript)
    return found


def _channel_findings(info: Mapping) -> list[ClipFinding]:
    channels = info.get("channels") or 0
    detail = {"channels": channels, "channel_layout": info.get("channel_layout")}
    if channels == 1:
        return [ClipFinding("mono_audio", "The audio is mono; it is duplicated to stereo for the "
                            "audio VAE. Nothing to do.", detail)]
    if channels > 2:
        return [ClipFinding("surround_audio", f"The audio has {channels} channels "
                            f"({info.get('channel_layout')}); it is mixed down to stereo for the audio "
                            "VAE. Check the mix if dialogue sits in one channel only.", detail)]
    return []


def _level_findings(audio: Mapping) -> list[ClipFinding]:
    found: list[ClipFinding] = []
    ratio = audio.get("clipping_ratio") or 0.0
    if ratio > qa_rules.CLIPPING_RATIO_WARN:
        found.append(ClipFinding(
            "clipping",
            f"{ratio:.2%} of the audio samples sit at full scale: the sound is clipped (distorted) "
            "and the LoRA would learn the distortion. Use a recording made at a lower level.",
            {"clipping_ratio": ratio, "limit": qa_rules.CLIPPING_RATIO_WARN,
             "true_peak_dbfs": audio.get("true_peak_dbfs")},
        ))
    lufs = audio.get("integrated_lufs")
    if lufs is not None and lufs < qa_rules.LOW_LOUDNESS_LUFS:
        found.append(ClipFinding(
            "low_loudness",
            f"The audio is very quiet ({lufs:.0f} LUFS, floor {qa_rules.LOW_LOUDNESS_LUFS:g}). "
            "Normalise it to about -23 to -16 LUFS before training.",
            {"integrated_lufs": lufs, "limit_lufs": qa_rules.LOW_LOUDNESS_LUFS},
        ))
    found += _noise_findings(audio)
    return found


def _noise_findings(audio: Mapping) -> list[ClipFinding]:
    """``noisy_audio``: a low speech-to-noise ratio, or a voice that only a noise-reduced copy
    revealed (broadband noise masks it: without this the clip would read as "little speech")."""
    snr, masked = audio.get("snr_db"), bool(audio.get("speech_masked_by_noise"))
    if not masked and (snr is None or snr >= qa_rules.NOISY_SNR_DB):
        return []
    detail = {"snr_db": snr, "limit_db": qa_rules.NOISY_SNR_DB, "noise_floor_dbfs": audio.get("noise_floor_dbfs"),
              "speech_masked_by_noise": masked}
    ratio = "" if snr is None else f" (about {snr:.0f} dB speech-to-noise, want {qa_rules.NOISY_SNR_DB:g}+)"
    if masked:
        floor = audio.get("noise_floor_dbfs")
        level = "" if floor is None else f" at about {floor:.0f} dBFS"
        return [ClipFinding(
            "noisy_audio",
            f"Loud broadband noise{level} masks the voice{ratio}: the speech is only found once the "
            "noise is filtered out. The LoRA would learn the noise as part of the voice: use a "
            "cleaner take or denoise it.",
            detail,
        )]
    return [ClipFinding(
        "noisy_audio",
        f"Background noise is loud next to the voice{ratio}. The LoRA would learn the noise as "
        "part of the voice: use a cleaner take or denoise it.",
        detail,
    )]


def _speech_findings(audio: Mapping, transcript: str | None) -> list[ClipFinding]:
    found: list[ClipFinding] = []
    speech_ratio = audio.get("speech_ratio") or 0.0
    speech_seconds = audio.get("speech_seconds") or 0.0
    if speech_ratio < qa_rules.LOW_SPEECH_RATIO:
        found.append(ClipFinding(
            "low_speech",
            f"Little speech found ({speech_ratio:.0%} of the clip). For a talking LoRA, use clips "
            "where the person speaks most of the time; music or ambience teaches something else.",
            {"speech_ratio": speech_ratio, "speech_seconds": speech_seconds,
             "silence_ratio": audio.get("silence_ratio"), "limit": qa_rules.LOW_SPEECH_RATIO},
        ))
    if speech_seconds >= qa_rules.TRANSCRIPT_NEEDED_SPEECH_SECONDS and not (transcript or "").strip():
        found.append(ClipFinding(
            "missing_transcript",
            f"About {speech_seconds:.1f} s of speech but no transcript. Transcribe it (and check the "
            "words), or write the exact words in the caption's transcript: the model learns the voice "
            "from what is said.",
            {"speech_seconds": speech_seconds, "action": "transcribe"},
        ))
    return found


# ------------------------------------------------------------------ duplicates


def _duplicate_findings(content_hash: str | None, other_hashes) -> list[ClipFinding]:
    if not content_hash or not other_hashes:
        return []
    if content_hash not in other_hashes:
        return []
    other = other_hashes[content_hash] if isinstance(other_hashes, Mapping) else None
    name = f" as {other}" if other else " as another clip"
    return [ClipFinding(
        "duplicate_clip",
        f"This file is byte-for-byte the same{name} in this dataset; it would be trained twice as "
        "often. Delete one of them.",
        {"content_hash": content_hash, "duplicate_of": other},
    )]


# ------------------------------------------------------------------ dataset summary


@dataclass
class DatasetSummary:
    """Counts for a dataset page: N clips, M trainable, K blocked, and the reasons."""

    clips: int = 0
    trainable: int = 0
    blocked: int = 0
    blocked_reasons: list[dict] = field(default_factory=list)  # errors: code, count, clips, impact
    advice: list[dict] = field(default_factory=list)  # warnings and info: code, count, clips

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return asdict(self)


def summarize_dataset(clips: Iterable[tuple[str, Iterable[Mapping]]]) -> DatasetSummary:
    """Summarise ``(clip_name, findings)`` pairs: what the trainer would drop and why.

    Reasons are grouped by code, most frequent first, each with the clip names it concerns. A count
    is of clips, not of names: twenty uploads of one file are twenty clips under one name.
    """
    summary = DatasetSummary()
    errors: dict[str, list[str]] = {}
    others: dict[str, list[str]] = {}
    counts: dict[str, int] = {}
    for name, findings in clips:
        findings = list(findings)
        summary.clips += 1
        if is_blocked(findings):
            summary.blocked += 1
        else:
            summary.trainable += 1
        for finding in findings:
            group = errors if finding["severity"] == ERROR else others
            names = group.setdefault(finding["code"], [])
            if name not in names:
                names.append(name)
        for code in {finding["code"] for finding in findings}:
            counts[code] = counts.get(code, 0) + 1
    summary.blocked_reasons = [
        {"code": code, "count": counts[code], "clips": names, "impact": TRAINER_IMPACT.get(code, "")}
        for code, names in sorted(errors.items(), key=lambda item: -counts[item[0]])
    ]
    summary.advice = [
        {"code": code, "severity": SEVERITY_BY_CODE.get(code, WARNING), "count": counts[code], "clips": names}
        for code, names in sorted(others.items(), key=lambda item: -counts[item[0]])
    ]
    return summary
