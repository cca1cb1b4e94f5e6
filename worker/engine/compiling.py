"""Regional ``torch.compile`` of the LTX-2 transformer for faster training steps."""

from __future__ import annotations


def compile_transformer_blocks(transformer) -> None:
    """``torch.compile`` each transformer block in place (regional compilation: the 48 blocks
    share one compiled graph). On an H100 this cut a full-size LTX-2.3 LoRA step about 3x
    (the eager step is bound by kernel launches), after a one-time compile of about a minute."""
    for block in transformer.transformer_blocks:
        block.compile()
