"""Generate small test media at test time (PyAV + espeak-ng); nothing is committed.

Every file is tiny (64x64 by default, a few seconds) so a whole test session stays fast.

Two ways to use it:

* one-off files: ``write_clip(path, ClipSpec(...))`` and the ``write_*`` helpers below;
* cached per test session (recommended): a :class:`MediaFactory` keeps one file per distinct
  request, so many tests can ask for "a talking clip" and only the first one pays for it::

      # conftest.py
      import pytest
      from tests.media_factory import MediaFactory

      @pytest.fixture(scope="session")
      def media(tmp_path_factory):
          return MediaFactory(tmp_path_factory.mktemp("media"))

      # a test
      def test_upload(media):
          clip = media.talking_clip()                       # 4 s, 64x64, 25 fps, stereo speech
          vertical = media.clip(container="webm", size=(720, 1280), duration=1.0)
          silent = media.clip(audio="silent")
          broken = media.truncated()         # also: damaged(), text_file(), empty_file(),
                                             # audio_only(), one_frame_video(), undecodable_audio()

:class:`ClipSpec` fields (all optional):
``duration`` seconds, ``fps``, ``size`` (width, height), ``frames`` (overrides duration for the
video), ``video_codec`` (``libx264`` | ``mpeg4`` | ``libvpx-vp9`` ...), ``container``
(``mp4`` | ``mov`` | ``webm`` | ``mkv``; webm defaults to VP9 + Opus), ``audio`` (one of
:data:`AUDIO_KINDS`), ``channels`` (``mono`` | ``stereo`` | ``5.1``), ``sample_rate``,
``level_dbfs`` (peak level of the speech/tone), ``variable_frame_rate``, ``rotation`` (degrees,
stored as display matrix), ``text`` (what espeak-ng says), ``faststart`` (MP4/MOV index first;
False puts it at the end, as most cameras do), ``audio_codec`` (e.g. ``pcm_s16le`` in mkv/mov for
exact sample values).

Audio kinds: ``speech`` (espeak-ng), ``none`` (no audio stream), ``silent`` (digital silence),
``tone`` (997 Hz sine at ``level_dbfs``), ``clipped_tone`` (997 Hz sine driven 2x past full scale:
2/3 of its samples sit at full scale), ``clipped`` (speech driven 4x past full scale),
``quiet`` (speech at -50 dBFS), ``noisy`` (speech under white noise at about 0 dB SNR),
``buried`` (speech under white noise 14 dB louder than the voice: the VAD alone hears no speech),
``noise`` (white noise only).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass, replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import soundfile
from scipy.signal import resample_poly

AUDIO_KINDS = ("speech", "none", "silent", "tone", "clipped_tone", "clipped", "quiet", "noisy", "buried", "noise")
DEFAULT_TEXT = "I think we should start again from the beginning."
_CONTAINER_DEFAULTS = {
    "mp4": ("libx264", "aac"),
    "mov": ("libx264", "aac"),
    "mkv": ("libx264", "aac"),
    "webm": ("libvpx-vp9", "libopus"),
}


@dataclass(frozen=True)
class ClipSpec:
    """What to generate. The defaults give a 4 s 64x64 25 fps H.264/AAC stereo talking clip."""

    duration: float = 4.0
    fps: int = 25
    size: tuple[int, int] = (64, 64)
    frames: int | None = None
    video_codec: str | None = None
    audio_codec: str | None = None
    container: str = "mp4"
    audio: str = "speech"
    channels: str = "stereo"
    sample_rate: int = 48000
    level_dbfs: float = -3.0
    variable_frame_rate: bool = False
    rotation: int = 0
    text: str = DEFAULT_TEXT
    voice: str = "en"  # espeak-ng voice, e.g. "en-us+m3" or "en-us+f4" for two clearly different speakers
    pause_s: float = 0.3  # silence between repeats of the text
    lines: tuple[tuple[str, str], ...] = ()  # (voice, text) spoken once each, in order, instead of text
    seed: int = 0
    faststart: bool = True

    @property
    def frame_count(self) -> int:
        """Video frames the file gets."""
        return self.frames if self.frames is not None else max(1, round(self.duration * self.fps))


# ---------------------------------------------------------------- audio signals


def speech_samples(text: str = DEFAULT_TEXT, sample_rate: int = 16000, voice: str = "en") -> np.ndarray:
    """espeak-ng saying ``text`` in ``voice`` as mono float32 at ``sample_rate``, peak normalised to 1.0."""
    return _speech_samples_cached(text, sample_rate, voice).copy()


@functools.lru_cache(maxsize=16)
def _speech_samples_cached(text: str, sample_rate: int, voice: str = "en") -> np.ndarray:
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is not installed: apt-get install espeak-ng")
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(wav), text], check=True, capture_output=True)
        data, rate = soundfile.read(str(wav), dtype="float32")
    if data.ndim > 1:
        data = data.mean(axis=1)
    if rate != sample_rate:
        divisor = np.gcd(rate, sample_rate)
        data = resample_poly(data, sample_rate // divisor, rate // divisor).astype(np.float32)
    return (data / max(float(np.abs(data).max()), 1e-9)).astype(np.float32)


def _speech_track(spec: ClipSpec, n: int) -> np.ndarray:
    """Speech repeated to fill ``n`` samples, starting 0.2 s in, with short pauses between
    (or ``spec.lines`` spoken once each, in their voices)."""
    if spec.lines:
        gap = np.zeros(int(spec.pause_s * spec.sample_rate), np.float32)
        pieces = [np.zeros(int(0.2 * spec.sample_rate), np.float32)]
        for voice, text in spec.lines:
            pieces += [speech_samples(text, spec.sample_rate, voice), gap]
        track = np.concatenate(pieces)[:n]
        return np.pad(track, (0, n - len(track)))
    once = speech_samples(spec.text, spec.sample_rate, spec.voice)
    gap = np.zeros(int(spec.pause_s * spec.sample_rate), np.float32)
    track = np.zeros(n, np.float32)
    pos = int(0.2 * spec.sample_rate)
    while pos < n:
        piece = np.concatenate([once, gap])[: n - pos]
        track[pos : pos + len(piece)] = piece
        pos += len(once) + len(gap)
    return track


def audio_signal(spec: ClipSpec, n_channels: int) -> np.ndarray:
    """The ``[channels, samples]`` float32 signal for ``spec.audio``."""
    n = int(round(spec.duration * spec.sample_rate))
    rng = np.random.default_rng(spec.seed)
    peak = 10 ** (spec.level_dbfs / 20)
    kind = spec.audio
    if kind == "silent":
        mono = np.zeros(n, np.float32)
    elif kind in ("tone", "clipped_tone"):
        t = np.arange(n) / spec.sample_rate
        mono = (peak * np.sin(2 * np.pi * 997.0 * t)).astype(np.float32)
        if kind == "clipped_tone":
            mono = np.clip(2.0 * np.sin(2 * np.pi * 997.0 * t), -1.0, 1.0).astype(np.float32)
    elif kind == "noise":
        mono = (0.3 * rng.standard_normal(n)).clip(-1, 1).astype(np.float32)
    elif kind in ("speech", "clipped", "quiet", "noisy", "buried"):
        speech = _speech_track(spec, n)
        if kind == "speech":
            mono = peak * speech
        elif kind == "clipped":
            mono = np.clip(4.0 * speech, -1.0, 1.0)
        elif kind == "quiet":
            mono = 10 ** (-50 / 20) * speech
        else:  # noisy: noise power close to the speech power; buried: noise 14 dB above it
            speech = 0.5 * speech
            speech_rms = float(np.sqrt(np.mean(speech[np.abs(speech) > 1e-4] ** 2)))
            noise_rms = speech_rms * (10 ** (14 / 20) if kind == "buried" else 1.0)
            mono = (speech + noise_rms * rng.standard_normal(n)).clip(-1, 1)
    else:
        raise ValueError(f"unknown audio kind {kind!r}; use one of {AUDIO_KINDS}")
    channels = [mono]
    for index in range(1, n_channels):
        # Each extra channel is a slightly different gain of the same signal (keeps it correlated).
        channels.append(mono * (0.9 if index % 2 else 0.8))
    return np.stack(channels).astype(np.float32)


# ---------------------------------------------------------------- video frames


def video_frame_rgb(index: int, total: int, width: int, height: int) -> np.ndarray:
    """A coloured frame with a bright square moving across it (so every frame differs)."""
    phase = index / max(total, 1)
    y, x = np.mgrid[0:height, 0:width]
    frame = np.empty((height, width, 3), np.uint8)
    frame[..., 0] = (80 + 120 * phase + 40 * x / max(width, 1)) % 256
    frame[..., 1] = (60 + 100 * y / max(height, 1)) % 256
    frame[..., 2] = (200 - 120 * phase) % 256
    side = max(2, min(width, height) // 4)
    left = int((width - side) * phase)
    top = (height - side) // 2
    frame[top : top + side, left : left + side] = (250, 240, 90)
    return frame


def _frame_pts_ms(spec: ClipSpec) -> list[int]:
    """Presentation times in milliseconds; alternating short/long gaps when variable."""
    step = 1000.0 / spec.fps
    if not spec.variable_frame_rate:
        return [round(i * step) for i in range(spec.frame_count)]
    pts, now = [], 0.0
    for i in range(spec.frame_count):
        pts.append(round(now))
        now += step * (0.5 if i % 2 else 1.5)  # same average rate, very uneven spacing
    return pts


# ---------------------------------------------------------------- writers


def write_clip(path: str | Path, spec: ClipSpec = ClipSpec()) -> Path:
    """Write a clip described by ``spec`` to ``path`` (the container is ``spec.container``)."""
    path = Path(path)
    default_video, default_audio = _CONTAINER_DEFAULTS[spec.container]
    fmt = {"mkv": "matroska"}.get(spec.container, spec.container)
    options = {"movflags": "faststart"} if spec.container in ("mp4", "mov") and spec.faststart else {}
    with av.open(str(path), "w", format=fmt, options=options) as out:
        video = _add_video_stream(out, spec, spec.video_codec or default_video)
        audio = None
        if spec.audio != "none":
            audio = _add_audio_stream(out, spec, spec.audio_codec or default_audio)
        _encode_video(out, video, spec)
        if audio is not None:
            _encode_audio(out, audio, audio_signal(spec, audio.layout.nb_channels), spec.sample_rate)
    return path


def _add_video_stream(out, spec: ClipSpec, codec: str):
    width, height = spec.size
    stream = out.add_stream(codec, rate=spec.fps)
    stream.width, stream.height = width, height
    stream.pix_fmt = "yuv420p"
    stream.time_base = Fraction(1, 1000)
    stream.codec_context.time_base = Fraction(1, 1000)
    if codec == "libx264":
        stream.options = {"preset": "ultrafast"}
    elif codec == "libvpx-vp9":
        stream.options = {"deadline": "realtime", "cpu-used": "8"}
    if spec.rotation:
        stream.set_display_rotation(spec.rotation)
    return stream


def _add_audio_stream(out, spec: ClipSpec, codec: str):
    rate = 48000 if codec == "libopus" else spec.sample_rate
    if rate != spec.sample_rate:
        raise ValueError(f"{codec} needs 48000 Hz audio, spec asks for {spec.sample_rate}")
    return out.add_stream(codec, rate=rate, layout=spec.channels)


def _encode_video(out, stream, spec: ClipSpec) -> None:
    width, height = spec.size
    total = spec.frame_count
    for index, pts in enumerate(_frame_pts_ms(spec)):
        frame = av.VideoFrame.from_ndarray(video_frame_rgb(index, total, width, height), format="rgb24")
        frame.pts = pts
        frame.time_base = Fraction(1, 1000)
        for packet in stream.encode(frame.reformat(format="yuv420p")):
            out.mux(packet)
    for packet in stream.encode():
        out.mux(packet)


def _encode_audio(out, stream, signal: np.ndarray, rate: int) -> None:
    layout = stream.layout.name
    chunk = 1024
    for start in range(0, signal.shape[1], chunk):
        piece = np.ascontiguousarray(signal[:, start : start + chunk])
        frame = av.AudioFrame.from_ndarray(piece, format="fltp", layout=layout)
        frame.sample_rate = rate
        frame.pts = start
        frame.time_base = Fraction(1, rate)
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode():
        out.mux(packet)


def write_two_voice_clip(path: str | Path, first: tuple[str, str], second: tuple[str, str]) -> Path:
    """A clip where ``first`` (voice, text) speaks, then ``second``, then ``first`` again."""
    lines = (first, second, first)
    seconds = sum(len(speech_samples(text, 16000, voice)) / 16000 + 0.5 for voice, text in lines) + 0.4
    return write_clip(path, ClipSpec(duration=round(seconds, 2), lines=lines, pause_s=0.5))


def write_audio_only(path: str | Path, spec: ClipSpec = ClipSpec(container="mp4")) -> Path:
    """An M4A-style MP4 holding only an AAC audio track (no video stream)."""
    path = Path(path)
    with av.open(str(path), "w", format="mp4") as out:
        stream = _add_audio_stream(out, spec, spec.audio_codec or "aac")
        _encode_audio(out, stream, audio_signal(spec, stream.layout.nb_channels), spec.sample_rate)
    return path


def write_truncated(path: str | Path, spec: ClipSpec = ClipSpec(), keep: float = 0.5) -> Path:
    """A clip cut to ``keep`` of its bytes.

    With ``spec.faststart`` (default) the MP4 index survives and the media data stops early;
    without it the index (written last) is lost and FFmpeg cannot open the file at all.
    """
    path = Path(path)
    write_clip(path, spec)
    size = path.stat().st_size
    with open(path, "r+b") as handle:
        handle.truncate(int(size * keep))
    return path


def write_damaged(path: str | Path, spec: ClipSpec = ClipSpec(), start: float = 1 / 3,
                  length: float = 1 / 4) -> Path:
    """A clip whose bytes from ``start`` to ``start + length`` (fractions of its size) are noise.

    The header survives, so the file opens and its first frames decode; decoding fails later.
    """
    path = Path(path)
    write_clip(path, spec)
    data = bytearray(path.read_bytes())
    first, count = int(len(data) * start), int(len(data) * length)
    noise = np.random.default_rng(spec.seed + 1).integers(0, 256, count, dtype=np.uint8)
    data[first : first + count] = noise.tobytes()
    path.write_bytes(bytes(data))
    return path


def write_text_file(path: str | Path, text: str = "this is not a video\n" * 20) -> Path:
    """A plain text file (give it a media name such as ``notes.mp4`` to test sniffing)."""
    path = Path(path)
    path.write_text(text)
    return path


def write_empty_file(path: str | Path) -> Path:
    """A zero-byte file."""
    path = Path(path)
    path.write_bytes(b"")
    return path


def write_undecodable_audio(path: str | Path, spec: ClipSpec = ClipSpec(duration=2.0)) -> Path:
    """A valid video stream next to an AAC stream whose packets are random bytes."""
    path = Path(path)
    rng = np.random.default_rng(spec.seed)
    with av.open(str(path), "w", format="mp4") as out:
        video = _add_video_stream(out, spec, "libx264")
        audio = out.add_stream("aac", rate=spec.sample_rate, layout="stereo")
        _encode_video(out, video, spec)
        for index in range(int(spec.duration * spec.sample_rate / 1024)):
            packet = av.Packet(rng.integers(0, 256, 300, dtype=np.uint8).tobytes())
            packet.stream = audio
            packet.pts = packet.dts = index * 1024
            packet.time_base = Fraction(1, spec.sample_rate)
            out.mux(packet)
    return path


# ---------------------------------------------------------------- session cache


class MediaFactory:
    """Session cache of generated media: one file per distinct request, made on first use.

    ``root`` is a directory (e.g. ``tmp_path_factory.mktemp("media")``). Every method returns
    the path of a file that already exists; do not modify returned files (copy them first).
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _cached(self, kind: str, suffix: str, params: dict, make) -> Path:
        key = hashlib.sha1(json.dumps([kind, params], sort_keys=True, default=str).encode()).hexdigest()[:12]
        path = self.root / f"{kind}-{key}{suffix}"
        if not path.exists():
            tmp = path.with_name(f".tmp-{path.name}")
            make(tmp)
            os.replace(tmp, path)
        return path

    def clip(self, **fields) -> Path:
        """A clip from :class:`ClipSpec` fields, e.g. ``clip(audio="noise", fps=12)``."""
        spec = ClipSpec(**fields)
        suffix = "." + spec.container
        return self._cached("clip", suffix, asdict(spec), lambda p: write_clip(p, spec))

    def talking_clip(self, **fields) -> Path:
        """A 4 s talking clip: espeak-ng speech over coloured moving frames."""
        return self.clip(**fields)

    def vertical_webm(self, **fields) -> Path:
        """A 720x1280 VP9/Opus WebM (1 s by default: VP9 at that size is slow to encode)."""
        fields = {"container": "webm", "size": (720, 1280), "duration": 1.0, "fps": 10, **fields}
        return self.clip(**fields)

    def one_frame_video(self, **fields) -> Path:
        """A video with exactly one frame (and 1 s of audio unless ``audio`` says otherwise)."""
        fields = {"frames": 1, "duration": 1.0, **fields}
        return self.clip(**fields)

    def audio_only(self, **fields) -> Path:
        """An MP4 with an AAC speech track and no video stream."""
        spec = replace(ClipSpec(), **fields)
        return self._cached("audio-only", ".m4a", asdict(spec), lambda p: write_audio_only(p, spec))

    def truncated(self, keep: float = 0.5, **fields) -> Path:
        """A talking clip cut to ``keep`` of its bytes (``faststart=False``: index lost too)."""
        spec = replace(ClipSpec(), **fields)
        params = {"keep": keep, **asdict(spec)}
        return self._cached("truncated", ".mp4", params, lambda p: write_truncated(p, spec, keep))

    def damaged(self, **fields) -> Path:
        """A 128x128 silent-video clip with noise over a quarter of its bytes (decoding fails midway)."""
        spec = replace(ClipSpec(size=(128, 128), audio="none"), **fields)
        return self._cached("damaged", ".mp4", asdict(spec), lambda p: write_damaged(p, spec))

    def undecodable_audio(self, **fields) -> Path:
        """A clip with a good video stream and an audio stream that cannot be decoded."""
        spec = replace(ClipSpec(duration=2.0), **fields)
        return self._cached("bad-audio", ".mp4", asdict(spec), lambda p: write_undecodable_audio(p, spec))

    def text_file(self, name: str = "notes.mp4") -> Path:
        """A text file with a media name (default ``notes.mp4``)."""
        path = self.root / name
        if not path.exists():
            write_text_file(path)
        return path

    def empty_file(self, name: str = "empty.mp4") -> Path:
        """A zero-byte file with a media name."""
        path = self.root / name
        if not path.exists():
            write_empty_file(path)
        return path
