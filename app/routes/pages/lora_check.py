"""Pages: the key report of a checkpoint, and checking a LoRA file from any other trainer."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from app.routes.deps import SessionDep
from app.templating import templates
from core.names import MODEL_PRESETS
from core.services import lora_check

router = APIRouter(include_in_schema=False)


@router.get("/lora/check", response_class=HTMLResponse)
def lora_check_page(request: Request):
    """The upload form: a .safetensors LoRA from any trainer, and the model preset to load it into."""
    return templates.TemplateResponse(request, "lora_check.html", {
        "reports": None, "presets": MODEL_PRESETS, "title": "Check a LoRA file"})


@router.get("/lora/reports/{report_id}", response_class=HTMLResponse)
def lora_report_page(report_id: int, request: Request, session: SessionDep, partial: bool = False):
    """The key report of an uploaded file (the panel polls itself while the job runs)."""
    report = lora_check.report_to_dict(lora_check.get_report(session, report_id))
    context = {"reports": {report["layout"]: report}, "poll_url": f"/lora/reports/{report_id}?partial=1",
               "title": f"Key report: {report['file_name']}", "presets": MODEL_PRESETS}
    name = "partials/compare_key_report.html" if partial else "lora_check.html"
    return templates.TemplateResponse(request, name, context)


@router.get("/runs/{run_id}/checkpoints/{step}/key-report", response_class=HTMLResponse)
def checkpoint_report_page(run_id: int, step: int, request: Request, session: SessionDep, partial: bool = False):
    """Both files of a checkpoint loaded into a fresh pipeline: keys per family, dropped keys."""
    checkpoint = lora_check.find_checkpoint(session, run_id, step)
    data = lora_check.checkpoint_key_report(session, checkpoint)
    context = {"reports": data["reports"], "status": data["status"], "run_id": run_id, "step": step,
               "poll_url": f"/runs/{run_id}/checkpoints/{step}/key-report?partial=1",
               "title": f"Key report: run #{run_id}, step {step}", "presets": MODEL_PRESETS}
    name = "partials/compare_key_report.html" if partial else "lora_check.html"
    return templates.TemplateResponse(request, name, context)


@router.post("/runs/{run_id}/checkpoints/{step}/key-report")
def queue_checkpoint_report(run_id: int, step: int, session: SessionDep):
    """Make (again) the key report of a checkpoint."""
    checkpoint = lora_check.find_checkpoint(session, run_id, step)
    lora_check.queue_checkpoint_key_report(session, checkpoint, force=True)
    return RedirectResponse(f"/runs/{run_id}/checkpoints/{step}/key-report", status_code=303)
