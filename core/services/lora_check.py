"""LoRA key reports: which keys of a LoRA file a fresh pipeline really holds after loading it.

A report is made by the ``key_report`` job on the cpu queue (``worker/handlers/key_report.py``,
which runs ``worker.engine.lora.verify.verify_lora_file``); this module queues those jobs and reads
their results, for a checkpoint's two files (official / ComfyUI and diffusers layouts) and for a
file uploaded from any other trainer. It also reads a ``.safetensors`` header in pure Python
(no torch) so an upload that is not a safetensors file is refused before any job runs.
"""

from __future__ import annotations

import json
import struct
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.config import get_settings
from core.db import get_or_404
from core.errors import ApiError, InvalidInput, NotFound
from core.models import Checkpoint, JobStatus, LoraKeyReport, TrainingRun
from core.names import MODEL_PRESETS, JobKind, Queue
from core.recipe.architecture import family_side
from core.services.job_queue import add_job, send_job_after_commit
from core.services.uploads import receive_multipart

CHECKPOINT_LAYOUTS = ("official", "diffusers")
UPLOAD_LAYOUT = "upload"
UPLOAD_FIELD = "file"
UPLOAD_FOLDER = "lora_checks"
MAX_HEADER_BYTES = 100 * 1024 * 1024  # the safetensors format's own limit on its JSON header


class NotSafetensors(InvalidInput):
    """The file is not a readable ``.safetensors`` file."""

    def __init__(self, name: str, why: str):
        super().__init__("not_safetensors", f"'{name}' is not a .safetensors LoRA file ({why}): "
                         "upload the .safetensors file your trainer wrote.")


def read_safetensors_header(path: Path, shown_name: str | None = None) -> tuple[dict[str, dict], dict[str, str], int]:
    """The tensor entries, the ``__metadata__`` and the data offset of a ``.safetensors`` file.

    Entries map a key to ``{"dtype", "shape", "data_offsets": [begin, end]}`` (offsets relative
    to the returned data offset). Raises :class:`NotSafetensors` for anything else.
    """
    name = shown_name or path.name
    size = path.stat().st_size
    with path.open("rb") as handle:
        raw_length = handle.read(8)
        if len(raw_length) < 8:
            raise NotSafetensors(name, "too short")
        (length,) = struct.unpack("<Q", raw_length)
        if length == 0 or length > MAX_HEADER_BYTES or 8 + length > size:
            raise NotSafetensors(name, "no valid header")
        try:
            header = json.loads(handle.read(length))
        except (UnicodeDecodeError, ValueError):
            raise NotSafetensors(name, "the header is not JSON") from None
    if not isinstance(header, dict):
        raise NotSafetensors(name, "the header is not a table of tensors")
    metadata = header.pop("__metadata__", None) or {}
    data_size = size - 8 - length
    for key, entry in header.items():
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and 0 <= offsets[0] <= offsets[1] <= data_size):
            raise NotSafetensors(name, f"tensor {key!r} points outside the file")
    return header, {str(k): str(v) for k, v in metadata.items()}, 8 + length


def _report_folder() -> Path:
    return get_settings().data_dir / UPLOAD_FOLDER


def _new_report(session: Session, *, checkpoint: Checkpoint | None, layout: str, file_name: str, path: str,
                preset: str) -> LoraKeyReport:
    report = LoraKeyReport(checkpoint_id=checkpoint.id if checkpoint else None, layout=layout,
                           file_name=file_name, path=path, preset=preset, status="pending")
    session.add(report)
    session.flush()
    return report


def _queue(session: Session, reports: list[LoraKeyReport]) -> None:
    """One ``key_report`` job for the reports (committed with them, then sent)."""
    job = add_job(session, JobKind.key_report, Queue.cpu, {"report_ids": [r.id for r in reports]})
    for report in reports:
        report.job_id = job.id
    session.commit()
    send_job_after_commit(session, job)


def run_preset(run: TrainingRun) -> str:
    """The model preset a run trained (its LoRA files load into this one)."""
    return str((run.config or {}).get("model") or get_settings().model_preset)


def queue_checkpoint_key_report(session: Session, checkpoint: Checkpoint, *, force: bool = False) -> list[LoraKeyReport]:
    """Queue the key report of a checkpoint's official and diffusers files (the backend's train
    handler may call this after each checkpoint). Reports already made or pending are kept
    unless ``force``."""
    existing = {r.layout: r for r in session.scalars(
        select(LoraKeyReport).where(LoraKeyReport.checkpoint_id == checkpoint.id))}
    todo = []
    for layout in CHECKPOINT_LAYOUTS:
        relative = (checkpoint.files or {}).get(layout)
        if not relative:
            continue
        report = existing.get(layout)
        if report is not None and not force and report.status in ("pending", "done"):
            continue
        if report is None:
            report = _new_report(session, checkpoint=checkpoint, layout=layout, file_name=Path(relative).name,
                                 path=relative, preset=run_preset(checkpoint.run))
        report.status, report.report, report.error = "pending", None, None
        todo.append(report)
    if todo:
        _queue(session, todo)
    return todo


def find_checkpoint(session: Session, run_id: int, step: int) -> Checkpoint:
    """Checkpoint ``step`` of run ``run_id``, or :class:`NotFound`."""
    checkpoint = session.scalar(select(Checkpoint).where(Checkpoint.run_id == run_id, Checkpoint.step == step))
    if checkpoint is None:
        get_or_404(session, TrainingRun, run_id, "run")
        raise NotFound("checkpoint", f"{step} of run #{run_id}")
    return checkpoint


def checkpoint_key_report(session: Session, checkpoint: Checkpoint) -> dict[str, Any]:
    """``{"run_id", "step", "status", "ok", "reports": {layout: report dict}}`` of a checkpoint.

    ``status`` is ``missing`` (never queued), ``pending``, ``done`` or ``failed``.
    """
    rows = list(session.scalars(select(LoraKeyReport).where(LoraKeyReport.checkpoint_id == checkpoint.id)))
    reports = {row.layout: report_to_dict(row) for row in rows}
    statuses = {r["status"] for r in reports.values()}
    status = ("missing" if not rows else "failed" if "failed" in statuses
              else "pending" if "pending" in statuses else "done")
    ok = status == "done" and all(r["ok"] for r in reports.values())
    return {"run_id": checkpoint.run_id, "step": checkpoint.step, "status": status, "ok": ok, "reports": reports}


def report_to_dict(row: LoraKeyReport) -> dict[str, Any]:
    """A report row for the API: status, file, preset and the verify report (families, problems)."""
    report = row.report or {}
    status, error = effective_status(row)
    return {"id": row.id, "layout": row.layout, "file_name": row.file_name, "preset": row.preset,
            "status": status, "error": error, "job_id": row.job_id,
            "ok": bool(report.get("ok")) if status == "done" else False,
            "detected_layout": report.get("layout"), "total_keys": report.get("total_keys"),
            "loaded_keys": report.get("loaded_keys"), "dropped_keys": _dropped(report),
            "families": report.get("families", {}), "problems": report.get("problems", []),
            "reasons": report.get("reasons", {}), "loader_messages": report.get("loader_messages", []),
            "sides": _sides(report) if status == "done" else None,
            "training_mode": report.get("training_mode"), "reference_voice": report.get("reference_voice"),
            "created_at": row.created_at.isoformat() if row.created_at else None}


def _sides(report: Mapping[str, Any]) -> list[str]:
    """The sides of the model the file has keys on (``video``, ``audio``): the verify report's own,
    or, for a report stored before it named them, read from its families."""
    if isinstance(report.get("sides"), list):
        return list(report["sides"])
    touched = {family_side(name) for name, family in (report.get("families") or {}).items()
               if isinstance(family, Mapping) and family.get("keys")}
    return [side for side in ("video", "audio") if side in touched]


def _dropped(report: Mapping[str, Any]) -> int | None:
    if "total_keys" not in report:
        return None
    return int(report["total_keys"]) - int(report.get("loaded_keys") or 0)


def get_report(session: Session, report_id: int) -> LoraKeyReport:
    """The key report with ``report_id`` or :class:`NotFound`."""
    return get_or_404(session, LoraKeyReport, report_id, "key report")


async def receive_lora_upload(headers: Mapping[str, str], body: AsyncIterator[bytes], max_bytes: int):
    """Stream an upload's ``file`` part (and the optional ``preset`` value) to a temp file."""
    upload = await receive_multipart(headers, body, _report_folder(), max_bytes,
                                     file_fields=(UPLOAD_FIELD,), value_fields=("preset",))
    files = upload.all_files()
    if len(files) != 1:
        upload.discard()
        raise ApiError(422, "one_file", f"Send exactly one .safetensors file in the field '{UPLOAD_FIELD}'.")
    return files[0], upload.values.get("preset", "")


def accept_lora_upload(session: Session, received, preset: str = "") -> LoraKeyReport:
    """Check a streamed upload is a LoRA ``.safetensors`` file, store it, queue its key report.

    The temp file is removed on any refusal; the kept file gets a random name.
    """
    preset = preset.strip() or get_settings().model_preset
    try:
        if preset not in MODEL_PRESETS:
            raise InvalidInput("unknown_preset", f"Unknown model preset {preset!r}: use one of "
                               f"{', '.join(MODEL_PRESETS)}.")
        tensors, _metadata, _offset = read_safetensors_header(received.temp_path, received.original_name)
        if not any(key.endswith((".lora_A.weight", ".lora_B.weight", ".lora_down.weight", ".lora_up.weight"))
                   for key in tensors):
            raise InvalidInput("not_a_lora", f"'{received.original_name}' holds {len(tensors)} tensors but no "
                               "LoRA weights (lora_A/lora_B): is it a full model checkpoint?")
        final = received.temp_path.with_name(f"{uuid.uuid4().hex}.safetensors")
        received.temp_path.rename(final)
    except BaseException:
        received.temp_path.unlink(missing_ok=True)
        raise
    relative = str(final.relative_to(get_settings().data_dir))
    report = _new_report(session, checkpoint=None, layout=UPLOAD_LAYOUT, file_name=received.original_name,
                         path=relative, preset=preset)
    _queue(session, [report])
    return report


def effective_status(row: LoraKeyReport) -> tuple[str, str | None]:
    """``(status, error)``: a pending report whose job already ended (failed, cancelled,
    interrupted) reads as ``failed`` with the job's error."""
    if row.status == "pending" and row.job is not None and JobStatus(row.job.status).is_final:
        return "failed", row.job.error or f"The key report job ended {row.job.status} without a report."
    return row.status, row.error
