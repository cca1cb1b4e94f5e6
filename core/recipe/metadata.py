"""Read and write the official ltx-trainer dataset metadata (``.csv``, ``.json``, ``.jsonl``).

Each row has a ``caption`` and a video path, under the newer column name ``video`` or the
legacy ``media_path`` (the official trainer treats them as aliases), plus an optional
``audio`` path that overrides the audio track of the video. Paths are relative to the folder
of the metadata file. A ``.json`` file holds a list of objects; a ``.jsonl`` file one object a
line; a ``.csv`` file has a header row. Pure Python: no torch, no pandas.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal

from core.files import atomic_write_text

METADATA_SUFFIXES = (".csv", ".json", ".jsonl")
VIDEO_COLUMNS = ("video", "media_path")  # newer name first; the official trainer aliases them
VideoColumn = Literal["video", "media_path"]


class MetadataError(ValueError):
    """A metadata file that cannot be used; the message names the file, row and fix."""


@dataclass(frozen=True)
class MetadataEntry:
    """One row: a caption and media paths exactly as written (relative to the metadata file)."""

    caption: str
    video: str | None
    audio: str | None = None
    extra: dict[str, object] = field(default_factory=dict, compare=False)

    def video_path(self, base_dir: Path) -> Path | None:
        """The video file's location, resolving a relative path against ``base_dir``."""
        return _resolve(base_dir, self.video)

    def audio_path(self, base_dir: Path) -> Path | None:
        """The explicit audio file's location, or ``None`` when the row has none."""
        return _resolve(base_dir, self.audio)


def read_metadata(path: str | Path, *, allow_empty_captions: bool = False) -> list[MetadataEntry]:
    """Read a metadata file into entries; raise :class:`MetadataError` naming any bad row.

    Media paths stay as written; resolve them with :meth:`MetadataEntry.video_path` and the
    metadata file's folder (``Path(path).parent``).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in METADATA_SUFFIXES:
        raise MetadataError(
            f"{path.name}: metadata must be a .csv, .json or .jsonl file, not '{path.suffix or 'no suffix'}'"
        )
    if not path.is_file():
        raise MetadataError(f"{path}: metadata file not found")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MetadataError(f"{path.name}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    return parse_metadata(text, suffix, source=path.name, allow_empty_captions=allow_empty_captions)


def parse_metadata(
    text: str, suffix: str, *, source: str = "metadata", allow_empty_captions: bool = False
) -> list[MetadataEntry]:
    """Parse metadata ``text`` in the format named by ``suffix`` (``.csv``/``.json``/``.jsonl``)."""
    suffix = suffix.lower() if suffix.startswith(".") else "." + suffix.lower()
    if suffix == ".csv":
        rows = _csv_rows(text, source)
    elif suffix == ".json":
        rows = _json_rows(text, source)
    elif suffix == ".jsonl":
        rows = _jsonl_rows(text, source)
    else:
        raise MetadataError(f"{source}: metadata must be .csv, .json or .jsonl, not '{suffix}'")
    if not rows:
        raise MetadataError(f"{source}: no rows: add one row per clip with 'caption' and 'video'")
    columns = _columns_of(rows)
    video_column = _video_column(columns, source)
    if "caption" not in columns:
        raise MetadataError(
            f"{source}: no 'caption' column (found: {', '.join(sorted(columns)) or 'none'}); "
            "every row needs a caption"
        )
    return [_entry(row, where, video_column, allow_empty_captions, source) for where, row in rows]


def write_metadata(
    path: str | Path,
    entries: list[MetadataEntry],
    *,
    video_column: VideoColumn = "media_path",
) -> Path:
    """Write entries to ``path`` (format from its suffix), atomically (temp file + rename).

    ``video_column="media_path"`` is read by every ltx-trainer version; ``"video"`` is the
    newer name. An ``audio`` column is written only when some entry has one. Absolute media
    paths inside the metadata folder are made relative to it, with ``/`` separators.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in METADATA_SUFFIXES:
        raise MetadataError(f"{path.name}: metadata must be a .csv, .json or .jsonl file")
    if video_column not in VIDEO_COLUMNS:
        raise MetadataError(f"video_column must be one of {VIDEO_COLUMNS}, not {video_column!r}")
    for index, entry in enumerate(entries, start=1):
        if not entry.video and not entry.audio:
            raise MetadataError(f"{path.name}: entry {index} has neither a video nor an audio path")
    base = path.parent
    with_audio = any(e.audio for e in entries)
    records = [_record(e, base, video_column, with_audio) for e in entries]
    atomic_write_text(path, format_metadata(records, suffix), mode=0o600)  # mkstemp's mode, as before
    return path


def format_metadata(records: list[dict[str, object]], suffix: str) -> str:
    """Serialise already-built row dicts in the format named by ``suffix``."""
    if suffix == ".json":
        return json.dumps(records, ensure_ascii=False, indent=2) + "\n"
    if suffix == ".jsonl":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    buffer = io.StringIO()
    fieldnames = list(records[0].keys()) if records else ["caption", "media_path"]
    writer = csv.DictWriter(buffer, fieldnames=fieldnames, lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return buffer.getvalue()


# --- reading helpers ------------------------------------------------------------------------

Row = tuple[str, dict]


def _csv_rows(text: str, source: str) -> list[Row]:
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames:
        return []
    header = [name.strip() if name else name for name in reader.fieldnames]
    if any(not name for name in header):
        raise MetadataError(f"{source}: the header row has an empty column name")
    if len(set(header)) != len(header):
        raise MetadataError(f"{source}: the header row repeats a column name: {', '.join(header)}")
    reader.fieldnames = header
    rows: list[Row] = []
    for record in reader:
        where = f"line {reader.line_num}"
        if None in record:
            raise MetadataError(f"{source}, {where}: more values than columns (check quoting of commas)")
        if all((v or "").strip() == "" for v in record.values()):
            continue  # blank line
        rows.append((where, record))
    return rows


def _json_rows(text: str, source: str) -> list[Row]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MetadataError(f"{source}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from exc
    if not isinstance(data, list):
        raise MetadataError(f"{source}: a .json metadata file must hold a list of objects, one per clip")
    rows: list[Row] = []
    for index, item in enumerate(data):
        where = f"item {index + 1}"
        if not isinstance(item, dict):
            raise MetadataError(f"{source}, {where}: expected an object with 'caption' and 'video'")
        rows.append((where, item))
    return rows


def _jsonl_rows(text: str, source: str) -> list[Row]:
    rows: list[Row] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"line {number}"
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise MetadataError(f"{source}, {where}: invalid JSON: {exc.msg}") from exc
        if not isinstance(item, dict):
            raise MetadataError(f"{source}, {where}: expected an object with 'caption' and 'video'")
        rows.append((where, item))
    return rows


def _columns_of(rows: list[Row]) -> set[str]:
    columns: set[str] = set()
    for _where, row in rows:
        columns.update(row.keys())
    return columns


def _video_column(columns: set[str], source: str) -> str | None:
    present = [c for c in VIDEO_COLUMNS if c in columns]
    if len(present) == 2:
        raise MetadataError(f"{source}: has both 'video' and 'media_path' columns; keep one (they mean the same)")
    if not present and "audio" not in columns:
        raise MetadataError(
            f"{source}: no media column: add 'video' (or the legacy 'media_path') with each clip's path "
            f"(found: {', '.join(sorted(columns)) or 'none'})"
        )
    return present[0] if present else None


def _entry(row: dict, where: str, video_column: str | None, allow_empty: bool, source: str) -> MetadataEntry:
    caption = row.get("caption")
    if caption is None:
        raise MetadataError(f"{source}, {where}: no 'caption': every row needs one")
    if not isinstance(caption, str):
        raise MetadataError(f"{source}, {where}: 'caption' must be text, got {_describe(caption)}")
    caption = caption.strip()
    if not caption and not allow_empty:
        raise MetadataError(f"{source}, {where}: the caption is empty: describe the clip")
    video = _path_value(row, video_column, where, source, required=video_column is not None)
    audio = _path_value(row, "audio", where, source, required=video is None)
    known = {"caption", "audio", *VIDEO_COLUMNS}
    extra = {k: v for k, v in row.items() if k not in known}
    return MetadataEntry(caption=caption, video=video, audio=audio, extra=extra)


def _path_value(row: dict, column: str | None, where: str, source: str, *, required: bool) -> str | None:
    value = row.get(column) if column else None
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise MetadataError(f"{source}, {where}: '{column or 'video'}' is empty: give the clip's path")
        return None
    if not isinstance(value, str):
        raise MetadataError(f"{source}, {where}: '{column}' must be a path (text), got {_describe(value)}")
    return value.strip()


def _describe(value: object) -> str:
    return "nothing" if value is None else f"{type(value).__name__} {value!r}"


def _resolve(base_dir: Path, value: str | None) -> Path | None:
    if not value:
        return None
    return Path(base_dir) / Path(value)


# --- writing helpers ------------------------------------------------------------------------


def _record(entry: MetadataEntry, base: Path, video_column: str, with_audio: bool) -> dict[str, object]:
    record: dict[str, object] = {"caption": entry.caption, video_column: _relative(entry.video, base)}
    if with_audio:
        record["audio"] = _relative(entry.audio, base)
    return record


def _relative(value: str | None, base: Path) -> str:
    if not value:
        return ""
    candidate = Path(value)
    if candidate.is_absolute():
        try:
            candidate = candidate.relative_to(base.resolve() if not base.is_absolute() else base)
        except ValueError:
            return candidate.as_posix()
    return PurePosixPath(*candidate.parts).as_posix()
