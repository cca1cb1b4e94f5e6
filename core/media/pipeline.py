"""One call that a Celery task (or the CLI) runs per uploaded clip: probe, analyse, draw, proxy.

``analyze_clip`` never raises for a bad *file*: what is wrong with the clip comes back as
findings (``not_media``, ``corrupt_media``, ``audio_decode_failed``...). It raises only for
problems of the machine itself (e.g. ``out_dir`` not writable). The returned
:class:`ClipAnalysis` turns into a JSON-serialisable dict for the clip's database column;
:func:`core.media.findings.compute_findings` can recompute the findings from that dict later,
when buckets, other clips or the caption change.

Files written to ``out_dir`` (each under a temporary name first, then renamed):
``poster.jpg``, ``waveform.png``, ``spectrogram.png`` and, only when the source is not
browser-playable, ``proxy.mp4``. The ``media`` dict names them relative to ``out_dir``.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from core.media import analysis as audio_analysis
from core.media import images, proxy
from core.media.findings import clip_status, compute_findings
from core.media.probe import MediaProbeError, ProbeResult, probe_media, verify_video_decodes

log = logging.getLogger(__name__)

POSTER_NAME = "poster.jpg"
WAVEFORM_NAME = "waveform.png"
SPECTROGRAM_NAME = "spectrogram.png"
PROXY_NAME = "proxy.mp4"


@dataclass
class ClipAnalysis:
    """Everything learnt about one clip file; ``to_dict()`` is what the database stores."""

    file_name: str
    size_bytes: int
    content_hash: str  # sha256 of the file's bytes
    probe: dict | None = None  # ProbeResult.to_dict(), None when the file could not be probed
    probe_error: dict | None = None  # {"code","message","detail"} when it could not
    audio: dict | None = None  # AudioAnalysis.to_dict()
    audio_error: dict | None = None
    media: dict = field(default_factory=dict)  # poster/waveform/spectrogram/proxy names, playable_source
    media_errors: list[str] = field(default_factory=list)  # images or proxy that could not be made
    findings: list[dict] = field(default_factory=list)

    @property
    def status(self) -> str:
        """Clip status after analysis: ``ready`` or ``rejected`` (a finding blocks it)."""
        return clip_status(self.findings)

    def to_dict(self) -> dict:
        """JSON-serialisable dict (includes ``status``)."""
        return {**asdict(self), "status": self.status}


def content_hash(path: str | os.PathLike) -> str:
    """sha256 hex digest of the file's bytes (read in 1 MiB chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def analyze_clip(path: str | os.PathLike, out_dir: str | os.PathLike, buckets, *,
                 other_hashes=None, transcript: str | None = None) -> ClipAnalysis:
    """Probe, analyse audio, draw images, make a proxy if needed, and compute findings.

    ``buckets``: the dataset's bucket string or list (see :mod:`core.recipe.buckets`).
    ``other_hashes``/``transcript``: as :func:`core.media.findings.compute_findings` takes them.
    """
    path, out_dir = Path(path), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = ClipAnalysis(file_name=path.name, size_bytes=path.stat().st_size, content_hash=content_hash(path))
    try:
        probe = probe_media(path)
        result.probe = probe.to_dict()
        verify_video_decodes(path, probe)
    except MediaProbeError as exc:
        result.probe_error = exc.to_dict()
    else:
        mono_16k = _analyse_audio(path, probe, result)
        _draw_images(path, out_dir, probe, mono_16k, result)
        _make_proxy(path, out_dir, probe, result)
    result.findings = compute_findings(result.to_dict(), buckets, other_hashes, transcript)
    return result


def _analyse_audio(path: Path, probe: ProbeResult, result: ClipAnalysis):
    """Fill ``result.audio`` (or ``audio_error``); return the 16 kHz mono samples for images."""
    if probe.audio is None:
        return None
    try:
        decoded = audio_analysis.decode_audio(path)
    except audio_analysis.AudioDecodeError as exc:
        result.audio_error = {"code": exc.code, "message": exc.message, "detail": exc.detail}
        return None
    if decoded is None:
        return None
    result.audio = audio_analysis.analyze_audio(decoded).to_dict()
    return decoded.mono_16k


def _draw_images(path: Path, out_dir: Path, probe: ProbeResult, mono_16k, result: ClipAnalysis) -> None:
    media = result.media
    media.update({"poster": None, "waveform": None, "spectrogram": None})
    if probe.video is not None:
        try:
            images.write_poster(path, out_dir / POSTER_NAME, rotation=probe.video.rotation)
            media["poster"] = POSTER_NAME
        except images.PosterError as exc:
            result.media_errors.append(f"poster: {exc}")
    if mono_16k is not None:
        images.write_waveform(mono_16k, out_dir / WAVEFORM_NAME)
        images.write_spectrogram(mono_16k, audio_analysis.ANALYSIS_RATE, out_dir / SPECTROGRAM_NAME)
        media["waveform"], media["spectrogram"] = WAVEFORM_NAME, SPECTROGRAM_NAME


def _make_proxy(path: Path, out_dir: Path, probe: ProbeResult, result: ClipAnalysis) -> None:
    playable = proxy.is_browser_playable(probe)
    result.media["playable_source"] = playable
    result.media["proxy"] = None
    if playable or probe.video is None:
        return
    try:
        proxy.write_proxy(path, out_dir / PROXY_NAME, probe)
        result.media["proxy"] = PROXY_NAME
    except proxy.ProxyError as exc:
        log.warning("proxy failed for %s: %s", path, exc)
        result.media_errors.append(f"proxy: {exc}")
