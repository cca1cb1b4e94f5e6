"""split_clip: cut a clip into the parts a person accepted; each part becomes a new clip.

Each part is cut by :func:`core.media.cut.cut_part` (exactly the planned 8k+1 frames, sound
untouched) into the dataset's folder, then goes the way of an upload (checked as media, stored,
a row, a probe job). A part's caption gets the original's visual, voice and sounds and the words
spoken inside the part; the original is kept with status ``split`` and the new clips' ids.
Cancellable between parts; on failure or cancel the parts cut so far are removed, nothing else
changes. Idempotent: a clip already split is refused.
"""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any

from core.db import session_scope
from core.media.cut import CutError, cut_part
from core.models import Caption, Clip, ClipStatus
from core.recipe.speech_rules import frames_for
from core.services.captions import CAPTION_FIELDS, compose_for
from core.services.clip_findings import refresh_dataset_findings
from core.services.clips import add_received_files, clip_file
from core.services.datasets import dataset_folder
from core.services.uploads import ReceivedFile
from worker.jobs import JobContext, JobFailed


def split_clip(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    """Cut clip ``params["clip_id"]`` into ``params["parts"]``; returns the new clips' ids."""
    clip_id, parts, fps = int(params["clip_id"]), params["parts"], float(params["fps"])
    with session_scope() as session:
        clip = session.get(Clip, clip_id)
        if clip is None:
            raise JobFailed(f"Clip #{clip_id} no longer exists (it was deleted).")
        if clip.split_into:
            raise JobFailed(f"'{clip.original_name}' was already split into {len(clip.split_into)} clips.")
        source, name, dataset_id = clip_file(clip), clip.original_name, clip.dataset_id
    if source is None or not source.is_file():
        raise JobFailed(f"The file of '{name}' is missing from the data directory.")
    folder = dataset_folder(dataset_id)  # the parts are stored beside the uploads, as uploads are
    received: list[ReceivedFile] = []
    try:
        _cut_parts(ctx, source, name, parts, fps, folder, received)
        ctx.check_cancelled()
        new_ids = _add_parts(clip_id, received, parts)
    finally:
        for part in received:  # cut but not kept (a failure or cancel): nothing is left behind
            part.temp_path.unlink(missing_ok=True)
    ctx.progress(len(parts), len(parts), f"split into {len(new_ids)} clips")
    return {"clip_id": clip_id, "clip_ids": new_ids}


def _cut_parts(ctx: JobContext, source: Path, name: str, parts: list[dict], fps: float, folder: Path,
               received: list[ReceivedFile]) -> None:
    """Cut each part to a temporary file in ``folder``, appended to ``received`` as it lands."""
    stem = Path(name).stem
    for number, part in enumerate(parts, start=1):
        ctx.check_cancelled()
        ctx.progress(number - 1, len(parts), f"cutting part {number} of {len(parts)}")
        frames = frames_for(part["end_s"] - part["start_s"], fps)
        target = folder / f".split-{uuid.uuid4().hex}.mov"
        try:
            cut_part(source, target, part["start_s"], frames)
        except CutError as exc:
            raise JobFailed(f"Part {number} of '{name}' could not be cut: {exc}") from exc
        data = target.read_bytes()
        received.append(ReceivedFile(original_name=f"{stem}_part{number:02d}.mov", temp_path=target,
                                     size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest()))


def _add_parts(clip_id: int, received: list[ReceivedFile], parts: list[dict]) -> list[int]:
    """New clip rows for the cut files (checked and probed like uploads), captions carried over."""
    with session_scope() as session:
        clip = session.get(Clip, clip_id)
        if clip is None:
            raise JobFailed(f"Clip #{clip_id} was deleted while it was being split.")
        entries = add_received_files(session, clip.dataset, received)
        refused = [e for e in entries if "error" in e]
        if refused:
            raise JobFailed(f"A cut part could not be read back: {refused[0]['error']['message']}")
        new_ids = [e["id"] for e in entries]
        for new_id, part in zip(new_ids, parts, strict=True):
            _carry_caption(session.get(Clip, new_id), clip, part)
        clip.split_into = new_ids
        clip.status = ClipStatus.split.value
        refresh_dataset_findings(clip.dataset)
        session.commit()
        return new_ids


def _words_inside(words: list[dict] | None, part: dict) -> list[dict]:
    """The words spoken inside ``part``, re-timed from its start."""
    start, end = part["start_s"], part["end_s"]
    return [dict(w, start_s=round(w["start_s"] - start, 3), end_s=round(w["end_s"] - start, 3))
            for w in words or [] if w["start_s"] >= start - 0.05 and w["end_s"] <= end + 0.05]


def _carry_caption(new: Clip, original: Clip, part: dict) -> None:
    """The part's caption: the original's fields and the words spoken inside the part."""
    new.split_from_id = original.id
    speech = original.speech or {}
    words = _words_inside(speech.get("words"), part)
    if speech:
        heard = _words_inside(speech.get("heard_words"), part)
        new.speech = {**speech, "words": words, "heard_words": heard,
                      "text": " ".join(w["word"] for w in words), "heard": " ".join(w["word"] for w in heard)}
    fields = {name: getattr(original.caption, name) or "" for name in CAPTION_FIELDS} if original.caption else {}
    fields["text"] = ""  # a free-text override described the whole clip
    fields["transcript"] = " ".join(w["word"] for w in words)
    source = (original.caption.transcript_source if original.caption else None) or "auto"
    new.caption = Caption(**fields, transcript_source=source)
    new.caption.composed = compose_for(new.dataset, fields)
