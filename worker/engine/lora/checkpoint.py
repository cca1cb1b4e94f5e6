"""Checkpoints of a training run: the LoRA files and the state to resume from.

Layout under ``<output_dir>/checkpoints/`` for step N (zero-padded to 5 digits, as ltx-trainer):

- ``lora_weights_step_NNNNN.safetensors``: official / ComfyUI layout (see :mod:`lora_io`);
- ``lora_weights_step_NNNNN.diffusers.safetensors``: diffusers layout;
- ``training_state_step_NNNNN.pt``: float32 LoRA tensors, optimizer, scheduler, RNG states,
  step and the config fingerprint. Resuming restores all of it, so the run continues exactly.

Every file is written to a temporary name and renamed; the state file is written last, so a
state file on disk always has its LoRA files beside it. A checkpoint that does not fit on the disk
leaves none of its files (see :func:`write_checkpoint`). The trainer copies a checkpoint off the
device (:func:`snapshot_checkpoint`) and writes it in the background (:mod:`writer`).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from core.disk import ensure_free, guard_write, payload_bytes
from core.files import atomic_write
from worker.engine.lora.files import LoraWeights, save_diffusers, save_official

STATE_PATTERN = re.compile(r"^training_state_step_(\d+)\.pt$")
STATE_FORMAT_VERSION = 1
CHECKPOINT_OVERHEAD_BYTES = 1024 * 1024  # headers, pickled structure, metadata


@dataclass
class CheckpointPaths:
    """The three files of one checkpoint."""

    official: Path
    diffusers: Path
    state: Path
    step: int = 0


def checkpoint_paths(output_dir: str | Path, step: int) -> CheckpointPaths:
    """File names of the checkpoint at ``step``."""
    root = Path(output_dir) / "checkpoints"
    return CheckpointPaths(
        official=root / f"lora_weights_step_{step:05d}.safetensors",
        diffusers=root / f"lora_weights_step_{step:05d}.diffusers.safetensors",
        state=root / f"training_state_step_{step:05d}.pt",
        step=step,
    )


def list_checkpoint_steps(output_dir: str | Path) -> list[int]:
    """Steps that have a complete training state, ascending."""
    root = Path(output_dir) / "checkpoints"
    if not root.is_dir():
        return []
    steps = []
    for path in root.iterdir():
        match = STATE_PATTERN.match(path.name)
        if match and checkpoint_paths(output_dir, int(match.group(1))).official.is_file():
            steps.append(int(match.group(1)))
    return sorted(steps)


def latest_checkpoint_step(output_dir: str | Path) -> int | None:
    """The last step with a complete checkpoint, or None."""
    steps = list_checkpoint_steps(output_dir)
    return steps[-1] if steps else None


def capture_rng_states(generator: torch.Generator) -> dict:
    """Every random stream a step draws from: the trainer's generator, torch's CPU and CUDA RNGs."""
    states = {"generator": generator.get_state(), "torch_cpu": torch.random.get_rng_state()}
    if torch.cuda.is_available():
        states["torch_cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict, generator: torch.Generator) -> None:
    """Inverse of :func:`capture_rng_states`."""
    generator.set_state(states["generator"])
    torch.random.set_rng_state(states["torch_cpu"])
    if "torch_cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["torch_cuda"])


@dataclass
class CheckpointSnapshot:
    """Everything one checkpoint writes, already copied into CPU memory: the training may go on
    (and change its tensors in place) while :func:`write_checkpoint` serialises it."""

    step: int
    weights: LoraWeights
    state: dict
    header: dict[str, str]


def host_copy(value, pinned: bool = False):
    """``value`` (tensors inside dicts, lists, tuples) with every tensor copied to the CPU.

    Device tensors go into pinned memory with non-blocking copies; the caller synchronises once
    (:func:`snapshot_checkpoint` does). CPU tensors are cloned: the optimizer updates its own in place."""
    if isinstance(value, torch.Tensor):
        if value.device.type == "cpu":
            return value.detach().clone()
        out = torch.empty(value.shape, dtype=value.dtype, device="cpu", pin_memory=pinned)
        return out.copy_(value.detach(), non_blocking=pinned)
    if isinstance(value, dict):
        return {key: host_copy(item, pinned) for key, item in value.items()}
    if type(value) in (list, tuple):
        return type(value)(host_copy(item, pinned) for item in value)
    return copy.deepcopy(value)


def snapshot_checkpoint(
    step: int,
    tensors: dict[str, torch.Tensor],
    *,
    rank: int,
    alpha: float,
    optimizer: torch.optim.Optimizer,
    scheduler,
    generator: torch.Generator,
    fingerprint: str,
    metadata: dict[str, str] | None = None,
) -> CheckpointSnapshot:
    """Copy the LoRA ``tensors`` (PEFT's saved names) and the training state off the device, now.

    On CUDA the copies are pinned and non-blocking with one synchronise at the end, so the step
    waits only for the transfer; nothing here touches the disk."""
    pinned = any(t.is_cuda for t in tensors.values())
    host = host_copy({"lora": dict(tensors), "optimizer": optimizer.state_dict()}, pinned)
    if pinned:
        torch.cuda.synchronize()
    weights = LoraWeights(tensors=host["lora"], rank=rank, alpha=alpha)
    state = {
        "format_version": STATE_FORMAT_VERSION,
        "step": step,
        "config_fingerprint": fingerprint,
        "lora": {k: v.float() for k, v in weights.tensors.items()},
        "rank": weights.rank,
        "alpha": weights.alpha,
        "optimizer": host["optimizer"],
        "scheduler": copy.deepcopy(scheduler.state_dict()),
        "rng": capture_rng_states(generator),
    }
    return CheckpointSnapshot(step, weights, state, {"avlora_step": str(step), **(metadata or {})})


def snapshot_adapter(transformer: torch.nn.Module, adapter_name: str, step: int, **state) -> CheckpointSnapshot:
    """:func:`snapshot_checkpoint` of a PEFT-wrapped transformer's adapter ``adapter_name``."""
    from peft.utils import get_peft_model_state_dict

    config = transformer.peft_config[adapter_name]
    tensors = get_peft_model_state_dict(transformer, adapter_name=adapter_name)
    return snapshot_checkpoint(step, tensors, rank=int(config.r), alpha=float(config.lora_alpha), **state)


def write_checkpoint(output_dir: str | Path, snapshot: CheckpointSnapshot) -> CheckpointPaths:
    """Write a snapshot's files (both LoRA layouts, then the training state); safe off the training thread.

    All or nothing: the disk is checked for room for the three files first, and if a write
    fails the files of this step written so far are removed, so no LoRA file is left without
    its state (and no checkpoint row is made for it). A full disk raises
    :class:`core.errors.DiskFull` whatever the writer raised; earlier checkpoints are never touched.
    """
    paths = checkpoint_paths(output_dir, snapshot.step)
    weights, state = snapshot.weights, snapshot.state
    ensure_free(paths.state.parent, checkpoint_bytes(weights, state))
    new_files = [path for path in (paths.official, paths.diffusers, paths.state) if not path.exists()]
    with guard_write(*new_files, at=paths.state.parent):
        save_official(weights, paths.official, snapshot.header)
        save_diffusers(weights, paths.diffusers, snapshot.header)
        atomic_write(paths.state, lambda tmp: torch.save(state, tmp))
    return paths


def save_checkpoint(
    output_dir: str | Path,
    step: int,
    weights: LoraWeights,
    *,
    optimizer: torch.optim.Optimizer,
    scheduler,
    generator: torch.Generator,
    fingerprint: str,
    metadata: dict[str, str] | None = None,
) -> CheckpointPaths:
    """Write the checkpoint at ``step`` now, on this thread (:func:`write_checkpoint` of a snapshot)."""
    snapshot = snapshot_checkpoint(
        step, weights.tensors, rank=weights.rank, alpha=weights.alpha, optimizer=optimizer, scheduler=scheduler,
        generator=generator, fingerprint=fingerprint, metadata=metadata,
    )
    return write_checkpoint(output_dir, snapshot)


def prune_checkpoints(output_dir: str | Path, keep: int) -> None:
    """Delete all but the ``keep`` latest complete checkpoints (``keep`` < 1 keeps them all)."""
    if keep < 1:
        return
    for old in list_checkpoint_steps(output_dir)[:-keep]:
        paths = checkpoint_paths(output_dir, old)
        for path in (paths.state, paths.official, paths.diffusers):
            path.unlink(missing_ok=True)


def checkpoint_bytes(weights: LoraWeights, state: dict) -> int:
    """About what the three files of a checkpoint take: two bf16 LoRA files and the state."""
    bf16_bytes = sum(tensor.numel() * 2 for tensor in weights.tensors.values())
    return 2 * bf16_bytes + payload_bytes(state) + CHECKPOINT_OVERHEAD_BYTES


class ResumeMismatch(ValueError):
    """The saved training state belongs to a different configuration."""


def load_training_state(output_dir: str | Path, step: int, fingerprint: str) -> dict:
    """Read the training state at ``step`` and check it belongs to this configuration."""
    path = checkpoint_paths(output_dir, step).state
    state = torch.load(path, map_location="cpu", weights_only=False)
    if state.get("format_version") != STATE_FORMAT_VERSION:
        raise ResumeMismatch(f"{path} was written by an incompatible version of the trainer.")
    if state["config_fingerprint"] != fingerprint:
        raise ResumeMismatch(
            f"{path} was written with a different training configuration (fingerprint "
            f"{state['config_fingerprint'][:12]} vs {fingerprint[:12]}). Resume with the run's own "
            "config, or start a new run in another output_dir."
        )
    return state


def restore_lora_tensors(transformer: torch.nn.Module, tensors: dict[str, torch.Tensor], adapter_name: str) -> None:
    """Copy saved LoRA tensors back into the adapter's parameters, exactly.

    Keys are PEFT's saved names (``x.lora_A.weight``); the parameters are ``x.lora_A.<adapter>.weight``.
    Raises ResumeMismatch if the two sets of names differ.
    """
    params = {}
    for name, param in transformer.named_parameters():
        for part in ("lora_A", "lora_B"):
            marker = f".{part}.{adapter_name}."
            if marker in name:
                params[name.replace(marker, f".{part}.")] = param
    if set(params) != set(tensors):
        missing = sorted(set(params) - set(tensors))[:3]
        extra = sorted(set(tensors) - set(params))[:3]
        raise ResumeMismatch(f"Saved LoRA tensors do not fit the model (missing {missing}, unknown {extra}).")
    with torch.no_grad():
        for key, param in params.items():
            param.copy_(tensors[key].to(param.dtype))
