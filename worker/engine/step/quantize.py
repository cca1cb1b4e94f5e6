"""Low-VRAM training: int8 weight-only quantisation of the frozen LTX-2 transformer (torchao).

``quantize_frozen_base(transformer, "int8")`` replaces the weights of the Linear layers inside
the transformer blocks with torchao ``Int8Tensor`` weights (per-output-channel int8 with a bf16
scale; activations stay in bf16). It must run *before* the LoRA is added: PEFT (>= 0.18 with
torchao >= 0.18) then wraps each quantised target layer in its ``TorchaoLoraLinear``, whose
LoRA weights stay in full precision and train as usual; the base weights never get gradients.

Only the blocks' Linear layers are quantised (about 99% of the parameters): the small input /
output projections, the timestep embeddings and the norms keep their dtype, as in the official
trainer's ``int8-quanto`` mode, which also leaves them alone.

:func:`check_quantization_supported` refuses, with a message naming what is missing, a machine
that cannot run the mode (torchao not installed, too old, or no kernel for the device).
"""

from __future__ import annotations

import importlib.metadata

import torch

QUANTIZATION_MODES = ("none", "int8")
MIN_TORCHAO = (0, 18)
MIN_PEFT = (0, 18)


class QuantizationUnavailable(RuntimeError):
    """The configured quantisation cannot run here; the message says what is missing."""


def _version_tuple(package: str) -> tuple[int, ...] | None:
    try:
        text = importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None
    parts = []
    for piece in text.split("+")[0].split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def check_quantization_supported(mode: str, device: str) -> None:
    """Raise :class:`QuantizationUnavailable` if ``mode`` cannot run on ``device`` here.

    ``int8`` needs torchao >= 0.18 (``pip install torchao==0.18.0``) and peft >= 0.18 (whose
    LoRA wraps torchao weights); it runs on CUDA GPUs and, slowly, on the CPU.
    """
    if mode not in QUANTIZATION_MODES:
        raise ValueError(f"Unknown quantization {mode!r}: use one of {', '.join(QUANTIZATION_MODES)}.")
    if mode == "none":
        return
    torchao_version = _version_tuple("torchao")
    if torchao_version is None:
        raise QuantizationUnavailable(
            "quantization 'int8' needs the torchao package, which is not installed: "
            "pip install torchao==0.18.0 (or set quantization: none)."
        )
    if torchao_version[:2] < MIN_TORCHAO:
        raise QuantizationUnavailable(
            f"quantization 'int8' needs torchao >= {'.'.join(map(str, MIN_TORCHAO))} "
            f"(found {'.'.join(map(str, torchao_version))}): pip install torchao==0.18.0."
        )
    peft_version = _version_tuple("peft")
    if peft_version is None or peft_version[:2] < MIN_PEFT:
        raise QuantizationUnavailable(
            "quantization 'int8' needs peft >= 0.18 (its LoRA wraps torchao int8 layers); "
            f"found {peft_version}: pip install -U peft."
        )
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise QuantizationUnavailable(f"quantization 'int8' was asked for on {device}, but no CUDA GPU is visible.")
    try:
        import torchao.quantization  # noqa: F401
    except ImportError as exc:  # a torchao built for another torch
        raise QuantizationUnavailable(
            f"torchao is installed but does not import with torch {torch.__version__}: {exc}. "
            "Install the torchao release made for this torch, or set quantization: none."
        ) from exc


def quantize_frozen_base(transformer: torch.nn.Module, mode: str, device: str | None = None) -> int:
    """Quantise the transformer blocks' Linear weights in place; returns how many layers changed.

    Call before :func:`worker.engine.lora.adapters.add_lora`. ``mode`` ``"none"`` changes nothing.
    With ``device``, the blocks are moved there one at a time and quantised on arrival, so the
    full bf16 transformer (38 GB at full size) never has to fit on the accelerator: a 32 GB card
    holds the int8 blocks (about 20 GB) plus one bf16 block. The rest of the transformer stays
    where it is (move it afterwards). Raises :class:`QuantizationUnavailable` when the machine
    cannot run ``mode``.
    """
    device = device or str(next(transformer.parameters()).device)
    check_quantization_supported(mode, device)
    if mode == "none":
        return 0
    from torchao.quantization import Int8WeightOnlyConfig, quantize_

    blocks = getattr(transformer, "transformer_blocks", None)
    if not blocks:
        raise ValueError("quantization 'int8': the transformer has no transformer_blocks to quantise")
    transformer.requires_grad_(False)
    count = 0
    for block in blocks:
        block.to(device)
        count += sum(1 for module in block.modules() if isinstance(module, torch.nn.Linear))
        quantize_(block, Int8WeightOnlyConfig(), filter_fn=lambda module, _name: isinstance(module, torch.nn.Linear))
    return count


def quantized_layer_count(transformer: torch.nn.Module) -> int:
    """How many Linear weights of ``transformer`` are torchao quantised tensors."""
    try:
        from torchao.utils import TorchAOBaseTensor
    except ImportError:
        return 0
    # by tensor: a PEFT LoRA wrapper exposes its base layer's weight as its own
    return len({
        id(module.weight) for module in transformer.modules()
        if isinstance(getattr(module, "weight", None), TorchAOBaseTensor)
    })
