"""Benchmark LoRA training steps of the LTX-2 transformer.

``bench_train(preset, size=(512, 512, 49), ...)`` builds the transformer (full size with random
weights created directly on the device in bf16, never a float32 copy on the CPU; or the toy),
adds the LoRA, and times training steps on synthetic latents of the given size: the median
seconds per step over ``steps`` after ``warmup``, tokens per second, peak memory, and the model
FLOP utilisation. FLOPs are counted with ``torch.utils.flop_counter.FlopCounterMode`` on one real
step; the reference rate is a dense matmul in the same dtype measured in the same run.

Model FLOPs leave out the forward recomputed by gradient checkpointing (hardware FLOPs keep it),
so MFU is comparable between runs with and without checkpointing. The step uses the engine's
levers (:mod:`worker.engine.step.levers`; ``compile_blocks`` None compiles the blocks on CUDA, and the
warm-up steps absorb the compile); ``baseline=True`` times the straightforward diffusers + peft
step instead. ``quantization="int8"`` and ``optimizer_name="adamw8bit"`` time the low-VRAM
configuration. Each result also says what holds the peak memory (weights, LoRA gradients,
optimizer state, activations), which SDPA kernels run, and (``profile=True``) where one step's
time goes. ``docs/benchmarks.md`` has the H100 figures.
"""

from __future__ import annotations

import contextlib
import statistics
from dataclasses import asdict, dataclass, field, replace

import torch

from worker.engine.lora.adapters import add_lora, trainable_parameters
from worker.engine.bench.profile import cuda_allocated, memory_breakdown, profile_step
from worker.engine.step.compiling import (
    begin_compiled_step, check_cuda_graphs_allowed, compile_by_default, compile_transformer_blocks,
)
from worker.engine.data.dataset import AUDIO_LATENTS_PER_SECOND
from worker.engine.step.flow import FlowBatch, compute_step_losses, forward_backward, prepare_flow_inputs, ready_for_step
from worker.engine.step.graphed import GraphedStep
from worker.engine.step.levers import StepLevers, lora_compute_in_base_dtype, sdpa_backends_used
from worker.engine.step.checkpointing import enable_activation_checkpointing
from worker.engine.step.measure import peak_memory_bytes, reset_peak, timed_calls
from worker.engine.step.optim import build_optimizer
from worker.engine.step.quantize import quantize_frozen_base
from worker.engine.step.timesteps import ShiftedLogitNormalSampler

DEFAULT_TARGETS = ["to_k", "to_q", "to_v", "to_out.0"]


class BenchOutOfMemory(RuntimeError):
    """The benchmark's training step does not fit on the device; the message says what to change."""


@dataclass
class BenchResult:
    """Numbers of one training benchmark (JSON-ready through :meth:`to_dict`)."""

    preset: str
    device: str
    dtype: str
    size: str
    video_tokens: int
    audio_tokens: int
    text_tokens: int
    transformer_parameters: int
    lora_parameters: int
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

    def to_dict(self) -> dict:
        """A JSON-ready dict."""
        return asdict(self)


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


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype):
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def build_random_transformer(model: str, device: str, dtype: torch.dtype):
    """The full-size transformer of ``model`` (``ltx-2.3`` / ``ltx-2``) with random weights,
    allocated and initialised directly on ``device`` in ``dtype``."""
    from diffusers import LTX2VideoTransformer3DModel

    from core.recipe.architecture import MODEL_CONFIGS

    if model not in MODEL_CONFIGS:
        raise ValueError(f"no full-size config for {model!r}: choose one of {', '.join(MODEL_CONFIGS)}")
    return _build_on_device(LTX2VideoTransformer3DModel, dict(MODEL_CONFIGS[model]), device, dtype)


def _build_on_device(cls, config: dict, device: str, dtype: torch.dtype):
    with torch.device(device), _default_dtype(dtype):
        return cls(**config)


def _text_dims(transformer) -> tuple[int, int]:
    config = transformer.config
    if config.use_prompt_embeddings:
        return config.caption_channels, config.caption_channels
    return config.cross_attention_dim, config.audio_cross_attention_dim


def synthetic_batch(transformer, size: tuple[int, int, int], text_tokens: int, device: str, dtype, fps: float = 24.0) -> FlowBatch:
    """Random latents, text embeddings and mask shaped like one clip of ``size``."""
    width, height, frames = size
    latent_frames, latent_h, latent_w = (frames - 1) // 8 + 1, height // 32, width // 32
    audio_frames = round(frames / fps * AUDIO_LATENTS_PER_SECOND)
    generator = torch.Generator().manual_seed(0)
    video_dim, audio_dim = _text_dims(transformer)

    def rand(*shape):
        return torch.randn(*shape, generator=generator).to(device=device, dtype=dtype)

    return FlowBatch(
        video=rand(1, latent_frames * latent_h * latent_w, transformer.config.in_channels),
        audio=rand(1, audio_frames, transformer.config.audio_in_channels),
        video_text=rand(1, text_tokens, video_dim),
        audio_text=rand(1, text_tokens, audio_dim),
        text_mask=torch.ones(1, text_tokens, device=device, dtype=torch.int64),
        latent_frames=latent_frames,
        latent_height=latent_h,
        latent_width=latent_w,
        fps=fps,
        audio_frames=audio_frames,
    )


def measure_matmul_rate(device: str, dtype: torch.dtype, n: int | None = None, repeats: int | None = None) -> float:
    """Dense ``n x n @ n x n`` matmul rate in FLOP/s on ``device`` in ``dtype`` (median of repeats)."""
    n = n or (8192 if device.startswith("cuda") else 512)
    repeats = repeats or (100 if device.startswith("cuda") else 10)  # on an H100 100 take about 0.15 s
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    return 2.0 * n**3 / statistics.median(timed_calls(lambda: a @ b, device, repeats, warmup=3))


def _count_flops(fn) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return float(counter.get_total_flops())


def _step_flops(transformer, batch: FlowBatch, gradient_checkpointing: bool,
                checkpoint_policy: str = "full") -> tuple[float, float]:
    """(forward + backward FLOPs, forward-only FLOPs) of one training step, counted."""
    sampler, generator = ShiftedLogitNormalSampler(), torch.Generator().manual_seed(0)

    def train_step() -> None:
        inputs = prepare_flow_inputs(batch, sampler, generator, first_frame_p=0.0)
        compute_step_losses(transformer, batch, inputs).total.backward()

    def forward_only() -> None:
        with torch.no_grad():
            inputs = prepare_flow_inputs(batch, sampler, generator, first_frame_p=0.0)
            compute_step_losses(transformer, batch, inputs)

    if gradient_checkpointing:
        enable_activation_checkpointing(transformer, policy=checkpoint_policy)
    return _count_flops(train_step), _count_flops(forward_only)


_FLOP_CACHE: dict[str, tuple[float, float]] = {}


def count_step_flops(
    config: dict,
    layers: int,
    size: tuple[int, int, int],
    text_tokens: int,
    device: str,
    dtype: torch.dtype,
    *,
    rank: int,
    target_modules: list[str] | None,
    gradient_checkpointing: bool,
    checkpoint_policy: str = "full",
) -> tuple[float, float]:
    """FLOPs of one step of the ``layers``-block model: (step, forward), by FlopCounterMode.

    With ``checkpoint_policy`` other than full, the step's count leaves out the recompute of the
    ops whose outputs the policy keeps (the saved ops are not run again, so not counted).

    Counted on 1- and 2-block copies of the same config (blocks are identical, so the count is
    affine in the depth) and extrapolated: FlopCounterMode keeps references that defeat gradient
    checkpointing, so counting the full 48-block model would need the memory of a run without it.
    """
    from diffusers import LTX2VideoTransformer3DModel

    key = repr((sorted(config.items()), layers, size, text_tokens, device, dtype, rank, target_modules,
                gradient_checkpointing, checkpoint_policy))
    if key in _FLOP_CACHE:  # the same shapes count the same FLOPs: count once per process
        return _FLOP_CACHE[key]
    counts = []
    for depth in (1, 2):
        model = _build_on_device(LTX2VideoTransformer3DModel, {**config, "num_layers": depth}, device, dtype)
        add_lora(model, rank=rank, alpha=rank, target_modules=target_modules or DEFAULT_TARGETS)
        model.train()
        batch = synthetic_batch(model, size, text_tokens, device, dtype)
        counts.append(_step_flops(model, batch, gradient_checkpointing, checkpoint_policy))
        del model
    (step1, fwd1), (step2, fwd2) = counts
    _FLOP_CACHE[key] = step1 + (step2 - step1) * (layers - 1), fwd1 + (fwd2 - fwd1) * (layers - 1)
    return _FLOP_CACHE[key]


def attention_backends(config: dict, size, text_tokens: int, device: str, dtype) -> tuple[dict, dict]:
    """SDPA implementations one forward of a 1-block copy of the model runs: (with the all-ones
    text mask dropped, as the engine does; with the mask passed)."""
    from diffusers import LTX2VideoTransformer3DModel

    model = _build_on_device(LTX2VideoTransformer3DModel, {**config, "num_layers": 1}, device, dtype)
    batch = synthetic_batch(model, size, text_tokens, device, dtype)
    sampler, generator = ShiftedLogitNormalSampler(), torch.Generator().manual_seed(0)

    def forward(drop: bool):
        def run():
            with torch.no_grad():
                inputs = prepare_flow_inputs(batch, sampler, generator, first_frame_p=0.0)
                compute_step_losses(model, batch, inputs, drop_all_ones_mask=drop)
        return run

    return sdpa_backends_used(forward(True)), sdpa_backends_used(forward(False))


def bench_train(
    preset: str,
    *,
    size: tuple[int, int, int] = (512, 512, 49),
    random_weights: bool = True,
    steps: int = 10,
    warmup: int = 3,
    rank: int = 32,
    target_modules: list[str] | None = None,
    gradient_checkpointing: bool = True,
    checkpoint_policy: str = "full",
    checkpoint_ratio: float = 1.0,
    checkpoint_rest: str = "full",
    cast_lora_weights_once: bool | None = None,
    compile_blocks: bool | None = None,
    compile_mode: str | None = None,
    cuda_graph: bool | None = None,
    memory_budget: float | None = None,
    baseline: bool = False,
    quantization: str = "none",
    optimizer_name: str = "adamw",
    profile: bool = False,
    device: str | None = None,
    data_dir=None,
    model_dir=None,
) -> BenchResult:
    """Time LoRA training steps of ``preset`` (see the module docstring).

    ``baseline``: the straightforward diffusers + peft step (float32 LoRA math, torch's default
    AdamW, the text mask passed, losses read every step, no compile). Otherwise the engine's
    levers (:mod:`worker.engine.step.levers`); ``compile_blocks`` None compiles on CUDA only.
    ``quantization="int8"`` / ``optimizer_name="adamw8bit"``: the low-VRAM configuration.
    ``profile``: also profile one step after the timed ones (``result.profile``).
    ``checkpoint_policy`` / ``checkpoint_ratio`` / ``checkpoint_rest``: selective activation checkpointing
    (:func:`worker.engine.step.checkpointing.enable_activation_checkpointing`); ``cast_lora_weights_once``
    None follows the levers' default; ``compile_mode="reduce-overhead"``: CUDA graphs of the
    compiled blocks (CUDA only). ``cuda_graph``: the whole step's forward and backward as one
    CUDA graph (:mod:`worker.engine.step.graphed`); None: on CUDA unless ``baseline`` or
    ``compile_mode`` is set (the engine's default). ``memory_budget``: the
    compiled blocks choose their own recompute within this share of their activations
    (:func:`worker.engine.step.compiling.compile_transformer_blocks`), instead of gradient
    checkpointing: needs ``gradient_checkpointing=False`` and compiled blocks. Its recompute is
    not counted (hardware FLOPs = model FLOPs).
    """
    from core.presets import get_preset

    info = get_preset(preset)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    if compile_blocks is None:
        compile_blocks = compile_by_default(device) and not baseline and quantization == "none"
    levers = StepLevers.baseline() if baseline else replace(StepLevers(), compile_blocks=compile_blocks)
    levers = replace(levers, checkpoint_policy=checkpoint_policy, checkpoint_ratio=checkpoint_ratio,
                     checkpoint_rest=checkpoint_rest, compile_mode=compile_mode)
    if cast_lora_weights_once is not None:
        levers = replace(levers, cast_lora_weights_once=cast_lora_weights_once)
    if cuda_graph is None:
        cuda_graph = device.startswith("cuda") and not baseline and compile_mode is None
    if cuda_graph and not device.startswith("cuda"):
        raise ValueError("a whole-step CUDA graph needs a CUDA GPU")
    if cuda_graph and compile_mode is not None:
        raise ValueError(f"a whole-step CUDA graph and compile mode {compile_mode} both record graphs: choose one")
    levers = replace(levers, cuda_graph=cuda_graph, memory_budget=memory_budget)
    if memory_budget is not None and (gradient_checkpointing or not levers.compile_blocks):
        raise ValueError("a memory budget replaces gradient checkpointing and needs compiled blocks: "
                         "turn checkpointing off and compile")
    if compile_mode is not None:
        check_cuda_graphs_allowed(device, shapes=1)  # one synthetic clip shape
        if not levers.compile_blocks:
            raise ValueError(f"compile mode {compile_mode} needs the blocks compiled (drop --no-compile / --baseline)")
    # the reference rate, measured before the model is built and again after the steps; the
    # higher one counts (the lower MFU): the GPU's clocks drift with its temperature
    rates = [measure_matmul_rate(device, dtype)]
    before_model = cuda_allocated(device)
    if info.is_toy or not random_weights:
        from worker.engine.model.pipelines import load_pipeline

        if data_dir is None:
            raise ValueError("data_dir is needed to load the toy or real weights")
        transformer = load_pipeline(preset, data_dir=data_dir, model_dir=model_dir, device=device, dtype=dtype).transformer
    else:
        transformer = build_random_transformer(preset, device, dtype)
    quantize_frozen_base(transformer, quantization)
    add_lora(transformer, rank=rank, alpha=rank, target_modules=target_modules or DEFAULT_TARGETS)
    if levers.lora_in_base_dtype:
        lora_compute_in_base_dtype(transformer)
    modes = ["none"] * transformer.config.num_layers
    if gradient_checkpointing:
        modes = enable_activation_checkpointing(transformer, policy=checkpoint_policy, ratio=checkpoint_ratio,
                                                rest=checkpoint_rest, inside_compile=levers.compile_blocks)
    if levers.compile_blocks:
        compile_transformer_blocks(transformer, mode=levers.compile_mode, memory_budget=levers.memory_budget)
    transformer.train()
    params = trainable_parameters(transformer)
    optimizer = build_optimizer(params, name=optimizer_name, lr=1e-4, weight_decay=0.01, fused=levers.fused_optimizer)
    after_setup = cuda_allocated(device)
    batch = synthetic_batch(transformer, size, info.max_sequence_length, device, dtype)
    sampler, generator = ShiftedLogitNormalSampler(), torch.Generator().manual_seed(0)
    totals: list[torch.Tensor] = []
    ready = None if baseline else ready_for_step(transformer, batch, drop_all_ones_mask=levers.drop_all_ones_text_mask)

    def engine_step(step_batch, inputs):
        return forward_backward(transformer, step_batch, inputs,
                                weight_cast=lambda: levers.weight_cast(transformer, dtype))

    graphed = GraphedStep(engine_step, params, warmup=2) if levers.cuda_graph else None

    def step() -> None:
        begin_compiled_step(levers.compile_mode)
        optimizer.zero_grad(set_to_none=True)
        inputs = prepare_flow_inputs(batch, sampler, generator, first_frame_p=0.0)
        if baseline:
            losses = compute_step_losses(transformer, batch, inputs, drop_all_ones_mask=False)
            losses.video, losses.audio  # noqa: B018 - a straightforward trainer reads its losses every step
            losses.total.backward()
        elif graphed is not None:
            losses = graphed(ready, inputs)
        else:
            losses = engine_step(ready, inputs)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        totals.append(losses.total.detach())

    # from here, not from the timed steps: a CUDA graph takes its memory when it is recorded
    # (during the warm-up), and replays allocate nothing new. The cache goes back first, so the
    # reserved peak does not count memory freed while the model was built (the int8 base is
    # quantised from bf16 here)
    reset_peak(device)
    try:
        for _ in range(warmup):
            step()
    except torch.OutOfMemoryError as exc:
        hint = "" if gradient_checkpointing else " Enable gradient checkpointing (drop --no-gradient-checkpointing)."
        raise BenchOutOfMemory(f"Out of memory at size {size} with rank {rank}.{hint}") from exc
    times = timed_calls(step, device, steps)
    peak = peak_memory_bytes(device)
    reserved = int(torch.cuda.max_memory_reserved()) if device.startswith("cuda") else peak
    memory = memory_breakdown(device=device, before_model=before_model, after_setup=after_setup,
                              peak=peak, params=params, optimizer=optimizer)
    profile_result = profile_step(step, device) if profile else None
    finite = bool(torch.isfinite(torch.stack(totals)).all())
    median = statistics.median(times)
    parameter_count = sum(p.numel() for p in transformer.parameters())
    lora_count = sum(p.numel() for p in params)

    layers = transformer.config.num_layers
    config = {k: v for k, v in transformer.config.items() if not k.startswith("_")}
    if graphed is not None:
        graphed.release()
    del step, engine_step, graphed, ready, optimizer, params, transformer, totals
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    hardware_flops, forward_flops = count_step_flops(
        config, layers, size, info.max_sequence_length, device, dtype, rank=rank,
        target_modules=target_modules, gradient_checkpointing=gradient_checkpointing,
    )
    backends, backends_with_mask = attention_backends(config, size, info.max_sequence_length, device, dtype)
    model_flops = hardware_flops - forward_flops if gradient_checkpointing else hardware_flops
    if gradient_checkpointing and set(modes) != {"full"}:
        # each block recomputes what its mode does not keep (the blocks are the same, so a block's
        # share is 1/layers of the whole model's recompute under that mode)
        recompute = {"full": hardware_flops - model_flops, "none": 0.0}
        for mode in set(modes) - set(recompute):
            recompute[mode] = count_step_flops(
                config, layers, size, info.max_sequence_length, device, dtype, rank=rank,
                target_modules=target_modules, gradient_checkpointing=True, checkpoint_policy=mode,
            )[0] - model_flops
        hardware_flops = model_flops + sum(recompute[mode] for mode in modes) / layers
    rates.append(measure_matmul_rate(device, dtype))
    rate = max(rates)
    tokens = batch.video.shape[1] + batch.audio.shape[1]
    return BenchResult(
        preset=preset,
        device=torch.cuda.get_device_name() if device.startswith("cuda") else "cpu",
        dtype=str(dtype).removeprefix("torch."),
        size="x".join(str(v) for v in size),
        video_tokens=batch.video.shape[1],
        audio_tokens=batch.audio.shape[1],
        text_tokens=batch.video_text.shape[1],
        transformer_parameters=parameter_count,
        lora_parameters=lora_count,
        gradient_checkpointing=gradient_checkpointing,
        compiled=levers.compile_blocks,
        baseline=baseline,
        levers=asdict(levers),
        quantization=quantization,
        optimizer=optimizer_name,
        steps=steps,
        warmup=warmup,
        median_s_per_step=median,
        tokens_per_s=tokens / median,
        peak_memory_bytes=peak,
        peak_reserved_bytes=reserved,
        hardware_flops_per_step=hardware_flops,
        model_flops_per_step=model_flops,
        forward_flops=forward_flops,
        matmul_flops_per_s=rate,
        matmul_rates=rates,
        mfu=model_flops / median / rate,
        hfu=hardware_flops / median / rate,
        loss_finite=finite,
        memory=memory,
        sdpa_backends=backends,
        sdpa_backends_with_mask=backends_with_mask,
        profile=profile_result,
    )
