"""Probe a media file with PyAV: container, video stream and audio stream facts.

The file type is decided by opening the file, never by its name. A file PyAV cannot open at all
is ``not_media`` unless its first bytes carry a known container signature, in which case it is
media that is damaged (``corrupt_media``); a file that opens but whose packets stop early or
fail to decode is ``corrupt_media`` too. Both raise :class:`MediaProbeError` with that code.
A file without a video or audio stream is *not* an error here: the result says so and the
findings module decides what that means for training.

Pure PyAV + Python: safe to import from the web process (no torch).
"""

from __future__ import annotations

import os
import statistics
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import av

from core.recipe import qa_rules

# First bytes of containers people upload. Used only to tell "damaged media" from "not media"
# when FFmpeg refuses the file: the type is still decided by opening it.
_CONTAINER_SIGNATURES: tuple[tuple[int, bytes], ...] = (
    (4, b"ftyp"),  # MP4 / MOV / M4A / 3GP
    (4, b"moov"),  # old QuickTime
    (4, b"mdat"),  # QuickTime with media data first
    (4, b"wide"),  # QuickTime padding atom
    (0, b"\x1a\x45\xdf\xa3"),  # Matroska / WebM (EBML)
    (0, b"RIFF"),  # AVI / WAV
    (0, b"OggS"),  # Ogg
    (0, b"FLV"),  # Flash video
    (0, b"fLaC"),  # FLAC
    (0, b"ID3"),  # MP3 with a tag
    (0, b"\x00\x00\x01\xba"),  # MPEG program stream
    (0, b"\x30\x26\xb2\x75"),  # ASF / WMV
)


_LAYOUT_BY_CHANNELS = {1: "mono", 2: "stereo", 6: "5.1", 8: "7.1"}


class MediaProbeError(Exception):
    """The file cannot be used as media; ``code`` is a finding code, ``message`` says why."""

    def __init__(self, code: str, message: str, detail: dict | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.detail = detail or {}

    def to_dict(self) -> dict:
        """``{"code","message","detail"}`` for JSON columns and API errors."""
        return {"code": self.code, "message": self.message, "detail": self.detail}


@dataclass(frozen=True)
class VideoInfo:
    """Facts about the first video stream."""

    codec: str
    width: int
    height: int
    fps: float  # average frame rate (frames / duration when the header has none)
    variable_frame_rate: bool
    frame_count: int
    frame_count_source: str  # "packets" (counted) | "header" | "estimate" (duration x fps)
    rotation: int  # degrees from the display matrix, 0 when none
    display_width: int  # width as shown (after rotation)
    display_height: int
    pix_fmt: str | None
    duration: float | None
    frame_interval_spread: float  # fraction of frame intervals far from the median


@dataclass(frozen=True)
class AudioInfo:
    """Facts about the first audio stream."""

    codec: str
    sample_rate: int
    channels: int
    channel_layout: str
    duration: float | None


@dataclass(frozen=True)
class ProbeResult:
    """What :func:`probe_media` found; ``video``/``audio`` are ``None`` when absent."""

    container: str
    duration: float | None
    size_bytes: int
    video: VideoInfo | None
    audio: AudioInfo | None
    audio_stream_count: int

    def to_dict(self) -> dict:
        """A JSON-serialisable dict (the ``probe`` part of a clip's analysis)."""
        return asdict(self)


def probe_media(path: str | os.PathLike) -> ProbeResult:
    """Open ``path`` with PyAV and describe it.

    Raises :class:`MediaProbeError` with code ``not_media`` (empty file, or no container PyAV
    recognises) or ``corrupt_media`` (a media file that is damaged or truncated).
    """
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise MediaProbeError("not_media", f"{path.name} is empty (0 bytes): upload the file again.")
    try:
        container = av.open(str(path), mode="r")
    except av.error.FFmpegError as exc:
        raise _open_failure(path, exc) from exc
    with container:
        if _is_still_image_format(container.format.name):
            raise MediaProbeError(
                "not_media",
                f"{path.name} is a still image, not a video: upload a video clip with sound.",
                {"container": container.format.name},
            )
        video_stream = next((s for s in container.streams.video if not _is_cover_art(s)), None)
        audio_streams = list(container.streams.audio)
        audio_stream = audio_streams[0] if audio_streams else None
        if video_stream is None and audio_stream is None:
            raise MediaProbeError(
                "not_media",
                f"{path.name} has no video or audio stream: upload a video file.",
                {"container": container.format.name},
            )
        duration = container.duration / av.time_base if container.duration else None
        packet_count, packet_times = _demux_video_packets(container, path, video_stream)
        rotation = _first_frame_rotation(path, video_stream.index) if video_stream else 0
        video = _video_info(video_stream, packet_count, packet_times, rotation, duration) if video_stream else None
        audio = _audio_info(audio_stream) if audio_stream else None
        _check_not_truncated(path, video_stream, video)
        if video is not None and (video.width <= 0 or video.height <= 0):
            raise MediaProbeError("corrupt_media", f"the video stream of {path.name} has no frame size: "
                                  "export the clip again.", {"width": video.width, "height": video.height})
        return ProbeResult(
            container=container.format.name,
            duration=duration,
            size_bytes=size,
            video=video,
            audio=audio,
            audio_stream_count=len(audio_streams),
        )


def _open_failure(path: Path, exc: Exception) -> MediaProbeError:
    with open(path, "rb") as handle:
        head = handle.read(16)
    if any(head[offset : offset + len(magic)] == magic for offset, magic in _CONTAINER_SIGNATURES):
        return MediaProbeError(
            "corrupt_media",
            f"{path.name} looks like a video file but cannot be read ({exc.strerror or exc}): "
            "it is probably truncated or damaged; export or copy it again.",
            {"error": str(exc)},
        )
    return MediaProbeError(
        "not_media",
        f"{path.name} is not a video or audio file PyAV/FFmpeg can open: upload a video such as MP4 or WebM.",
        {"error": str(exc)},
    )


def _is_still_image_format(name: str) -> bool:
    """FFmpeg opens PNG/JPEG/WebP/... as one-frame 'video' through its image demuxers."""
    return name.endswith("_pipe") or name == "image2"


def _is_cover_art(stream) -> bool:
    """An attached picture (album art in an M4A/MP3) is a 'video' stream that is not video."""
    return bool(stream.disposition & av.stream.Disposition.attached_pic)


def _demux_video_packets(container, path: Path, stream) -> tuple[int, list[float]]:
    """Count the video packets (one per frame) and collect their times, without decoding."""
    if stream is None:
        return 0, []
    count = 0
    times: list[float] = []
    try:
        for packet in container.demux(stream):
            if packet.size == 0:
                continue  # the demuxer's end-of-stream marker
            count += 1
            stamp = packet.pts if packet.pts is not None else packet.dts
            if stamp is not None:
                times.append(float(stamp * packet.time_base))
    except av.error.FFmpegError as exc:
        raise MediaProbeError(
            "corrupt_media",
            f"{path.name} stops being readable after {count} video frames ({exc}): "
            "the file is damaged or truncated; export or copy it again.",
            {"error": str(exc), "frames_read": count},
        ) from exc
    return count, sorted(times)


def _first_frame_rotation(path: Path, stream_index: int) -> int:
    """Decode the first video frame (proves the stream decodes) and read its rotation."""
    try:
        with av.open(str(path)) as container:
            for frame in container.decode(container.streams[stream_index]):
                return int(round(frame.rotation or 0)) % 360
    except av.error.FFmpegError as exc:
        raise MediaProbeError(
            "corrupt_media",
            f"the video stream of {path.name} cannot be decoded ({exc}): export the clip again.",
            {"error": str(exc)},
        ) from exc
    raise MediaProbeError(
        "corrupt_media",
        f"the video stream of {path.name} holds no decodable frame: export the clip again.",
    )


def _video_info(stream, packet_count: int, times: list[float], rotation: int,
                container_duration: float | None) -> VideoInfo:
    header_frames = int(stream.frames or 0)
    duration = float(stream.duration * stream.time_base) if stream.duration else container_duration
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else 0.0
    if packet_count:
        frame_count, source = packet_count, "packets"
    elif header_frames:
        frame_count, source = header_frames, "header"
    else:
        frame_count, source = int(round((duration or 0.0) * fps)), "estimate"
    if not fps and duration and frame_count:
        fps = frame_count / duration
    spread = _interval_spread(times, stream.time_base)
    width, height = stream.codec_context.width, stream.codec_context.height
    turned = rotation in (90, 270)
    return VideoInfo(
        codec=stream.codec_context.name,
        width=width,
        height=height,
        fps=round(fps, 3),
        variable_frame_rate=spread > qa_rules.VFR_IRREGULAR_INTERVAL_FRACTION,
        frame_count=frame_count,
        frame_count_source=source,
        rotation=rotation,
        display_width=height if turned else width,
        display_height=width if turned else height,
        pix_fmt=stream.codec_context.pix_fmt,
        duration=duration,
        frame_interval_spread=round(spread, 4),
    )


def _interval_spread(times: list[float], time_base: Fraction | None) -> float:
    """Fraction of frame intervals that differ from the median by more than the tolerance.

    The tolerance is relative (``VFR_INTERVAL_TOLERANCE`` of the median) but never below two
    timestamp ticks, so the rounding of a 1/1000 time base does not look variable.
    """
    if len(times) < 3:
        return 0.0
    intervals = [b - a for a, b in zip(times, times[1:]) if b > a]
    if len(intervals) < 2:
        return 0.0
    median = statistics.median(intervals)
    tick = float(time_base) if time_base else 0.0
    tolerance = max(qa_rules.VFR_INTERVAL_TOLERANCE * median, 2 * tick)
    irregular = sum(1 for d in intervals if abs(d - median) > tolerance)
    return irregular / len(intervals)


def _audio_info(stream) -> AudioInfo:
    context = stream.codec_context
    duration = float(stream.duration * stream.time_base) if stream.duration else None
    layout = context.layout
    channels = int(layout.nb_channels if layout else context.channels)
    name = layout.name if layout else ""
    if not name or name.endswith("channels"):  # unspecified order, e.g. "1 channels" in a WAV
        name = _LAYOUT_BY_CHANNELS.get(channels, name)
    return AudioInfo(
        codec=context.name,
        sample_rate=int(context.sample_rate or 0),
        channels=channels,
        channel_layout=name,
        duration=duration,
    )


def _check_not_truncated(path: Path, stream, video: VideoInfo | None) -> None:
    """A header that promises more frames than the file holds means the data was cut off."""
    if stream is None or video is None or video.frame_count_source != "packets":
        return
    promised = int(stream.frames or 0)
    if promised and video.frame_count < promised * qa_rules.TRUNCATION_MIN_FRAME_FRACTION:
        raise MediaProbeError(
            "corrupt_media",
            f"{path.name} is truncated: its header lists {promised} video frames but only "
            f"{video.frame_count} are in the file. Copy or export the clip again.",
            {"frames_in_header": promised, "frames_in_file": video.frame_count},
        )


def verify_video_decodes(path: str | os.PathLike, probe: ProbeResult) -> int:
    """Decode every video frame of a probed file; return how many came out.

    The probe only decodes the first frame; damage in the middle of a file shows up here.
    Raises :class:`MediaProbeError` ``corrupt_media`` when a packet fails to decode or fewer
    frames come out than the file holds (within ``TRUNCATION_MIN_FRAME_FRACTION``).
    """
    path = Path(path)
    if probe.video is None:
        return 0
    decoded = 0
    try:
        with av.open(str(path)) as container:
            stream = next(s for s in container.streams.video if not _is_cover_art(s))
            stream.thread_type = "AUTO"
            for _frame in container.decode(stream):
                decoded += 1
    except av.error.FFmpegError as exc:
        raise MediaProbeError(
            "corrupt_media",
            f"{path.name} is damaged: video decoding fails after {decoded} frames ({exc}). "
            "Export or copy the clip again.",
            {"error": str(exc), "frames_decoded": decoded},
        ) from exc
    expected = probe.video.frame_count if probe.video.frame_count_source == "packets" else 0
    if decoded == 0 or decoded < expected * qa_rules.TRUNCATION_MIN_FRAME_FRACTION:
        raise MediaProbeError(
            "corrupt_media",
            f"only {decoded} of the {expected} video frames of {path.name} decode: the file is damaged. "
            "Export or copy the clip again.",
            {"frames_decoded": decoded, "frames_in_file": expected},
        )
    return decoded
