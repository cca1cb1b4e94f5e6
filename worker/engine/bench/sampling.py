"""Benchmark one checkpoint's validation: the eager diffusers pipeline against the engine's path.

:func:`bench_sampling` builds one pipeline, attaches the ``sanity`` preset's LoRA as the trainer
does (random non-zero up-weights, so the LoRA changes the output) and generates ``prompts`` prompts
x ``lora`` and ``lora-audio-off`` two ways in one process, with the same seed, sizes and guidance
(the pipeline's default CFG scales, ``modality_scale``, spatio-temporal guidance off as the engine
samples):

- ``eager``: the plain ``LTX2Pipeline.__call__`` (text encoded at every call), PEFT's own switches
  (``set_adapters``; for ``lora-audio-off`` the audio-side layers' ``set_scale`` to 0, what the
  engine's variant does), no compile, each sample's mp4 and wav written before the next starts;
- ``fast``: :func:`worker.engine.validate.run_validation` as a training run calls it: the prompts
  encoded once (timed apart), the trainer's levers (compiled blocks on CUDA), ``fast_rounds``
  rounds, the last (warm) one compared, as a run's checkpoints after its first validation.

The samples of both are compared through their files. The FLOP floor: the transformer FLOPs of a
denoising step (``FlopCounterMode`` over every transformer call of a real eager step: the CFG
batch of 2, the modality pass when its scale is above 1) x steps x samples, over a rate (the
training step's measured rate when given; on CUDA the best bf16 matmul rate measured here).
"""

from __future__ import annotations

import contextlib
import inspect
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from core.names import VARIANT_AUDIO_OFF, VARIANT_LORA
from worker.engine.bench.run import _run_folder  # the same keep-or-remove folder as bench run
from worker.engine.progress import TrainCallbacks
from worker.engine.step.measure import peak_memory_bytes, reset_peak, sync

BENCH_TRIGGER = "bench_voice"
VARIANTS = (VARIANT_LORA, VARIANT_AUDIO_OFF)
LORA_B_STD = 0.1  # the random LoRA up-weights: large enough to change the sample, small enough to stay finite
MATMUL_SIZES = (4096, 8192, 16384)


@dataclass(frozen=True)
class SamplingBenchSpec:
    """``avlora bench sampling``'s flags. ``rate_tflops`` None: measured on CUDA; ``output_dir`` None: a temporary folder."""

    preset: str = "ltx-2.3"
    random_weights: bool = False
    size: tuple[int, int, int] = (512, 512, 49)
    prompts: int = 2
    inference_steps: int = 30
    modality_scale: float = 3.0
    fast_rounds: int = 2
    rate_tflops: float | None = None
    device: str | None = None
    output_dir: str | None = None


@dataclass
class WayTimes:
    """One way's seconds: ``per_sample_s`` in generation order (each with its files written)."""

    total_s: float
    per_sample_s: list[float]
    first_s: float
    steady_s: float  # median of the samples after the first (the first alone when there is one)


@dataclass
class SamplingBenchResult:
    """One checkpoint's validation timed both ways (JSON-ready through :meth:`to_dict`)."""

    preset: str
    device: str  # the GPU's name, or cpu
    dtype: str
    size: str  # WxHxF
    prompts: int
    variants: list[str]
    inference_steps: int
    modality_scale: float
    samples: int
    eager: WayTimes
    fast: WayTimes  # the last (warm) round
    fast_first_round_s: float
    fast_rounds: int
    fast_compiled: bool
    prompt_encoding_s: float  # the fast path's one encoding of the prompts (once per run, not per checkpoint)
    ratio: float  # eager total / fast total (warm round)
    ratio_first_round: float  # eager total / the fast path's first round (compile included)
    flops: dict
    rate_flops_per_s: float | None
    rate_source: str
    floor_s: float | None
    fast_over_floor: float | None
    agreement: list[dict]
    lora_audio_effect: list[float]  # per prompt: max |audio(lora) - audio(lora-audio-off)| of the eager samples
    peak_memory_bytes: int
    build_s: float
    environment: dict = field(default_factory=dict)

    def to_dict(self) -> dict:  # JSON-ready
        return asdict(self)


def way_times(per_sample: list[float], total: float) -> WayTimes:
    """:class:`WayTimes` of samples that took ``per_sample`` seconds, ``total`` in all."""
    rest = per_sample[1:] or per_sample[:1]
    return WayTimes(total_s=total, per_sample_s=list(per_sample), first_s=per_sample[0],
                    steady_s=statistics.median(rest))


def bench_config(spec: SamplingBenchSpec):
    """The ``sanity`` run config of ``spec.preset`` whose validation is the benchmarked one: its first
    ``spec.prompts`` prompts (cycled when it has fewer), the two LoRA variants, the size, steps and
    modality scale of ``spec``, and the pipeline's default video and audio CFG scales."""
    from diffusers import LTX2Pipeline

    from core.recipe.run_config import preset_config

    prompts = list(preset_config("sanity").validation.prompts)
    defaults = inspect.signature(LTX2Pipeline.__call__).parameters
    return preset_config("sanity", model=spec.preset, data={"trigger": BENCH_TRIGGER}, validation={
        "video_dims": spec.size, "inference_steps": spec.inference_steps, "variants": list(VARIANTS),
        "modality_guidance_scale": spec.modality_scale,
        "prompts": [prompts[i % len(prompts)] + ("" if i < len(prompts) else f" (take {i // len(prompts) + 1})")
                    for i in range(spec.prompts)],
        "video_guidance_scale": defaults["guidance_scale"].default,
        "audio_guidance_scale": defaults["audio_guidance_scale"].default,
    })


def attach_lora(transformer, config, seed: int = 1) -> list[str]:
    """The LoRA of ``config`` added as the trainer adds it, its up-weights random (not the zeros a
    fresh LoRA starts from), so each variant gives a different sample; returns the adapted layers."""
    from worker.engine.lora.adapters import add_lora, lora_layers
    from worker.engine.step.modes import lora_targets
    from worker.engine.train import LORA_INIT_SEED_OFFSET

    targets, _ = lora_targets(transformer, config)
    names = add_lora(transformer, rank=config.lora.rank, alpha=config.lora.alpha, target_modules=targets,
                     dropout=config.lora.dropout, init_seed=config.seed + LORA_INIT_SEED_OFFSET)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, module in lora_layers(transformer):
            weight = module.lora_B["default"].weight
            weight.copy_(torch.randn(weight.shape, generator=generator) * LORA_B_STD)
    return names


@contextlib.contextmanager
def peft_variant(transformer, variant: str, adapter_name: str = "default"):
    """``variant`` with PEFT's own switches: the adapter active; for ``lora-audio-off`` the audio-side
    LoRA layers' scale set to 0 (``LoraLayer.set_scale``) and back to 1 on leaving."""
    from worker.engine.lora.adapters import lora_layers
    from worker.engine.lora.names import module_family, side_of_family

    transformer.set_adapters(adapter_name)
    audio = [m for name, m in lora_layers(transformer) if side_of_family(module_family(name)) == "audio"]
    if variant == VARIANT_AUDIO_OFF:
        for module in audio:
            module.set_scale(adapter_name, 0.0)
    try:
        yield
    finally:
        for module in audio:
            module.set_scale(adapter_name, 1.0)


def eager_call(pipe, plan, prompt: str, steps: int | None = None):
    """One plain ``LTX2Pipeline.__call__`` of ``prompt`` (text encoded by the pipeline) at the plan's
    seed, size and guidance, spatio-temporal guidance off as the engine samples."""
    return pipe(prompt=prompt, negative_prompt=plan.negative_prompt, height=plan.height, width=plan.width,
                num_frames=plan.num_frames, frame_rate=plan.frame_rate,
                num_inference_steps=steps or plan.inference_steps, guidance_scale=plan.video_guidance_scale,
                audio_guidance_scale=plan.audio_guidance_scale, modality_scale=plan.modality_scale,
                audio_modality_scale=plan.modality_scale, stg_scale=0.0, audio_stg_scale=0.0,
                generator=torch.Generator(device="cpu").manual_seed(plan.seed), output_type="np")


def run_eager(pipe, plan, folder: Path, step: int, device: str) -> WayTimes:
    """Every (prompt, variant) of ``plan`` the eager way, each sample's files written into ``folder``."""
    from worker.engine.sampling import GeneratedSample, audio_sample_rate
    from worker.engine.validate import sample_stem, write_sample

    folder.mkdir(parents=True, exist_ok=True)
    pipe.transformer.eval()
    per_sample, started = [], time.perf_counter()
    for index, prompt in enumerate(plan.prompts):
        for variant in plan.prompt_variants:
            began = time.perf_counter()
            with torch.no_grad(), peft_variant(pipe.transformer, variant):
                output = eager_call(pipe, plan, prompt)
            frames = (np.clip(np.asarray(output.frames[0]), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
            sample = GeneratedSample(frames=frames, audio=output.audio[0].detach().float().cpu().numpy(),
                                     sample_rate=audio_sample_rate(pipe), fps=plan.frame_rate)
            stem = sample_stem(step, index, variant)
            write_sample(sample, folder / f"{stem}.wav", folder / f"{stem}.mp4")
            sync(device)
            per_sample.append(time.perf_counter() - began)
    return way_times(per_sample, time.perf_counter() - started)


@dataclass
class _SampleClock(TrainCallbacks):
    """Marks each sample's start (``on_phase("sampling")``) in a :func:`run_validation` call."""

    marks: list[float] = field(default_factory=list)

    def on_phase(self, name) -> None:
        if name == "sampling":
            self.marks.append(time.perf_counter())


def run_fast(pipe, plan, prompt_cache, folder: Path, step: int) -> WayTimes:
    """One checkpoint's validation as the trainer runs it, into ``folder``."""
    from worker.engine.validate import run_validation

    clock, started = _SampleClock(), time.perf_counter()
    run_validation(pipe, plan, folder, step, callbacks=clock, prompt_cache=prompt_cache)
    ended = time.perf_counter()  # run_validation returns once every file is written
    per_sample = [b - a for a, b in zip(clock.marks, [*clock.marks[1:], ended], strict=True)]
    return way_times(per_sample, ended - started)


def set_up_like_the_trainer(pipe, config, device: str) -> bool:
    """The step's levers on the transformer, chosen and set up as :class:`worker.engine.train` does
    (compiled blocks on CUDA); returns whether the blocks are compiled."""
    from worker.engine.step.setup import choose_levers, planned_optimization, set_up_levers

    opt = planned_optimization(config, device)
    levers = choose_levers(
        device, quantization=config.quantization, gradient_checkpointing=opt.gradient_checkpointing,
        checkpointing_policy=opt.checkpointing_policy, checkpointing_ratio=opt.checkpointing_ratio,
        checkpointing_rest_policy=opt.checkpointing_rest_policy, compile_blocks=None if opt.compile else False,
        cuda_graph=opt.cuda_graph and device.startswith("cuda"),
    )
    set_up_levers(pipe.transformer, levers, gradient_checkpointing=opt.gradient_checkpointing)
    return levers.compile_blocks


def count_denoising_step_flops(pipe, plan) -> dict:
    """FLOPs of the transformer's calls in one denoising step (an eager pipeline call of 2 steps, the
    ``lora`` variant): ``per_step``, ``calls_per_step``, ``passes_per_step`` (the calls' batch sizes
    summed: CFG's batch of 2, the modality pass 1) and ``per_pass``."""
    from torch.utils.flop_counter import FlopCounterMode

    calls: list[tuple[int, float]] = []
    active: list = []

    def before(_module, args, kwargs):
        hidden = kwargs.get("hidden_states", args[0] if args else None)
        counter = FlopCounterMode(display=False)
        counter.__enter__()
        active.append((counter, int(hidden.shape[0])))

    def after(*_):
        counter, batch = active.pop()
        counter.__exit__(None, None, None)
        calls.append((batch, float(counter.get_total_flops())))

    transformer = pipe.transformer
    hooks = [transformer.register_forward_pre_hook(before, with_kwargs=True),
             transformer.register_forward_hook(after, with_kwargs=True)]
    try:
        with torch.no_grad(), peft_variant(transformer, VARIANT_LORA):
            eager_call(pipe, plan, plan.prompts[0], steps=2)  # 2: one step's schedule divides by zero
    finally:
        for hook in hooks:
            hook.remove()
    per_step, passes = sum(f for _, f in calls) / 2, sum(b for b, _ in calls) // 2
    return {"per_step": per_step, "calls_per_step": len(calls) // 2, "passes_per_step": passes,
            "per_pass": per_step / passes if passes else 0.0}


def compare_samples(eager_dir: Path, fast_dir: Path, plan, step: int) -> list[dict]:
    """Per (prompt, variant): how far the fast sample is from the eager one: the wav files' largest
    absolute difference (and the eager audio's peak, for scale), the mp4 frames' mean absolute
    difference in 0-255 levels."""
    from worker.engine.validate import sample_stem

    rows = []
    for index in range(len(plan.prompts)):
        for variant in plan.prompt_variants:
            stem = sample_stem(step, index, variant)
            eager, fast = _wav(eager_dir / f"{stem}.wav"), _wav(fast_dir / f"{stem}.wav")
            frames_e, frames_f = _frames(eager_dir / f"{stem}.mp4"), _frames(fast_dir / f"{stem}.mp4")
            same = eager.shape == fast.shape and frames_e.shape == frames_f.shape
            rows.append({
                "prompt": index, "variant": variant, "same_shape": same,
                "audio_max_abs_diff": float(np.abs(eager - fast).max()) if same else float("inf"),
                "audio_peak": float(np.abs(eager).max()),
                "frames_mean_abs_diff": float(np.abs(frames_e - frames_f).mean()) if same else float("inf"),
            })
    return rows


def _wav(path: Path) -> np.ndarray:
    import soundfile

    return soundfile.read(str(path), dtype="float32", always_2d=True)[0]


def _frames(path: Path) -> np.ndarray:
    import av

    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)]).astype(np.float32)


def _lora_audio_effect(eager_dir: Path, plan, step: int) -> list[float]:
    from worker.engine.validate import sample_stem

    return [float(np.abs(_wav(eager_dir / f"{sample_stem(step, i, VARIANT_LORA)}.wav")
                         - _wav(eager_dir / f"{sample_stem(step, i, VARIANT_AUDIO_OFF)}.wav")).max())
            for i in range(len(plan.prompts))]


def _pipeline(spec: SamplingBenchSpec, device: str, dtype: torch.dtype, data_dir, model_dir):
    from core.presets import get_preset
    from worker.engine.bench.synthetic import build_random_pipeline
    from worker.engine.model.pipelines import load_pipeline

    if spec.random_weights and not get_preset(spec.preset).is_toy:
        pipe = build_random_pipeline(spec.preset, device, dtype)
    else:
        pipe = load_pipeline(spec.preset, data_dir=Path(data_dir), model_dir=model_dir, device=device, dtype=dtype)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _floor(spec: SamplingBenchSpec, device: str, dtype) -> tuple[float | None, str]:
    if spec.rate_tflops is not None:
        return spec.rate_tflops * 1e12, "given (--rate-tflops: the training step's measured model FLOP rate)"
    if device.startswith("cuda"):
        from worker.engine.bench.flops import measure_matmul_rate

        # the best of several sizes, each warmed up (issue 14: one size read about 15% low on an H200)
        return max(measure_matmul_rate(device, dtype, n=n) for n in MATMUL_SIZES), f"best {dtype} matmul, n in {MATMUL_SIZES}"
    return None, "none on the CPU"


def bench_sampling(spec: SamplingBenchSpec, *, data_dir=None, model_dir=None) -> SamplingBenchResult:
    """Time one checkpoint's validation both ways (see the module docstring)."""
    from core.presets import get_preset
    from worker.engine.bench.suite import environment
    from worker.engine.model.loading import default_device, default_dtype
    from worker.engine.validate import encode_plan_prompts, plan_from_config

    if spec.prompts < 1 or spec.inference_steps < 1 or spec.fast_rounds < 1:
        raise ValueError("prompts, inference steps and fast rounds must each be at least 1")
    if get_preset(spec.preset).is_toy and data_dir is None:
        raise ValueError("data_dir is needed to load the toy")
    device = spec.device or default_device()
    dtype = default_dtype(device)
    config = bench_config(spec)
    plan, step = plan_from_config(config), config.checkpoints.interval
    with _run_folder(spec.output_dir) as folder:
        began = time.perf_counter()
        reset_peak(device)
        pipe = _pipeline(spec, device, dtype, data_dir, model_dir)
        attach_lora(pipe.transformer, config)
        sync(device)
        build_s = time.perf_counter() - began
        flops = count_denoising_step_flops(pipe, plan)
        eager = run_eager(pipe, plan, folder / "eager", step, device)
        began = time.perf_counter()
        prompt_cache = encode_plan_prompts(pipe, plan, device=device, dtype=dtype,
                                           model=(spec.preset, data_dir, model_dir))
        prompt_encoding_s = time.perf_counter() - began
        compiled = set_up_like_the_trainer(pipe, config, device)
        rounds = [run_fast(pipe, plan, prompt_cache, folder / f"fast-{r + 1}", step) for r in range(spec.fast_rounds)]
        fast = rounds[-1]
        samples = len(plan.prompts) * len(plan.prompt_variants)
        flops["total"] = flops["per_step"] * plan.inference_steps * samples
        rate, source = _floor(spec, device, dtype)
        floor_s = flops["total"] / rate if rate else None
        return SamplingBenchResult(
            preset=spec.preset, device=torch.cuda.get_device_name() if device.startswith("cuda") else "cpu",
            dtype=str(dtype).removeprefix("torch."), size="x".join(str(v) for v in spec.size),
            prompts=len(plan.prompts), variants=list(plan.prompt_variants), inference_steps=plan.inference_steps,
            modality_scale=plan.modality_scale, samples=samples, eager=eager, fast=fast,
            fast_first_round_s=rounds[0].total_s, fast_rounds=len(rounds), fast_compiled=bool(compiled),
            prompt_encoding_s=prompt_encoding_s, ratio=eager.total_s / fast.total_s,
            ratio_first_round=eager.total_s / rounds[0].total_s, flops=flops, rate_flops_per_s=rate,
            rate_source=source, floor_s=floor_s, fast_over_floor=fast.total_s / floor_s if floor_s else None,
            agreement=compare_samples(folder / "eager", folder / "fast-1", plan, step),
            lora_audio_effect=_lora_audio_effect(folder / "eager", plan, step),
            peak_memory_bytes=peak_memory_bytes(device), build_s=build_s, environment=environment(),
        )


def sampling_table(result: dict) -> str:
    """``avlora bench sampling``'s result as a small table."""
    lines = [
        f"{result['preset']} {result['size']} on {result['device']} ({result['dtype']}): one checkpoint's "
        f"validation, {result['prompts']} prompts x {', '.join(result['variants'])} = {result['samples']} samples "
        f"of {result['inference_steps']} steps, modality scale {result['modality_scale']:g}",
        f"{'way':<52} {'total s':>9} {'first s':>9} {'steady s':>9}",
    ]
    fast_label = f"fast: engine validation, round {result['fast_rounds']}{' compiled' if result['fast_compiled'] else ''}"
    for label, way in (("eager: LTX2Pipeline.__call__, PEFT switches", result["eager"]), (fast_label, result["fast"])):
        lines.append(f"{label:<52} {way['total_s']:9.2f} {way['first_s']:9.2f} {way['steady_s']:9.2f}")
    lines.append(f"eager / fast: {result['ratio']:.2f}x (against the fast first round, "
                 f"{result['fast_first_round_s']:.2f} s: {result['ratio_first_round']:.2f}x); "
                 f"prompt encoding once: {result['prompt_encoding_s']:.2f} s")
    flops = result["flops"]
    line = (f"FLOPs: {flops['per_pass']:.4g} per pass x {flops['passes_per_step']} passes a step "
            f"({flops['calls_per_step']} calls) = {flops['per_step']:.4g} a step; {flops['total']:.4g} in all")
    if result["floor_s"] is not None:
        line += (f"; floor {result['floor_s']:.2f} s at {result['rate_flops_per_s'] / 1e12:.1f} TFLOP/s "
                 f"({result['rate_source']}); fast / floor {result['fast_over_floor']:.2f}x")
    lines.append(line)
    worst = max(result["agreement"], key=lambda r: r["audio_max_abs_diff"])
    lines.append(f"eager vs fast samples: audio max |diff| {worst['audio_max_abs_diff']:.3g} (peak "
                 f"{worst['audio_peak']:.3g}), frames mean |diff| "
                 f"{max(r['frames_mean_abs_diff'] for r in result['agreement']):.3g} levels")
    return "\n".join(lines)


def run_sampling_command(args) -> int:
    """Handle ``avlora bench sampling``; returns the exit status (2 for bad arguments or missing files)."""
    import json
    import sys

    from core.config import Settings
    from core.model_files import ModelFilesMissing
    from core.presets import UnknownPreset, get_preset
    from worker.engine.bench.train import parse_size

    settings = Settings()
    model_dir = args.model_dir or settings.model_dir
    try:
        if not get_preset(args.preset).is_toy and not args.random_weights and not model_dir:
            raise ValueError(f"--preset {args.preset} needs --random-weights or MODEL_DIR with its weights")
        spec = SamplingBenchSpec(
            preset=args.preset, random_weights=args.random_weights, size=parse_size(args.size), prompts=args.prompts,
            inference_steps=args.inference_steps, modality_scale=args.modality_scale, fast_rounds=args.fast_rounds,
            rate_tflops=args.rate_tflops, device=args.device, output_dir=args.out,
        )
        result = bench_sampling(spec, data_dir=args.data_dir or settings.data_dir, model_dir=model_dir)
    except (ValueError, UnknownPreset, ModelFilesMissing) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result.to_dict(), indent=2) if args.json else sampling_table(result.to_dict()))
    return 0
