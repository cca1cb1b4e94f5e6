"""Benchmark LoRA training steps of the LTX-2 transformer.

``bench_train(BenchSpec(preset, size=(512, 512, 49), ...))`` builds the transformer (full size
with random weights created directly on the device in bf16, never a float32 copy on the CPU; or
the toy), adds the LoRA, and times training steps on synthetic latents of the given size: the
median seconds per step over ``steps`` after ``warmup``, tokens per second, peak memory, and the
model FLOP utilisation. FLOPs are counted on one real step (:mod:`worker.engine.bench.flops`); the
reference rate is a dense matmul in the same dtype measured in the same run.

The step's levers are decided and set up by :mod:`worker.engine.step.setup`, as the trainer does
(``compile_blocks`` None compiles the blocks on CUDA, and the warm-up steps absorb the compile);
``baseline=True`` times the straightforward diffusers + peft step instead.
``quantization="int8"`` and ``optimizer_name="adamw8bit"`` time the low-VRAM configuration. Each
result also says what holds the peak memory (weights, LoRA gradients, optimizer state,
activations), which SDPA kernels run, and (``profile=True``) where one step's time goes.
``mode`` times a training mode's real step (:mod:`worker.engine.bench.mode_step`: its LoRA layers,
its inputs, the reference in front for ``reference_voice``); the FLOPs and tokens per second
count what that step computes. ``docs/benchmarks.md`` has the H100 figures.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import torch

from core.names import CheckpointPolicy
from core.recipe.modes import MODE_AUDIO_VIDEO
from worker.engine.bench.flops import FlopShape, measure_matmul_rate, step_flops
from worker.engine.bench.mode_step import ModeStep, mode_lora_targets, reference_frames
from worker.engine.bench.profile import cuda_allocated, memory_breakdown, profile_step
from worker.engine.bench.synthetic import build_on_device, build_random_transformer, synthetic_batch
from worker.engine.lora.adapters import add_lora, families_of, trainable_parameters
from worker.engine.step.compiling import begin_compiled_step
from worker.engine.step.flow import FlowBatch, compute_step_losses, forward_backward, ready_for_step
from worker.engine.step.graphed import GraphedStep, GraphUnavailable
from worker.engine.step.levers import StepLevers, sdpa_backends_used
from worker.engine.step.measure import peak_memory_bytes, reset_peak, timed_calls
from worker.engine.step.optim import build_optimizer
from worker.engine.step.quantize import quantize_frozen_base
from worker.engine.step.setup import choose_levers, set_up_levers
from worker.engine.step.timesteps import ShiftedLogitNormalSampler


class BenchOutOfMemory(RuntimeError):
    """The benchmark's training step does not fit on the device; the message says what to change."""


@dataclass(frozen=True)
class BenchSpec:
    """One training benchmark: what ``avlora bench train``'s flags and a suite plan's entries set.

    ``baseline``: the straightforward diffusers + peft step (float32 LoRA math, torch's default
    AdamW, the text mask passed, losses read every step, no compile). Otherwise the engine's
    levers, chosen by :func:`worker.engine.step.setup.choose_levers` (None: the engine's default
    on the device). ``quantization="int8"`` / ``optimizer_name="adamw8bit"``: the low-VRAM
    configuration. ``profile``: also profile one step after the timed ones (``result.profile``).
    ``checkpointing_policy`` / ``checkpointing_ratio`` / ``checkpointing_rest_policy``: selective
    activation checkpointing (:func:`worker.engine.step.checkpointing.enable_activation_checkpointing`).
    ``compile_mode="reduce-overhead"``: CUDA graphs of the compiled blocks (CUDA only).
    ``cuda_graph``: the whole step's forward and backward as one CUDA graph
    (:mod:`worker.engine.step.graphed`). ``memory_budget``: the compiled blocks choose their own
    recompute within this share of their activations, instead of gradient checkpointing (needs
    ``gradient_checkpointing=False`` and compiled blocks); its recompute is not counted (hardware
    FLOPs = model FLOPs). ``mode``: the training mode whose step is timed (its LoRA layers from
    ``target_modules``, None: the mode's defaults, narrowed as the trainer narrows them);
    ``reference_seconds``: ``reference_voice``'s reference (None: as long as the clip).
    """

    preset: str = "ltx-2.3"
    size: tuple[int, int, int] = (512, 512, 49)
    random_weights: bool = True
    steps: int = 10
    warmup: int = 3
    rank: int = 32
    target_modules: tuple[str, ...] | None = None  # None: the recipe's default targets
    gradient_checkpointing: bool = True
    checkpointing_policy: CheckpointPolicy = "full"
    checkpointing_ratio: float = 1.0
    checkpointing_rest_policy: CheckpointPolicy = "full"
    cast_lora_weights_once: bool | None = None
    compile_blocks: bool | None = None
    compile_mode: str | None = None
    cuda_graph: bool | None = None
    memory_budget: float | None = None
    baseline: bool = False
    quantization: str = "none"
    optimizer_name: str = "adamw"
    profile: bool = False
    device: str | None = None  # None: cuda when available
    mode: str = MODE_AUDIO_VIDEO
    reference_seconds: float | None = None

    def levers(self, device: str) -> StepLevers:
        """The step's levers on ``device``, decided as training decides them; ValueError when
        the combination cannot run."""
        return choose_levers(
            device, baseline=self.baseline, quantization=self.quantization,
            gradient_checkpointing=self.gradient_checkpointing, checkpointing_policy=self.checkpointing_policy,
            checkpointing_ratio=self.checkpointing_ratio, checkpointing_rest_policy=self.checkpointing_rest_policy,
            compile_blocks=self.compile_blocks, compile_mode=self.compile_mode, cuda_graph=self.cuda_graph,
            memory_budget=self.memory_budget, cast_lora_weights_once=self.cast_lora_weights_once,
        )


@dataclass
class BenchResult:
    """Numbers of one training benchmark (JSON-ready through :meth:`to_dict`)."""

    preset: str
    mode: str
    device: str
    dtype: str
    size: str
    video_tokens: int  # as the transformer takes them (audio_only: the one-token stand-in)
    audio_tokens: int  # the target's, the scored ones
    reference_audio_tokens: int  # in front of the target's, clean, not scored (reference_voice)
    audio_tokens_in: int  # all the audio tokens the transformer takes
    text_tokens: int
    transformer_parameters: int
    lora_parameters: int
    lora_families: dict  # how many layers of each block family have a LoRA
    lora_left_out: int  # layers the targets matched that the mode keeps without a LoRA
    gradient_checkpointing: bool
    compiled: bool
    baseline: bool
    levers: dict
    quantization: str
    optimizer: str
    steps: int
    warmup: int
    median_s_per_step: float
    tokens_per_s: float
    peak_memory_bytes: int  # most memory allocated at once, warm-up and graph recording included
    peak_reserved_bytes: int  # most memory the allocator held (what the card must have)
    hardware_flops_per_step: float
    model_flops_per_step: float
    forward_flops: float
    matmul_flops_per_s: float  # the highest of the rates measured before and after the steps
    mfu: float
    hfu: float
    loss_finite: bool
    memory: dict = field(default_factory=dict)
    matmul_rates: list = field(default_factory=list)  # every measurement (FLOP/s), before and after
    sdpa_backends: dict = field(default_factory=dict)
    sdpa_backends_with_mask: dict = field(default_factory=dict)
    profile: dict | None = None
    notes: list = field(default_factory=list)  # a lever the mode's step could not use, and what ran instead

    def to_dict(self) -> dict:
        """A JSON-ready dict."""
        return asdict(self)


# The result's ``levers`` record keeps the names it was published with (docs/benchmarks.md, the
# suites' results.jsonl files), where the engine now spells them as the run config does.
PUBLISHED_LEVER_NAMES = {
    "checkpointing_policy": "checkpoint_policy",
    "checkpointing_ratio": "checkpoint_ratio",
    "checkpointing_rest_policy": "checkpoint_rest",
}


def levers_record(levers: StepLevers) -> dict:
    """``levers`` as the result's JSON records them."""
    return {PUBLISHED_LEVER_NAMES.get(name, name): value for name, value in asdict(levers).items()}


def parse_size(text: str) -> tuple[int, int, int]:
    """``"512x512x49"`` -> (width, height, frames); W, H multiples of 32, frames = 8k+1."""
    try:
        width, height, frames = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"size {text!r} must look like 512x512x49 (width x height x frames)") from None
    if width % 32 or height % 32 or width <= 0 or height <= 0:
        raise ValueError(f"size {text!r}: width and height must be positive multiples of 32")
    if frames < 1 or frames % 8 != 1:
        raise ValueError(f"size {text!r}: frames must be 8k+1 (1, 9, 17, ..., 49, ...)")
    return width, height, frames


def attention_backends(config: dict, size, text_tokens: int, device: str, dtype, mode: str = MODE_AUDIO_VIDEO,
                       reference_audio_frames: int = 0) -> tuple[dict, dict]:
    """SDPA implementations one forward of a 1-block copy of the model runs in ``mode``'s step:
    (with the all-ones text mask dropped, as the engine does; with the mask passed)."""
    from diffusers import LTX2VideoTransformer3DModel

    model = build_on_device(LTX2VideoTransformer3DModel, {**config, "num_layers": 1}, device, dtype)
    mode_step = ModeStep.build(synthetic_batch(model, size, text_tokens, device, dtype), mode, reference_audio_frames)
    sampler, generator = ShiftedLogitNormalSampler(), torch.Generator().manual_seed(0)

    def forward(drop: bool):
        def run():
            with torch.no_grad():
                batch, inputs = mode_step.inputs(model, sampler, generator)
                compute_step_losses(model, batch, inputs, drop_all_ones_mask=drop)
        return run

    return sdpa_backends_used(forward(True)), sdpa_backends_used(forward(False))


@dataclass
class _Model:
    """The benchmarked transformer with its LoRA, levers and optimizer."""

    transformer: torch.nn.Module
    params: list
    optimizer: torch.optim.Optimizer
    modes: list[str]  # each block's checkpointing mode
    lora_names: list[str]  # the layers with a LoRA
    left_out: list[str]  # the layers the targets matched that the training mode keeps without one


def _build_model(spec: BenchSpec, levers: StepLevers, device: str, dtype: torch.dtype, *, is_toy: bool,
                 data_dir, model_dir) -> _Model:
    if is_toy or not spec.random_weights:
        from worker.engine.model.pipelines import load_pipeline

        if data_dir is None:
            raise ValueError("data_dir is needed to load the toy or real weights")
        transformer = load_pipeline(spec.preset, data_dir=data_dir, model_dir=model_dir, device=device,
                                    dtype=dtype).transformer
    else:
        transformer = build_random_transformer(spec.preset, device, dtype)
    quantize_frozen_base(transformer, spec.quantization)
    targets, left_out = mode_lora_targets(transformer, spec.mode, spec.target_modules)
    names = add_lora(transformer, rank=spec.rank, alpha=spec.rank, target_modules=targets)
    modes = set_up_levers(transformer, levers, gradient_checkpointing=spec.gradient_checkpointing)
    params = trainable_parameters(transformer)
    optimizer = build_optimizer(params, name=spec.optimizer_name, lr=1e-4, weight_decay=0.01,
                                fused=levers.fused_optimizer)
    return _Model(transformer, params, optimizer, modes, names, left_out)


@dataclass
class _Step:
    """The timed step, the whole-step CUDA graph it replays (None: eager), the total loss of each
    step, and notes on a lever that could not apply (the graph, when it cannot be recorded)."""

    run: Callable[[], None]
    graphed: GraphedStep | None
    totals: list[torch.Tensor]
    notes: list[str]


def _step_function(model: _Model, mode_step: ModeStep, levers: StepLevers, dtype: torch.dtype, *,
                   baseline: bool) -> _Step:
    """One optimizer step of ``mode_step``'s mode (the engine's, or the baseline's). A whole-step
    CUDA graph that cannot be recorded for the mode's step is noted and the steps run eagerly."""
    transformer, params, optimizer = model.transformer, model.params, model.optimizer
    sampler, generator = ShiftedLogitNormalSampler(), torch.Generator().manual_seed(0)
    ready = None if baseline else ready_for_step(transformer, mode_step.batch,
                                                 drop_all_ones_mask=levers.drop_all_ones_text_mask)

    def engine_step(step_batch, inputs):
        return forward_backward(transformer, step_batch, inputs,
                                weight_cast=lambda: levers.weight_cast(transformer, dtype))

    state = _Step(lambda: None, GraphedStep(engine_step, params, warmup=2) if levers.cuda_graph else None, [], [])

    def graph_or_eager(batch, inputs):
        try:
            return state.graphed(batch, inputs)
        except GraphUnavailable as exc:
            state.graphed.release()
            state.graphed = None
            state.notes.append(f"cuda_graph: not for mode {mode_step.mode} ({exc}); its steps ran eagerly")
            return engine_step(batch, inputs)

    def step() -> None:
        begin_compiled_step(levers.compile_mode)
        optimizer.zero_grad(set_to_none=True)
        batch, inputs = mode_step.inputs(transformer, sampler, generator, ready)
        if baseline:
            losses = compute_step_losses(transformer, batch, inputs, drop_all_ones_mask=False)
            losses.video, losses.audio  # noqa: B018 - a straightforward trainer reads its losses every step
            losses.total.backward()
        elif state.graphed is not None:
            losses = graph_or_eager(batch, inputs)
        else:
            losses = engine_step(batch, inputs)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        state.totals.append(losses.total.detach())

    state.run = step
    return state


def _time_steps(step: Callable[[], None], spec: BenchSpec, device: str) -> tuple[list[float], int, int]:
    """(seconds of each timed step, peak allocated bytes, peak reserved bytes)."""
    # from here, not from the timed steps: a CUDA graph takes its memory when it is recorded
    # (during the warm-up), and replays allocate nothing new. The cache goes back first, so the
    # reserved peak does not count memory freed while the model was built (the int8 base is
    # quantised from bf16 here)
    reset_peak(device)
    try:
        for _ in range(spec.warmup):
            step()
    except torch.OutOfMemoryError as exc:
        hint = ("" if spec.gradient_checkpointing
                else " Enable gradient checkpointing (drop --no-gradient-checkpointing).")
        raise BenchOutOfMemory(f"Out of memory at size {spec.size} with rank {spec.rank}.{hint}") from exc
    times = timed_calls(step, device, spec.steps)
    peak = peak_memory_bytes(device)
    reserved = int(torch.cuda.max_memory_reserved()) if device.startswith("cuda") else peak
    return times, peak, reserved


def bench_train(spec: BenchSpec, *, data_dir=None, model_dir=None) -> BenchResult:
    """Time LoRA training steps as ``spec`` says (see the module docstring and :class:`BenchSpec`).

    ``data_dir``: where the toy models live (and the real weights' cache); ``model_dir``: the real
    weights, for a real preset without ``random_weights``. ValueError (before anything is built)
    for a mode or reference length that cannot run.
    """
    from core.presets import get_preset

    info = get_preset(spec.preset)
    device = spec.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    levers = spec.levers(device)
    reference_frames(spec.mode, 1, spec.reference_seconds)  # a bad mode or reference: refused before the build
    # the reference rate, measured before the model is built and again after the steps; the
    # higher one counts (the lower MFU): the GPU's clocks drift with its temperature
    rates = [measure_matmul_rate(device, dtype)]
    before_model = cuda_allocated(device)
    model = _build_model(spec, levers, device, dtype, is_toy=info.is_toy, data_dir=data_dir, model_dir=model_dir)
    after_setup = cuda_allocated(device)
    clip = synthetic_batch(model.transformer, spec.size, info.max_sequence_length, device, dtype)
    ref_frames = reference_frames(spec.mode, clip.audio.shape[1], spec.reference_seconds)
    mode_step = ModeStep.build(clip, spec.mode, ref_frames)
    timed = _step_function(model, mode_step, levers, dtype, baseline=spec.baseline)
    times, peak, reserved = _time_steps(timed.run, spec, device)
    if timed.notes:  # the graph could not be recorded: the steps ran without it
        levers = replace(levers, cuda_graph=False)
    measured = {
        "peak_memory_bytes": peak,
        "peak_reserved_bytes": reserved,
        "memory": memory_breakdown(before_model=before_model, after_setup=after_setup,
                                   peak=peak, params=model.params, optimizer=model.optimizer),
        "profile": profile_step(timed.run, device) if spec.profile else None,
        "loss_finite": bool(torch.isfinite(torch.stack(timed.totals)).all()),
        "notes": timed.notes,
        "transformer_parameters": sum(p.numel() for p in model.transformer.parameters()),
        "lora_parameters": sum(p.numel() for p in model.params),
        "lora_families": families_of(model.lora_names),
        "lora_left_out": len(model.left_out),
        **mode_step.token_counts(),
    }
    config = {k: v for k, v in model.transformer.config.items() if not k.startswith("_")}
    shape = FlopShape(config, model.transformer.config.num_layers, spec.size, info.max_sequence_length, device,
                      dtype, spec.rank, spec.target_modules, spec.mode, ref_frames)
    modes = model.modes
    if timed.graphed is not None:
        timed.graphed.release()
    del timed, model, mode_step  # the model's memory goes back before the FLOPs are counted
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    flops = step_flops(shape, spec.gradient_checkpointing, modes)
    backends = attention_backends(config, spec.size, info.max_sequence_length, device, dtype, spec.mode, ref_frames)
    rates.append(measure_matmul_rate(device, dtype))
    return _result(spec, levers, device, dtype, clip, times, flops, rates, backends, measured)


def _result(spec: BenchSpec, levers: StepLevers, device: str, dtype: torch.dtype, clip: FlowBatch,
            times: list[float], flops: tuple[float, float, float], rates: list[float],
            backends: tuple[dict, dict], measured: dict) -> BenchResult:
    hardware_flops, model_flops, forward_flops = flops
    median, rate = statistics.median(times), max(rates)
    tokens = measured["video_tokens"] + measured["audio_tokens_in"]  # what the transformer computes on
    return BenchResult(
        preset=spec.preset,
        mode=spec.mode,
        device=torch.cuda.get_device_name() if device.startswith("cuda") else "cpu",
        dtype=str(dtype).removeprefix("torch."),
        size="x".join(str(v) for v in spec.size),
        text_tokens=clip.video_text.shape[1],
        gradient_checkpointing=spec.gradient_checkpointing,
        compiled=levers.compile_blocks,
        baseline=spec.baseline,
        levers=levers_record(levers),
        quantization=spec.quantization,
        optimizer=spec.optimizer_name,
        steps=spec.steps,
        warmup=spec.warmup,
        median_s_per_step=median,
        tokens_per_s=tokens / median,
        hardware_flops_per_step=hardware_flops,
        model_flops_per_step=model_flops,
        forward_flops=forward_flops,
        matmul_flops_per_s=rate,
        matmul_rates=rates,
        mfu=model_flops / median / rate,
        hfu=hardware_flops / median / rate,
        sdpa_backends=backends[0],
        sdpa_backends_with_mask=backends[1],
        **measured,
    )
