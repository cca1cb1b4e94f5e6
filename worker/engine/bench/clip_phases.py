"""Where preprocessing's time goes, clip by clip: the phases ``avlora bench preprocess --clips`` reports.

:func:`phases_marked` wraps, for the duration of a block, the functions the real preprocessing
(:func:`worker.engine.data.preprocess.preprocess_dataset`) calls for each step of a clip, so each
call marks its phase on a :class:`~worker.engine.bench.phases.PhaseCallbacks` (the device
synchronised at every mark, as ``bench run`` marks the training's phases). The wrapped names are
looked up at call time by the code that calls them, so nothing in ``worker/engine/data`` changes.
Phases nest: a phase called inside another (the H.264 decode inside the pixel loading, the
log-mel inside the audio encode) is charged apart and the outer one resumes when it returns, so
every second lies in exactly one phase and the phases add up to the wall time.

:func:`summarise_clips` reads the marks back: seconds, seconds per clip and share of each phase,
and every clip's own row (the interval's ``step`` tag carries the clip's number, 1-based; 0 is the
set-up before the first clip, ``clips + 1`` the pruning, check and report after the last).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import statistics
from collections import Counter

# Every phase, in a clip's order, with what it holds; all are reported (0 when absent)
PHASES: dict[str, str] = {
    "model_load": "model build or load (before the first clip; not in clips/s)",
    "probe": "probe the container, pick the bucket, fingerprint inputs",
    "source_hash": "sha256 of the clip's file (the cache fingerprint)",
    "video_decode": "container decode: H.264 frames of the bucket to RGB (PyAV)",
    "video_resize": "resize to cover the bucket (bicubic, uint8), centre crop, to floats",
    "video_vae_encode": "video VAE encode (pixels to the device, posterior mode, latents back)",
    "audio_decode": "audio decode and resample to 16 kHz stereo (PyAV)",
    "audio_mel": "log-mel spectrogram of the audio",
    "audio_vae_encode": "audio VAE encode (posterior mode, normalised)",
    "caption_embedding": "caption embedding: tokenise, Gemma, feature projections, connectors",
    "cache_write": "cache writes: torch.save and fingerprint sidecar, atomic",
    "preview_video_decode": "previews (--decode): video VAE decode of the cached latents",
    "preview_audio_decode": "previews (--decode): audio VAE decode and vocoder",
    "preview_write": "previews (--decode): mp4 and wav writing",
    "other": "the rest: metadata, cache checks, tensors between phases, pruning, report",
}

# (module, function, phase): the functions preprocessing calls, looked up at call time
MARKED: tuple[tuple[str, str, str], ...] = (
    ("worker.engine.data.cache", "file_sha256", "source_hash"),
    ("worker.engine.data.video", "read_frames", "video_decode"),
    ("worker.engine.data.video", "load_clip_pixels", "video_resize"),
    ("worker.engine.data.latents", "encode_video", "video_vae_encode"),
    ("worker.engine.data.audio", "decode_audio", "audio_decode"),
    ("worker.engine.data.latents", "log_mel_spectrogram", "audio_mel"),
    ("worker.engine.data.latents", "encode_audio", "audio_vae_encode"),
    ("worker.engine.data.text", "encode_caption", "caption_embedding"),
    ("worker.engine.data.cache", "save_tensors", "cache_write"),
    ("worker.engine.data.latents", "decode_video", "preview_video_decode"),
    ("worker.engine.data.latents", "decode_audio", "preview_audio_decode"),
    ("worker.engine.data.video", "write_mp4", "preview_write"),
    ("worker.engine.data.clip_entries", "write_wav", "preview_write"),
)
PREPROCESS = "worker.engine.data.preprocess"


@contextlib.contextmanager
def _patched(replacements: list[tuple[object, str, object]]):
    originals = [(module, name, getattr(module, name)) for module, name, _ in replacements]
    try:
        for module, name, replacement in replacements:
            setattr(module, name, replacement)
        yield
    finally:
        for module, name, original in originals:
            setattr(module, name, original)


@contextlib.contextmanager
def phases_marked(callbacks, clips: int, *, identity: str | None = None):
    """Mark every phase of :data:`MARKED` on ``callbacks`` while the block runs (see the module
    docstring); yields a ``Counter`` of calls per phase. ``identity``: the model id preprocessing
    fingerprints its entries with, where the weights have no files to hash (random weights)."""
    stack = ["other"]
    calls: Counter = Counter()

    def marked(original, phase: str):
        @functools.wraps(original)
        def wrapper(*args, **kwargs):
            stack.append(phase)
            calls[phase] += 1
            callbacks.on_phase(phase)
            try:
                return original(*args, **kwargs)
            finally:
                stack.pop()
                callbacks.on_phase(stack[-1])
        return wrapper

    def tagged(original, first_step: int | None):
        @functools.wraps(original)
        def wrapper(*args, **kwargs):  # a new clip (or the end): marks from here on carry its number
            callbacks.step = callbacks.step + 1 if first_step is None else first_step
            callbacks.on_phase(stack[-1])
            return original(*args, **kwargs)
        return wrapper

    preprocess = importlib.import_module(PREPROCESS)
    replacements = [(importlib.import_module(m), name, marked(getattr(importlib.import_module(m), name), phase))
                    for m, name, phase in MARKED]
    replacements.append((preprocess, "_prepare_clip", tagged(marked(preprocess._prepare_clip, "probe"), None)))
    replacements.append((preprocess, "_prune_outdated", tagged(preprocess._prune_outdated, clips + 1)))
    if identity is not None:
        pipelines = importlib.import_module("worker.engine.model.pipelines")
        replacements.append((pipelines, "model_identity", lambda *_, **__: identity))
    with _patched(replacements):
        yield calls


def per_clip_rows(intervals, names: list[str]) -> list[dict]:
    """One row per clip (in the metadata's order): its seconds per phase and in all."""
    rows = []
    for number, name in enumerate(names, start=1):
        parts = dict.fromkeys(PHASES, 0.0)
        for interval in intervals:
            if interval.step == number:
                parts[interval.name] += interval.seconds
        rows.append({"clip": name, "seconds": sum(parts.values()), "phases": parts})
    return rows


def summarise_clips(intervals, calls: Counter, names: list[str]) -> dict:
    """Seconds, seconds per clip, share (of the preprocessing, model load apart) and calls of every
    phase of :data:`PHASES`; the preprocessing's and the whole run's seconds; every clip's row; and
    the steady seconds per clip (the median clip after the first, which holds the warm-up)."""
    seconds = dict.fromkeys(PHASES, 0.0)
    for interval in intervals:
        seconds[interval.name] = seconds.get(interval.name, 0.0) + interval.seconds
    total = sum(seconds.values())
    preprocess = total - seconds["model_load"]
    count = max(len(names), 1)
    phases = {name: {"seconds": value, "per_clip_s": value / count,
                     "share": value / (total if name == "model_load" else preprocess) if preprocess else 0.0,
                     "calls": calls.get(name, 1 if name == "model_load" else 0)}
              for name, value in seconds.items()}
    rows = per_clip_rows(intervals, names)
    steady = [row["seconds"] for row in rows[1:]] or [row["seconds"] for row in rows]
    return {"phases": phases, "total_s": total, "preprocess_s": preprocess, "per_clip": rows,
            "steady_s_per_clip": statistics.median(steady) if steady else 0.0}


def clips_table(result: dict) -> str:
    """``avlora bench preprocess --clips``' result as a table: what ran on what, clips per second,
    then each phase's seconds, seconds per clip and share."""
    shapes: dict[str, list[float]] = {}
    for c in result["clip_info"]:
        shape = f"{c['width']}x{c['height']} {c['codec']} {c['fps']:g} fps {c['duration_s']:.1f} s, audio {c['audio']}"
        shapes.setdefault(shape, []).append(c["bitrate_mbit_s"])
    lines = [
        f"{result['preset']} on {result['device']} ({result['dtype']}): {result['clips_ok']} of {result['clips']} "
        f"clips preprocessed into buckets {result['buckets']}{' with previews' if result['decode'] else ''}",
        *(f"  {len(rates)} x {shape}, {min(rates):.1f}-{max(rates):.1f} Mbit/s" for shape, rates in shapes.items()),
        f"  {result['clips_per_s']:.3f} clips/s ({result['preprocess_s'] / max(result['clips_ok'], 1):.2f} s a clip; "
        f"steady {result['steady_s_per_clip']:.2f} s a clip after the first); with the model load "
        f"{result['clips_per_s_with_load']:.3f} clips/s",
        f"{'phase':<72} {'seconds':>9} {'per clip':>9} {'share':>6}",
    ]
    for name, phase in result["phases"].items():
        label = result["phase_labels"].get(name, name)
        if name == "model_load":  # once per run: its share is of the total
            lines.append(f"{label:<72} {phase['seconds']:9.3f} {'':>9} {phase['share']:6.1%} of the total")
            continue
        lines.append(f"{label:<72} {phase['seconds']:9.3f} {phase['per_clip_s']:9.3f} {phase['share']:6.1%}")
    lines.append(f"{'preprocessing (the clips, model load apart)':<72} {result['preprocess_s']:9.3f} "
                 f"{result['preprocess_s'] / max(result['clips'], 1):9.3f} {1:6.1%}")
    lines.append(f"{'total, model load included':<72} {result['total_s']:9.3f}")
    lines += [f"error: {error}" for error in result["errors"]]
    return "\n".join(lines)
