"""Export a dataset in the ltx-trainer layout and import such a dataset back.

Export: a zip with ``dataset.jsonl`` (``caption`` and ``media_path`` per clip, media beside it)
that the official trainer reads as is, plus ``studio.json`` holding what the trainer ignores
(trigger, buckets, caption parts) so an export -> import round trip keeps every field.
Import: such a zip (metadata as ``.jsonl``, ``.json`` or ``.csv``), or a bare metadata file
sent together with the media files it names. Member names from a zip are never used as paths.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import av
from sqlalchemy.orm import Session

from core.config import get_settings
from core.disk import disk_full_at, is_disk_full
from core.errors import InvalidInput
from core.media.probe import MediaProbeError
from core.models import Clip, ClipStatus, Dataset
from core.recipe.captions import begins_with_trigger, is_valid_trigger
from core.recipe.metadata import METADATA_SUFFIXES, MetadataEntry, MetadataError, parse_metadata, write_metadata
from core.services import datasets as dataset_service
from core.services.captions import CAPTION_FIELDS, caption_parts, clean_parts, composed_caption
from core.services.clip_findings import refresh_dataset_findings
from core.services.clips import clip_file, clip_to_dict, queue_probe, refused_entry
from core.services.uploads import ReceivedFile, check_media_file, display_name, store_received_file

METADATA_NAME = "dataset.jsonl"
STUDIO_NAME = "studio.json"
COPY_CHUNK = 1 << 20
MAX_METADATA_BYTES = 16 << 20


def safe_stem(name: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(name).stem).strip("_")
    return stem[:60] or "clip"


def archive_suffix(source: Path) -> str:
    """The extension a clip's file gets in the zip: what the file is.

    The studio stores every file of FFmpeg's MP4/QuickTime family as ``.mp4``; a QuickTime file
    (major brand ``qt``, e.g. a camera's MOV with PCM audio, which MP4 readers refuse) gets its
    ``.mov`` back, so the zip names each file for what it holds.
    """
    suffix = source.suffix.lower()
    if suffix != ".mp4":
        return suffix
    try:
        with av.open(str(source)) as container:
            brand = str(container.metadata.get("major_brand") or "").strip()
    except av.error.FFmpegError:
        return suffix
    return ".mov" if brand == "qt" else suffix


def export_dataset_zip(dataset: Dataset, *, include_blocked: bool = False) -> Path:
    """Write the dataset's zip to a temporary file and return its path (the caller deletes it).

    Clips that are blocked (an error finding) or not analysed yet are left out unless
    ``include_blocked``: the official trainer would fail on or silently drop them.
    """
    clips = [c for c in dataset.clips
             if include_blocked or (c.status == ClipStatus.ready.value)]
    if not clips:
        raise InvalidInput("nothing_to_export",
                           "No trainable clips to export yet: upload clips and wait for their checks, "
                           "or export with include_blocked=true.")
    fd, zip_name = tempfile.mkstemp(prefix=".export-", suffix=".zip", dir=dataset_service.dataset_folder(dataset.id))
    os.close(fd)
    try:
        with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(zip_name, "w") as archive:
            entries, parts = [], {}
            for clip in clips:
                source = clip_file(clip)
                media_name = f"{clip.id:05d}_{safe_stem(clip.original_name)}{archive_suffix(source)}"
                archive.write(source, media_name, compress_type=zipfile.ZIP_STORED)
                entries.append(MetadataEntry(caption=composed_caption(clip), video=media_name))
                parts[media_name] = {"name": clip.original_name, **caption_parts(clip)}
            metadata = write_metadata(Path(tmp) / METADATA_NAME, entries, video_column="media_path")
            archive.write(metadata, METADATA_NAME, compress_type=zipfile.ZIP_DEFLATED)
            studio = {"name": dataset.name, "trigger": dataset.trigger, "buckets": dataset.buckets,
                      "default_voice": dataset.default_voice, "default_sounds": dataset.default_sounds,
                      "captions": parts}
            archive.writestr(STUDIO_NAME, json.dumps(studio, ensure_ascii=False, indent=2),
                             compress_type=zipfile.ZIP_DEFLATED)
    except BaseException as exc:
        full = is_disk_full(exc, zip_name)  # measured before the partial zip frees its space
        Path(zip_name).unlink(missing_ok=True)
        if full:
            raise disk_full_at(zip_name) from exc
        raise
    return Path(zip_name)


# ------------------------------------------------------------------ import


@dataclass
class ImportSource:
    """What an import upload brought: the metadata text and where each media file can be read."""

    metadata_name: str
    metadata_text: str
    studio: dict[str, Any] = field(default_factory=dict)
    media: dict[str, ReceivedFile] = field(default_factory=dict)  # normalised path -> file


def _norm(path: str | None) -> str | None:
    """A metadata or zip path as a clean relative POSIX path; ``None`` when it leaves its folder."""
    if not path:
        return None
    cleaned = posixpath.normpath(path.replace("\\", "/"))
    if cleaned.startswith(("/", "../")) or cleaned == ".." or re.match(r"^[A-Za-z]:", cleaned):
        return None
    return cleaned


def read_zip_source(zip_path: Path, work_dir: Path, max_bytes: int) -> ImportSource:
    """Find the metadata file in a zip and extract the media it names (size-checked, random names)."""
    try:
        archive = zipfile.ZipFile(zip_path)
    except zipfile.BadZipFile as exc:
        raise InvalidInput("bad_zip", f"The file is not a readable zip ({exc}): export it again.") from exc
    with archive:
        names = [i.filename for i in archive.infolist() if not i.is_dir()]
        candidates = sorted((n for n in names if PurePosixPath(n).suffix.lower() in METADATA_SUFFIXES
                             and PurePosixPath(n).name != STUDIO_NAME),
                            key=lambda n: (n.count("/"), PurePosixPath(n).suffix != ".jsonl", n))
        if not candidates:
            raise InvalidInput("no_metadata", "The zip holds no dataset.jsonl, .json or .csv metadata file: "
                               "export it in the ltx-trainer layout.")
        meta_name = candidates[0]
        base = PurePosixPath(meta_name).parent
        if archive.getinfo(meta_name).file_size > MAX_METADATA_BYTES:
            raise InvalidInput("bad_metadata", f"{meta_name} is over {MAX_METADATA_BYTES // 2**20} MiB: "
                               "that is not a dataset's metadata.")
        try:
            text = archive.read(meta_name).decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InvalidInput("bad_metadata", f"{meta_name} is not UTF-8 text.") from exc
        studio_name = (base / STUDIO_NAME).as_posix() if str(base) != "." else STUDIO_NAME
        studio = _read_studio(archive, studio_name) if studio_name in names else {}
        source = ImportSource(PurePosixPath(meta_name).name, text, studio)
        members = {_norm(n): n for n in names}
        for entry in _entries(source):
            key = _norm(entry.video)
            member = members.get(_norm((base / key).as_posix())) if key else None
            if member is None or key in source.media:
                continue
            info = archive.getinfo(member)
            if info.file_size > max_bytes:
                continue  # reported as missing/too large below
            fd, tmp = tempfile.mkstemp(prefix=".upload-", suffix=".part", dir=work_dir)
            with os.fdopen(fd, "wb") as out, archive.open(member) as src:
                copied = 0
                while chunk := src.read(COPY_CHUNK):
                    copied += len(chunk)
                    if copied > max_bytes:  # a lying header (zip bomb)
                        break
                    out.write(chunk)
            if copied > max_bytes:
                Path(tmp).unlink(missing_ok=True)
                continue
            digest = hashlib.sha256()
            with open(tmp, "rb") as handle:
                while block := handle.read(COPY_CHUNK):
                    digest.update(block)
            source.media[key] = ReceivedFile(display_name(member), Path(tmp), copied, digest.hexdigest())
    return source


def bare_metadata_source(metadata: ReceivedFile, media_files: list[ReceivedFile]) -> ImportSource:
    """A metadata file sent with the media it names; files are matched by their base name."""
    try:
        text = metadata.temp_path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput("bad_metadata", f"'{metadata.original_name}' is not UTF-8 text.") from exc
    source = ImportSource(metadata.original_name, text)
    by_name = {f.original_name: f for f in media_files}
    for entry in _entries(source):
        match = by_name.get(PurePosixPath((entry.video or "").replace("\\", "/")).name)
        key = _norm(entry.video)
        if match is not None and key:
            source.media[key] = match
    return source


def _read_studio(archive: zipfile.ZipFile, name: str) -> dict[str, Any]:
    """The studio's own sidecar (caption parts); ignored when unreadable, it is only a bonus."""
    if archive.getinfo(name).file_size > MAX_METADATA_BYTES:
        return {}
    try:
        data = json.loads(archive.read(name))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _entries(source: ImportSource) -> list[MetadataEntry]:
    suffix = PurePosixPath(source.metadata_name).suffix.lower()
    try:
        return parse_metadata(source.metadata_text, suffix, source=source.metadata_name, allow_empty_captions=True)
    except MetadataError as exc:
        raise InvalidInput("bad_metadata", str(exc)) from exc


def guess_trigger(captions: list[str]) -> str | None:
    """The word every caption starts with as ``<word>,`` (or is), when it is a valid trigger."""
    firsts = set()
    for caption in (c.strip() for c in captions if c.strip()):
        head, comma, _rest = caption.partition(",")
        firsts.add(head.strip() if comma else caption)
    if len(firsts) == 1:
        word = firsts.pop()
        return word if is_valid_trigger(word) else None
    return None


def import_dataset(session: Session, source: ImportSource, *, name: str | None = None,
                   trigger: str | None = None) -> dict[str, Any]:
    """Create a dataset from ``source``: one clip per metadata row whose media is present and opens.

    Returns ``{"dataset": {...}, "clips": [entry per row]}``; rows whose media is missing or not
    media get an error entry. Every kept clip is queued for analysis.
    """
    entries = _entries(source)
    studio = source.studio or {}
    for row, entry in enumerate(entries, 1):  # text the database cannot store: refused before anything is made
        dataset_service.check_storable(f"Row {row} of '{source.metadata_name}'", [entry.caption, entry.video, entry.audio])
    dataset_service.check_storable(f"'{STUDIO_NAME}'", studio)
    trigger = (trigger or "").strip() or studio.get("trigger") or guess_trigger([e.caption for e in entries])
    if not trigger:
        raise InvalidInput("trigger_needed", "Could not tell the trigger word from the captions: give one "
                           "(field 'trigger'), e.g. ema_voice.")
    dataset = dataset_service.create_dataset(
        session, name or studio.get("name") or Path(source.metadata_name).stem, trigger, studio.get("buckets"))
    dataset.default_voice = str(studio.get("default_voice") or "")
    dataset.default_sounds = str(studio.get("default_sounds") or "")
    folder = dataset_service.dataset_folder(dataset.id)
    folder.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []
    kept: list[tuple[int, Clip]] = []
    for entry in entries:
        shown = entry.video or entry.audio or "?"
        received = source.media.get(_norm(entry.video) or "")
        if received is None:
            results.append(refused_entry(shown, "media_missing",
                                         f"'{shown}' is named in the metadata but was not in the upload "
                                         "(or was over the size limit).", 422))
            continue
        try:
            extension = check_media_file(received.temp_path, PurePosixPath(shown).name)
        except MediaProbeError as exc:
            results.append(refused_entry(shown, exc.code, exc.message))
            continue
        final = store_received_file(received, extension)
        target = folder / final.name
        shutil.move(str(final), target)
        clip = Clip(dataset=dataset, original_name=PurePosixPath(shown).name,
                    stored_path=str(target.relative_to(get_settings().data_dir)),
                    content_hash=received.sha256, size_bytes=received.size_bytes,
                    status=ClipStatus.uploaded.value, findings=[], media={})
        extra = (studio.get("captions") or {}).get(entry.video) or {}
        if extra.get("name"):  # the clip's own name from a studio export, not the zip's file name
            clip.original_name = PurePosixPath(str(extra["name"])).name
        session.add(clip)
        _set_imported_caption(clip, dataset, entry, extra or None)
        kept.append((len(results), clip))
        results.append({})
    refresh_dataset_findings(dataset)
    session.commit()
    for index, clip in kept:
        queue_probe(session, clip)
        results[index] = clip_to_dict(clip)
    return {"dataset": dataset_service.dataset_to_dict(dataset, with_clips=False), "clips": results}


def _set_imported_caption(clip: Clip, dataset: Dataset, entry: MetadataEntry, parts: dict | None) -> None:
    from core.models import Caption
    from core.services.captions import compose_for

    if parts:
        values = clean_parts({k: v for k, v in parts.items() if k in CAPTION_FIELDS})
    else:  # a plain caption: keep it whole as the free-text override
        text = entry.caption
        if begins_with_trigger(text, dataset.trigger):
            text = text.strip()[len(dataset.trigger):].lstrip(" ,")
        values = {"text": text}
    caption = Caption(**{f: values.get(f, "") for f in CAPTION_FIELDS})
    clip.caption = caption
    caption.composed = compose_for(dataset, {f: getattr(caption, f) for f in CAPTION_FIELDS})
