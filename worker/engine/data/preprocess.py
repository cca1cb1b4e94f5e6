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
Each entry is fingerprinted (``worker.engine.data.cache``), so a rerun recomputes only what changed;
with ``reuse_from`` (earlier runs' output folders) an entry another run already made from the same
inputs is linked instead of computed (``worker.engine.data.reuse``).
Clips that cannot be used (too short for every bucket, no audio track, undecodable) are reported
by name as errors and make the run fail; entries of clips no longer usable are removed so the
official trainer cannot pick them up. At the end every kept clip must have all its entries.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from core.files import atomic_write_text
from core.presets import get_preset
from core.recipe.buckets import BucketError, coerce_buckets, fitting_buckets
from core.recipe.captions import TriggerError, ensure_trigger, validate_trigger
from core.recipe.metadata import MetadataError, read_metadata
from worker.engine.data import audio as audio_io
from worker.engine.data import cache
from worker.engine.data.clip_entries import (
    DECODED_KINDS,
    ENTRY_KINDS,
    ClipWork,
    LazyPipeline,
    decoded_fp,
    decoded_inputs,
    process_clip,
)
from worker.engine.data.reuse import EarlierEntries

PRECOMPUTED = ".precomputed"
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
    ``"error"`` (with ``code`` and ``reason``); ``recomputed`` lists the entry kinds made now,
    ``reused_earlier`` those linked from an earlier run's folder (``reuse_from``).
    """

    name: str
    video: str
    bucket: str | None = None
    status: str = "ok"
    code: str | None = None
    reason: str | None = None
    recomputed: list[str] = field(default_factory=list)
    reused_earlier: list[str] = field(default_factory=list)


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
    decode: bool = False

    @property
    def errors(self) -> list[ClipReport]:
        """The clips that could not be used."""
        return [clip for clip in self.clips if clip.status == "error"]

    def reuse_counts(self) -> dict:
        """How much of the usable clips' cache was reused and how much computed by this run.

        ``reused`` / ``computed`` count cache entries (one file each: a clip's video latents,
        audio latents, text conditions and, with ``decode``, decoded video and decoded audio);
        an entry is reused when it was already fresh in the output folder or was linked from an
        earlier run. ``clips_reused`` / ``clips_computed`` count clips with nothing / something
        computed; ``computed_kinds`` counts the computed entries by kind.
        """
        kept = [clip for clip in self.clips if clip.status != "error"]
        per_clip = len(ENTRY_KINDS) + (len(DECODED_KINDS) if self.decode else 0)
        computed = sum(len(clip.recomputed) for clip in kept)
        return {
            "reused": per_clip * len(kept) - computed,
            "computed": computed,
            "clips_reused": sum(1 for clip in kept if not clip.recomputed),
            "clips_computed": sum(1 for clip in kept if clip.recomputed),
            "computed_kinds": dict(Counter(kind for clip in kept for kind in clip.recomputed)),
        }

    def to_dict(self) -> dict:
        """A JSON-ready dictionary (what ``--json`` prints)."""
        data = asdict(self)
        data["errors"] = [c.reason for c in self.errors]
        data.update(self.reuse_counts())
        return data


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
    earlier: EarlierEntries | None = None


def _prepare_clip(entry, index: int, run: _RunSettings):
    """Probe one row; return a ``ClipWork`` or a ``ClipReport`` with the error."""
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
    return ClipWork(report, video_path, audio_path, bucket, info.fps, text, entries, inputs)


def _reconcile(kept: list[ClipWork], decode: bool) -> list[str]:
    """Every kept clip's entries that are missing or do not match their inputs."""
    missing: list[str] = []
    for clip in kept:
        expected = dict(clip.inputs)
        if decode:
            expected.update(decoded_inputs(clip))
        for kind, inputs in expected.items():
            if not cache.is_fresh(clip.entries[kind], cache.fingerprint(inputs)):
                missing.append(f"{clip.report.name}: {kind}/{clip.entries[kind].name}")
    return missing


def _write_report(precomputed: Path, result: PreprocessResult) -> None:
    atomic_write_text(precomputed / "preprocess_report.json", json.dumps(result.to_dict(), indent=1))


def _read_rows(metadata: Path) -> list:
    try:
        return read_metadata(metadata)
    except MetadataError as exc:
        raise PreprocessError(str(exc)) from exc


def _pipeline_for(preset: str, pipeline, **load_options) -> LazyPipeline:
    """``pipeline`` when given, else the preset's pipeline loaded on first use."""
    if pipeline is not None:
        return LazyPipeline(lambda: pipeline)
    from worker.engine.model.pipelines import load_pipeline

    return LazyPipeline(lambda: load_pipeline(preset, **load_options))


def _cancel_check(should_cancel: Callable[[], bool] | None) -> Callable[[], None]:
    def check_cancel() -> None:
        if should_cancel is not None and should_cancel():
            raise PreprocessCancelled("preprocessing cancelled; finished entries are kept and reused next time")

    return check_cancel


def _process_rows(rows: list, run: _RunSettings, pipe: LazyPipeline, decode: bool, notify: ProgressCallback,
                  check_cancel: Callable[[], None]) -> tuple[list[ClipReport], list[ClipWork]]:
    """Prepare and process every row in order; returns every row's report and the clips kept."""
    total = len(rows)
    reports: list[ClipReport] = []
    kept: list[ClipWork] = []
    for index, row in enumerate(rows):
        check_cancel()
        prepared = _prepare_clip(row, index, run)
        if isinstance(prepared, ClipReport):
            reports.append(prepared)
            notify(index, total, f"{prepared.name}: error: {prepared.reason}")
            continue
        notify(index, total, f"{prepared.report.name}: bucket {prepared.report.bucket}")
        process_clip(prepared, pipe, decode, run.max_len, check_cancel, run.earlier)
        reports.append(prepared.report)
        if prepared.report.status != "error":
            kept.append(prepared)
        notify(index + 1, total, f"{prepared.report.name}: {prepared.report.status}")
    return reports, kept


def _prune_outdated(precomputed: Path, kept: list[ClipWork]) -> list[str]:
    """Remove the entries no kept clip uses (and decoded files of outdated latents); returns their paths."""
    removed: list[str] = []
    suffixes = {kind: (".pt",) for kind in ENTRY_KINDS} | {k: (s,) for k, s in DECODED_KINDS.items()}
    for kind, kind_suffixes in suffixes.items():
        keep = {clip.entries[kind] for clip in kept}
        if kind in DECODED_KINDS:  # a decoded file of outdated latents is removed, not kept
            keep = {c.entries[kind] for c in kept if cache.is_fresh(c.entries[kind], decoded_fp(c, kind))}
        removed += [str(p.relative_to(precomputed)) for p in cache.prune(precomputed / kind, keep, kind_suffixes)]
    return removed


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
    reuse_from: list[Path] | None = None,
) -> PreprocessResult:
    """Preprocess every row of ``metadata`` into ``<out_dir>/.precomputed`` (see the module docstring).

    ``buckets`` is a ``"WxHxF;..."`` string or a list; ``trigger`` is prepended to captions that
    do not begin with it. ``pipeline`` reuses an already loaded pipeline of ``preset``; otherwise
    the model is loaded only if some entry must be computed. ``progress(index, total, message)``
    is called as clips are handled; ``should_cancel()`` returning True raises
    ``PreprocessCancelled`` between steps. ``reuse_from`` lists earlier output folders (newest
    first) whose entries are linked where their fingerprints match. Raises ``PreprocessError``
    for bad arguments and ``ModelFilesMissing`` when the weights are absent; clip problems go
    into the result, whose ``ok`` is False when any clip failed or any entry is missing.
    """
    from worker.engine.model.pipelines import model_identity

    info = get_preset(preset)
    parsed_buckets = _parse_arguments(buckets, trigger)
    metadata = Path(metadata)
    rows = _read_rows(metadata)
    data_dir = Path(data_dir)
    model_path = Path(model_dir) if model_dir else None
    identity = model_identity(preset, data_dir=data_dir, model_dir=model_path)
    precomputed = Path(out_dir) / PRECOMPUTED
    precomputed.mkdir(parents=True, exist_ok=True)
    pipe = _pipeline_for(preset, pipeline, data_dir=data_dir, model_dir=model_path, device=device, dtype=dtype)
    run = _RunSettings(metadata.parent, precomputed, parsed_buckets, trigger, identity, info.max_sequence_length,
                       earlier=EarlierEntries([Path(f) / PRECOMPUTED for f in reuse_from or []]))
    notify = progress or (lambda *_: None)
    reports, kept = _process_rows(rows, run, pipe, decode, notify, _cancel_check(should_cancel))
    removed = _prune_outdated(precomputed, kept)
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
        decode=decode,
    )
    _write_report(precomputed, result)
    return result
