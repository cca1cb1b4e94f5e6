"""JSON API v1: the speech jobs of clips (transcribe, split plans, splits).

Each POST queues a job on the cpu queue and answers ``{"job_id"}`` at once (202); follow it at
``GET /api/v1/jobs/{id}``. The results land on the clip (``GET /api/v1/clips/{id}``: the caption's
transcript and ``transcript_source``, ``words``) or, for a split plan, at ``GET .../split-plan``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from app.routes.deps import SessionDep
from core.services import clips as clip_service
from core.services import datasets as dataset_service
from core.services import speech as speech_service

router = APIRouter(prefix="/api/v1", tags=["speech"])


class TranscribeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    clip_ids: list[int] | None = Field(None, description="Clips to transcribe; default: every clip with audio.")


class Part(BaseModel):
    model_config = ConfigDict(extra="ignore")  # a plan's part (frames, transcript) may be sent back as is
    start_s: float
    end_s: float


class SplitBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    parts: list[Part] = Field(description="The parts to cut, in order; each becomes a new clip.")


@router.post("/clips/{clip_id}/transcribe", status_code=202)
def transcribe_clip(clip_id: int, session: SessionDep) -> dict[str, Any]:
    """Recognise the words of a clip; a transcript the person typed is kept and aligned instead."""
    clip = clip_service.get_clip(session, clip_id)
    job = speech_service.queue_transcribe(session, clip.dataset, [clip.id])
    return {"job_id": job.id}


@router.post("/datasets/{dataset_id}/transcribe", status_code=202)
def transcribe_dataset(dataset_id: int, session: SessionDep, body: TranscribeBody | None = None) -> dict[str, Any]:
    """Recognise the words of the chosen clips (default: every clip of the dataset with audio)."""
    dataset = dataset_service.get_dataset(session, dataset_id)
    job = speech_service.queue_transcribe(session, dataset, body.clip_ids if body else None)
    return {"job_id": job.id}


@router.post("/clips/{clip_id}/split-plan", status_code=202)
def plan_split(clip_id: int, session: SessionDep) -> dict[str, Any]:
    """Propose cut points at pauses and sentence ends so every part is a 3-5 s line."""
    job = speech_service.queue_split_plan(session, clip_service.get_clip(session, clip_id))
    return {"job_id": job.id}


@router.get("/clips/{clip_id}/split-plan")
def read_split_plan(clip_id: int, session: SessionDep) -> dict[str, Any]:
    """The proposed parts: ``{"parts": [{"start_s","end_s","frames","transcript"}]}``."""
    return speech_service.split_plan(clip_service.get_clip(session, clip_id))


@router.post("/clips/{clip_id}/split", status_code=202)
def split_clip(clip_id: int, body: SplitBody, session: SessionDep) -> dict[str, Any]:
    """Cut the clip into the given parts (new clips, checked like uploads); the original is kept."""
    clip = clip_service.get_clip(session, clip_id)
    job = speech_service.queue_split(session, clip, [p.model_dump() for p in body.parts])
    return {"job_id": job.id}
