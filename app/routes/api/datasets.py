"""JSON API v1: datasets, their clips (upload), bulk caption edits."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse

from app.routes.deps import SessionDep
from core.config import get_settings
from core.errors import ApiError
from core.services import captions as caption_service
from core.services import datasets as dataset_service
from core.services.clips import add_received_files
from core.services.uploads import receive_clip_files

router = APIRouter(prefix="/api/v1", tags=["datasets"])


class DatasetCreate(BaseModel):
    name: str = Field(description="Shown in the studio, e.g. 'Ema talking'.")
    trigger: str = Field(description="One word of letters, digits, _ or - that starts every caption.")
    buckets: str | list[str] | None = Field(None, description="'WxHxF;WxHxF'; default 512x512x49;512x512x89.")


class DatasetUpdate(BaseModel):
    name: str | None = None
    trigger: str | None = None
    buckets: str | list[str] | None = Field(None, description="Changing them recomputes every clip's findings.")
    default_voice: str | None = Field(None, description="Voice style used where a caption leaves it empty.")
    default_sounds: str | None = Field(None, description="Sounds used where a caption leaves them empty.")
    language: str | None = Field(None, description="Language the recogniser listens for, e.g. 'en'.")
    auto_transcribe: bool | None = Field(None, description="Transcribe every new clip once it is checked.")


class BulkSet(BaseModel):
    clip_ids: list[int]
    voice: str | None = None
    sounds: str | None = None
    visual: str | None = None


class FindReplace(BaseModel):
    clip_ids: list[int]
    find: str
    replace: str = ""


@router.get("/datasets")
def list_datasets(session: SessionDep) -> list[dict[str, Any]]:
    """List datasets with their summaries, newest first."""
    return [dataset_service.dataset_to_dict(d, with_clips=False) for d in dataset_service.list_datasets(session)]


@router.post("/datasets", status_code=201)
def create_dataset(body: DatasetCreate, session: SessionDep) -> dict[str, Any]:
    """Create an empty dataset with a trigger word and resolution buckets."""
    dataset = dataset_service.create_dataset(session, body.name, body.trigger, body.buckets)
    return dataset_service.dataset_to_dict(dataset)


@router.get("/datasets/{dataset_id}")
def read_dataset(dataset_id: int, session: SessionDep) -> dict[str, Any]:
    """A dataset, its summary {clips, trainable, blocked, ...}, what the trainer would drop, and its clips."""
    return dataset_service.dataset_to_dict(dataset_service.get_dataset(session, dataset_id))


@router.patch("/datasets/{dataset_id}")
def update_dataset(dataset_id: int, body: DatasetUpdate, session: SessionDep) -> dict[str, Any]:
    """Change name, trigger, buckets or caption defaults; findings and captions follow."""
    dataset = dataset_service.get_dataset(session, dataset_id)
    dataset_service.update_dataset(session, dataset, **body.model_dump(exclude_unset=True))
    return dataset_service.dataset_to_dict(dataset)


UPLOAD_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["files"],
    "properties": {"files": {"type": "array", "items": {"type": "string", "format": "binary"}}}}}}}}


@router.post("/datasets/{dataset_id}/clips", status_code=201, openapi_extra=UPLOAD_BODY)
async def upload_clips(dataset_id: int, request: Request, session: SessionDep):
    """Upload clips (multipart field "files", one or many); each is checked and queued for analysis.

    Answers one entry per file: the new clip, or `{"name","status","error"}` for a file that is
    not media (nothing kept). When no file was kept the answer is that error (415). A file over
    the size limit stops the whole upload at once (413) and nothing of it is kept.
    """
    dataset = await run_in_threadpool(dataset_service.get_dataset, session, dataset_id)
    settings = get_settings()
    folder = dataset_service.dataset_folder(dataset.id)
    files = await receive_clip_files(request.headers, request.stream(), folder, settings.max_upload_bytes)
    try:
        entries = await run_in_threadpool(add_received_files, session, dataset, files)
    finally:
        for received in files:  # anything not stored (an error half-way) is removed
            received.temp_path.unlink(missing_ok=True)
    if not any("id" in e for e in entries):
        first = entries[0]["error"]
        raise ApiError(415, first["code"], first["message"], {"files": entries})
    return JSONResponse(entries, status_code=201)


@router.post("/datasets/{dataset_id}/captions/bulk")
def bulk_set_captions(dataset_id: int, body: BulkSet, session: SessionDep) -> dict[str, Any]:
    """Set voice style, sounds or visual description on the selected clips."""
    dataset = dataset_service.get_dataset(session, dataset_id)
    values = body.model_dump(exclude={"clip_ids"}, exclude_none=True)
    changed = caption_service.bulk_set_fields(session, dataset, body.clip_ids, values)
    return {"changed": changed}


@router.post("/datasets/{dataset_id}/captions/replace")
def find_replace_captions(dataset_id: int, body: FindReplace, session: SessionDep) -> dict[str, Any]:
    """Find and replace text in the captions of the selected clips (literal, case-sensitive)."""
    dataset = dataset_service.get_dataset(session, dataset_id)
    changed = caption_service.find_replace(session, dataset, body.clip_ids, body.find, body.replace)
    return {"changed": changed}
