"""Regional ``torch.compile`` of the LTX-2 transformer for faster training steps."""

from __future__ import annotations


def compile_transformer_blocks(transformer, *, backend: str = "inductor") -> int:
    """``torch.compile`` each transformer block in place; returns how many blocks.

    Regional compilation: the blocks are identical, so they share one compiled graph (a
    one-time compile of about a minute on the full model), and the eager step, which is bound by
    kernel launches, turns into a few fused kernels per block. ``backend="aot_eager"`` traces
    the same graphs (forward and backward) without generating kernels: the CPU tests use it.
    """
    import torch._dynamo

    blocks = list(transformer.transformer_blocks)
    # one graph per block signature; the default limit (8) is enough unless shapes vary a lot
    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
    for block in blocks:
        block.compile(backend=backend)
    return len(blocks)


def compile_by_default(device: str) -> bool:
    """Whether the engine compiles the blocks by default on ``device`` (CUDA only: on the CPU
    the compile takes longer than the short runs it would speed up)."""
    return str(device).startswith("cuda")
