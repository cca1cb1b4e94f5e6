"""JSON API v1: one clip and its caption."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from app.routes.deps import SessionDep
from core.services import clips as clip_service
from core.services.captions import save_caption

router = APIRouter(prefix="/api/v1", tags=["clips"])


class CaptionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    visual: str | None = None
    transcript: str | None = None
    voice: str | None = None
    sounds: str | None = None
    text: str | None = None
    transcript_source: Literal["user"] | None = Field(
        None, description="'user' confirms an automatic transcript as checked (editing it does too).")


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
