"""Browser-playable proxies: H.264/AAC MP4 made with PyAV when the source will not play as is.

"Playable" is decided from the probed codecs, not the file name: MP4/MOV with 8-bit 4:2:0
H.264 and AAC/MP3 (or no audio), or WebM/Matroska with VP8/VP9/AV1 and Opus/Vorbis (or no
audio), play in Chromium and Firefox. Anything else gets a proxy: H.264 (yuv420p, even sides,
at most 720 px on the short side) + AAC stereo 48 kHz, ``+faststart`` so playback starts before
the whole file arrives. The proxy is written under a temporary name and renamed when complete;
it is not started when the disk has no room for it (:class:`core.errors.DiskFull`).
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av

from core.disk import ensure_free
from core.files import atomic_write
from core.media.probe import ProbeResult

MP4_FAMILY = "mov,mp4,m4a,3gp,3g2,mj2"
MATROSKA_FAMILY = "matroska,webm"
_PLAYABLE = {
    MP4_FAMILY: ({"h264"}, {"aac", "mp3"}),
    MATROSKA_FAMILY: ({"vp8", "vp9", "av1"}, {"opus", "vorbis"}),
}
_PLAYABLE_PIX_FMTS = {"yuv420p", "yuvj420p", None}
PROXY_MAX_SHORT_SIDE = 720
PROXY_AUDIO_RATE = 48000
PROXY_BYTES_PER_S = 1024 * 1024  # 8 Mbit/s: more than a 720p H.264 + AAC proxy ever needs


class ProxyError(Exception):
    """The proxy could not be made (the source does not decode); no partial file is left."""


def is_browser_playable(probe: ProbeResult) -> bool:
    """True when browsers play the source directly (decided by container and codecs)."""
    if probe.video is None or probe.container not in _PLAYABLE:
        return False
    video_codecs, audio_codecs = _PLAYABLE[probe.container]
    if probe.video.codec not in video_codecs:
        return False
    if probe.video.codec == "h264" and probe.video.pix_fmt not in _PLAYABLE_PIX_FMTS:
        return False  # 10-bit or 4:2:2 H.264 does not play in browsers
    return probe.audio is None or probe.audio.codec in audio_codecs


def proxy_size(width: int, height: int) -> tuple[int, int]:
    """Proxy frame size: aspect kept, short side at most 720, both sides even."""
    scale = min(1.0, PROXY_MAX_SHORT_SIDE / min(width, height))
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)


def proxy_size_estimate(source: Path, probe: ProbeResult) -> int:
    """An upper bound of the proxy's size, checked free before transcoding: the source's size, or
    :data:`PROXY_BYTES_PER_S` per second when that is less (a 4K master makes a far smaller proxy)."""
    size = source.stat().st_size
    duration = probe.duration or probe.video.duration
    return min(size, int(duration * PROXY_BYTES_PER_S)) if duration else size


def write_proxy(source: str | os.PathLike, out_path: str | os.PathLike, probe: ProbeResult) -> Path:
    """Transcode ``source`` to an H.264/AAC MP4 at ``out_path`` (with audio when it has some)."""
    source, out_path = Path(source), Path(out_path)
    if probe.video is None:
        raise ProxyError(f"{source.name} has no video stream to make a proxy from")
    ensure_free(out_path.parent, proxy_size_estimate(source, probe))
    try:  # mode 0644 (atomic_write's default): the web process must read it
        return atomic_write(out_path, lambda tmp: _transcode(source, tmp, probe))
    except av.error.FFmpegError as exc:
        raise ProxyError(f"could not make a browser proxy of {source.name}: {exc}") from exc


def _transcode(source: Path, target: Path, probe: ProbeResult) -> None:
    width, height = proxy_size(probe.video.width, probe.video.height)
    with av.open(str(source)) as src, av.open(str(target), "w", format="mp4",
                                              options={"movflags": "+faststart"}) as dst:
        in_video = src.streams.video[0]
        in_audio = src.streams.audio[0] if src.streams.audio else None
        time_base = in_video.time_base or Fraction(1, 90000)
        frame_rate = in_video.average_rate or in_video.guessed_rate or Fraction(25)
        out_video = dst.add_stream("libx264", rate=frame_rate)
        out_video.width, out_video.height, out_video.pix_fmt = width, height, "yuv420p"
        out_video.time_base = time_base
        out_video.codec_context.time_base = time_base
        out_video.options = {"preset": "veryfast", "crf": "23"}
        if probe.video.rotation:
            out_video.set_display_rotation(probe.video.rotation)
        out_audio = None
        resampler = None
        if in_audio is not None:
            out_audio = dst.add_stream("aac", rate=PROXY_AUDIO_RATE, layout="stereo")
            resampler = av.AudioResampler(format="fltp", layout="stereo", rate=PROXY_AUDIO_RATE)
        streams = [s for s in (in_video, in_audio) if s is not None]
        frame_ticks = max(1, round(1 / (float(frame_rate) * float(time_base))))
        last_pts = None
        for frame in src.decode(*streams):
            if isinstance(frame, av.VideoFrame):
                pts = frame.pts
                if pts is None:  # no timestamp (raw streams): place it one frame after the last
                    pts = 0 if last_pts is None else last_pts + frame_ticks
                if last_pts is not None and pts <= last_pts:
                    continue  # a repeated timestamp cannot be muxed; drop the duplicate frame
                last_pts = pts
                image = frame.reformat(width=width, height=height, format="yuv420p")
                image.pts, image.time_base = pts, time_base
                for packet in out_video.encode(image):
                    dst.mux(packet)
            elif out_audio is not None:
                for chunk in resampler.resample(frame):
                    for packet in out_audio.encode(chunk):
                        dst.mux(packet)
        for packet in out_video.encode():
            dst.mux(packet)
        if out_audio is not None:
            for chunk in resampler.resample(None):
                for packet in out_audio.encode(chunk):
                    dst.mux(packet)
            for packet in out_audio.encode():
                dst.mux(packet)
