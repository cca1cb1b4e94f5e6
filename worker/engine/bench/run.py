"""Benchmark a whole training run: the time to a verdict, phase by phase.

``bench_run(RunBenchSpec(preset="ltx-2.3", size=(512, 512, 49), steps=20, checkpoints=2))`` runs
the real ``avlora train`` path (:func:`worker.engine.train.train_run`, the code the studio's
training job runs) on the run preset (``sanity`` by default) shortened to ``steps`` steps and
``checkpoints`` checkpoints, with its validation prompts, variants and inference steps, at
``size``, on a synthetic preprocessed dataset (random latents and text embeddings in the layout
preprocessing writes), and reports the wall time of each phase (:mod:`worker.engine.bench.phases`)
and the total: model build or load, text encoding, setup, compile and CUDA-graph capture,
training steps, checkpoint writes, and validation sampling per sample and per round (denoising,
VAE decode, audio decode, mp4/wav writing).

``random_weights`` (full-size presets): every component is built with random weights directly on
the GPU (:func:`worker.engine.bench.synthetic.build_random_pipeline`) and handed to the trainer;
otherwise (the toy, or real weights in MODEL_DIR) the trainer loads the model itself, as a run does.
The total runs from the model's build or load to the last sample written; writing the synthetic
dataset is reported apart (``prepare_s``).
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from worker.engine.bench.phases import PHASES, PhaseCallbacks, decoders_marked, summarise
from worker.engine.bench.synthetic import build_random_pipeline, write_synthetic_precomputed
from worker.engine.step.measure import peak_memory_bytes, reset_peak, sync

BENCH_TRIGGER = "bench_voice"


@dataclass(frozen=True)
class RunBenchSpec:
    """One whole-run benchmark: what ``avlora bench run``'s flags set.

    ``inference_steps`` None keeps the run preset's (30); ``prompts``: keep the first this many of
    its validation prompts (None: all); ``clips``: how many synthetic clips the dataset holds;
    ``output_dir`` None: a temporary folder, removed afterwards.
    """

    preset: str = "ltx-2.3"
    random_weights: bool = True
    size: tuple[int, int, int] = (512, 512, 49)
    steps: int = 20
    checkpoints: int = 2
    run_preset: str = "sanity"
    inference_steps: int | None = None
    prompts: int | None = None
    clips: int = 4
    device: str | None = None
    output_dir: str | None = None
    echo: Callable[[str], None] | None = None  # told a line as each phase ends
    samples: bool = True  # False: no validation samples (the training steps alone: the scaling bench)


@dataclass
class RunBenchResult:
    """Wall time of one run, per phase (JSON-ready through :meth:`to_dict`)."""

    preset: str
    run_preset: str
    device: str
    dtype: str
    size: str
    steps: int
    checkpoint_steps: list[int]
    inference_steps: int
    prompts: int
    variants: list[str]
    status: str
    total_s: float
    phases: dict[str, float]
    phase_labels: dict[str, str]
    steps_detail: dict
    rounds: list[dict]
    checkpoints: list[dict]
    prepare_s: float
    peak_memory_bytes: int
    peak_reserved_bytes: int
    output_dir: str
    files: dict[str, list[str]] = field(default_factory=dict)
    intervals: list[list] = field(default_factory=list)  # every phase mark's [name, seconds, step, sample]
    logs: list[str] = field(default_factory=list)
    environment: dict = field(default_factory=dict)
    processes: int = 1  # ranks training the run together (worker.engine.distributed); this is rank 0's view
    tokens_per_step: int = 0  # video + audio tokens of one step's global batch

    def to_dict(self) -> dict:
        """A JSON-ready dict."""
        return asdict(self)


@contextlib.contextmanager
def _run_folder(output_dir: str | None):
    """``output_dir`` (created), or a temporary folder removed afterwards."""
    if output_dir is not None:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        yield Path(output_dir)
        return
    folder = Path(tempfile.mkdtemp(prefix="avlora-bench-run-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def transformer_config(preset: str, *, random_weights: bool, data_dir, model_dir) -> dict:
    """The transformer config the run will have: the toy's or the model folder's ``config.json``,
    else the full-size preset's (random weights, or a single-file checkpoint)."""
    from core.presets import get_preset
    from core.recipe.architecture import resolve_config

    if get_preset(preset).is_toy or not random_weights:
        from worker.engine.model.pipelines import resolve_model_path

        path = resolve_model_path(preset, data_dir=Path(data_dir), model_dir=model_dir)
        config_file = path / "transformer" / "config.json"
        if config_file.is_file():
            return resolve_config(json.loads(config_file.read_text()))
    return resolve_config(preset)


def bench_run_config(spec: RunBenchSpec, output_dir: Path, precomputed: Path):
    """The run preset's config, shortened to ``spec.steps`` steps and ``spec.checkpoints`` checkpoints,
    sampled at ``spec.size``, on the synthetic dataset."""
    from core.recipe.run_config import preset_config

    if not 1 <= spec.checkpoints <= spec.steps:
        raise ValueError(f"checkpoints must be between 1 and the steps ({spec.steps}), got {spec.checkpoints}")
    size = "x".join(str(v) for v in spec.size)
    validation: dict = {"video_dims": spec.size}
    if not spec.samples:
        validation.update(at_checkpoints=False, interval=None)
    if spec.inference_steps is not None:
        validation["inference_steps"] = spec.inference_steps
    if spec.prompts is not None:
        validation["prompts"] = preset_config(spec.run_preset).validation.prompts[: max(spec.prompts, 1)]
    return preset_config(
        spec.run_preset, model=spec.preset, output_dir=str(output_dir),
        optimization={"steps": spec.steps}, checkpoints={"interval": math.ceil(spec.steps / spec.checkpoints)},
        data={"preprocessed_dir": str(precomputed), "buckets": size, "trigger": BENCH_TRIGGER},
        validation=validation,
    )


def _written_files(run_dir: Path) -> dict[str, list[str]]:
    return {kind: sorted(p.name for p in (run_dir / kind).glob("*") if p.is_file())
            for kind in ("checkpoints", "samples")}


def _timed_run(spec: RunBenchSpec, config, device: str, dtype: torch.dtype, data_dir, model_dir):
    """Train as ``avlora train`` does, every phase marked; returns (result, callbacks, total seconds)."""
    from core.presets import get_preset
    from worker.engine.train import train_run

    callbacks = PhaseCallbacks(sync=lambda: sync(device), echo=spec.echo)
    started = time.perf_counter()
    # the first mark before anything else: the device's start-up and the model libraries' import
    # belong to the model's load (about 15 s on an H200, outside every phase before this order)
    callbacks.on_phase("model_load")
    reset_peak(device)
    with decoders_marked(callbacks):
        pipeline = None
        if spec.random_weights and not get_preset(spec.preset).is_toy:
            pipeline = build_random_pipeline(spec.preset, device, dtype)
        result = train_run(config, data_dir=data_dir, model_dir=model_dir, device=device, callbacks=callbacks,
                           pipeline=pipeline)
        del pipeline
        callbacks.on_phase(None)
    return result, callbacks, time.perf_counter() - started


def bench_run(spec: RunBenchSpec, *, data_dir=None, model_dir=None) -> RunBenchResult:
    """Run and time a shortened training run as ``spec`` says (see the module docstring).

    ``data_dir``: where the toy lives; ``model_dir``: real weights, for a full-size preset without
    ``random_weights``.
    """
    from core.presets import get_preset
    from worker.engine.bench.suite import environment
    from worker.engine.distributed.group import rank_device, rank_from_env
    from worker.engine.model.loading import default_device, default_dtype

    info = get_preset(spec.preset)
    if info.is_toy and data_dir is None:
        raise ValueError("data_dir is needed to load the toy")
    device = spec.device or default_device()
    rank = rank_from_env()  # one of several processes: its own GPU, its own copy of the (seeded) data
    if rank is not None:
        device = rank_device(rank, device)
    dtype = default_dtype(device)
    with _run_folder(spec.output_dir) as folder:
        prepared = time.perf_counter()
        model = transformer_config(spec.preset, random_weights=spec.random_weights, data_dir=data_dir,
                                   model_dir=model_dir)
        data_name = "data" if rank is None else f"data-rank-{rank.rank}"
        precomputed = write_synthetic_precomputed(folder / data_name, model, spec.size, spec.clips,
                                                  info.max_sequence_length)
        config = bench_run_config(spec, folder / "run", precomputed)
        prepare_s = time.perf_counter() - prepared
        result, callbacks, total = _timed_run(spec, config, device, dtype, data_dir, model_dir)
        summary = summarise(callbacks.intervals, callbacks.samples)
        cuda = device.startswith("cuda")
        return RunBenchResult(
            preset=spec.preset, run_preset=spec.run_preset,
            device=torch.cuda.get_device_name() if cuda else "cpu", dtype=str(dtype).removeprefix("torch."),
            size="x".join(str(v) for v in spec.size), steps=spec.steps, checkpoint_steps=config.checkpoint_steps(),
            inference_steps=config.validation.inference_steps, prompts=len(config.validation.prompts),
            variants=list(config.validation.variants), status=result.status, total_s=total,
            phases=summary["phases"], phase_labels=dict(PHASES), steps_detail=summary["steps"],
            rounds=summary["rounds"], checkpoints=summary["checkpoints"], prepare_s=prepare_s,
            peak_memory_bytes=peak_memory_bytes(device),
            peak_reserved_bytes=int(torch.cuda.max_memory_reserved()) if cuda else peak_memory_bytes(device),
            output_dir=str(folder / "run") if spec.output_dir is not None else "",
            files=_written_files(folder / "run"), logs=callbacks.logs, environment=environment(),
            intervals=[[i.name, i.seconds, i.step, i.sample] for i in callbacks.intervals],
            processes=rank.world if rank else 1,
            tokens_per_step=(rank.world if rank else 1) * config.optimization.batch_size * _clip_tokens(precomputed),
        )


def _clip_tokens(precomputed: Path) -> int:
    """Video + audio tokens of one synthetic clip (every clip has the same shape)."""
    first = sorted((precomputed / "latents").glob("*.pt"))[0]
    video = torch.load(first)["latents"]
    audio = torch.load(precomputed / "audio_latents" / first.name)["latents"]
    return int(video[0].numel() + audio.shape[1])
