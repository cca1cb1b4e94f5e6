"""Preprocess a dataset into the official ``.precomputed`` layout, caching entry by entry.

``preprocess_dataset(metadata, out_dir=..., preset=..., buckets=..., trigger=...)`` reads the
official metadata file and writes, under ``<out_dir>/.precomputed/``:

- ``latents/<clip>.pt``: ``latents`` [128, F', H', W'] (bf16, normalised), ``num_frames``,
  ``height``, ``width`` (latent sizes) and ``fps`` (the clip's native rate)
- ``audio_latents/<clip>.pt``: ``latents`` [8, T, 16] (fp32, normalised), ``num_time_steps``,
  ``frequency_bins``, ``duration`` (seconds)
- ``conditions/<clip>.pt``: the official caption features plus our connector outputs
  (see ``worker.engine.data.text``)
- with ``decode=True``: ``decoded_videos/<clip>.mp4`` and ``decoded_audio/<clip>.wav``, the VAE
  (and vocoder) round trip of the cached latents, to look at and listen to.

``<clip>`` is the video path relative to the metadata file, as the official trainer names it.
Each entry is fingerprinted (``worker.engine.data.cache``), so a rerun recomputes only what changed.
Clips that cannot be used (too short for every bucket, no audio track, undecodable) are reported
by name as errors and make the run fail; entries of clips no longer usable are removed so the
official trainer cannot pick them up. At the end every kept clip must have all its entries.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from core.recipe.buckets import BucketError, coerce_buckets, fitting_buckets
from core.recipe.captions import TriggerError, ensure_trigger, validate_trigger
from core.recipe.metadata import MetadataError, read_metadata
from worker.engine.data import audio as audio_io
from worker.engine.data import cache
from core.presets import get_preset

PRECOMPUTED = ".precomputed"
ENTRY_KINDS = ("latents", "audio_latents", "conditions")
DECODED_KINDS = {"decoded_videos": ".mp4", "decoded_audio": ".wav"}
VIDEO_RECIPE = "resize-cover-bicubic,center-crop,first-frames,native-fps,vae-mode,normalised"
AUDIO_RECIPE = {
    "sample_rate": audio_io.MEL_SAMPLE_RATE,
    "n_fft": audio_io.N_FFT,
    "win_length": audio_io.WIN_LENGTH,
    "hop_length": audio_io.HOP_LENGTH,
    "n_mels": audio_io.N_MELS,
    "f_max": audio_io.F_MAX,
    "stereo": "mono-duplicated,surround-downmixed",
    "encoder": "vae-mode,normalised",
}

ProgressCallback = Callable[[int, int, str], None]


class PreprocessError(ValueError):
    """The run cannot start (bad buckets, trigger or metadata); the message says what to fix."""


class PreprocessCancelled(RuntimeError):
    """``should_cancel`` asked to stop; entries written so far are complete and reusable."""


@dataclass
class ClipReport:
    """The outcome for one metadata row.

    ``status`` is ``"ok"`` (entries computed now), ``"cached"`` (all entries reused) or
    ``"error"`` (with ``code`` and ``reason``); ``recomputed`` lists the entry kinds made now.
    """

    name: str
    video: str
    bucket: str | None = None
    status: str = "ok"
    code: str | None = None
    reason: str | None = None
    recomputed: list[str] = field(default_factory=list)


@dataclass
class PreprocessResult:
    """What a run did: one ``ClipReport`` per row, entries missing at the end, entries removed."""

    ok: bool
    out_dir: str
    preset: str
    model: str
    buckets: str
    trigger: str | None
    clips: list[ClipReport]
    missing: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[ClipReport]:
        """The clips that could not be used."""
        return [clip for clip in self.clips if clip.status == "error"]

    def to_dict(self) -> dict:
        """A JSON-ready dictionary (what ``--json`` prints)."""
        data = asdict(self)
        data["errors"] = [c.reason for c in self.errors]
        return data


@dataclass
class _Clip:
    """A usable row while it is processed: paths, bucket, fingerprints of its entries."""

    report: ClipReport
    video_path: Path
    audio_path: Path
    bucket: object
    fps: float
    text: str
    entries: dict[str, Path]
    inputs: dict[str, dict]


class _LazyPipeline:
    """Loads the model only when some entry has to be computed."""

    def __init__(self, loader: Callable[[], object]):
        self._loader, self._pipe = loader, None

    def get(self):
        if self._pipe is None:
            self._pipe = self._loader()
        return self._pipe


def entry_name(video_path: Path, base_dir: Path) -> Path:
    """The official output name of a clip: its path relative to the metadata folder, ``.pt`` suffix."""
    try:
        relative = video_path.resolve().relative_to(base_dir.resolve())
    except ValueError:
        relative = Path(video_path.name)
    return relative.with_suffix(".pt")


def _parse_arguments(buckets, trigger):
    try:
        parsed = coerce_buckets(buckets)
    except BucketError as exc:
        raise PreprocessError(f"buckets: {exc}") from exc
    if trigger:
        try:
            validate_trigger(trigger)
        except TriggerError as exc:
            raise PreprocessError(f"trigger: {exc}") from exc
    return parsed


@dataclass
class _RunSettings:
    """What every clip of one run shares."""

    base_dir: Path
    precomputed: Path
    buckets: list
    trigger: str | None
    identity: str
    max_len: int
    names: set = field(default_factory=set)


def _prepare_clip(entry, index: int, run: _RunSettings):
    """Probe one row; return a ``_Clip`` or a ``ClipReport`` with the error."""
    from worker.engine.data.video import VideoDecodeError, probe_video

    base_dir, names = run.base_dir, run.names
    video_path = entry.video_path(base_dir)
    shown = entry.video or f"row {index + 1}"
    report = ClipReport(name=Path(shown).name, video=shown)

    def fail(code: str, reason: str) -> ClipReport:
        report.status, report.code, report.reason = "error", code, reason
        return report

    if video_path is None or not video_path.is_file():
        return fail("missing_file", f"{shown}: file not found next to the metadata file")
    audio_path = entry.audio_path(base_dir) or video_path
    if not audio_path.is_file():
        return fail("missing_file", f"{entry.audio}: audio file not found next to the metadata file")
    try:
        info = probe_video(video_path)
    except VideoDecodeError as exc:
        return fail("corrupt_media", str(exc))
    fitting, why_not = fitting_buckets(info.width, info.height, info.frames, run.buckets)
    if not fitting:
        return fail("too_short_for_buckets", f"{report.name}: too short for every bucket ({why_not})")
    bucket = fitting[0]
    report.bucket = str(bucket)
    name = entry_name(video_path, base_dir)
    if name in names:
        return fail("duplicate_name", f"{report.name}: another row already writes {name}")
    names.add(name)
    video_hash = cache.file_sha256(video_path)
    audio_hash = video_hash if audio_path == video_path else cache.file_sha256(audio_path)
    samples = round(bucket.frames / info.fps * audio_io.MEL_SAMPLE_RATE)
    text = ensure_trigger(entry.caption, run.trigger)
    identity = run.identity
    inputs = {
        "latents": {"model": identity, "bucket": str(bucket), "clip_sha256": video_hash, "recipe": VIDEO_RECIPE},
        "audio_latents": {
            "model": identity,
            "audio_sha256": audio_hash,
            "samples_16k": samples,
            "audio": AUDIO_RECIPE,
        },
        "conditions": {"model": identity, "caption": text, "max_sequence_length": run.max_len},
    }
    entries = {kind: run.precomputed / kind / name for kind in ENTRY_KINDS}
    for kind, suffix in DECODED_KINDS.items():
        entries[kind] = (run.precomputed / kind / name).with_suffix(suffix)
    return _Clip(report, video_path, audio_path, bucket, info.fps, text, entries, inputs)


def _decoded_inputs(clip: _Clip) -> dict[str, dict]:
    return {
        "decoded_videos": {"latents": cache.fingerprint(clip.inputs["latents"])},
        "decoded_audio": {"audio_latents": cache.fingerprint(clip.inputs["audio_latents"])},
    }


def _decoded_fp(clip: _Clip, kind: str) -> str:
    return cache.fingerprint(_decoded_inputs(clip)[kind])


def _process_clip(clip: _Clip, pipe: _LazyPipeline, decode: bool, max_len: int, check_cancel) -> None:
    """Compute every stale entry of one clip; errors are recorded on ``clip.report``."""
    import torch

    from worker.engine.data import latents, text
    from worker.engine.data.video import VideoDecodeError, load_clip_pixels, write_mp4

    report, entries, inputs = clip.report, clip.entries, clip.inputs
    stale = [k for k in ENTRY_KINDS if not cache.is_fresh(entries[k], cache.fingerprint(inputs[k]))]
    waveform = None
    if "audio_latents" in stale:
        duration = inputs["audio_latents"]["samples_16k"] / audio_io.MEL_SAMPLE_RATE
        try:
            waveform = audio_io.decode_audio(clip.audio_path, duration_s=duration).waveform
        except audio_io.NoAudioTrack as exc:
            report.status, report.code, report.reason = "error", "no_audio_track", str(exc)
            return
        except audio_io.AudioDecodeError as exc:
            report.status, report.code, report.reason = "error", "audio_decode_failed", str(exc)
            return
    if "latents" in stale:
        check_cancel()
        bucket = clip.bucket
        try:
            pixels = load_clip_pixels(clip.video_path, width=bucket.width, height=bucket.height, frames=bucket.frames)
        except VideoDecodeError as exc:
            report.status, report.code, report.reason = "error", "corrupt_media", str(exc)
            return
        video_latents = latents.encode_video(pipe.get(), pixels)
        _, frames, height, width = video_latents.shape
        payload = {"latents": video_latents, "num_frames": frames, "height": height, "width": width, "fps": clip.fps}
        cache.save_tensors(entries["latents"], payload, inputs["latents"])
    if waveform is not None:
        check_cancel()
        audio_latents = latents.encode_audio(pipe.get(), waveform)
        payload = {
            "latents": audio_latents,
            "num_time_steps": audio_latents.shape[1],
            "frequency_bins": audio_latents.shape[2],
            "duration": waveform.shape[-1] / audio_io.MEL_SAMPLE_RATE,
        }
        cache.save_tensors(entries["audio_latents"], payload, inputs["audio_latents"])
    if "conditions" in stale:
        check_cancel()
        payload = text.encode_caption(pipe.get(), clip.text, max_sequence_length=max_len)
        cache.save_tensors(entries["conditions"], payload, inputs["conditions"])
    report.recomputed.extend(stale)
    if decode:
        for kind, decoded_inputs in _decoded_inputs(clip).items():
            target = entries[kind]
            if cache.is_fresh(target, cache.fingerprint(decoded_inputs)):
                continue
            check_cancel()
            if kind == "decoded_videos":
                data = torch.load(entries["latents"], map_location="cpu", weights_only=True)
                pixels = latents.decode_video(pipe.get(), data["latents"])
                cache.write_entry(target, lambda temp, p=pixels: write_mp4(temp, p, clip.fps), decoded_inputs)
            else:
                data = torch.load(entries["audio_latents"], map_location="cpu", weights_only=True)
                wave, rate = latents.decode_audio(pipe.get(), data["latents"])
                cache.write_entry(target, lambda temp, w=wave, r=rate: _write_wav(temp, w, r), decoded_inputs)
            report.recomputed.append(kind)
    report.status = "ok" if report.recomputed else "cached"


def _write_wav(path: Path, waveform, rate: int) -> None:
    import soundfile

    soundfile.write(str(path), waveform.numpy().T, rate, format="WAV", subtype="PCM_16")


def _reconcile(kept: list[_Clip], decode: bool) -> list[str]:
    """Every kept clip's entries that are missing or do not match their inputs."""
    missing: list[str] = []
    for clip in kept:
        expected = dict(clip.inputs)
        if decode:
            expected.update(_decoded_inputs(clip))
        for kind, inputs in expected.items():
            if not cache.is_fresh(clip.entries[kind], cache.fingerprint(inputs)):
                missing.append(f"{clip.report.name}: {kind}/{clip.entries[kind].name}")
    return missing


def _write_report(precomputed: Path, result: PreprocessResult) -> None:
    target = precomputed / "preprocess_report.json"
    temp = target.with_name(f".{target.name}.tmp.{os.getpid()}")
    temp.write_text(json.dumps(result.to_dict(), indent=1))
    os.replace(temp, target)


def preprocess_dataset(
    metadata: Path | str,
    *,
    out_dir: Path | str,
    preset: str = "toy",
    buckets,
    trigger: str | None,
    data_dir: Path | str,
    model_dir: Path | str | None = None,
    decode: bool = False,
    device: str | None = None,
    dtype=None,
    pipeline=None,
    progress: ProgressCallback | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> PreprocessResult:
    """Preprocess every row of ``metadata`` into ``<out_dir>/.precomputed`` (see the module docstring).

    ``buckets`` is a ``"WxHxF;..."`` string or a list; ``trigger`` is prepended to captions that
    do not begin with it. ``pipeline`` reuses an already loaded pipeline of ``preset``; otherwise
    the model is loaded only if some entry must be computed. ``progress(index, total, message)``
    is called as clips are handled; ``should_cancel()`` returning True raises
    ``PreprocessCancelled`` between steps. Raises ``PreprocessError`` for bad arguments and
    ``ModelFilesMissing`` when the weights are absent; clip problems go into the result, whose
    ``ok`` is False when any clip failed or any entry is missing.
    """
    from worker.engine.model.pipelines import load_pipeline, model_identity

    info = get_preset(preset)
    parsed_buckets = _parse_arguments(buckets, trigger)
    metadata = Path(metadata)
    try:
        rows = read_metadata(metadata)
    except MetadataError as exc:
        raise PreprocessError(str(exc)) from exc
    data_dir = Path(data_dir)
    model_path = Path(model_dir) if model_dir else None
    identity = model_identity(preset, data_dir=data_dir, model_dir=model_path)
    precomputed = Path(out_dir) / PRECOMPUTED
    precomputed.mkdir(parents=True, exist_ok=True)
    pipe = _LazyPipeline(
        (lambda: pipeline)
        if pipeline is not None
        else (lambda: load_pipeline(preset, data_dir=data_dir, model_dir=model_path, device=device, dtype=dtype))
    )
    notify = progress or (lambda index, total, message: None)

    def check_cancel() -> None:
        if should_cancel is not None and should_cancel():
            raise PreprocessCancelled("preprocessing cancelled; finished entries are kept and reused next time")

    run = _RunSettings(metadata.parent, precomputed, parsed_buckets, trigger, identity, info.max_sequence_length)
    total = len(rows)
    reports: list[ClipReport] = []
    kept: list[_Clip] = []
    for index, row in enumerate(rows):
        check_cancel()
        prepared = _prepare_clip(row, index, run)
        if isinstance(prepared, ClipReport):
            reports.append(prepared)
            notify(index, total, f"{prepared.name}: error: {prepared.reason}")
            continue
        notify(index, total, f"{prepared.report.name}: bucket {prepared.report.bucket}")
        _process_clip(prepared, pipe, decode, info.max_sequence_length, check_cancel)
        reports.append(prepared.report)
        if prepared.report.status != "error":
            kept.append(prepared)
        notify(index + 1, total, f"{prepared.report.name}: {prepared.report.status}")

    removed: list[str] = []
    suffixes = {kind: (".pt",) for kind in ENTRY_KINDS} | {k: (s,) for k, s in DECODED_KINDS.items()}
    for kind, kind_suffixes in suffixes.items():
        keep = {clip.entries[kind] for clip in kept}
        if kind in DECODED_KINDS:  # a decoded file of outdated latents is removed, not kept
            keep = {c.entries[kind] for c in kept if cache.is_fresh(c.entries[kind], _decoded_fp(c, kind))}
        removed += [str(p.relative_to(precomputed)) for p in cache.prune(precomputed / kind, keep, kind_suffixes)]

    missing = _reconcile(kept, decode)
    result = PreprocessResult(
        ok=not missing and all(r.status != "error" for r in reports),
        out_dir=str(out_dir),
        preset=preset,
        model=identity,
        buckets=";".join(str(b) for b in parsed_buckets),
        trigger=trigger,
        clips=reports,
        missing=missing,
        removed=removed,
    )
    _write_report(precomputed, result)
    return result
