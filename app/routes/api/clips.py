"""JSON API v1: one clip, its caption, and the jobs behind it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict

from app.models import Job
from app.routes.deps import SessionDep
from app.services import clips as clip_service
from app.services.captions import save_caption
from app.services.errors import NotFound
from app.services.jobs import job_to_dict, request_cancel

router = APIRouter(prefix="/api/v1", tags=["clips"])


class CaptionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    visual: str | None = None
    transcript: str | None = None
    voice: str | None = None
    sounds: str | None = None
    text: str | None = None


@router.get("/clips/{clip_id}")
def read_clip(clip_id: int, session: SessionDep) -> dict[str, Any]:
    """A clip: status, probe, findings, caption and media URLs (proxy, poster, waveform, spectrogram)."""
    return clip_service.clip_to_dict(clip_service.get_clip(session, clip_id))


@router.put("/clips/{clip_id}/caption")
def put_caption(clip_id: int, body: CaptionBody, session: SessionDep) -> dict[str, Any]:
    """Save a clip's caption fields (omitted fields keep their value) and return the clip."""
    clip = clip_service.get_clip(session, clip_id)
    save_caption(session, clip, body.model_dump(exclude_unset=True))
    return clip_service.clip_to_dict(clip)


@router.delete("/clips/{clip_id}", status_code=204)
def delete_clip(clip_id: int, session: SessionDep) -> Response:
    """Delete a clip and its files."""
    clip_service.delete_clip(session, clip_service.get_clip(session, clip_id))
    return Response(status_code=204)


@router.post("/clips/{clip_id}/reprobe", status_code=202)
def reprobe_clip(clip_id: int, session: SessionDep) -> dict[str, Any]:
    """Analyse a clip again."""
    clip = clip_service.reprobe_clip(session, clip_service.get_clip(session, clip_id))
    return clip_service.clip_to_dict(clip)


@router.get("/jobs/{job_id}", tags=["jobs"])
def read_job(job_id: int, session: SessionDep) -> dict[str, Any]:
    """A background job: status, progress, step, total, eta_s, error."""
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound("job", job_id)
    return job_to_dict(job)


@router.post("/jobs/{job_id}/cancel", tags=["jobs"])
def cancel_job(job_id: int, session: SessionDep) -> dict[str, Any]:
    """Ask a job to stop: a queued job is cancelled at once, a running one between steps."""
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound("job", job_id)
    return job_to_dict(request_cancel(session, job))
