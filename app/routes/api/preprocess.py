"""JSON API v1: preprocessing a dataset and its per-clip results (buckets, drops, decoded previews)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse

from app.routes.deps import SessionDep
from core.names import MODEL_PRESETS
from core.services import preprocess_runs as preprocess_service

router = APIRouter(prefix="/api/v1", tags=["preprocess"])


class PreprocessBody(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())
    model: str | None = Field(None, description=f"Model preset: {' | '.join(MODEL_PRESETS)} (default: MODEL_PRESET).")
    buckets: str | list[str] | None = Field(None, description="'WxHxF;WxHxF' (default: the dataset's buckets).")


@router.post("/datasets/{dataset_id}/preprocess", status_code=202)
def start_preprocess(dataset_id: int, session: SessionDep, body: PreprocessBody | None = None):
    """Queue the preprocessing of the dataset's trainable clips on the gpu queue -> {job_id, run_id}."""
    body = body or PreprocessBody()
    run = preprocess_service.start_preprocess(session, dataset_id, model=body.model, buckets=body.buckets)
    return JSONResponse({"job_id": run.job_id, "run_id": run.id}, status_code=202)


@router.get("/datasets/{dataset_id}/preprocess")
def list_preprocess_runs(dataset_id: int, session: SessionDep) -> list[dict[str, Any]]:
    """The dataset's preprocess runs, newest first."""
    runs = preprocess_service.list_preprocess_runs(session, dataset_id)
    return [preprocess_service.preprocess_run_to_dict(run) for run in runs]


@router.get("/preprocess/{run_id}")
def read_preprocess_run(run_id: int, session: SessionDep) -> dict[str, Any]:
    """A preprocess run: settings, status, and per clip its bucket, outcome (ok/cached/error + reason) and previews."""
    return preprocess_service.preprocess_run_to_dict(preprocess_service.get_preprocess_run(session, run_id))


@router.get("/preprocess/{run_id}/clips/{clip_id}/{kind}")
def read_decoded_preview(run_id: int, clip_id: int, kind: str, session: SessionDep) -> FileResponse:
    """The decoded video (mp4) or audio (wav) of one clip: what the model will learn from."""
    run = preprocess_service.get_preprocess_run(session, run_id)
    path = preprocess_service.decoded_file(run, clip_id, kind)
    return FileResponse(path, media_type="video/mp4" if kind == "decoded_video" else "audio/wav")
