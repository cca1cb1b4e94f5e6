"""preprocess: turn a preprocess run's clips into the ``.precomputed`` cache (gpu queue).

Exports the clips snapshotted when the run was queued, with their composed captions, to
``dataset.jsonl`` in the run folder (``core.services.preprocess_runs.write_worker_inputs``), runs
:func:`worker.engine.data.preprocess.preprocess_dataset` with ``decode=True`` (progress per clip,
cancel between steps) and stores each clip's bucket, outcome and decoded previews on the row.
Clips that cannot be used are dropped with their reason; the job fails only when none is left.
Running it again reuses every cache entry already written (resume after a crash or cancel), and a
new run of the dataset links every entry of its earlier runs whose inputs did not change (so one
caption edit costs one caption's text conditions). The result says how many cache entries were
``reused`` and ``computed`` (see ``PreprocessResult.reuse_counts``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.config import get_settings
from core.db import session_scope
from core.errors import ApiError
from core.models import PreprocessRun
from core.services import preprocess_runs as preprocess_service
from core.services.run_records import add_log_line
from worker.jobs import JobCancelled, JobContext, JobFailed


def _log(job_id: int, level: str, text: str) -> None:
    with session_scope() as session:
        add_log_line(session, job_id, level, text)


def _decoded_previews(precomputed: Path, data_dir: Path, metadata: Path, reports: list[dict]) -> dict[str, dict]:
    """Media name -> paths (under DATA_DIR) of its decoded video and audio, where they exist."""
    from worker.engine.data.preprocess import entry_name

    previews: dict[str, dict] = {}
    for report in reports:
        if report.get("status") == "error" or not report.get("video"):
            continue
        name = entry_name(metadata.parent / report["video"], metadata.parent)
        found = {}
        for kind, folder, suffix in (("decoded_video", "decoded_videos", ".mp4"),
                                     ("decoded_audio", "decoded_audio", ".wav")):
            path = (precomputed / folder / name).with_suffix(suffix)
            if path.is_file():
                found[kind] = str(path.relative_to(data_dir))
        previews[report["video"]] = found
    return previews


def preprocess(ctx: JobContext, params: dict[str, Any]) -> dict | None:
    """Preprocess run ``params["preprocess_run_id"]``; returns counts of usable and dropped clips."""
    from core.model_files import ModelFilesMissing
    from worker.engine.data.preprocess import PreprocessCancelled, PreprocessError, preprocess_dataset

    run_id = int(params["preprocess_run_id"])
    settings = get_settings()
    with session_scope() as session:
        run = session.get(PreprocessRun, run_id)
        if run is None:
            raise JobFailed(f"Preprocess run #{run_id} no longer exists.")
        if run.job_id != ctx.job_id:
            raise JobFailed(f"Job #{ctx.job_id} is an older attempt of preprocess run #{run_id}; "
                            f"job #{run.job_id} continues it.")
        try:
            metadata = preprocess_service.write_worker_inputs(session, run)
        except ApiError as exc:
            raise JobFailed(exc.message) from exc
        model, buckets, trigger = run.model, run.buckets, run.trigger
        out_dir = preprocess_service.run_dir(run)
        earlier = preprocess_service.earlier_run_dirs(session, run)
        clip_count = len(run.clip_results)
        # the engine names clips by their file in the run folder; people know them by their names
        shown_names = {item["media"]: item["name"] for item in run.clip_results if item.get("media")}
    _log(ctx.job_id, "info", f"Preprocessing {clip_count} clips with {model}, buckets {buckets}.")

    def on_progress(index: int, total: int, message: str) -> None:
        for media, name in shown_names.items():
            message = message.replace(media, name)
        ctx.progress(index, total, message)
        _log(ctx.job_id, "error" if ": error:" in message else "info", message)

    try:
        result = preprocess_dataset(
            metadata, out_dir=out_dir, preset=model, buckets=buckets, trigger=trigger or None,
            data_dir=settings.data_dir, model_dir=settings.model_dir, decode=True,
            progress=on_progress, should_cancel=lambda: ctx.cancel_requested, reuse_from=earlier,
        )
    except PreprocessCancelled as exc:
        _log(ctx.job_id, "info", str(exc))
        raise JobCancelled() from exc
    except (PreprocessError, ModelFilesMissing) as exc:
        raise JobFailed(str(exc)) from exc
    data = result.to_dict()
    previews = _decoded_previews(out_dir / preprocess_service.PRECOMPUTED, settings.data_dir, metadata, data["clips"])
    with session_scope() as session:
        run = session.get(PreprocessRun, run_id)
        preprocess_service.record_clip_reports(run, data["clips"], previews)
        usable = [c for c in run.clip_results if c.get("status") in ("ok", "cached")]
        dropped = [c for c in run.clip_results if c.get("status") == "error"]
        for clip in dropped:
            add_log_line(session, ctx.job_id, "warning", f"Dropped {clip['name']}: {clip.get('reason')}")
    if result.missing:
        raise JobFailed("Some cache entries are missing after preprocessing: " + "; ".join(result.missing[:5]))
    if not usable:
        raise JobFailed("No clip could be preprocessed: " + "; ".join(str(c.get("reason")) for c in dropped[:5]))
    counts = result.reuse_counts()
    _log(ctx.job_id, "info", f"Done: {len(usable)} clips ready, {len(dropped)} dropped; cache entries "
                             f"{counts['reused']} reused, {counts['computed']} computed.")
    return {"preprocess_run_id": run_id, "clips_ready": len(usable), "clips_dropped": len(dropped), **counts}
