"""Real-sized test clips for ``avlora bench preprocess --generate N``: no media needed on hand.

``generate_clips(folder, count)`` writes ``count`` mp4 files shaped like a phone's footage: H.264
(High profile, yuv420p) at 1920x1080 and 30 frames per second by default, its bitrate scaled from
12 Mbit/s at 1080p by the frame's area, and a 48 kHz stereo AAC track of a speech-like voice.

The picture is a textured scene the camera pans across with a lit disc moving in front and a
little sensor grain, so the encoder has real detail and motion to code (a flat frame would decode
unrealistically fast). The voice is synthetic, made with numpy: syllables of a glottal buzz at a
wandering pitch (100-220 Hz) shaped by vowel formants, with breaths of noise and pauses between
phrases. Each clip has its own seed, so clips differ as real ones do.
"""

from __future__ import annotations

import fractions
from pathlib import Path

import numpy as np

BITRATE_1080P = 12_000_000  # bit/s of the 1080p picture; smaller frames get their area's share
AUDIO_RATE = 48000
AUDIO_BITRATE = 128_000
# (F1, F2, F3) in Hz of a few vowels: a, e, i, o, u
VOWELS = ((730, 1090, 2440), (530, 1840, 2480), (270, 2290, 3010), (570, 840, 2410), (300, 870, 2240))


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cell: int) -> np.ndarray:
    """Colour noise ``[height, width, 3]`` in [0, 1] varying over about ``cell`` pixels."""
    import torch
    import torch.nn.functional as F

    coarse = torch.from_numpy(rng.random((1, 3, height // cell + 2, width // cell + 2), dtype=np.float32))
    fine = F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False)
    return fine[0].permute(1, 2, 0).clamp(0, 1).numpy()


def _scene(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A textured backdrop ``[height, width * 1.25, 3]`` (uint8) wide enough for the pan."""
    wide = width + width // 4
    base = 0.55 * _smooth_noise(rng, height, wide, max(height // 6, 4))
    detail = 0.3 * _smooth_noise(rng, height, wide, max(height // 90, 2))
    stripes = 0.15 * (0.5 + 0.5 * np.sin(np.arange(wide) / max(width / 60, 1.0)))[None, :, None]
    return np.clip(255 * (base + detail + stripes), 0, 255).astype(np.uint8)


def _frames(rng: np.random.Generator, width: int, height: int, count: int):
    """The clip's ``count`` RGB frames (uint8 ``[height, width, 3]``), one at a time."""
    scene = _scene(rng, height, width)
    grain = rng.integers(-4, 5, size=(height + 16, width + 16, 3), dtype=np.int16)
    ys, xs = np.mgrid[0:height, 0:width]
    radius = height / 5
    pan = scene.shape[1] - width
    for index in range(count):
        phase = index / max(count - 1, 1)
        left = int(pan * phase)
        frame = scene[:, left : left + width].astype(np.int16)
        cx = width * (0.3 + 0.4 * phase)
        cy = height * (0.5 + 0.1 * np.sin(6 * np.pi * phase))
        disc = ((xs - cx) ** 2 + (ys - cy) ** 2) < radius**2
        frame[disc] = (frame[disc] // 3 + np.array([150, 110, 90], dtype=np.int16))
        dy, dx = rng.integers(0, 16, size=2)
        frame += grain[dy : dy + height, dx : dx + width]
        yield np.clip(frame, 0, 255).astype(np.uint8)


def speech_like(rng: np.random.Generator, seconds: float, rate: int = AUDIO_RATE) -> np.ndarray:
    """A synthetic voice ``[2, samples]`` (float32, peak about 0.5): see the module docstring."""
    total = int(round(seconds * rate))
    t = np.arange(total) / rate
    pitch = 160 + 60 * np.sin(2 * np.pi * 0.7 * t + rng.random() * 6) + 20 * np.sin(2 * np.pi * 3.1 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    envelope = np.zeros(total)
    formants = np.zeros((total, 3))
    start = 0
    while start < total:  # syllables of 120-280 ms, a pause of 300-600 ms after every 4-7 of them
        for _ in range(int(rng.integers(4, 8))):
            length = int(rate * rng.uniform(0.12, 0.28))
            end = min(start + length, total)
            envelope[start:end] = np.hanning(2 * length)[length - (end - start) :][: end - start] ** 0.5
            formants[start:end] = VOWELS[int(rng.integers(len(VOWELS)))]
            start = end + int(rate * rng.uniform(0.02, 0.06))
            if start >= total:
                break
        start += int(rate * rng.uniform(0.3, 0.6))
    voice = np.zeros(total)
    for harmonic in range(1, 4000 // 100):  # harmonics of the pitch, weighted by the vowel's formants
        freq = harmonic * pitch
        gain = sum(np.exp(-(((freq - formants[:, k]) / (80 + 40 * k)) ** 2)) for k in range(3)) / harmonic**0.5
        voice += gain * np.sin(harmonic * phase)
    breath = rng.standard_normal(total) * 0.02 * (envelope < 0.05)
    mono = voice * envelope
    mono = 0.5 * mono / max(np.abs(mono).max(), 1e-6) + breath
    return np.stack([mono, 0.9 * mono]).astype(np.float32)


def _mux_audio(container, stream, samples: np.ndarray) -> None:
    import av

    chunk = 1024
    for start in range(0, samples.shape[1], chunk):
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, start : start + chunk]), format="fltp",
                                           layout="stereo")
        frame.sample_rate, frame.pts, frame.time_base = AUDIO_RATE, start, fractions.Fraction(1, AUDIO_RATE)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


def write_test_clip(path: Path | str, *, width: int = 1920, height: int = 1080, fps: int = 30,
                    seconds: float = 3.0, seed: int = 0) -> Path:
    """Write one clip (see the module docstring) to ``path``; returns it."""
    import av

    if width % 2 or height % 2:
        raise ValueError(f"clip size {width}x{height}: width and height must be even for yuv420p")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    container = av.open(str(path), mode="w", format="mp4")
    try:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.bit_rate = int(BITRATE_1080P * width * height / (1920 * 1080))
        video.options = {"preset": "veryfast", "profile": "high", "g": str(2 * fps)}
        audio = container.add_stream("aac", rate=AUDIO_RATE, layout="stereo")
        audio.bit_rate = AUDIO_BITRATE
        for image in _frames(rng, width, height, int(round(seconds * fps))):
            for packet in video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        _mux_audio(container, audio, speech_like(rng, seconds))
    finally:
        container.close()
    return path


def generate_clips(folder: Path | str, count: int, *, width: int = 1920, height: int = 1080, fps: int = 30,
                   seconds: float = 3.0) -> list[Path]:
    """``count`` clips ``gen_000.mp4``... under ``folder`` (created), seeded by their number."""
    if count < 1:
        raise ValueError(f"--generate needs at least 1 clip, got {count}")
    folder = Path(folder)
    return [write_test_clip(folder / f"gen_{index:03d}.mp4", width=width, height=height, fps=fps, seconds=seconds,
                            seed=index) for index in range(count)]
