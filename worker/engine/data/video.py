"""Video frames for the LTX-2 video VAE: probe, decode, resize, crop; write mp4 previews.

The preprocessing follows the official trainer (``process_videos.py``): scale the clip keeping
its aspect ratio so it covers the bucket (bicubic), centre-crop to the bucket size, keep the
first F frames at the clip's native frame rate, map pixels to [-1, 1] as ``[3, F, H, W]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from core.files import atomic_write


class VideoDecodeError(RuntimeError):
    """A clip's video could not be read; the message names the clip and the reason."""


@dataclass(frozen=True)
class VideoInfo:
    """What the first video stream of a file holds: size, frame count and frame rate."""

    width: int
    height: int
    frames: int
    fps: float


def _open(path: Path):
    import av

    try:
        return av.open(str(path))
    except (av.error.FFmpegError, OSError) as exc:
        raise VideoDecodeError(f"{path.name}: cannot open the file ({exc})") from exc


def probe_video(path: Path | str) -> VideoInfo:
    """Size, frame count and frame rate of ``path``'s first video stream.

    The frame count comes from the container when it records one, else from decoding.
    """
    import av

    path = Path(path)
    container = _open(path)
    try:
        if not container.streams.video:
            raise VideoDecodeError(f"{path.name}: the file has no video stream")
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        frames = stream.frames
        if not frames:
            try:
                frames = sum(1 for _ in container.decode(stream))
            except av.error.FFmpegError as exc:
                raise VideoDecodeError(f"{path.name}: video decoding failed ({exc})") from exc
        width, height = stream.codec_context.width, stream.codec_context.height
    finally:
        container.close()
    if fps <= 0:
        raise VideoDecodeError(f"{path.name}: the video stream has no frame rate")
    return VideoInfo(width=width, height=height, frames=int(frames), fps=fps)


def read_frames(path: Path | str, max_frames: int) -> np.ndarray:
    """The first ``max_frames`` frames of ``path`` as uint8 RGB ``[F, H, W, 3]``.

    Decoding stops at ``max_frames``; the frames go straight into one array (no list of frames
    stacked afterwards: half the memory touched, and no copy of a clip's worth of 1080p frames).
    """
    import av

    path = Path(path)
    container = _open(path)
    frames: np.ndarray | None = None
    count = 0
    try:
        if not container.streams.video:
            raise VideoDecodeError(f"{path.name}: the file has no video stream")
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            image = frame.to_ndarray(format="rgb24")
            if frames is None:
                frames = np.empty((max(max_frames, 1), *image.shape), dtype=np.uint8)
            elif image.shape != frames.shape[1:]:
                raise VideoDecodeError(f"{path.name}: frame {count + 1} is {image.shape[1]}x{image.shape[0]}, "
                                       f"the first was {frames.shape[2]}x{frames.shape[1]}")
            frames[count] = image
            count += 1
            if count >= max_frames:
                break
    except av.error.FFmpegError as exc:
        raise VideoDecodeError(f"{path.name}: video decoding failed ({exc})") from exc
    finally:
        container.close()
    if frames is None:
        raise VideoDecodeError(f"{path.name}: the video stream decoded to no frames")
    return frames[:count]


def cover_size(source_width: int, source_height: int, width: int, height: int) -> tuple[int, int]:
    """``(width, height)`` a ``source_width`` x ``source_height`` frame is scaled to, aspect kept, so it
    covers ``width`` x ``height`` (the official trainer's rounding down, never below the bucket)."""
    if source_width / source_height > width / height:
        new_w, new_h = int(source_width * height / source_height), height
    else:
        new_w, new_h = width, int(source_height * width / source_width)
    return max(new_w, width), max(new_h, height)


def resize_and_center_crop(frames: np.ndarray | torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Scale uint8 RGB frames ``[F, h, w, 3]`` to cover ``width`` x ``height``, crop the centre.

    Returns uint8 ``[F, 3, height, width]`` (a channels-last view). The scaling is torch's
    antialiased bicubic, as over float frames, run on the uint8 channels-last frames (its
    vectorised integer kernel): the result is the float path's rounded to the nearest level, give
    or take one (tests/unit/engine/test_video_resize.py), at a fraction of the time and memory.
    """
    pixels = torch.as_tensor(frames).permute(0, 3, 1, 2)  # [F, 3, h, w], channels-last in memory
    _, _, current_h, current_w = pixels.shape
    new_w, new_h = cover_size(current_w, current_h, width, height)
    if (new_h, new_w) != (current_h, current_w):
        pixels = F.interpolate(pixels, size=(new_h, new_w), mode="bicubic", align_corners=False, antialias=True)
    top, left = (new_h - height) // 2, (new_w - width) // 2
    return pixels[:, :, top : top + height, left : left + width]


def load_clip_pixels(path: Path | str, *, width: int, height: int, frames: int) -> torch.Tensor:
    """The clip as VAE input: ``[3, frames, height, width]`` floats in [-1, 1].

    Raises ``VideoDecodeError`` (naming the clip) when fewer than ``frames`` frames decode.
    """
    path = Path(path)
    raw = read_frames(path, frames)
    if raw.shape[0] < frames:
        raise VideoDecodeError(f"{path.name}: only {raw.shape[0]} frames decoded, the bucket needs {frames}")
    pixels = resize_and_center_crop(raw, width, height).permute(1, 0, 2, 3).contiguous().float()
    return pixels.div_(255.0).mul_(2.0).sub_(1.0)


def write_mp4(path: Path | str, video: torch.Tensor, fps: float) -> Path:
    """Write ``[3, F, H, W]`` pixels in [-1, 1] as an H.264 mp4 (temp name, then rename)."""
    import av

    frames = ((video.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    frames = frames.permute(1, 2, 3, 0).cpu().numpy()  # [F, H, W, 3]
    rate = Fraction(fps).limit_denominator(1001)

    def encode(temp: Path) -> None:
        container = av.open(str(temp), mode="w", format="mp4")
        try:
            stream = container.add_stream("libx264", rate=rate)
            stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
            stream.options = {"crf": "18", "preset": "veryfast"}
            for image in frames:
                for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        finally:
            container.close()

    return atomic_write(path, encode)
