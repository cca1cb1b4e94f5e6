"""Resolution buckets: parse, format, validate and assign clips to them.

A bucket string is ``"WxHxF;WxHxF"`` (width x height x frames), the form ltx-trainer's
``--resolution-buckets`` takes. The video VAE compresses 32x32 pixels and 8 frames into one
latent cell, so width and height must be multiples of 32 and frames must be ``8k + 1``.
A single frame (``F == 1``) is an image bucket; a video dataset needs ``F > 1``.

The assignment rule is the official trainer's (``process_videos.py``): among the buckets whose
frame count is at most the clip's, pick the one with the closest aspect ratio on a log scale,
then the one with more frames, then the one with the larger area. Ties keep the list order.
Pure Python: no torch.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

SPATIAL_MULTIPLE = 32
TEMPORAL_MULTIPLE = 8
MAX_SIDE = 4096
MAX_FRAMES = 1025


class BucketError(ValueError):
    """A bucket string or value that breaks the VAE's shape rules; the message says why."""


@dataclass(frozen=True, order=True)
class Bucket:
    """One training resolution: ``width`` x ``height`` pixels, ``frames`` frames."""

    width: int
    height: int
    frames: int

    def __str__(self) -> str:
        return f"{self.width}x{self.height}x{self.frames}"

    @property
    def area(self) -> int:
        """Pixels per frame."""
        return self.width * self.height

    @property
    def aspect(self) -> float:
        """Width divided by height."""
        return self.width / self.height

    @property
    def latent_frames(self) -> int:
        """Latent frames after the video VAE: ``(F - 1) / 8 + 1``."""
        return (self.frames - 1) // TEMPORAL_MULTIPLE + 1

    @property
    def video_tokens(self) -> int:
        """Video tokens the transformer sees for one clip of this bucket."""
        return self.latent_frames * (self.height // SPATIAL_MULTIPLE) * (self.width // SPATIAL_MULTIPLE)


DEFAULT_BUCKETS: tuple[Bucket, ...] = (Bucket(512, 512, 49), Bucket(512, 512, 89))
DEFAULT_BUCKETS_STRING = "512x512x49;512x512x89"


def bucket_problems(bucket: Bucket, *, video: bool = True) -> list[str]:
    """Every rule ``bucket`` breaks, as person-readable sentences (empty when valid)."""
    problems: list[str] = []
    w, h, f = bucket.width, bucket.height, bucket.frames
    if w <= 0 or h <= 0 or f <= 0:
        return [f"{bucket}: width, height and frames must be positive"]
    if w % SPATIAL_MULTIPLE or h % SPATIAL_MULTIPLE:
        problems.append(
            f"{bucket}: width and height must be multiples of {SPATIAL_MULTIPLE} "
            f"(try {_round_to(w, SPATIAL_MULTIPLE)}x{_round_to(h, SPATIAL_MULTIPLE)})"
        )
    if w > MAX_SIDE or h > MAX_SIDE:
        problems.append(f"{bucket}: width and height must be at most {MAX_SIDE}")
    if f % TEMPORAL_MULTIPLE != 1:
        lower = max(1, (f - 1) // TEMPORAL_MULTIPLE * TEMPORAL_MULTIPLE + 1)
        problems.append(
            f"{bucket}: frames must be a multiple of {TEMPORAL_MULTIPLE} plus 1 "
            f"(e.g. {lower} or {lower + TEMPORAL_MULTIPLE}), got {f}"
        )
    elif video and f == 1:
        problems.append(f"{bucket}: a video bucket needs more than 1 frame (1 frame is an image bucket)")
    if f > MAX_FRAMES:
        problems.append(f"{bucket}: frames must be at most {MAX_FRAMES}")
    return problems


def validate_bucket(bucket: Bucket, *, video: bool = True) -> Bucket:
    """Return ``bucket`` unchanged, or raise :class:`BucketError` naming every broken rule."""
    problems = bucket_problems(bucket, video=video)
    if problems:
        raise BucketError("; ".join(problems))
    return bucket


def parse_bucket(text: str, *, video: bool = True) -> Bucket:
    """Parse one ``"WxHxF"`` string into a validated :class:`Bucket`."""
    cleaned = text.strip().lower().replace(" ", "")
    parts = cleaned.split("x")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise BucketError(
            f"'{text.strip()}' is not a bucket: write width x height x frames, e.g. 512x512x49"
        )
    width, height, frames = (int(p) for p in parts)
    return validate_bucket(Bucket(width, height, frames), video=video)


def parse_buckets(text: str, *, video: bool = True) -> list[Bucket]:
    """Parse ``"WxHxF;WxHxF"`` into validated buckets (order kept, duplicates refused).

    Commas and whitespace between buckets are accepted too, because people type them.
    """
    pieces = [p for p in _split_bucket_list(text) if p]
    if not pieces:
        raise BucketError("no buckets given: write at least one, e.g. 512x512x49")
    buckets: list[Bucket] = []
    problems: list[str] = []
    for piece in pieces:
        try:
            bucket = parse_bucket(piece, video=video)
        except BucketError as exc:
            problems.append(str(exc))
            continue
        if bucket in buckets:
            problems.append(f"{bucket}: listed twice")
            continue
        buckets.append(bucket)
    if problems:
        raise BucketError("; ".join(problems))
    return buckets


def format_buckets(buckets: list[Bucket] | tuple[Bucket, ...]) -> str:
    """Format buckets as ``"WxHxF;WxHxF"``, the inverse of :func:`parse_buckets`."""
    return ";".join(str(b) for b in buckets)


def coerce_buckets(value: str | list | tuple, *, video: bool = True) -> list[Bucket]:
    """Accept a bucket string, a list of strings, Buckets or ``[w, h, f]`` triples."""
    if isinstance(value, str):
        return parse_buckets(value, video=video)
    text_parts: list[str] = []
    for item in value:
        if isinstance(item, Bucket):
            text_parts.append(str(item))
        elif isinstance(item, str):
            text_parts.append(item)
        elif isinstance(item, (list, tuple)) and len(item) == 3:
            text_parts.append("x".join(str(int(v)) for v in item))
        else:
            raise BucketError(f"{item!r} is not a bucket: write width x height x frames, e.g. 512x512x49")
    return parse_buckets(";".join(text_parts), video=video)


def _aspect_distance(width: int, height: int, bucket: Bucket) -> float:
    return abs(math.log(width / height) - math.log(bucket.width / bucket.height))


def _assignment_key(width: int, height: int, bucket: Bucket) -> tuple[float, int, int]:
    # Official order: closest log aspect ratio, then more frames, then larger area.
    return (_aspect_distance(width, height, bucket), -bucket.frames, -bucket.area)


def fitting_buckets(width: int, height: int, frames: int, buckets) -> tuple[list[Bucket], str | None]:
    """Buckets a ``width`` x ``height`` clip of ``frames`` frames fits, best first.

    Returns ``(fitting, reason)``: ``reason`` is ``None`` when at least one fits, else a
    sentence such as ``"49 frames needed, clip has 30"``.
    """
    _check_clip(width, height, frames)
    candidates = list(buckets)
    if not candidates:
        return [], "no buckets configured"
    fitting = [b for b in candidates if b.frames <= frames]
    fitting.sort(key=lambda b: _assignment_key(width, height, b))  # stable: ties keep list order
    if fitting:
        return fitting, None
    needed = min(b.frames for b in candidates)
    return [], f"{needed} frames needed, clip has {frames}"


def assign_bucket(width: int, height: int, frames: int, buckets) -> Bucket | None:
    """The bucket the official trainer puts this clip in, or ``None`` when it is too short."""
    fitting, _reason = fitting_buckets(width, height, frames, buckets)
    return fitting[0] if fitting else None


def min_frames(buckets) -> int:
    """Fewest frames a clip needs to fit any of ``buckets``."""
    return min(b.frames for b in buckets)


def _check_clip(width: int, height: int, frames: int) -> None:
    if width <= 0 or height <= 0:
        raise ValueError(f"clip size must be positive, got {width}x{height}")
    if frames < 0:
        raise ValueError(f"clip frame count must not be negative, got {frames}")


_WHOLE_BUCKET = re.compile(r"\d+x\d+x\d+", re.IGNORECASE)


def _split_bucket_list(text: str) -> list[str]:
    """Split on ``;``, ``,`` or new lines; a chunk of space-separated whole buckets splits too."""
    pieces: list[str] = []
    for chunk in re.split(r"[;,\n]", text):
        words = chunk.split()
        if len(words) > 1 and all(_WHOLE_BUCKET.fullmatch(w) for w in words):
            pieces.extend(words)
        elif chunk.strip():
            pieces.append(chunk.strip())
    return pieces


def _round_to(value: int, multiple: int) -> int:
    return max(multiple, int(round(value / multiple)) * multiple)
