"""Training modes in the engine (the rules are :mod:`core.recipe.modes`): the LoRA's layers, the
batch and the noise of each micro-step, and the refusals the linter would make.

- :func:`check_mode` refuses, before anything loads, what :mod:`core.recipe.lint_modes` calls an
  error (``avlora train --force`` skips the linter, not these);
- :func:`lora_targets` turns ``target_modules`` into the layers the mode may train: unchanged
  where the mode keeps every layer, else the exact names of the matched Linear layers of the
  trainable families (so the sides a mode must not touch have no LoRA, hence no keys and no
  gradients);
- :func:`micro_step_inputs` makes one micro-step's batch and noised inputs for the mode.
"""

from __future__ import annotations

import torch

from core.recipe.modes import MODE_AUDIO_VIDEO, narrowed_names, narrows_targets, rules_of, trainable_families
from core.recipe.targets import ALL_LINEAR, name_matches
from worker.engine.step.flow import FlowBatch, FlowInputs, prepare_flow_inputs, stand_in_video


class ModeError(ValueError):
    """A run whose mode contradicts its other settings; the message says what to change."""


def check_mode(config) -> None:
    """Raise :class:`ModeError` for every mode finding the linter calls an error."""
    from core.recipe.architecture import MODEL_CONFIGS
    from core.recipe.lint import LAYOUT_OF_MODEL
    from core.recipe.lint_modes import mode_issues

    errors = [i for i in mode_issues(config, MODEL_CONFIGS[LAYOUT_OF_MODEL[config.model]]) if i.severity == "error"]
    if errors:
        raise ModeError(" ".join(f"[{i.code}] {i.message}" for i in errors))


def _linear_names(transformer: torch.nn.Module) -> list[str]:
    return [name for name, module in transformer.named_modules() if isinstance(module, torch.nn.Linear)]


def lora_targets(transformer: torch.nn.Module, config) -> tuple[list[str] | str, list[str]]:
    """``(target_modules for PEFT, names the mode left out)``. Raises :class:`ModeError` when the
    targets reach no layer the mode may train."""
    targets, training = config.lora.target_modules, config.training
    if not narrows_targets(training):
        return targets, []
    every = isinstance(targets, str) and targets.lower() == ALL_LINEAR
    matched = [n for n in _linear_names(transformer) if every or name_matches(targets, n)]
    kept, dropped = narrowed_names(matched, training)
    if not kept:
        what = "video_frozen" if training.mode == MODE_AUDIO_VIDEO else f"mode {training.mode}"
        raise ModeError(f"{what} trains only {', '.join(trainable_families(training))}; "
                        f"target_modules {targets!r} reach none of those layers.")
    return kept, dropped


def micro_step_inputs(batch: FlowBatch, training, sampler, generator: torch.Generator) -> tuple[FlowBatch, FlowInputs]:
    """One micro-step's batch (the video a stand-in for ``audio_only``) and its noised inputs."""
    role = rules_of(training.mode).video_role
    if role == "absent":
        batch = stand_in_video(batch)
    inputs = prepare_flow_inputs(
        batch, sampler, generator,
        first_frame_p=training.first_frame_conditioning_p,
        independent_audio_timestep=training.independent_audio_timesteps,
        video_role=role,
    )
    return batch, inputs


def mean_or_none(values: list[torch.Tensor]) -> float | None:
    """The mean of kept per-micro-step losses as a float, or None when there were none."""
    return float(torch.stack(values).mean()) if values else None
