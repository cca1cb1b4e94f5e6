"""JSON API v1: LoRA key reports of checkpoints, and checking a LoRA file from any trainer."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse

from app.routes.deps import SessionDep
from core.config import get_settings
from core.errors import NotFound
from core.names import MODEL_PRESETS
from core.services import lora_check

router = APIRouter(prefix="/api/v1", tags=["lora"])

UPLOAD_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"],
    "properties": {"file": {"type": "string", "format": "binary"},
                   "preset": {"type": "string", "description": " | ".join(MODEL_PRESETS)}}}}}}}


@router.get("/runs/{run_id}/checkpoints/{step}/key-report")
def read_key_report(run_id: int, step: int, session: SessionDep) -> dict[str, Any]:
    """Keys per family loaded into a fresh pipeline, and any dropped, for both files of a checkpoint.

    404 while no report was ever queued: POST to this URL to make one.
    """
    checkpoint = lora_check.find_checkpoint(session, run_id, step)
    report = lora_check.checkpoint_key_report(session, checkpoint)
    if report["status"] == "missing":
        raise NotFound("key report", f"of checkpoint {step} of run #{run_id} (POST to this URL to make one)")
    return report


@router.post("/runs/{run_id}/checkpoints/{step}/key-report", status_code=202)
def make_key_report(run_id: int, step: int, session: SessionDep) -> dict[str, Any]:
    """Queue (again) the key report of a checkpoint's official and diffusers files."""
    checkpoint = lora_check.find_checkpoint(session, run_id, step)
    lora_check.queue_checkpoint_key_report(session, checkpoint, force=True)
    return lora_check.checkpoint_key_report(session, checkpoint)


@router.post("/lora/verify", status_code=202, openapi_extra=UPLOAD_BODY)
async def verify_upload(request: Request, session: SessionDep) -> JSONResponse:
    """Check a LoRA file from any trainer (multipart field "file", optional "preset"): it is
    loaded into a fresh pipeline by a job; follow `url` for the report."""
    received, preset = await lora_check.receive_lora_upload(request.headers, request.stream(),
                                                            get_settings().max_upload_bytes)
    row = await run_in_threadpool(lora_check.accept_lora_upload, session, received, preset)
    body = {"report_id": row.id, "job_id": row.job_id, "url": f"/api/v1/lora/reports/{row.id}",
            "page": f"/lora/reports/{row.id}"}
    return JSONResponse(body, status_code=202)


@router.get("/lora/reports/{report_id}")
def read_lora_report(report_id: int, session: SessionDep) -> dict[str, Any]:
    """A key report (status pending | done | failed)."""
    return lora_check.report_to_dict(lora_check.get_report(session, report_id))
