"""Receiving uploaded clips: the request body streamed to disk, checked, then stored.

The multipart body is parsed chunk by chunk (``streaming-form-data``) straight into temporary
files in the dataset's folder, so memory stays flat whatever the size. A file is abandoned the
moment it passes the size limit, and every partial file is removed when the upload fails or the
client goes away; a body the disk has no room for is refused before it is read, and one that
fills the disk is stopped with :class:`core.errors.DiskFull` (507). Stored names are random
(never the client's name); the file type is decided by opening the file with PyAV, never by its
name or the declared content type.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import av
from anyio.to_thread import run_sync as run_in_threadpool
from streaming_form_data import StreamingFormDataParser
from streaming_form_data.parser import ParseFailedException
from streaming_form_data.targets import BaseTarget, ValueTarget
from streaming_form_data.validators import MaxSizeValidator, ValidationError

from core.disk import disk_full_at, ensure_free, is_disk_full
from core.errors import ApiError
from core.media.probe import MediaProbeError, probe_media

UPLOAD_FIELD = "files"
PARTIAL_PREFIX = ".upload-"
PARTIAL_SUFFIX = ".part"
MAX_VALUE_BYTES = 64 * 1024  # text fields beside the files (name, trigger)

# Container formats (PyAV's names) accepted as clips, with the extension the stored file gets.
# Anything else, images (png_pipe, svg_pipe, image2, ...) and text included, is refused.
_CONTAINER_EXTENSIONS = {
    "mov,mp4,m4a,3gp,3g2,mj2": "mp4",
    "matroska,webm": "mkv",
    "avi": "avi",
    "ogg": "ogg",
    "flv": "flv",
    "mpeg": "mpg",
    "mpegts": "ts",
    "asf": "wmv",
    "wav": "wav",
    "mp3": "mp3",
    "flac": "flac",
    "aac": "aac",
}
_WEBM_CODECS = {"vp8", "vp9", "av1", "opus", "vorbis"}


class UploadTooLarge(ApiError):
    """A file passed ``max_upload_bytes``; the upload was stopped and its files removed."""

    def __init__(self, name: str, limit: int):
        mib = limit / (1024 * 1024)
        super().__init__(
            413, "upload_too_large",
            f"'{name}' is larger than the upload limit of {mib:g} MiB: trim or re-encode it, "
            "or raise AVLORA_MAX_UPLOAD_MB.",
            {"limit_bytes": limit},
        )


@dataclass
class ReceivedFile:
    """One file of an upload, written under a temporary name in the dataset's folder."""

    original_name: str
    temp_path: Path
    size_bytes: int
    sha256: str


class ClipFilesTarget(BaseTarget):
    """A streaming-form-data target that writes every file of one field to its own temp file."""

    def __init__(self, folder: Path, max_bytes: int):
        super().__init__()
        self.folder = folder
        self.max_bytes = max_bytes
        self.files: list[ReceivedFile] = []
        self._next_name: str | None = None
        self._handle = None
        self._path: Path | None = None
        self._hash = None
        self._size = 0
        self._name = ""

    def set_multipart_filename(self, filename: str) -> None:
        self._next_name = filename

    def on_start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=PARTIAL_PREFIX, suffix=PARTIAL_SUFFIX, dir=self.folder)
        self._handle = os.fdopen(fd, "wb")
        self._path = Path(name)
        self._hash = hashlib.sha256()
        self._size = 0
        self._name = display_name(self._next_name)
        self._next_name = None

    def on_data_received(self, chunk: bytes) -> None:
        if self._handle is None:  # the name arrives before start on some parser versions
            self.on_start()
        self._size += len(chunk)
        if self._size > self.max_bytes:
            raise UploadTooLarge(self._name, self.max_bytes)
        self._handle.write(chunk)
        self._hash.update(chunk)

    def on_finish(self) -> None:
        if self._handle is None:
            self.on_start()
        self._handle.close()
        self.files.append(ReceivedFile(self._name, self._path, self._size, self._hash.hexdigest()))
        self._handle, self._path = None, None

    @property
    def receiving(self) -> bool:
        """True between the start and the end of a file part (an unfinished file)."""
        return self._handle is not None

    def discard(self) -> None:
        """Close and delete every file this target wrote (finished or partial)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        paths = [f.temp_path for f in self.files] + ([self._path] if self._path else [])
        for path in paths:
            path.unlink(missing_ok=True)
        self.files, self._path = [], None


def display_name(client_name: str | None) -> str:
    """The client's file name reduced to a base name for display (never used as a path)."""
    name = (client_name or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    name = "".join(ch for ch in name if ch.isprintable())
    return name[:200] or "unnamed"


@dataclass
class ReceivedUpload:
    """Files (by field) and short text values of one streamed multipart upload."""

    files: dict[str, list[ReceivedFile]]
    values: dict[str, str]

    def all_files(self) -> list[ReceivedFile]:
        """Every received file, whatever its field."""
        return [f for group in self.files.values() for f in group]

    def discard(self) -> None:
        """Delete every received temp file that is still there."""
        for received in self.all_files():
            received.temp_path.unlink(missing_ok=True)


async def receive_multipart(
    headers: Mapping[str, str], body: AsyncIterator[bytes], folder: Path, max_bytes: int,
    file_fields: tuple[str, ...] = (UPLOAD_FIELD,), value_fields: tuple[str, ...] = (),
) -> ReceivedUpload:
    """Stream a multipart body's file parts into temp files under ``folder``.

    Raises :class:`UploadTooLarge` (413) as soon as one file passes ``max_bytes``, an
    :class:`ApiError` (400) for a body that is not a readable multipart upload, :class:`DiskFull`
    (507) before reading a body the disk has no room for or when the disk fills while it is
    written, and lets a client disconnect propagate. In every failure all files written so far
    are removed.
    """
    try:
        parser = StreamingFormDataParser(headers=headers)
    except ParseFailedException as exc:
        raise ApiError(400, "not_multipart",
                       f"Send the upload as multipart/form-data with the field '{file_fields[0]}' ({exc}).") from exc
    ensure_free(folder, _declared_length(headers))
    targets = {name: ClipFilesTarget(folder, max_bytes) for name in file_fields}
    values = {name: ValueTarget(validator=MaxSizeValidator(MAX_VALUE_BYTES)) for name in value_fields}
    for name, target in {**targets, **values}.items():
        parser.register(name, target)

    def discard_all() -> None:
        for target in targets.values():
            target.discard()

    try:
        async for chunk in body:
            if chunk:
                await run_in_threadpool(parser.data_received, chunk)
        if any(t.receiving for t in targets.values()):  # body ended inside a file part
            raise ApiError(400, "upload_incomplete", "The upload ended before the file did: send it again.")
    except BaseException as exc:
        full = is_disk_full(exc, folder)  # measured before the partial files free their space
        discard_all()
        if full:
            raise disk_full_at(folder) from exc
        if isinstance(exc, (ParseFailedException, ValidationError)):
            raise ApiError(400, "bad_multipart",
                           f"The upload could not be read as multipart/form-data ({exc}).") from exc
        raise
    return ReceivedUpload(
        files={name: t.files for name, t in targets.items()},
        values={name: t.value.decode("utf-8", "replace").strip() for name, t in values.items()},
    )


def _declared_length(headers: Mapping[str, str]) -> int:
    """The body's Content-Length (0 when absent or not a number: the disk is then checked as it fills)."""
    try:
        return max(0, int(headers.get("content-length") or 0))
    except ValueError:
        return 0


async def receive_clip_files(
    headers: Mapping[str, str], body: AsyncIterator[bytes], folder: Path, max_bytes: int
) -> list[ReceivedFile]:
    """Stream the ``files`` parts of a clip upload to temp files; 422 when there are none."""
    upload = await receive_multipart(headers, body, folder, max_bytes)
    if not upload.all_files():
        raise ApiError(422, "no_files", f"No files in the upload: send one or more in the field '{UPLOAD_FIELD}'.")
    return upload.all_files()


def check_media_file(path: Path, shown_name: str) -> str:
    """Open ``path`` with PyAV and return the extension its stored copy gets.

    Raises :class:`MediaProbeError` (``not_media`` or ``corrupt_media``) with a message naming
    ``shown_name`` when the file is not an audio/video container this studio accepts.
    """
    if path.stat().st_size == 0:
        raise MediaProbeError("not_media", f"'{shown_name}' is empty (0 bytes): upload the file again.")
    try:
        container = av.open(str(path), mode="r")
    except av.error.FFmpegError:
        try:  # the probe tells a damaged video (known signature) from something else entirely
            probe_media(path)
        except MediaProbeError as exc:
            raise MediaProbeError(exc.code, exc.message.replace(path.name, f"'{shown_name}'"), exc.detail) from None
        raise MediaProbeError("not_media", f"'{shown_name}' cannot be opened as media.") from None
    with container:
        fmt = container.format.name
        extension = _CONTAINER_EXTENSIONS.get(fmt)
        streams = [s for s in container.streams if s.type in ("video", "audio") and s.codec_context is not None]
        if extension is None or not streams:
            kind = "an image" if fmt.endswith("_pipe") or fmt == "image2" else f"'{fmt}'"
            raise MediaProbeError(
                "not_media",
                f"'{shown_name}' is {kind}, not a video: upload a video clip with sound (MP4, MOV, WebM, MKV).",
                {"container": fmt},
            )
        codecs = {s.codec_context.name for s in streams}
        if extension == "mkv" and codecs <= _WEBM_CODECS:
            extension = "webm"
        if extension == "mp4" and not any(s.type == "video" for s in streams):
            extension = "m4a"
        return extension


def store_received_file(received: ReceivedFile, extension: str) -> Path:
    """Rename a checked temp file to its final random name beside it; returns the new path."""
    final = received.temp_path.with_name(f"{uuid.uuid4().hex}.{extension}")
    os.replace(received.temp_path, final)
    return final
