"""Benchmark the real preprocessing over a folder of clips: clips per second and where the time goes.

``bench_preprocess_clips(ClipsBenchSpec(preset="ltx-2.3", clips="DIR", random_weights=True))`` runs
:func:`worker.engine.data.preprocess.preprocess_dataset`, the code ``avlora preprocess`` and the
studio's preprocess job run, over every video of ``DIR`` (``.mp4``, ``.mov``, ``.m4v``, ``.mkv``,
``.webm``, ``.avi``; a ``<clip>.txt`` beside a clip is its caption, else a typical one), into a
fresh ``.precomputed`` cache, and reports clips per second and the seconds of each phase
(:mod:`worker.engine.bench.clip_phases`: probe, H.264 decode, resize and crop, video VAE encode,
audio decode and resample, log-mel, audio VAE encode, caption embedding, cache writes, and with
``decode`` the previews the studio's job also writes), the device synchronised at every mark.

``generate`` first writes that many real-sized clips (:mod:`worker.engine.bench.clip_maker`:
1080p30 H.264 with AAC speech by default) into ``clips`` (or a temporary folder), so no media is
needed on hand. ``random_weights`` (full-size presets): the video and audio VAE, Gemma-3 12B and the
connectors (and the vocoder, for the previews) are built with random weights on the device, as
``bench run`` builds them, and handed to the same preprocessing; the toy, or real weights in
MODEL_DIR, are loaded as ``avlora preprocess`` loads them. The model's build or load is timed
apart and left out of the clips per second.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from core.recipe.buckets import DEFAULT_BUCKETS_STRING
from worker.engine.bench.clip_phases import PHASES, phases_marked, summarise_clips
from worker.engine.bench.phases import PhaseCallbacks
from worker.engine.step.measure import peak_memory_bytes, reset_peak, sync

VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi")
DEFAULT_CAPTION = (
    "A woman in a green jacket stands by a window in a bright kitchen and talks to the camera about her "
    "morning, smiling and gesturing with one hand; soft daylight falls across the counter, a kettle steams "
    "behind her, and her voice is warm, clear and unhurried."
)


@dataclass(frozen=True)
class ClipsBenchSpec:
    """What ``avlora bench preprocess --clips/--generate`` asks for (see the module docstring).

    ``clips`` None with ``generate``: a temporary folder; ``output_dir`` None: the cache goes to a
    temporary folder, removed afterwards (given, it must not hold a cache yet: one would be reused).
    """

    preset: str = "ltx-2.3"
    clips: str | None = None
    generate: int = 0
    generate_size: tuple[int, int] = (1920, 1080)
    generate_fps: int = 30
    generate_seconds: float = 3.0
    buckets: str = DEFAULT_BUCKETS_STRING
    random_weights: bool = False
    decode: bool = False
    device: str | None = None
    output_dir: str | None = None
    progress: Callable[[int, int, str], None] | None = None


@dataclass
class ClipsBenchResult:
    """Clips per second and the time per phase (JSON-ready through :meth:`to_dict`)."""

    preset: str
    device: str
    dtype: str
    buckets: str
    decode: bool
    random_weights: bool
    clips: int
    clips_ok: int
    clip_info: list[dict]
    total_s: float
    model_load_s: float
    preprocess_s: float
    clips_per_s: float
    clips_per_s_with_load: float
    steady_s_per_clip: float
    phases: dict[str, dict]
    phase_labels: dict[str, str]
    per_clip: list[dict]
    peak_memory_bytes: int
    errors: list[str]
    output_dir: str
    generated: dict = field(default_factory=dict)
    environment: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """A JSON-ready dict."""
        return asdict(self)


def list_clips(folder: Path | str) -> list[Path]:
    """The video files directly in ``folder``, by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"--clips {folder}: not a folder")
    clips = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
    if not clips:
        raise ValueError(f"--clips {folder}: no video files ({', '.join(VIDEO_SUFFIXES)}) in it")
    return clips


def _caption(clip: Path) -> str:
    sidecar = clip.with_suffix(".txt")
    text = sidecar.read_text(encoding="utf-8").strip() if sidecar.is_file() else ""
    return text or DEFAULT_CAPTION


def describe_clip(clip: Path) -> dict:
    """Codec, size, rate, duration and bitrate of a clip's video, and its audio, as probed."""
    from core.media.probe import MediaProbeError, probe_media

    info = {"name": clip.name, "codec": "?", "width": 0, "height": 0, "fps": 0.0, "frames": 0, "duration_s": 0.0,
            "bitrate_mbit_s": 0.0, "audio": "none", "size_bytes": clip.stat().st_size}
    try:
        probe = probe_media(clip)
    except MediaProbeError as exc:
        return {**info, "audio": f"unreadable ({exc.message})"}
    video, audio, duration = probe.video, probe.audio, probe.duration or 0.0
    if video is not None:
        info.update(codec=video.codec, width=video.width, height=video.height, fps=video.fps,
                    frames=video.frame_count)
    if audio is not None:
        info["audio"] = f"{audio.codec} {audio.sample_rate} Hz {audio.channels} ch"
    info.update(duration_s=duration, bitrate_mbit_s=probe.size_bytes * 8 / duration / 1e6 if duration else 0.0)
    return info


def random_preprocess_pipeline(preset: str, device: str, dtype: torch.dtype, *, with_vocoder: bool):
    """An ``LTX2Pipeline`` holding what preprocessing uses of the full-size ``preset``, with random
    weights built on ``device``: video VAE, Gemma-3 12B (text and vision towers) and connectors in
    ``dtype``, the audio VAE (and with ``with_vocoder`` the vocoder) in float32, as a load gives
    them; no transformer. The tokenizer is the toy's (every caption is padded to the preset's
    1,024 tokens, so Gemma's work is the same)."""
    from diffusers import AutoencoderKLLTX2Audio, AutoencoderKLLTX2Video, FlowMatchEulerDiscreteScheduler, LTX2Pipeline
    from diffusers.pipelines.ltx2 import LTX2TextConnectors
    from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder, LTX2VocoderWithBWE
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    from core.presets import get_preset
    from worker.engine.bench.preprocess import GEMMA3_12B_TEXT
    from worker.engine.bench.synthetic import GEMMA3_12B_VISION, build_on_device
    from worker.engine.model import single_file_configs as cfg
    from worker.engine.model.toy import _fill_mel_stft_buffers, build_toy_tokenizer

    version = get_preset(preset).version
    if version not in ("2.3", "2.0"):
        raise ValueError(f"--random-weights builds LTX-2.3 and LTX-2 (Gemma-3) only, not {preset}")
    vocoder = None
    if with_vocoder:
        vocoder = build_on_device(LTX2VocoderWithBWE if version == "2.3" else LTX2Vocoder,
                                  dict(cfg.VOCODER[version]), device, torch.float32).eval()
        if version == "2.3":  # the BWE's STFT and mel buffers, as a trained checkpoint carries them
            _fill_mel_stft_buffers(vocoder.mel_stft)
    gemma = {"text_config": GEMMA3_12B_TEXT, "vision_config": GEMMA3_12B_VISION}
    parts = {
        "vae": build_on_device(AutoencoderKLLTX2Video, dict(cfg.VIDEO_VAE[version]), device, dtype),
        "audio_vae": build_on_device(AutoencoderKLLTX2Audio, dict(cfg.AUDIO_VAE), device, torch.float32),
        "connectors": build_on_device(LTX2TextConnectors, dict(cfg.CONNECTORS[version]), device, dtype),
        "text_encoder": build_on_device(lambda **c: Gemma3ForConditionalGeneration(Gemma3Config(**c)), gemma,
                                        device, dtype),
    }
    return LTX2Pipeline(scheduler=FlowMatchEulerDiscreteScheduler.from_config(cfg.SCHEDULER),
                        tokenizer=build_toy_tokenizer(), transformer=None, vocoder=vocoder,
                        **{name: part.eval() for name, part in parts.items()})


def _pipeline(spec: ClipsBenchSpec, device: str, dtype: torch.dtype, data_dir, model_dir):
    """The random-weight build, else the preset loaded as ``avlora preprocess`` loads it."""
    from core.presets import get_preset
    from worker.engine.model.pipelines import flush_denormals, load_pipeline

    if spec.random_weights and not get_preset(spec.preset).is_toy:
        if device == "cpu":
            flush_denormals()
        return random_preprocess_pipeline(spec.preset, device, dtype, with_vocoder=spec.decode)
    return load_pipeline(spec.preset, data_dir=Path(data_dir), model_dir=Path(model_dir) if model_dir else None,
                         device=device, dtype=dtype)


@contextlib.contextmanager
def _work_folder(output_dir: str | None):
    """``output_dir`` (created; refused when it holds a cache already), or a temporary folder."""
    from worker.engine.data.preprocess import PRECOMPUTED

    if output_dir is None:
        folder = Path(tempfile.mkdtemp(prefix="avlora-bench-preprocess-"))
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    folder = Path(output_dir)
    cache = folder / PRECOMPUTED
    if cache.is_dir() and any(cache.iterdir()):
        raise ValueError(f"--out {folder} already holds {PRECOMPUTED}: preprocessing would reuse it, "
                         f"so give an empty folder")
    folder.mkdir(parents=True, exist_ok=True)
    yield folder


def _clips(spec: ClipsBenchSpec, work: Path) -> tuple[list[Path], dict]:
    """The clips to preprocess, generated first when asked; and what was generated (with its seconds)."""
    from worker.engine.bench.clip_maker import generate_clips

    if not spec.generate:
        if spec.clips is None:
            raise ValueError("give --clips DIR, --generate N, or both (the clips are written into DIR)")
        return list_clips(spec.clips), {}
    folder = Path(spec.clips) if spec.clips is not None else work / "clips"
    started = time.perf_counter()
    width, height = spec.generate_size
    generate_clips(folder, spec.generate, width=width, height=height, fps=spec.generate_fps,
                   seconds=spec.generate_seconds)
    generated = {"clips": spec.generate, "size": f"{width}x{height}", "fps": spec.generate_fps,
                 "seconds": spec.generate_seconds, "folder": str(folder) if spec.clips else "",
                 "generate_s": time.perf_counter() - started}
    return list_clips(folder), generated


def _write_metadata(work: Path, clips: list[Path]) -> Path:
    from core.recipe.metadata import MetadataEntry, write_metadata

    entries = [MetadataEntry(caption=_caption(clip), video=str(clip.resolve())) for clip in clips]
    return write_metadata(work / "bench_dataset.jsonl", entries)


def _timed_preprocess(spec: ClipsBenchSpec, metadata: Path, work: Path, device: str, dtype, data_dir, model_dir,
                      count: int):
    """Load or build the model, then preprocess as ``avlora preprocess`` does, every phase marked;
    returns (preprocessing's result, the marks, calls per phase)."""
    from core.presets import get_preset
    from worker.engine.data.preprocess import preprocess_dataset

    callbacks = PhaseCallbacks(sync=lambda: sync(device))
    callbacks.on_phase("model_load")
    pipe = _pipeline(spec, device, dtype, data_dir, model_dir)
    random_weights = spec.random_weights and not get_preset(spec.preset).is_toy
    identity = f"{spec.preset}:random-weights" if random_weights else None  # no files to fingerprint
    with phases_marked(callbacks, count, identity=identity) as calls:
        callbacks.on_phase("other")
        result = preprocess_dataset(metadata, out_dir=work, preset=spec.preset, buckets=spec.buckets, trigger=None,
                                    data_dir=data_dir, model_dir=model_dir, decode=spec.decode, device=device,
                                    dtype=dtype, pipeline=pipe, progress=spec.progress)
        callbacks.on_phase(None)
    del pipe
    return result, callbacks, calls


def bench_preprocess_clips(spec: ClipsBenchSpec, *, data_dir=None, model_dir=None) -> ClipsBenchResult:
    """Preprocess the clips and time it as ``spec`` says (see the module docstring)."""
    from core.presets import get_preset
    from worker.engine.bench.suite import environment
    from worker.engine.model.loading import default_device, default_dtype

    info = get_preset(spec.preset)
    if info.is_toy and data_dir is None:
        raise ValueError("data_dir is needed to load the toy")
    if not info.is_toy and not spec.random_weights and not model_dir:
        raise ValueError(f"--preset {spec.preset} needs --random-weights or MODEL_DIR with its weights")
    device = spec.device or default_device()
    dtype = default_dtype(device)
    with _work_folder(spec.output_dir) as work:
        clips, generated = _clips(spec, work)
        clip_info = [describe_clip(clip) for clip in clips]
        metadata = _write_metadata(work, clips)
        reset_peak(device)
        result, callbacks, calls = _timed_preprocess(spec, metadata, work, device, dtype, data_dir, model_dir,
                                                     len(clips))
        summary = summarise_clips(callbacks.intervals, calls, [clip.name for clip in clips])
        ok = len(result.clips) - len(result.errors)
        preprocess_s, total_s = summary["preprocess_s"], summary["total_s"]
        return ClipsBenchResult(
            preset=spec.preset, device=torch.cuda.get_device_name() if device.startswith("cuda") else "cpu",
            dtype=str(dtype).removeprefix("torch."), buckets=result.buckets, decode=spec.decode,
            random_weights=spec.random_weights and not info.is_toy, clips=len(clips), clips_ok=ok,
            clip_info=clip_info, total_s=total_s, model_load_s=summary["phases"]["model_load"]["seconds"],
            preprocess_s=preprocess_s, clips_per_s=ok / preprocess_s if preprocess_s else 0.0,
            clips_per_s_with_load=ok / total_s if total_s else 0.0, steady_s_per_clip=summary["steady_s_per_clip"],
            phases=summary["phases"], phase_labels=dict(PHASES), per_clip=summary["per_clip"],
            peak_memory_bytes=peak_memory_bytes(device), errors=[c.reason for c in result.errors] + result.missing,
            output_dir=str(work) if spec.output_dir is not None else "", generated=generated,
            environment=environment(),
        )
