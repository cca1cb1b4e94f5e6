"""JSON API v1: export a dataset as an ltx-trainer zip, import one (or a metadata file) back."""

from __future__ import annotations

import shutil
import uuid
import zipfile
from pathlib import PurePosixPath

from fastapi import APIRouter, Request
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.responses import FileResponse, JSONResponse

from app.routes.deps import SessionDep
from core.config import get_settings
from core.errors import InvalidInput
from core.recipe.metadata import METADATA_SUFFIXES
from core.services import datasets as dataset_service
from core.services import exchange
from core.services.uploads import receive_multipart

router = APIRouter(prefix="/api/v1", tags=["import and export"])


@router.get("/datasets/{dataset_id}/export")
def export_dataset(dataset_id: int, session: SessionDep, include_blocked: bool = False) -> FileResponse:
    """The dataset as a zip in the ltx-trainer layout: dataset.jsonl (caption, media_path) and the media beside it."""
    dataset = dataset_service.get_dataset(session, dataset_id)
    path = exchange.export_dataset_zip(dataset, include_blocked=include_blocked)
    filename = f"{exchange.safe_stem(dataset.name)}-ltx-dataset.zip"
    return FileResponse(path, media_type="application/zip", filename=filename,
                        headers={"X-Content-Type-Options": "nosniff"},
                        background=BackgroundTask(path.unlink, missing_ok=True))


IMPORT_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"],
    "properties": {"file": {"type": "string", "format": "binary"},
                   "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
                   "name": {"type": "string"}, "trigger": {"type": "string"}}}}}}}


@router.post("/datasets/import", status_code=201, openapi_extra=IMPORT_BODY)
async def import_dataset(request: Request, session: SessionDep) -> JSONResponse:
    """Create a dataset from a zip in the ltx-trainer layout (field "file"), or from a metadata
    file (.jsonl, .json, .csv in "file") sent with its media files (field "files").
    Optional fields "name" and "trigger" (guessed from the captions when left out)."""
    settings = get_settings()
    work = settings.data_dir / "clips" / f".import-{uuid.uuid4().hex}"
    work.mkdir(parents=True, exist_ok=True)
    try:
        upload = await receive_multipart(request.headers, request.stream(), work, settings.max_upload_bytes,
                                         file_fields=("file", "files"), value_fields=("name", "trigger"))
        result = await run_in_threadpool(_import, session, upload, work, settings.max_upload_bytes)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return JSONResponse(result, status_code=201)


def _import(session, upload, work, max_bytes) -> dict:
    if len(upload.files["file"]) != 1:
        raise InvalidInput("file_needed", "Send exactly one zip or metadata file in the field 'file'.")
    main = upload.files["file"][0]
    if zipfile.is_zipfile(main.temp_path):
        source = exchange.read_zip_source(main.temp_path, work, max_bytes)
    elif PurePosixPath(main.original_name).suffix.lower() in METADATA_SUFFIXES:
        source = exchange.bare_metadata_source(main, upload.files["files"])
    else:
        raise InvalidInput("not_a_dataset", f"'{main.original_name}' is neither a zip nor a .jsonl, .json or "
                           ".csv metadata file.")
    return exchange.import_dataset(session, source, name=upload.values.get("name") or None,
                                   trigger=upload.values.get("trigger") or None)
