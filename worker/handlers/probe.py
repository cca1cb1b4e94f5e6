"""probe_clip: analyse one uploaded clip on the cpu queue and store what was found.

Reads the clip row, runs :func:`core.media.pipeline.analyze_clip` on its file (probe, audio
analysis, poster/waveform/spectrogram images, a proxy when the source is not browser-playable),
stores probe, analysis, media paths and findings on the row, and sets ``ready`` or
``rejected``. Findings that depend on other rows (duplicates, transcript, buckets) are computed
by :func:`core.services.clip_findings.refresh_dataset_findings`, the same code the web uses.
The voice (an embedding, and the voices of its stretches of speech) comes from the speech layer
(:func:`worker.handlers.speech.voice_analysis`); a dataset that transcribes new clips by itself
gets a ``transcribe`` job queued for the clip.
Idempotent: running the job again re-analyses the file and overwrites the results.
"""

from __future__ import annotations

import shutil
from typing import Any

from core.config import get_settings
from core.db import session_scope
from core.media.pipeline import analyze_clip
from core.models import Clip, ClipStatus
from core.services.clip_findings import refresh_dataset_findings
from core.services.clips import media_folder
from core.services.speech import queue_transcribe
from worker.handlers.speech import voice_analysis
from worker.jobs import JobContext, JobFailed

MEDIA_FILE_KINDS = ("poster", "waveform", "spectrogram", "proxy")


def probe_clip(ctx: JobContext, params: dict[str, Any]) -> dict | None:
    """Analyse clip ``params["clip_id"]``; returns its status and finding codes."""
    clip_id = int(params["clip_id"])
    data_dir = get_settings().data_dir
    with session_scope() as session:
        clip = session.get(Clip, clip_id)
        if clip is None:
            raise JobFailed(f"Clip #{clip_id} no longer exists (it was deleted).")
        clip.status = ClipStatus.probing.value
        source = data_dir / clip.stored_path
        shown_name = clip.original_name
        out_rel = media_folder(clip.stored_path)
        buckets = clip.dataset.buckets
    ctx.progress(0, 2, "analysing the clip")
    try:
        analysis = analyze_clip(source, data_dir / out_rel, buckets)
        ctx.check_cancelled()
        ctx.progress(1, 2, "listening to the voice")
        voice = voice_analysis(source) if analysis.to_dict().get("audio") else None
        ctx.check_cancelled()
    except BaseException:
        _reset_status(clip_id)
        raise
    with session_scope() as session:
        clip = session.get(Clip, clip_id)
        if clip is None:  # deleted while we worked: leave nothing behind
            shutil.rmtree(data_dir / out_rel, ignore_errors=True)
            raise JobFailed(f"Clip #{clip_id} was deleted during analysis.")
        stored = _with_shown_name(analysis.to_dict(), source.name, shown_name)
        stored["voice"] = voice
        clip.probe = stored["probe"]
        clip.analysis = stored
        clip.media = {kind: f"{out_rel}/{name}" for kind in MEDIA_FILE_KINDS
                      if (name := stored["media"].get(kind))}
        clip.status = analysis.status  # ready | rejected; refreshed with the dataset below
        refresh_dataset_findings(clip.dataset)
        status, codes = clip.status, [f["code"] for f in clip.findings]
        auto_transcribe = clip.dataset.auto_transcribe and voice is not None and not clip.speech
        if auto_transcribe:
            queue_transcribe(session, clip.dataset, [clip.id])
    ctx.progress(2, 2, f"{status}: {', '.join(codes) or 'no findings'}")
    return {"clip_id": clip_id, "status": status, "findings": codes}


def _with_shown_name(stored: dict, stored_name: str, shown_name: str) -> dict:
    """Error messages name the file as the person uploaded it, not by its random stored name."""
    for key in ("probe_error", "audio_error"):
        error = stored.get(key)
        if error and error.get("message"):
            error["message"] = error["message"].replace(stored_name, f"'{shown_name}'")
    return stored


def _reset_status(clip_id: int) -> None:
    """After a failed or cancelled analysis the clip waits for another probe."""
    with session_scope() as session:
        clip = session.get(Clip, clip_id)
        if clip is not None and clip.status == ClipStatus.probing.value:
            clip.status = ClipStatus.uploaded.value
