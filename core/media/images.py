"""Pictures of a clip for the studio: poster frame (JPEG), waveform and spectrogram (PNG).

Colours suit a dark page (near-black background, light waveform, a dark-to-bright colour map).
Every image is written to a temporary name in the target folder and renamed into place, so a
reader never sees half a file; on a full disk Pillow's error becomes :class:`core.errors.DiskFull`
and the temporary file is removed (:func:`core.files.atomic_write`).
"""

from __future__ import annotations

import os
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw
from scipy.signal import stft

from core.files import atomic_write

BACKGROUND = (17, 19, 24)  # matches a dark theme's page colour
WAVEFORM_COLOUR = (94, 214, 196)
CENTRE_LINE_COLOUR = (55, 60, 70)
# Spectrogram colour map anchors, quiet -> loud: near-black, indigo, magenta, orange, pale yellow.
SPECTROGRAM_ANCHORS = np.array(
    [(12, 13, 20), (48, 18, 104), (148, 38, 128), (236, 104, 60), (252, 240, 170)], dtype=np.float64
)
SPECTROGRAM_RANGE_DB = 80.0  # the quietest colour sits 80 dB below the loudest bin
POSTER_MAX_SIDE = 640


class PosterError(Exception):
    """No frame could be decoded for the poster."""


def write_poster(video_path: str | os.PathLike, out_path: str | os.PathLike, at_seconds: float | None = None,
                 rotation: int = 0) -> Path:
    """Save one frame of ``video_path`` as a JPEG (upright, long side at most 640 px).

    ``at_seconds`` defaults to a quarter into the clip (capped at 1 s), past fades from black.
    ``rotation`` is the probe's display rotation in degrees (counter-clockwise).
    """
    image = _grab_frame(Path(video_path), at_seconds)
    if rotation:
        image = image.rotate(rotation, expand=True)
    image.thumbnail((POSTER_MAX_SIDE, POSTER_MAX_SIDE))
    return _save_image(image, Path(out_path), "JPEG", quality=85)


def _grab_frame(path: Path, at_seconds: float | None) -> Image.Image:
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise PosterError(f"{path.name} has no video stream")
        stream = container.streams.video[0]
        if at_seconds is None:
            duration = container.duration / av.time_base if container.duration else 0.0
            at_seconds = min(duration / 4, 1.0)
        chosen = None
        try:
            if at_seconds > 0 and stream.time_base:
                container.seek(int(at_seconds / stream.time_base), stream=stream, backward=True)
            for frame in container.decode(stream):
                chosen = frame
                if frame.time is None or frame.time >= at_seconds:
                    break
        except av.error.FFmpegError as exc:
            if chosen is None:
                raise PosterError(f"no frame of {path.name} could be decoded ({exc})") from exc
        if chosen is None:
            raise PosterError(f"no frame of {path.name} could be decoded")
        return chosen.to_image()


def write_waveform(mono: np.ndarray, out_path: str | os.PathLike, width: int = 800, height: int = 120) -> Path:
    """Draw a min/max waveform of mono float audio (in -1..1) as a PNG."""
    image = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    middle = height / 2
    draw.line([(0, middle), (width, middle)], fill=CENTRE_LINE_COLOUR)
    samples = np.asarray(mono, dtype=np.float32).reshape(-1)
    if samples.size:
        edges = np.linspace(0, samples.size, width + 1).astype(int)
        for x in range(width):
            chunk = samples[edges[x] : max(edges[x + 1], edges[x] + 1)]
            low, high = float(np.clip(chunk.min(), -1, 1)), float(np.clip(chunk.max(), -1, 1))
            draw.line([(x, middle - high * (middle - 1)), (x, middle - low * (middle - 1))], fill=WAVEFORM_COLOUR)
    return _save_image(image, Path(out_path), "PNG")


def write_spectrogram(mono: np.ndarray, sample_rate: int, out_path: str | os.PathLike,
                      width: int = 800, height: int = 200) -> Path:
    """Draw a log-magnitude spectrogram (0 Hz at the bottom) of mono audio as a PNG."""
    samples = np.asarray(mono, dtype=np.float64).reshape(-1)
    if samples.size < 512:
        samples = np.pad(samples, (0, 512 - samples.size))
    _freqs, _times, spectrum = stft(samples, fs=sample_rate, nperseg=512, noverlap=384, window="hann")
    power_db = 20 * np.log10(np.abs(spectrum) + 1e-10)
    top = power_db.max()
    level = np.clip((power_db - (top - SPECTROGRAM_RANGE_DB)) / SPECTROGRAM_RANGE_DB, 0.0, 1.0)
    if top < -100:  # digital silence: draw it all in the quietest colour
        level[:] = 0.0
    rgb = _colour_map(level[::-1])  # low frequencies at the bottom
    image = Image.fromarray(rgb, mode="RGB").resize((width, height), Image.BILINEAR)
    return _save_image(image, Path(out_path), "PNG")


def _colour_map(level: np.ndarray) -> np.ndarray:
    """Map 0..1 values to RGB by linear interpolation between the anchor colours."""
    positions = np.linspace(0.0, 1.0, len(SPECTROGRAM_ANCHORS))
    channels = [np.interp(level, positions, SPECTROGRAM_ANCHORS[:, c]) for c in range(3)]
    return np.stack(channels, axis=-1).astype(np.uint8)


def _save_image(image: Image.Image, out_path: Path, fmt: str, **options) -> Path:
    # mode 0644 (atomic_write's default): the web process must read it
    return atomic_write(out_path, lambda tmp: image.convert("RGB").save(tmp, format=fmt, **options))
