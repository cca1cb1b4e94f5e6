"""Serving clip files back: fixed, safe content types; never HTML or SVG."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import FileResponse

from app.routes.deps import SessionDep
from core.errors import NotFound
from core.services.clips import MEDIA_KINDS, clip_file, get_clip

router = APIRouter(include_in_schema=False)

# The content type comes from our own stored suffix (chosen after opening the file), never from
# the client; anything unexpected is sent as a download of opaque bytes.
SAFE_TYPES = {
    ".mp4": "video/mp4", ".m4a": "audio/mp4", ".webm": "video/webm", ".mkv": "video/x-matroska",
    ".avi": "video/x-msvideo", ".ogg": "video/ogg", ".flv": "video/x-flv", ".mpg": "video/mpeg",
    ".ts": "video/mp2t", ".wmv": "video/x-ms-wmv", ".wav": "audio/wav", ".mp3": "audio/mpeg",
    ".flac": "audio/flac", ".aac": "audio/aac", ".jpg": "image/jpeg", ".png": "image/png",
}


@router.get("/media/clips/{clip_id}/{kind}")
def clip_media(clip_id: int, kind: str, session: SessionDep) -> FileResponse:
    """A clip's source, proxy, poster, waveform or spectrogram file."""
    clip = get_clip(session, clip_id)
    path = clip_file(clip, kind) if kind in MEDIA_KINDS else None
    if path is None or not path.is_file():
        raise NotFound(f"{kind} file of clip", clip_id)
    media_type = SAFE_TYPES.get(path.suffix.lower())
    headers = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "default-src 'none'; sandbox",
               "Cache-Control": "private, max-age=300"}
    if media_type is None:
        return FileResponse(path, media_type="application/octet-stream", headers=headers,
                            filename=f"clip-{clip_id}{path.suffix}")
    headers["Content-Disposition"] = f'inline; filename="clip-{clip_id}-{kind}{path.suffix}"'
    return FileResponse(path, media_type=media_type, headers=headers)
