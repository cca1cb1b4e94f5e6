"""key_report: load LoRA files into a fresh pipeline and store which keys really loaded (cpu queue).

For each :class:`core.models.LoraKeyReport` row named in ``params["report_ids"]`` (a checkpoint's
official and diffusers files, or an uploaded file), runs
:func:`worker.engine.lora.verify.verify_lora_file` with a FRESH pipeline of the row's preset per file
(a pipeline that already holds an adapter would hide a dropped key) and stores the report, or
the reason none could be made. Idempotent: running it again overwrites the rows' reports.

A file trained in the ``reference_voice`` mode (its header's ``avlora_training_mode``) gets a
``reference_voice`` part: that it needs a reference clip when generating, and whether its keys
load in the official layout ComfyUI's reference-audio workflow loads
(:func:`core.recipe.reference_export.key_report_note`).
"""

from __future__ import annotations

from typing import Any

from core.config import get_settings
from core.db import session_scope
from core.models import LoraKeyReport
from worker.jobs import JobContext, JobFailed


def key_report(ctx: JobContext, params: dict[str, Any]) -> dict | None:
    """Verify every file of ``params["report_ids"]``; returns ``{report_id: ok}``."""
    from core.model_files import ModelFilesMissing
    from core.presets import UnknownPreset
    from worker.engine.lora.verify import verify_lora_file
    from worker.engine.model.pipelines import load_pipeline

    settings = get_settings()
    report_ids = [int(i) for i in params.get("report_ids", [])]
    if not report_ids:
        raise JobFailed("The job names no key report to make.")
    outcome: dict[str, bool] = {}
    for index, report_id in enumerate(report_ids):
        ctx.check_cancelled()
        with session_scope() as session:
            row = session.get(LoraKeyReport, report_id)
            if row is None:
                continue
            path, preset, name = settings.data_dir / row.path, row.preset, row.file_name
        ctx.progress(index, len(report_ids), f"loading {name} into a fresh {preset} pipeline")

        def fresh_pipeline(preset=preset):
            return load_pipeline(preset, data_dir=settings.data_dir, model_dir=settings.model_dir, device="cpu")

        report, error = None, None
        try:
            report = verify_lora_file(path, fresh_pipeline, require_audio=True).to_dict()
            report["training_mode"], report["reference_voice"] = _mode_notes(path, report["ok"])
        except FileNotFoundError:
            error = f"The file {name} is gone (checkpoints pruned by keep_last_n lose their files)."
        except (ValueError, ModelFilesMissing, UnknownPreset) as exc:
            error = str(exc)
        with session_scope() as session:
            row = session.get(LoraKeyReport, report_id)
            if row is None:
                continue
            row.status = "done" if report is not None else "failed"
            row.report, row.error = report, error
        outcome[str(report_id)] = bool(report and report["ok"])
    ctx.progress(len(report_ids), len(report_ids), "key reports written")
    return {"reports": outcome}


def _mode_notes(path, loaded: bool) -> tuple[str | None, dict | None]:
    """The training mode a file's header names, and the reference-voice note (None for other modes)."""
    from core.recipe.reference_export import MODE_KEY, key_report_note
    from core.services.lora_check import read_safetensors_header

    entries, metadata, _ = read_safetensors_header(path)
    return metadata.get(MODE_KEY), key_report_note(entries, metadata, loaded)
