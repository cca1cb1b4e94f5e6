"""The step's levers, decided and set up in one place for training and for the benchmark.

:func:`choose_levers` turns what a run or a benchmark asks for (None: the engine's default on the
device) into a :class:`~worker.engine.step.levers.StepLevers`, refusing combinations that cannot
run; :func:`set_up_levers` applies them to a transformer that holds its LoRA: LoRA math in the
base dtype, activation checkpointing, compiled blocks. The trainer (:mod:`worker.engine.train`) and
``avlora bench train`` (:mod:`worker.engine.bench.train`) both call these two, so the benchmark
measures the step that training runs.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from core.names import CheckpointPolicy
from worker.engine.step.checkpointing import enable_activation_checkpointing
from worker.engine.step.compiling import check_cuda_graphs_allowed, compile_by_default, compile_transformer_blocks
from worker.engine.step.levers import StepLevers, lora_compute_in_base_dtype


def choose_levers(
    device: str,
    *,
    baseline: bool = False,
    quantization: str = "none",
    gradient_checkpointing: bool = True,
    checkpointing_policy: CheckpointPolicy = "full",
    checkpointing_ratio: float = 1.0,
    checkpointing_rest_policy: CheckpointPolicy = "full",
    compile_blocks: bool | None = None,
    compile_mode: str | None = None,
    cuda_graph: bool | None = None,
    memory_budget: float | None = None,
    cast_lora_weights_once: bool | None = None,
) -> StepLevers:
    """The levers of a training step on ``device``; ValueError, saying what to change, when the
    combination cannot run.

    ``baseline``: no lever, the straightforward diffusers + peft step (never compiled).
    ``compile_blocks`` None: compiled on CUDA unless the frozen base is quantised (an int8 base's
    compile did not finish in minutes on torch 2.11, docs/benchmarks.md). ``cuda_graph`` None: the
    whole step as one CUDA graph on CUDA, except for the baseline and with a ``compile_mode``
    (which records graphs of its own). ``cast_lora_weights_once`` None: the levers' default.
    ``memory_budget``: the compiled blocks choose their own recompute, instead of gradient
    checkpointing (:func:`worker.engine.step.compiling.compile_transformer_blocks`).
    """
    if baseline:
        levers = StepLevers.baseline()
    else:
        if compile_blocks is None:
            compile_blocks = compile_by_default(device) and quantization == "none"
        levers = replace(StepLevers(), compile_blocks=compile_blocks)
    if cuda_graph is None:
        cuda_graph = str(device).startswith("cuda") and not baseline and compile_mode is None
    levers = replace(
        levers, checkpointing_policy=checkpointing_policy, checkpointing_ratio=checkpointing_ratio,
        checkpointing_rest_policy=checkpointing_rest_policy, compile_mode=compile_mode, cuda_graph=cuda_graph,
        memory_budget=memory_budget,
    )
    if cast_lora_weights_once is not None:
        levers = replace(levers, cast_lora_weights_once=cast_lora_weights_once)
    _refuse_what_cannot_run(levers, device, gradient_checkpointing)
    return levers


def _refuse_what_cannot_run(levers: StepLevers, device: str, gradient_checkpointing: bool) -> None:
    if levers.cuda_graph and not str(device).startswith("cuda"):
        raise ValueError("a whole-step CUDA graph needs a CUDA GPU")
    if levers.cuda_graph and levers.compile_mode is not None:
        raise ValueError(
            f"a whole-step CUDA graph and compile mode {levers.compile_mode} both record graphs: choose one"
        )
    if levers.memory_budget is not None and (gradient_checkpointing or not levers.compile_blocks):
        raise ValueError("a memory budget replaces gradient checkpointing and needs compiled blocks: "
                         "turn checkpointing off and compile")
    if levers.compile_mode is not None:
        check_cuda_graphs_allowed(device, shapes=1)  # one clip shape
        if not levers.compile_blocks:
            raise ValueError(
                f"compile mode {levers.compile_mode} needs the blocks compiled (drop --no-compile / --baseline)"
            )


def set_up_levers(transformer: torch.nn.Module, levers: StepLevers, *, gradient_checkpointing: bool) -> list[str]:
    """Apply ``levers`` to ``transformer`` (its LoRA already added) and put it in training mode;
    returns each block's checkpointing mode (all ``"none"`` without gradient checkpointing)."""
    if levers.lora_in_base_dtype:
        lora_compute_in_base_dtype(transformer)
    modes = ["none"] * len(transformer.transformer_blocks)
    if gradient_checkpointing:
        modes = enable_activation_checkpointing(
            transformer, policy=levers.checkpointing_policy, ratio=levers.checkpointing_ratio,
            rest=levers.checkpointing_rest_policy, inside_compile=levers.compile_blocks,
        )
    if levers.compile_blocks:
        compile_transformer_blocks(transformer, mode=levers.compile_mode, memory_budget=levers.memory_budget)
    transformer.train()
    return modes


def device_and_dtype(mixed_precision: str, device: str | None, pipeline=None) -> tuple[str, torch.dtype]:
    """Where and in what dtype a run trains: a caller's pipeline decides both; otherwise ``device``
    (default CUDA where there is one) and the dtype of ``mixed_precision`` (float32 on the CPU)."""
    from worker.engine.step.flow import base_dtype

    if pipeline is not None:
        return str(pipeline.transformer.device), base_dtype(pipeline.transformer)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu" or mixed_precision == "no":
        return device, torch.float32
    return device, torch.bfloat16 if mixed_precision == "bf16" else torch.float16


def card_free_bytes(device: str) -> int | None:
    """The GPU memory a run on ``device`` may use: the card's free memory plus what this process's
    allocator already holds (a caller's pipeline on the card is in the plan's prediction); None off CUDA."""
    if not str(device).startswith("cuda") or not torch.cuda.is_available():
        return None
    free, _ = torch.cuda.mem_get_info(torch.device(device))
    return int(free + torch.cuda.memory_reserved(torch.device(device)))


def planned_optimization(config, device: str, log=None, *, free_bytes: int | None = None, compiled: bool = True):
    """``config.optimization`` with ``memory_plan: auto`` applied (unchanged when ``manual``): the
    checkpointing fields :func:`core.recipe.memory_plan.plan_memory` chooses for the largest bucket
    on this card (``free_bytes`` None: measured on ``device``); ``log(level, message)`` hears why."""
    from core.recipe.memory_plan import bucket_tokens, plan_memory

    opt = config.optimization
    if opt.memory_plan != "auto":
        return opt
    if free_bytes is None:
        free_bytes = card_free_bytes(device)
    with_audio = config.training.with_audio
    tokens = max(bucket_tokens(b.width, b.height, b.frames, with_audio=with_audio) for b in config.data.bucket_list)
    plan = plan_memory(free_bytes, tokens, model=config.model, quantization=config.quantization,
                       optimizer=opt.optimizer, rank=config.lora.rank, compiled=compiled and opt.compile)
    if log is not None:
        log("info", f"Memory plan auto: {plan.reason}.")
    return opt.model_copy(update=plan.setting.fields())
