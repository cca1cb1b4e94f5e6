"""Speech jobs of clips: transcribe, plan a split at pauses, cut a clip into its parts.

The work runs on the cpu queue (``worker/handlers/speech.py`` with ``worker/speech``); this module
queues it, checks what a person asks for before anything is queued, and reads the results back
for the API and the pages. A split plan's parts follow the recipe's rules
(``core.recipe.speech_rules``): each part at least the dataset's smallest bucket long, at most
10 s, inside the clip, not overlapping the next.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from core.errors import Conflict, InvalidInput
from core.models import Clip, ClipStatus, Dataset, Job
from core.names import JobKind, Queue
from core.recipe import speech_rules
from core.recipe.buckets import BucketError, parse_buckets
from core.services.job_queue import add_job, send_job_after_commit

ANALYSED = (ClipStatus.ready.value, ClipStatus.rejected.value)


def _queue(session: Session, kind: str, params: dict[str, Any]) -> Job:
    job = add_job(session, kind, Queue.cpu, params)
    session.commit()
    send_job_after_commit(session, job)
    return job


def _require_audio(clip: Clip) -> None:
    if clip.status not in ANALYSED:
        raise Conflict("clip_not_analysed", f"Clip '{clip.original_name}' is still being analysed: "
                                            "wait for its check to finish, then try again.")
    if not (clip.probe or {}).get("audio"):
        raise InvalidInput("no_audio_track", f"Clip '{clip.original_name}' has no audio track: there is "
                                             "nothing to transcribe or split at pauses.")


def queue_transcribe(session: Session, dataset: Dataset, clip_ids: list[int] | None = None) -> Job:
    """Queue the recognition of ``clip_ids`` (default: every clip of ``dataset`` with an audio
    track); a transcript the person wrote is kept, aligned to the audio instead of replaced."""
    clips = {clip.id: clip for clip in dataset.clips}
    if clip_ids is None:
        chosen = [c for c in dataset.clips if c.status in ANALYSED and (c.probe or {}).get("audio")]
    else:
        unknown = [i for i in clip_ids if i not in clips]
        if unknown:
            raise InvalidInput("unknown_clips", f"Clip(s) {', '.join(map(str, unknown))} are not in dataset "
                                                f"'{dataset.name}'.")
        chosen = [clips[i] for i in clip_ids]
        for clip in chosen:
            _require_audio(clip)
    if not chosen:
        raise InvalidInput("nothing_to_transcribe", "No clip of this dataset has an analysed audio track yet.")
    return _queue(session, JobKind.transcribe, {"clip_ids": [c.id for c in chosen], "language": dataset.language})


def queue_split_plan(session: Session, clip: Clip) -> Job:
    """Queue the planning of cut points for ``clip`` (at pauses and sentence ends)."""
    _require_audio(clip)
    return _queue(session, JobKind.split_plan, {"clip_id": clip.id, **plan_limits(clip)})


def plan_limits(clip: Clip) -> dict[str, float]:
    """The shortest part the dataset's buckets accept (at the clip's frame rate) and the longest."""
    fps = float(((clip.probe or {}).get("video") or {}).get("fps") or 25.0)
    try:
        smallest = min(b.frames for b in parse_buckets(clip.dataset.buckets))
    except (BucketError, ValueError):
        smallest = 49
    return {"min_s": max(speech_rules.SHORTEST_PART_S, smallest / fps), "max_s": speech_rules.LONGEST_PART_S,
            "fps": fps}


def split_plan(clip: Clip) -> dict[str, Any]:
    """The stored plan ``{"parts": [...]}``; :class:`Conflict` while none was made."""
    if not clip.split_plan:
        raise Conflict("no_split_plan", f"No split plan for '{clip.original_name}' yet: ask for one "
                                        "(POST .../split-plan) and wait for its job.")
    return clip.split_plan


def check_parts(clip: Clip, parts: Any) -> list[dict[str, float]]:
    """The parts a person asks to cut, checked against the rules; :class:`InvalidInput` names the
    first part that breaks one."""
    if not isinstance(parts, list) or not parts:
        raise InvalidInput("invalid_parts", "Send at least one part as {\"start_s\", \"end_s\"}.")
    limits = plan_limits(clip)
    duration = float((clip.probe or {}).get("duration") or 0.0)
    checked: list[dict[str, float]] = []
    for number, part in enumerate(parts, start=1):
        try:
            start, end = float(part["start_s"]), float(part["end_s"])
        except (KeyError, TypeError, ValueError):
            raise InvalidInput("invalid_parts", f"Part {number} needs numbers start_s and end_s.") from None
        problem = speech_rules.part_problem(start, end, duration, limits["min_s"], limits["max_s"])
        if problem is None and checked and start < checked[-1]["end_s"] - 1e-6:
            problem = "it overlaps the part before it"
        if problem:
            raise InvalidInput("invalid_parts", f"Part {number} ({start:.2f}-{end:.2f} s): {problem}.")
        checked.append({"start_s": start, "end_s": end})
    return checked


def queue_split(session: Session, clip: Clip, parts: Any) -> Job:
    """Queue cutting ``clip`` into ``parts``; the job's result lists the new clips' ids."""
    _require_audio(clip)
    checked = check_parts(clip, parts)
    return _queue(session, JobKind.split_clip, {"clip_id": clip.id, "parts": checked, "fps": plan_limits(clip)["fps"]})


def words_of(clip: Clip) -> list[dict[str, Any]]:
    """The words heard or aligned in ``clip`` with their times (empty before transcription)."""
    return list((clip.speech or {}).get("words") or [])
