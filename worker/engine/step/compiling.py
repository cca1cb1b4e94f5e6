"""Regional ``torch.compile`` of the LTX-2 transformer for faster training steps."""

from __future__ import annotations

COMPILE_MODES = (None, "reduce-overhead")


def compile_transformer_blocks(transformer, *, backend: str = "inductor", mode: str | None = None,
                               memory_budget: float | None = None) -> int:
    """``torch.compile`` each transformer block in place; returns how many blocks.

    Regional compilation: the blocks are identical, so they share one compiled graph (a
    one-time compile of about a minute on the full model), and the eager step, which is bound by
    kernel launches, turns into a few fused kernels per block. ``backend="aot_eager"`` traces
    the same graphs (forward and backward) without generating kernels: the CPU tests use it.

    ``mode="reduce-overhead"`` (inductor only) also records each block's kernels as CUDA graphs
    and replays them, which removes most of the per-kernel launch cost of a host-bound step. It
    needs static shapes (``dynamic=False``: one graph per clip shape) and memory for each
    recorded shape; check a run with :func:`check_cuda_graphs_allowed` first.

    ``memory_budget`` (0 to 1; None = 1): the compiled blocks choose what to recompute in the
    backward themselves. Each block's forward and backward are compiled as one joint graph, and
    the partitioner keeps the activations that cost the most to recompute per byte (attention,
    matmul outputs) within this share of what keeping everything would take, recomputing the
    rest (norms and pointwise ops first, fused into the backward kernels). Use it instead of
    gradient checkpointing (:func:`worker.engine.step.checkpointing.enable_activation_checkpointing`), which
    recomputes each block's whole forward. It is torch's process-wide setting
    ``torch._functorch.config.activation_memory_budget``, read when a block compiles; it is set
    at every call (None restores the default, 1).
    """
    import torch._dynamo
    import torch._functorch.config

    if mode not in COMPILE_MODES:
        raise ValueError(f"compile mode must be one of {COMPILE_MODES}, got {mode!r}")
    if mode is not None and backend != "inductor":
        raise ValueError(f"compile mode {mode!r} needs the inductor backend, not {backend!r}")
    if memory_budget is not None and not 0.0 <= memory_budget <= 1.0:
        raise ValueError(f"memory budget must be between 0 and 1, got {memory_budget}")
    torch._functorch.config.activation_memory_budget = 1.0 if memory_budget is None else float(memory_budget)
    blocks = list(transformer.transformer_blocks)
    # one graph per block signature; the default limit (8) is enough unless shapes vary a lot
    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
    options = {"backend": backend} if mode is None else {"backend": backend, "mode": mode, "dynamic": False}
    if mode == "reduce-overhead":
        import torch._inductor.config

        # the blocks share one compiled graph but not their weights: CUDA graph trees record it
        # once per block (forward, checkpoint recompute and backward), more than the default limit
        triton = torch._inductor.config.triton
        triton.cudagraph_unexpected_rerecord_limit = max(triton.cudagraph_unexpected_rerecord_limit, 4 * len(blocks))
    for block in blocks:
        block.compile(**options)
    return len(blocks)


def check_cuda_graphs_allowed(device: str, shapes: int, *, max_shapes: int = 4) -> None:
    """Raise ValueError, saying why, when CUDA graphs (``mode="reduce-overhead"``) do not fit a run.

    ``shapes``: how many distinct clip shapes (buckets) the run trains on. Each shape records its
    own graphs and keeps their memory pool, so more than ``max_shapes`` is refused; on a CPU
    there is nothing to record.
    """
    if not str(device).startswith("cuda"):
        raise ValueError("CUDA graphs (compile mode reduce-overhead) need a CUDA GPU")
    if shapes < 1:
        raise ValueError("CUDA graphs need at least one clip shape")
    if shapes > max_shapes:
        raise ValueError(
            f"CUDA graphs record one set of graphs per clip shape: {shapes} shapes is more than {max_shapes}; "
            "train on fewer buckets or leave the compile mode at its default"
        )


def begin_compiled_step(mode: str | None) -> None:
    """Call at the start of each training step: with CUDA graphs (``mode="reduce-overhead"``) it
    tells torch a new step begins, so the previous step's graph outputs may be overwritten."""
    if mode == "reduce-overhead":
        import torch

        torch.compiler.cudagraph_mark_step_begin()


def compile_by_default(device: str) -> bool:
    """Whether the engine compiles the blocks by default on ``device`` (CUDA only: on the CPU
    the compile takes longer than the short runs it would speed up)."""
    return str(device).startswith("cuda")
