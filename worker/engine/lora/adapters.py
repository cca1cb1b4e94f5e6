"""LoRA adapters on the LTX-2 transformer through PEFT: add, list, scale per side of the model."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch

from worker.engine.lora.names import module_family, side_of_family

DEFAULT_ADAPTER = "default"


def add_lora(
    transformer: torch.nn.Module,
    *,
    rank: int,
    alpha: float,
    target_modules: list[str] | str,
    dropout: float = 0.0,
    adapter_name: str = DEFAULT_ADAPTER,
    init_seed: int | None = None,
) -> list[str]:
    """Wrap the matching linear layers of ``transformer`` with a trainable LoRA (PEFT).

    ``target_modules`` follows PEFT's rule: a string matches a module's whole name or a suffix
    after a dot; a single string that is not a module name is a regular expression matched
    against whole names. The base weights are frozen; the LoRA weights are float32.
    Returns the names of the adapted modules; raises ValueError if nothing matched.
    """
    from peft import LoraConfig

    if rank < 1:
        raise ValueError(f"LoRA rank must be at least 1, got {rank}")
    config = LoraConfig(
        r=rank,
        lora_alpha=alpha,
        target_modules=target_modules,
        lora_dropout=dropout,
        init_lora_weights=True,
    )
    transformer.requires_grad_(False)
    rng_state = torch.random.get_rng_state()
    if init_seed is not None:
        torch.manual_seed(init_seed)
    try:
        transformer.add_adapter(config, adapter_name=adapter_name)
    except ValueError as exc:
        raise ValueError(
            f"target_modules {target_modules!r} matched no module of the transformer: {exc}"
        ) from exc
    finally:
        if init_seed is not None:
            torch.random.set_rng_state(rng_state)
    names = []
    for name, module in lora_layers(transformer):
        names.append(name)
        for param_name, param in module.named_parameters(recurse=True):
            if "lora_" in param_name and adapter_name in param_name:
                param.data = param.data.float()
                param.requires_grad_(True)
    return names


def lora_layers(transformer: torch.nn.Module) -> Iterator[tuple[str, torch.nn.Module]]:
    """(name, module) of every PEFT LoRA layer in the transformer."""
    from peft.tuners.lora import LoraLayer

    for name, module in transformer.named_modules():
        if isinstance(module, LoraLayer):
            yield name, module


def trainable_parameters(transformer: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The parameters the optimizer updates (the LoRA weights), in a stable order."""
    return [p for _, p in sorted(transformer.named_parameters()) if p.requires_grad]


def set_side_strength(
    transformer: torch.nn.Module,
    *,
    video: float = 1.0,
    audio: float = 1.0,
    other: float | None = None,
    adapter_name: str = DEFAULT_ADAPTER,
    as_tensors: bool = False,
) -> dict[str, int]:
    """Scale the LoRA on each side of the model apart (DESIGN.md's sides).

    Video side: ``attn1``, ``attn2``, ``ff``, ``audio_to_video_attn``; audio side:
    ``audio_attn1``, ``audio_attn2``, ``audio_ff``, ``video_to_audio_attn``. Modules outside the
    blocks (``other``) follow ``other`` if given, else the video strength. Strength 0 switches a
    side off exactly; 1 is the trained strength. Returns how many layers were set per side.

    ``as_tensors``: hold each layer's scale as a 0-dim tensor instead of a Python float. Compiled
    blocks take a tensor as an input, while they specialise on a float (one compile per value):
    sampling sets its variants this way so they all run through one compiled graph. Call again
    without it to put floats back (the training's compiled graph was made with floats).
    """
    counts = {"video": 0, "audio": 0, "other": 0}
    for name, module in lora_layers(transformer):
        if adapter_name not in module.scaling:
            continue
        side = side_of_family(module_family(name)) or "other"
        strength = {"video": video, "audio": audio}.get(side, video if other is None else other)
        module.set_scale(adapter_name, strength)
        if as_tensors:
            module.scaling[adapter_name] = _scale_tensor(module, adapter_name)
        counts[side] += 1
    return counts


def set_all_adapters_off(transformer: torch.nn.Module, off: bool) -> None:
    """Scale every adapter of every LoRA layer to 0 as tensors (``off``), or back to its trained
    float scale: the base model through the same compiled graph as the other sampling variants
    (unlike PEFT's ``disable_adapters``, a branch the compiled blocks would compile again)."""
    for _, module in lora_layers(transformer):
        for adapter in list(module.scaling):
            module.set_scale(adapter, 0.0 if off else 1.0)
            if off:
                module.scaling[adapter] = _scale_tensor(module, adapter)


def _scale_tensor(module: torch.nn.Module, adapter_name: str) -> torch.Tensor:
    weight = module.lora_A[adapter_name].weight
    return torch.tensor(float(module.scaling[adapter_name]), dtype=weight.dtype, device=weight.device)


def families_of(names: Iterable[str]) -> dict[str, int]:
    """How many adapted modules fall in each family."""
    counts: dict[str, int] = {}
    for name in names:
        family = module_family(name)
        counts[family] = counts.get(family, 0) + 1
    return counts
