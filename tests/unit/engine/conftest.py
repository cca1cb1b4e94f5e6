"""Shared fixtures for engine tests: the toy pipeline (built once per session) and tiny clips.

- ``engine_data_dir``: a session-wide DATA_DIR in which the toy presets are saved once.
- ``toy_pipeline``: ``load_pipeline("toy", ...)`` on the CPU in float32, loaded once per session.
  Tests must not change its weights (use ``load_pipeline`` for a private copy).
- ``make_clip``: writes a tiny H.264 mp4 with PyAV at test time (coloured frames, optional AAC
  sine track in mono, stereo or 5.1) and returns its path.
"""

from __future__ import annotations

import fractions
import os
from pathlib import Path

import numpy as np
import pytest
import torch

# two cores: two threads, or one per process when pytest-xdist runs two (scripts/test.sh)
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else 2)


def write_clip(
    path: Path,
    *,
    frames: int = 12,
    fps: int = 24,
    width: int = 64,
    height: int = 64,
    color: tuple[int, int, int] = (200, 40, 40),
    audio: str | None = "stereo",
    audio_rate: int = 48000,
    tone_hz: float = 440.0,
    audio_seconds: float | None = None,
) -> Path:
    """Write an mp4: ``frames`` frames of a moving gradient tinted ``color``, and audio.

    ``audio`` is ``"stereo"`` (left ``tone_hz``, right 1.5x), ``"mono"``, ``"5.1"`` or ``None``
    (no audio track). The audio lasts ``audio_seconds`` (default: as long as the video).
    """
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    container = av.open(str(path), mode="w")
    try:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"preset": "ultrafast", "crf": "18"}
        audio_stream = None
        if audio is not None:
            layout = {"stereo": "stereo", "mono": "mono", "5.1": "5.1"}[audio]
            audio_stream = container.add_stream("aac", rate=audio_rate, layout=layout)
        ys, xs = np.mgrid[0:height, 0:width]
        for index in range(frames):
            shade = ((xs + ys + 4 * index) % 64) / 64.0
            image = (np.array(color)[None, None, :] * (0.5 + 0.5 * shade[..., None])).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        if audio_stream is not None:
            seconds = audio_seconds if audio_seconds is not None else frames / fps
            total = int(round(seconds * audio_rate))
            channels = {"stereo": 2, "mono": 1, "5.1": 6}[audio]
            t = np.arange(total) / audio_rate
            waves = [0.3 * np.sin(2 * np.pi * tone_hz * (1 + 0.5 * c) * t) for c in range(channels)]
            samples = np.stack(waves).astype(np.float32)
            chunk = 1024
            for start in range(0, total, chunk):
                part = np.ascontiguousarray(samples[:, start : start + chunk])
                frame = av.AudioFrame.from_ndarray(part, format="fltp", layout=audio_stream.layout.name)
                frame.sample_rate = audio_rate
                frame.pts = start
                frame.time_base = fractions.Fraction(1, audio_rate)
                for packet in audio_stream.encode(frame):
                    container.mux(packet)
            for packet in audio_stream.encode():
                container.mux(packet)
    finally:
        container.close()
    return path


@pytest.fixture(scope="session")
def engine_data_dir(tmp_path_factory) -> Path:
    """A DATA_DIR shared by the session, where the toy presets are saved on first use."""
    return tmp_path_factory.mktemp("engine-data")


@pytest.fixture(scope="session")
def toy_pipeline(engine_data_dir):
    """The ``toy`` preset (LTX-2.3 architecture) loaded once, CPU, float32."""
    from worker.engine.model.pipelines import load_pipeline

    return load_pipeline("toy", data_dir=engine_data_dir, device="cpu", dtype=torch.float32)


@pytest.fixture
def make_clip(tmp_path):
    """``make_clip(name, **write_clip options) -> Path``: a tiny mp4 under the test's tmp dir."""

    def _make(name: str = "clip.mp4", **options) -> Path:
        return write_clip(tmp_path / name, **options)

    return _make
