"""Cut one part out of a clip as a new file, keeping picture and sound in sync (PyAV).

The part starts at the first frame at or after ``start_s`` and holds exactly ``frames`` frames
(a count of the form 8k+1 chosen by the split plan), re-timed from 0 at the clip's frame rate.
Video is re-encoded as H.264 at a visually lossless quality (CRF 12); audio is decoded and
written as PCM in a QuickTime (.mov) file, so its samples are not re-compressed, and it covers
exactly the part's frames (from the first kept frame's time for ``frames / fps`` seconds).
The file is written under a temporary name and renamed (``core.files.atomic_write``).
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from core.files import atomic_write

PCM_CODECS = {"s16": "pcm_s16le", "s16p": "pcm_s16le", "s32": "pcm_s32le", "s32p": "pcm_s32le",
              "flt": "pcm_f32le", "fltp": "pcm_f32le", "dbl": "pcm_f32le", "dblp": "pcm_f32le"}
VIDEO_CRF = "12"


class CutError(Exception):
    """The part could not be cut (the source does not decode, or the part holds no frames)."""


def cut_part(source: str | os.PathLike, target: str | os.PathLike, start_s: float, frames: int) -> Path:
    """Write ``frames`` frames of ``source`` from ``start_s`` (and their sound) to ``target`` (.mov)."""
    try:
        return atomic_write(target, lambda tmp: _cut(Path(source), tmp, start_s, frames))
    except av.error.FFmpegError as exc:
        raise CutError(f"could not cut {Path(source).name} at {start_s:.2f} s: {exc}") from exc


def _cut(source: Path, target: Path, start_s: float, frames: int) -> None:
    with av.open(str(source)) as src:
        in_video = src.streams.video[0]
        fps = in_video.average_rate or in_video.guessed_rate or Fraction(25)
        images, first_time = _video_frames(src, in_video, start_s, frames)
        if len(images) < frames:
            raise CutError(f"only {len(images)} of {frames} frames found from {start_s:.2f} s")
        sound = _audio_samples(source, first_time, frames / float(fps))
    with av.open(str(target), "w", format="mov") as dst:
        # every stream is added before the first packet is muxed (that writes the header)
        video = _video_stream(dst, images, fps)
        audio = _audio_stream(dst, *sound[1:]) if sound is not None else None
        _write_video(dst, video, images, fps)
        if audio is not None:
            _write_audio(dst, audio, *sound)


def _video_frames(src, stream, start_s: float, frames: int) -> tuple[list, float]:
    """The ``frames`` decoded frames from the first at or after ``start_s`` (half a frame early
    counts as on time), and that frame's time."""
    fps = float(stream.average_rate or stream.guessed_rate or 25)
    kept, first_time = [], None
    for frame in src.decode(stream):
        if frame.time is None or frame.time < start_s - 0.5 / fps:
            continue
        if first_time is None:
            first_time = float(frame.time)
        kept.append(frame.to_ndarray(format="yuv420p"))
        if len(kept) == frames:
            break
    return kept, first_time if first_time is not None else start_s


def _audio_samples(source: Path, start_s: float, length_s: float) -> tuple[np.ndarray, int, str, str] | None:
    """``(samples [channels, n], rate, layout, pcm codec)`` of the sound from ``start_s`` for
    ``length_s`` seconds, or None when the clip has no audio track."""
    with av.open(str(source)) as src:
        if not src.streams.audio:
            return None
        stream = src.streams.audio[0]
        chunks, layout, fmt = [], None, None
        for frame in src.decode(stream):
            layout, fmt = frame.layout.name, frame.format.name
            data = frame.to_ndarray()
            chunks.append(data if frame.format.is_planar else data.reshape(-1, len(frame.layout.channels)).T)
        if not chunks:
            return None
        rate = stream.rate
        samples = np.concatenate(chunks, axis=1)
    first = int(round(start_s * rate))
    count = int(round(length_s * rate))
    part = samples[:, first:first + count]
    if part.shape[1] < count:  # sound ends before the picture: pad with silence
        part = np.pad(part, ((0, 0), (0, count - part.shape[1])))
    return part, rate, layout, PCM_CODECS.get(fmt, "pcm_f32le")


def _video_stream(dst, images: list, fps: Fraction):
    height, width = images[0].shape[0] * 2 // 3, images[0].shape[1]
    stream = dst.add_stream("libx264", rate=fps)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    stream.options = {"crf": VIDEO_CRF, "preset": "medium"}
    stream.time_base = stream.codec_context.time_base = Fraction(1) / fps
    return stream


def _audio_stream(dst, rate: int, layout: str, codec: str):
    stream = dst.add_stream(codec, rate=rate, layout=layout)
    stream.time_base = Fraction(1, rate)
    return stream


def _write_video(dst, stream, images: list, fps: Fraction) -> None:
    for index, image in enumerate(images):
        frame = av.VideoFrame.from_ndarray(image, format="yuv420p")
        frame.pts = index
        frame.time_base = Fraction(1) / fps
        for packet in stream.encode(frame):
            dst.mux(packet)
    for packet in stream.encode():
        dst.mux(packet)


def _write_audio(dst, stream, samples: np.ndarray, rate: int, layout: str, codec: str) -> None:
    packed = {"pcm_s16le": "s16", "pcm_s32le": "s32", "pcm_f32le": "flt"}[codec]
    dtype = {"s16": np.int16, "s32": np.int32, "flt": np.float32}[packed]
    block = 1024
    for offset in range(0, samples.shape[1], block):
        chunk = samples[:, offset:offset + block].astype(dtype)
        interleaved = np.ascontiguousarray(chunk.T).reshape(1, -1)  # packed PCM: L R L R ...
        frame = av.AudioFrame.from_ndarray(interleaved, format=packed, layout=layout)
        frame.sample_rate, frame.pts, frame.time_base = rate, offset, Fraction(1, rate)
        for packet in stream.encode(frame):
            dst.mux(packet)
    for packet in stream.encode():
        dst.mux(packet)
