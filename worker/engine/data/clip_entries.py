"""One clip's entries in the ``.precomputed`` cache: compute what is stale (unless an earlier run
has it, :mod:`worker.engine.data.reuse`), write the decoded previews.
:mod:`worker.engine.data.preprocess` decides which clips and buckets; this module does the work
for one clip (video latents, audio latents, caption features, decoded video and audio).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from worker.engine.data import audio as audio_io
from worker.engine.data import cache

if TYPE_CHECKING:
    from worker.engine.data.preprocess import ClipReport
    from worker.engine.data.reuse import EarlierEntries

ENTRY_KINDS = ("latents", "audio_latents", "conditions")
DECODED_KINDS = {"decoded_videos": ".mp4", "decoded_audio": ".wav"}


@dataclass
class ClipWork:
    """A usable row while it is processed: paths, bucket, fingerprints of its entries."""

    report: ClipReport
    video_path: Path
    audio_path: Path
    bucket: object
    fps: float
    text: str
    entries: dict[str, Path]
    inputs: dict[str, dict]


class LazyPipeline:
    """Loads the model only when some entry has to be computed."""

    def __init__(self, loader: Callable[[], object]):
        self._loader, self._pipe = loader, None

    def get(self):
        if self._pipe is None:
            self._pipe = self._loader()
        return self._pipe


def decoded_inputs(clip: ClipWork) -> dict[str, dict]:
    return {
        "decoded_videos": {"latents": cache.fingerprint(clip.inputs["latents"])},
        "decoded_audio": {"audio_latents": cache.fingerprint(clip.inputs["audio_latents"])},
    }


def decoded_fp(clip: ClipWork, kind: str) -> str:
    return cache.fingerprint(decoded_inputs(clip)[kind])


def fail(report: ClipReport, code: str, reason: str) -> None:
    report.status, report.code, report.reason = "error", code, reason


def take_earlier(clip: ClipWork, earlier: EarlierEntries | None, kind: str, inputs: dict) -> bool:
    """True when an earlier run's entry of ``kind`` was placed for the clip (noted on its report)."""
    if earlier is None or not earlier.take(kind, clip.entries[kind], inputs):
        return False
    clip.report.reused_earlier.append(kind)
    return True


def process_clip(clip: ClipWork, pipe: LazyPipeline, decode: bool, max_len: int, check_cancel,
                 earlier: EarlierEntries | None = None) -> None:
    """Compute every stale entry of one clip, unless an earlier run has it; errors are recorded on
    ``clip.report``."""
    from worker.engine.data import text

    report, entries, inputs = clip.report, clip.entries, clip.inputs
    stale = [k for k in ENTRY_KINDS if not cache.is_fresh(entries[k], cache.fingerprint(inputs[k]))
             and not take_earlier(clip, earlier, k, inputs[k])]
    waveform = None
    if "audio_latents" in stale:
        waveform = decode_waveform(clip)
        if waveform is None:
            return
    if "latents" in stale:
        check_cancel()
        if not encode_video_entry(clip, pipe):
            return
    if waveform is not None:
        check_cancel()
        encode_audio_entry(clip, pipe, waveform)
    if "conditions" in stale:
        check_cancel()
        payload = text.encode_caption(pipe.get(), clip.text, max_sequence_length=max_len)
        cache.save_tensors(entries["conditions"], payload, inputs["conditions"])
    report.recomputed.extend(stale)
    if decode:
        write_decoded_entries(clip, pipe, check_cancel, earlier)
    report.status = "ok" if report.recomputed else "cached"


def decode_waveform(clip: ClipWork):
    """The clip's audio for its bucket's duration, or ``None`` (the error recorded on its report)."""
    duration = clip.inputs["audio_latents"]["samples_16k"] / audio_io.MEL_SAMPLE_RATE
    try:
        return audio_io.decode_audio(clip.audio_path, duration_s=duration).waveform
    except audio_io.NoAudioTrack as exc:
        fail(clip.report, "no_audio_track", str(exc))
    except audio_io.AudioDecodeError as exc:
        fail(clip.report, "audio_decode_failed", str(exc))
    return None


def encode_video_entry(clip: ClipWork, pipe: LazyPipeline) -> bool:
    """Encode and store the clip's video latents; False (the error recorded) when it cannot be decoded."""
    from worker.engine.data import latents
    from worker.engine.data.video import VideoDecodeError, load_clip_pixels

    bucket = clip.bucket
    try:
        pixels = load_clip_pixels(clip.video_path, width=bucket.width, height=bucket.height, frames=bucket.frames)
    except VideoDecodeError as exc:
        fail(clip.report, "corrupt_media", str(exc))
        return False
    video_latents = latents.encode_video(pipe.get(), pixels)
    _, frames, height, width = video_latents.shape
    payload = {"latents": video_latents, "num_frames": frames, "height": height, "width": width, "fps": clip.fps}
    cache.save_tensors(clip.entries["latents"], payload, clip.inputs["latents"])
    return True


def encode_audio_entry(clip: ClipWork, pipe: LazyPipeline, waveform) -> None:
    from worker.engine.data import latents

    audio_latents = latents.encode_audio(pipe.get(), waveform)
    payload = {
        "latents": audio_latents,
        "num_time_steps": audio_latents.shape[1],
        "frequency_bins": audio_latents.shape[2],
        "duration": waveform.shape[-1] / audio_io.MEL_SAMPLE_RATE,
    }
    cache.save_tensors(clip.entries["audio_latents"], payload, clip.inputs["audio_latents"])


def write_decoded_entries(clip: ClipWork, pipe: LazyPipeline, check_cancel, earlier: EarlierEntries | None) -> None:
    """Decode the clip's latents back to an mp4 and a wav (the ones neither fresh nor in an earlier run)."""
    import torch

    from worker.engine.data import latents
    from worker.engine.data.video import write_mp4

    entries = clip.entries
    for kind, inputs in decoded_inputs(clip).items():
        target = entries[kind]
        if cache.is_fresh(target, cache.fingerprint(inputs)) or take_earlier(clip, earlier, kind, inputs):
            continue
        check_cancel()
        if kind == "decoded_videos":
            data = torch.load(entries["latents"], map_location="cpu", weights_only=True)
            pixels = latents.decode_video(pipe.get(), data["latents"])
            cache.write_entry(target, lambda temp, p=pixels: write_mp4(temp, p, clip.fps), inputs)
        else:
            data = torch.load(entries["audio_latents"], map_location="cpu", weights_only=True)
            wave, rate = latents.decode_audio(pipe.get(), data["latents"])
            cache.write_entry(target, lambda temp, w=wave, r=rate: write_wav(temp, w, r), inputs)
        clip.report.recomputed.append(kind)


def write_wav(path: Path, waveform, rate: int) -> None:
    import soundfile

    soundfile.write(str(path), waveform.numpy().T, rate, format="WAV", subtype="PCM_16")
