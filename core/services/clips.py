"""Clips: turn checked uploads into rows, read them for the API and pages, delete them."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, object_session

from core.config import get_settings
from core.db import get_or_404
from core.errors import Conflict
from core.media.findings import clip_seconds
from core.media.probe import MediaProbeError
from core.models import Clip, ClipStatus, Dataset, Job, JobStatus
from core.names import JobKind, Queue
from core.recipe.buckets import BucketError, assign_bucket, parse_buckets
from core.services.captions import caption_to_dict
from core.services.job_queue import add_job, send_job_after_commit
from core.services.uploads import ReceivedFile, check_media_file, store_received_file

log = logging.getLogger(__name__)

MEDIA_KINDS = ("source", "proxy", "poster", "waveform", "spectrogram")


def get_clip(session: Session, clip_id: int) -> Clip:
    """The clip with ``clip_id`` or :class:`NotFound`."""
    return get_or_404(session, Clip, clip_id, "clip")


def clip_file(clip: Clip, kind: str = "source") -> Path | None:
    """The file on disk for ``kind`` (source, proxy, poster, waveform, spectrogram), if any."""
    relative = clip.stored_path if kind == "source" else (clip.media or {}).get(kind)
    if not relative:
        return None
    data_dir = get_settings().data_dir
    path = (data_dir / relative).resolve()
    if data_dir not in path.parents:  # stored paths are ours, but never leave DATA_DIR
        return None
    return path


def media_folder(stored_path: str) -> str:
    """Folder (relative to DATA_DIR) for a clip's images and proxy, beside its file."""
    return str(Path(stored_path).with_suffix(".media"))


def media_urls(clip: Clip) -> dict[str, str]:
    """URLs of the clip's playable and image files; ``player`` is what a browser should play."""
    urls = {"source": f"/media/clips/{clip.id}/source"}
    for kind in MEDIA_KINDS[1:]:
        if (clip.media or {}).get(kind):
            urls[kind] = f"/media/clips/{clip.id}/{kind}"
    urls["player"] = urls.get("proxy", urls["source"])
    return urls


def clip_facts(clip: Clip) -> dict[str, Any]:
    """Duration, frames, size, fps and audio of a probed clip, flat, for cards and the API."""
    probe = clip.probe or {}
    video = probe.get("video") or {}
    audio = probe.get("audio") or {}
    facts = {
        "duration": clip_seconds(probe) if probe else None,  # frames / fps: what the trainer reads
        "frames": video.get("frame_count"),
        "width": video.get("display_width") or video.get("width"),
        "height": video.get("display_height") or video.get("height"),
        "fps": video.get("fps"),
        "has_audio": bool(audio) if probe else None,
        "sample_rate": audio.get("sample_rate"),
        "channels": audio.get("channels"),
    }
    facts["bucket"] = _assigned_bucket(clip, facts)
    return facts


def _assigned_bucket(clip: Clip, facts: dict[str, Any]) -> str | None:
    if not (facts["width"] and facts["height"] and facts["frames"]):
        return None
    try:
        buckets = parse_buckets(clip.dataset.buckets)
    except BucketError:
        return None
    bucket = assign_bucket(facts["width"], facts["height"], facts["frames"], buckets)
    return str(bucket) if bucket else None


def probe_problem(clip: Clip) -> dict[str, Any] | None:
    """For a clip still waiting for analysis whose probe job ended (failed or cancelled):
    ``{"job_status", "error"}``; ``None`` while the analysis is queued, running, or done."""
    if clip.status not in (ClipStatus.uploaded.value, ClipStatus.probing.value) or clip.probe_job_id is None:
        return None
    session = object_session(clip)
    job = session.get(Job, clip.probe_job_id) if session is not None else None
    if job is None or not JobStatus(job.status).is_final:
        return None
    return {"job_status": job.status,
            "error": job.error or f"The analysis was {job.status}: start it again."}


def clip_to_dict(clip: Clip) -> dict[str, Any]:
    """The API form of a clip: status, probe, analysis, findings, caption and media URLs."""
    return {
        "id": clip.id,
        "dataset_id": clip.dataset_id,
        "name": clip.original_name,
        "status": clip.status,
        "size_bytes": clip.size_bytes,
        "content_hash": clip.content_hash,
        "facts": clip_facts(clip),
        "probe": clip.probe or {},
        "analysis": clip.analysis or {},
        "findings": clip.findings or [],
        "caption": caption_to_dict(clip),
        "words": list((clip.speech or {}).get("words") or []),
        "speech": clip.speech,
        "split_into": clip.split_into,
        "split_from_id": clip.split_from_id,
        "media": media_urls(clip),
        "job_id": clip.probe_job_id,
        "probe_problem": probe_problem(clip),
        "created_at": clip.created_at.isoformat() if clip.created_at else None,
    }


def refused_entry(name: str, code: str, message: str, status: int = 415) -> dict[str, Any]:
    """The upload answer for a file that was not kept."""
    return {"name": name, "status": status, "error": {"code": code, "message": message}}


def add_received_files(session: Session, dataset: Dataset, files: list[ReceivedFile]) -> list[dict[str, Any]]:
    """Keep every received file that opens as media as a clip and queue its probe.

    Returns one entry per file, in upload order: a clip dict, or a refusal (see
    :func:`refused_entry`) for a file that is not media; refused files are deleted.
    """
    from core.services.clip_findings import refresh_dataset_findings

    entries: list[dict[str, Any]] = []
    new_clips: list[tuple[int, Clip]] = []
    for received in files:
        try:
            extension = check_media_file(received.temp_path, received.original_name)
        except MediaProbeError as exc:
            received.temp_path.unlink(missing_ok=True)
            entries.append(refused_entry(received.original_name, exc.code, exc.message))
            continue
        except BaseException:
            received.temp_path.unlink(missing_ok=True)
            raise
        final = store_received_file(received, extension)
        clip = Clip(
            dataset=dataset, original_name=received.original_name,
            stored_path=str(final.relative_to(get_settings().data_dir)),
            content_hash=received.sha256, size_bytes=received.size_bytes,
            status=ClipStatus.uploaded.value, findings=[], media={},
        )
        session.add(clip)
        new_clips.append((len(entries), clip))
        entries.append({})
    if new_clips:
        refresh_dataset_findings(dataset)  # flags duplicates at once
        session.commit()
    for index, clip in new_clips:
        queue_probe(session, clip)
        entries[index] = clip_to_dict(clip)
    return entries


def queue_probe(session: Session, clip: Clip) -> None:
    """Queue a ``probe_clip`` job for ``clip`` on the cpu queue and remember its id."""
    job = add_job(session, JobKind.probe_clip, Queue.cpu, {"clip_id": clip.id})
    clip.probe_job_id = job.id
    session.commit()
    send_job_after_commit(session, job)


def reprobe_clip(session: Session, clip: Clip) -> Clip:
    """Analyse a clip again (e.g. after the analysis code improved)."""
    if clip.status == ClipStatus.probing.value and probe_problem(clip) is None:
        raise Conflict("clip_busy", "This clip is being analysed right now: wait for it to finish.")
    clip.status = ClipStatus.uploaded.value
    session.commit()
    queue_probe(session, clip)
    return clip


def delete_clip(session: Session, clip: Clip) -> None:
    """Remove a clip's row and its files; the dataset's other findings are refreshed."""
    from core.services.clip_findings import refresh_dataset_findings

    dataset = clip.dataset
    paths = [clip_file(clip, kind) for kind in MEDIA_KINDS]
    dataset.clips.remove(clip)  # delete-orphan: the row goes with it
    refresh_dataset_findings(dataset)
    session.commit()
    for path in paths:
        if path is not None:
            path.unlink(missing_ok=True)
    shutil.rmtree(get_settings().data_dir / media_folder(clip.stored_path), ignore_errors=True)
