"""Preprocess runs: queue the preprocessing of a dataset, export its clips for the worker, keep
the per-clip outcome, and tell whether a run with given settings is ready to train from.

A run snapshots the dataset when it is queued: the trainable clips (status ``ready``), their
composed captions and content hashes. Its fingerprint covers that snapshot plus model, buckets
and trigger, so a later caption edit or a new clip makes the dataset "not preprocessed" again;
:func:`outdated_clips` says which clip changed and how. Preprocessing again is cheap: the engine
links every entry of the dataset's earlier runs whose inputs did not change
(:func:`earlier_run_dirs`) and computes only the rest.
Files live under ``DATA_DIR/preprocess/<run id>/``: the metadata file in the official layout,
the clips beside it, and ``.precomputed/`` written by the engine.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.config import get_settings
from core.db import get_or_404
from core.errors import Conflict, InvalidInput, NotFound
from core.files import atomic_write
from core.models import ClipStatus, Dataset, Job, JobStatus, PreprocessRun
from core.names import MODEL_PRESETS, JobKind, Queue
from core.recipe.buckets import BucketError, coerce_buckets, format_buckets
from core.recipe.metadata import MetadataEntry, write_metadata
from core.services import preflight
from core.services.captions import composed_caption
from core.services.clips import clip_file
from core.services.datasets import get_dataset, is_being_checked
from core.services.exchange import safe_stem
from core.services.job_queue import add_job, send_job_after_commit
from core.services.jobs import job_to_dict

METADATA_NAME = "dataset.jsonl"
PRECOMPUTED = ".precomputed"
ACTIVE_STATES = (JobStatus.queued.value, JobStatus.running.value, JobStatus.cancelling.value)


def clean_model(model: str | None) -> str:
    """A model preset name (default: the studio's MODEL_PRESET); :class:`InvalidInput` if unknown."""
    model = (model or get_settings().model_preset).strip()
    if model not in MODEL_PRESETS:
        raise InvalidInput("invalid_model", f"Unknown model preset {model!r}: use one of {', '.join(MODEL_PRESETS)}.")
    return model


def clean_buckets(buckets: str | list | None, dataset: Dataset) -> str:
    """Buckets as ``WxHxF;...`` (default: the dataset's); :class:`InvalidInput` with the rule broken."""
    try:
        return format_buckets(coerce_buckets(buckets or dataset.buckets))
    except BucketError as exc:
        raise InvalidInput("invalid_buckets", f"Buckets: {exc}") from exc


def clip_snapshot(dataset: Dataset) -> list[dict[str, Any]]:
    """The trainable clips as the worker will export them: id, names, content hash, caption."""
    snapshot = []
    for clip in dataset.clips:
        if clip.status != ClipStatus.ready.value:
            continue
        source = clip_file(clip)
        suffix = source.suffix if source is not None else ".mp4"
        snapshot.append({
            "clip_id": clip.id,
            "name": clip.original_name,
            "media": f"{clip.id:05d}_{safe_stem(clip.original_name)}{suffix.lower()}",
            "content_hash": clip.content_hash,
            "caption": composed_caption(clip),
            "size_bytes": clip.size_bytes,
            "status": "pending",
        })
    return snapshot


def entry_clip_ids(run: PreprocessRun | None) -> dict[str, int]:
    """The run's usable clips by the name of their ``.precomputed`` entries (the media file's name
    with ``.pt``, as the engine names them): entry name -> studio clip id."""
    usable = ("ok", "cached")
    return {Path(item["media"]).with_suffix(".pt").as_posix(): int(item["clip_id"])
            for item in (run.clip_results if run is not None else None) or []
            if item.get("media") and item.get("status") in usable}


def settings_fingerprint(model: str, buckets: str, trigger: str, snapshot: list[dict[str, Any]]) -> str:
    """sha256 of everything the cache depends on: model, buckets, trigger and every clip and caption."""
    clips = [[c["clip_id"], c["content_hash"], c["caption"]] for c in snapshot]
    payload = json.dumps({"model": model, "buckets": buckets, "trigger": trigger, "clips": clips},
                         sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def current_fingerprint(dataset: Dataset, model: str, buckets: str) -> str:
    """The fingerprint a preprocess run of ``dataset`` with these settings would get now."""
    return settings_fingerprint(model, buckets, dataset.trigger, clip_snapshot(dataset))


def start_preprocess(session: Session, dataset_id: int, *, model: str | None = None,
                     buckets: str | list | None = None) -> PreprocessRun:
    """Check and queue the preprocessing of a dataset's trainable clips on the gpu queue."""
    dataset = get_dataset(session, dataset_id)
    model = clean_model(model)
    buckets = clean_buckets(buckets, dataset)
    if any(is_being_checked(c) for c in dataset.clips):
        raise Conflict("clips_being_checked", "Some clips are still being checked: preprocess once their "
                       "analysis has finished.")
    snapshot = clip_snapshot(dataset)
    if not snapshot:
        raise InvalidInput("no_trainable_clips", "The dataset has no trainable clips: upload clips and fix "
                           "the errors their checks found, then preprocess.")
    fingerprint = settings_fingerprint(model, buckets, dataset.trigger, snapshot)
    active = session.scalar(
        select(PreprocessRun).join(Job, PreprocessRun.job_id == Job.id)
        .where(PreprocessRun.fingerprint == fingerprint, Job.status.in_(ACTIVE_STATES)))
    if active is not None:
        raise Conflict("already_preprocessing", f"Preprocess run #{active.id} with these settings is already "
                       f"{active.status}: follow job #{active.job_id}.")
    preflight.check_model_files(model)
    source_bytes = sum(int(c["size_bytes"] or 0) for c in snapshot)
    preflight.check_disk_space(preflight.estimate_preprocess_bytes(source_bytes, len(snapshot)),
                               "the preprocessed cache and the decoded previews")
    run = PreprocessRun(dataset_id=dataset.id, model=model, buckets=buckets, trigger=dataset.trigger,
                        fingerprint=fingerprint, clip_results=snapshot, output_dir="")
    session.add(run)
    session.flush()
    run.output_dir = f"preprocess/{run.id}"
    job = add_job(session, JobKind.preprocess, Queue.gpu, {"preprocess_run_id": run.id})
    run.job_id = job.id
    session.commit()  # run and job together: a run never exists without its job
    send_job_after_commit(session, job)
    return run


def get_preprocess_run(session: Session, run_id: int) -> PreprocessRun:
    """The preprocess run with ``run_id`` or :class:`NotFound`."""
    return get_or_404(session, PreprocessRun, run_id, "preprocess_run")


def list_preprocess_runs(session: Session, dataset_id: int) -> list[PreprocessRun]:
    """A dataset's preprocess runs, newest first (:class:`NotFound` for an unknown dataset)."""
    get_dataset(session, dataset_id)
    return list(session.scalars(select(PreprocessRun).where(PreprocessRun.dataset_id == dataset_id)
                                .order_by(PreprocessRun.id.desc())))


def is_current(run: PreprocessRun) -> bool:
    """True while the dataset still has the clips and captions the run preprocessed."""
    return run.fingerprint == current_fingerprint(run.dataset, run.model, run.buckets)


def outdated_clips(run: PreprocessRun) -> list[dict[str, Any]]:
    """What changed in the dataset since the run was queued, clip by clip: ``{"clip_id", "name",
    "change"}`` with change ``caption`` (only its text conditions need computing again),
    ``media`` (its file), ``added`` or ``removed`` (deleted or no longer trainable)."""
    before = {item["clip_id"]: item for item in run.clip_results or []}
    now = {item["clip_id"]: item for item in clip_snapshot(run.dataset)}
    changes = []
    for clip_id, item in now.items():
        old = before.get(clip_id)
        change = ("added" if old is None else "media" if old["content_hash"] != item["content_hash"]
                  else "caption" if old["caption"] != item["caption"] else None)
        if change:
            changes.append({"clip_id": clip_id, "name": item["name"], "change": change})
    changes += [{"clip_id": clip_id, "name": item["name"], "change": "removed"}
                for clip_id, item in before.items() if clip_id not in now]
    return sorted(changes, key=lambda c: c["clip_id"])


def _names(changes: list[dict[str, Any]]) -> str:
    names = [c["name"] for c in changes]
    if len(names) > 3:
        return f"{len(names)} clips"
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def outdated_text(run: PreprocessRun, changes: list[dict[str, Any]]) -> str:
    """One sentence for the page: what changed since the run, and that only that is computed again."""
    by_change = {kind: [c for c in changes if c["change"] == kind] for kind in ("caption", "media", "added", "removed")}
    phrases = ["the trigger changed"] if run.trigger != run.dataset.trigger else []
    if by_change["caption"]:
        plural = len(by_change["caption"]) > 1
        phrases.append(f"the caption{'s' if plural else ''} of {_names(by_change['caption'])} changed")
    if by_change["media"]:
        phrases.append(f"the file of {_names(by_change['media'])} changed")
    for kind in ("added", "removed"):
        if by_change[kind]:
            count, names = len(by_change[kind]), _names(by_change[kind])
            who = names if count > 3 else f"clip{'s' if count > 1 else ''} {names}"
            phrases.append(f"{who} {'were' if count > 1 else 'was'} {kind}")
    if not phrases:
        return "The dataset's clips or captions changed after this run: preprocess again before training."
    text = "; ".join(phrases) + " after this run: preprocess again before training "
    if len(phrases) == 1 and by_change["caption"]:
        its = "their" if len(by_change["caption"]) > 1 else "its"
        text += f"(only {its} text conditions are computed again; everything else is reused)."
    else:
        text += "(what did not change is reused)."
    return text[0].upper() + text[1:]


KIND_LABELS = {"latents": "video latents", "audio_latents": "audio latents", "conditions": "text conditions",
               "decoded_videos": "decoded videos", "decoded_audio": "decoded audio"}


def reuse_summary(run: PreprocessRun) -> dict[str, Any] | None:
    """The job's cache counts (``reused``, ``computed`` entries) with a line for the page; None before the end."""
    result = (run.job.result if run.job is not None else None) or {}
    if "computed" not in result:
        return None
    kinds = ", ".join(f"{KIND_LABELS.get(kind, kind)}: {count}" for kind, count in result["computed_kinds"].items())
    text = f"Cache entries: {result['reused']} reused, {result['computed']} computed" + (f" ({kinds})" if kinds else "")
    return {**{k: result[k] for k in ("reused", "computed", "clips_reused", "clips_computed", "computed_kinds")},
            "text": text + "."}


def find_ready_run(session: Session, dataset: Dataset, model: str, buckets: str) -> PreprocessRun | None:
    """The newest succeeded preprocess run of ``dataset`` with these settings and its current clips."""
    fingerprint = current_fingerprint(dataset, model, buckets)
    return session.scalar(
        select(PreprocessRun).join(Job, PreprocessRun.job_id == Job.id)
        .where(PreprocessRun.dataset_id == dataset.id, PreprocessRun.fingerprint == fingerprint,
               Job.status == JobStatus.succeeded.value)
        .order_by(PreprocessRun.id.desc()).limit(1))


def ready_runs_of_other_models(session: Session, dataset: Dataset, model: str, buckets: str) -> list[PreprocessRun]:
    """The dataset's succeeded preprocess runs with these buckets and its current clips, made for
    another model, newest first: a cache never trains another model (its latents and caption
    features come from that model's VAEs and text encoder)."""
    runs = session.scalars(
        select(PreprocessRun).join(Job, PreprocessRun.job_id == Job.id)
        .where(PreprocessRun.dataset_id == dataset.id, PreprocessRun.model != model,
               PreprocessRun.buckets == buckets, Job.status == JobStatus.succeeded.value)
        .order_by(PreprocessRun.id.desc()))
    return [run for run in runs if is_current(run)]


def run_dir(run: PreprocessRun) -> Path:
    """The run's folder under DATA_DIR."""
    return get_settings().data_dir / run.output_dir


def precomputed_dir(run: PreprocessRun) -> Path:
    """The ``.precomputed`` folder training reads."""
    return run_dir(run) / PRECOMPUTED


def _link_or_copy(source: Path, target: Path) -> None:
    if target.exists():
        return

    def place(temp: Path) -> None:
        temp.unlink()  # atomic_write made it empty; a link needs the name free
        try:
            os.link(source, temp)
        except OSError:  # another file system, or links not allowed
            shutil.copyfile(source, temp)

    atomic_write(target, place, mode=None)  # a link shares the clip's inode: leave its mode alone


def earlier_run_dirs(session: Session, run: PreprocessRun, limit: int = 3) -> list[Path]:
    """The folders of the dataset's newest earlier preprocess runs with the same model, newest first.

    A new run writes a folder of its own; the engine links every entry of these whose inputs
    match (same clip bytes, bucket, caption, model) instead of computing it again.
    """
    earlier = session.scalars(
        select(PreprocessRun).where(PreprocessRun.dataset_id == run.dataset_id, PreprocessRun.id != run.id,
                                    PreprocessRun.model == run.model)
        .order_by(PreprocessRun.id.desc()))
    folders = [run_dir(other) for other in earlier if other.output_dir]
    return [folder for folder in folders if (folder / PRECOMPUTED).is_dir()][:limit]


def write_worker_inputs(session: Session, run: PreprocessRun) -> Path:
    """Put the snapshot's clips and ``dataset.jsonl`` (official layout) in the run folder; returns the metadata path.

    Clips deleted since the run was queued are marked as errors in ``clip_results`` and left out.
    """
    from core.models import Clip

    folder = run_dir(run)
    folder.mkdir(parents=True, exist_ok=True)
    entries, results = [], []
    for item in run.clip_results:
        item = dict(item)
        clip = session.get(Clip, item["clip_id"])
        source = clip_file(clip) if clip is not None else None
        if source is None or not source.is_file():
            item.update(status="error", code="missing_file", reason=f"{item['name']}: the clip was deleted")
        else:
            _link_or_copy(source, folder / item["media"])
            entries.append(MetadataEntry(caption=item["caption"], video=item["media"]))
        results.append(item)
    run.clip_results = results
    if not entries:
        raise InvalidInput("no_trainable_clips", "Every clip of this preprocess run was deleted.")
    return write_metadata(folder / METADATA_NAME, entries, video_column="media_path")


def record_clip_reports(run: PreprocessRun, reports: list[dict[str, Any]], decoded: dict[str, dict[str, str]]) -> None:
    """Store the engine's per-clip reports (matched by media name) with decoded preview paths.

    ``decoded`` maps a media name to ``{"decoded_video", "decoded_audio"}`` paths under DATA_DIR.
    """
    by_media = {r.get("video"): r for r in reports}
    results = []
    for item in run.clip_results:
        item = dict(item)
        report = by_media.get(item["media"])
        if report is not None:
            item.update(status=report.get("status"), bucket=report.get("bucket"), code=report.get("code"),
                        reason=report.get("reason"))
            item.update(decoded.get(item["media"], {}))
        results.append(item)
    run.clip_results = results


def preprocess_run_to_dict(run: PreprocessRun) -> dict[str, Any]:
    """The API form: settings, status, job, and per clip its bucket, outcome and decoded previews."""
    clips = []
    for item in run.clip_results or []:
        entry = {k: item.get(k) for k in ("clip_id", "name", "media", "caption", "bucket", "status", "code", "reason")}
        entry["original_url"] = f"/media/clips/{item['clip_id']}/source"
        for kind in ("decoded_video", "decoded_audio"):
            entry[f"{kind}_url"] = (f"/api/v1/preprocess/{run.id}/clips/{item['clip_id']}/{kind}"
                                    if item.get(kind) else None)
        clips.append(entry)
    dropped = [c for c in clips if c["status"] == "error"]
    current = is_current(run)
    outdated = [] if current else outdated_clips(run)
    return {
        "id": run.id,
        "dataset_id": run.dataset_id,
        "model": run.model,
        "buckets": run.buckets,
        "trigger": run.trigger,
        "fingerprint": run.fingerprint,
        "status": run.status,
        "current": current,
        "outdated": outdated,
        "outdated_text": None if current else outdated_text(run, outdated),
        "reuse": reuse_summary(run),
        "output_dir": run.output_dir,
        "job_id": run.job_id,
        "job": job_to_dict(run.job) if run.job is not None else None,
        "clips": clips,
        "dropped": [{"clip_id": c["clip_id"], "name": c["name"], "code": c["code"], "reason": c["reason"]}
                    for c in dropped],
        "created_at": run.created_at.isoformat() if run.created_at else None,
    }


def decoded_file(run: PreprocessRun, clip_id: int, kind: str) -> Path:
    """A decoded preview (``decoded_video`` or ``decoded_audio``) of one clip, or :class:`NotFound`."""
    if kind not in ("decoded_video", "decoded_audio"):
        raise NotFound("preview", kind)
    item = next((c for c in run.clip_results or [] if c.get("clip_id") == clip_id), None)
    relative = item.get(kind) if item else None
    data_dir = get_settings().data_dir
    path = (data_dir / relative).resolve() if relative else None
    if path is None or data_dir not in path.parents or not path.is_file():
        raise NotFound("preview", f"{clip_id}/{kind}")
    return path
