"""JSON API v1: training runs, their checkpoints (LoRA files in both layouts) and samples."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse

from app.routes.deps import SessionDep
from core.services import runs as run_service
from core.services.voice_metrics import voice_reference

router = APIRouter(prefix="/api/v1", tags=["runs"])


class RunCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dataset_id: int
    preprocess_run_id: int | None = Field(
        None, description="Succeeded preprocess run to train from (default: the newest one matching the config).")
    config: dict[str, Any] = Field(default_factory=dict, description="A run config (see GET /api/v1/presets/{name}).")


class RunClone(BaseModel):
    model_config = ConfigDict(extra="forbid")
    changes: dict[str, Any] = Field(default_factory=dict, description="Top-level config sections to replace.")


def _created(run, warnings) -> JSONResponse:
    return JSONResponse({"id": run.id, "job_id": run.job_id, "warnings": warnings}, status_code=201)


@router.post("/runs", status_code=201)
def create_run(body: RunCreate, session: SessionDep) -> JSONResponse:
    """Lint the config, check preprocessing and free space, then queue the run -> {id, job_id, warnings}.

    Linter errors answer 422 with the linter's messages (`error.detail.issues`). `warnings` holds the
    linter's warnings, what the studio replaced or filled in (`output_dir_replaced`,
    `preprocessed_dir_replaced`, `default_steps`: also in the run's own `warnings`) and
    `broker_unreachable` when the job could not be sent yet (it is, once the broker is back).
    """
    run, warnings = run_service.create_run(session, body.dataset_id, body.config,
                                           preprocess_run_id=body.preprocess_run_id)
    return _created(run, warnings)


@router.get("/runs")
def list_runs(session: SessionDep, dataset_id: int | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Training runs, newest first, with status, progress and checkpoint steps."""
    return [run_service.run_summary(run) for run in run_service.list_runs(session, dataset_id, limit)]


@router.get("/runs/{run_id}")
def read_run(run_id: int, session: SessionDep) -> dict[str, Any]:
    """A run: status, job, config, `warnings` (what the studio replaced in its config, a broker its
    queued job waits for), metrics, checkpoints (with download links), samples and
    ``voice_reference`` (``{"clips", "speech_s"}``: its training clips with a voice embedding, the
    dataset's voice its samples' ``speaker_similarity`` is measured against)."""
    run = run_service.get_run(session, run_id)
    return {**run_service.run_to_dict(run), "voice_reference": voice_reference(session, run)}


@router.post("/runs/{run_id}/clone", status_code=201)
def clone_run(run_id: int, session: SessionDep, body: RunClone | None = None) -> JSONResponse:
    """Queue a new run with this run's config (optionally changed) -> {id, job_id, warnings}."""
    run = run_service.get_run(session, run_id)
    new_run, warnings = run_service.clone_run(session, run, (body or RunClone()).changes)
    return _created(new_run, warnings)


@router.get("/runs/{run_id}/checkpoints/{step}/lora")
def download_lora(run_id: int, step: int, session: SessionDep,
                  format: Literal["comfy", "diffusers"] = "comfy") -> FileResponse:
    """The LoRA file of checkpoint `step`: comfy (official / ComfyUI layout) or diffusers."""
    run = run_service.get_run(session, run_id)
    path = run_service.checkpoint_file(run, step, format)
    suffix = "" if format == "comfy" else "_diffusers"
    return FileResponse(path, media_type="application/octet-stream",
                        filename=f"run{run.id}_step{step:05d}{suffix}.safetensors")


@router.get("/runs/{run_id}/samples/{sample_id}/{kind}")
def download_sample(run_id: int, sample_id: int, kind: Literal["mp4", "wav"], session: SessionDep) -> FileResponse:
    """A validation sample's video (mp4, audio muxed in) or audio (wav)."""
    run = run_service.get_run(session, run_id)
    path = run_service.sample_file(run, sample_id, kind)
    return FileResponse(path, media_type="video/mp4" if kind == "mp4" else "audio/wav")
