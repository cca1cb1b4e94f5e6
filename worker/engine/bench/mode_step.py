"""The training modes in the training benchmark: what ``avlora bench train --mode M`` times.

A mode (:mod:`core.recipe.modes`) changes three things of the step, and the benchmark takes each
from the engine functions the trainer uses (``worker.engine.train.Trainer._train_step``):

- the LoRA's layers: the mode's default targets (or the spec's), narrowed as the trainer narrows
  them (:func:`worker.engine.step.modes.lora_targets`): ``voice`` and ``reference_voice`` put
  no LoRA on the video side, ``audio_only`` none on either cross-modal attention either;
- the step's batch and noised inputs (:func:`worker.engine.step.modes.micro_step_inputs`): the
  video given clean for ``voice``, the one-token stand-in video (cross-modal attentions skipped)
  for ``audio_only``;
- for ``reference_voice``, a reference clip's audio tokens in front of the target's, clean,
  never scored (:func:`worker.engine.step.reference.with_reference`). The benchmark's reference
  is random audio latents (as its clip is): by default as long as the clip itself, what a
  reference clip of the same bucket gives (the pairs take another clip's whole cached audio,
  cut to :data:`core.recipe.reference_pairs.REFERENCE_MAX_S`), or ``reference_seconds``.

Everything else (the levers, the optimizer, the timing, the FLOP count) is the same for every mode.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import torch

from core.recipe.modes import MODE_REFERENCE_VOICE, default_targets, rules_of
from core.recipe.reference_pairs import REFERENCE_MAX_S
from core.recipe.run_config import LoraSettings, TrainingSettings
from worker.engine.data.dataset import AUDIO_LATENTS_PER_SECOND
from worker.engine.step.flow import FlowBatch, FlowInputs, stand_in_video
from worker.engine.step.modes import lora_targets, micro_step_inputs
from worker.engine.step.reference import with_reference


def mode_training(mode: str) -> TrainingSettings:
    """The training settings the benchmark's step runs ``mode`` with: no first-frame
    conditioning (as the benchmark has always timed the step), one noise level for both streams."""
    rules_of(mode)  # ValueError naming the modes for an unknown one
    return TrainingSettings(mode=mode, first_frame_conditioning_p=0.0)


def reference_frames(mode: str, clip_audio_frames: int, reference_seconds: float | None) -> int:
    """Audio latents of the step's reference: 0 outside ``reference_voice``; else
    ``reference_seconds`` of them (None: as many as the clip's own audio), at most
    :data:`REFERENCE_MAX_S`' worth, as :class:`worker.engine.data.reference.ReferenceAudio` cuts
    them. ValueError for an unknown mode, or seconds outside (0, REFERENCE_MAX_S] or given to another mode."""
    rules_of(mode)
    if mode != MODE_REFERENCE_VOICE:
        if reference_seconds is not None:
            raise ValueError(f"--reference-seconds is for --mode {MODE_REFERENCE_VOICE} (mode {mode} has no reference)")
        return 0
    most = int(REFERENCE_MAX_S * AUDIO_LATENTS_PER_SECOND)
    if reference_seconds is None:
        return min(clip_audio_frames, most)
    if not 0.0 < reference_seconds <= REFERENCE_MAX_S:
        raise ValueError(f"--reference-seconds {reference_seconds:g}: a reference lasts more than 0 and at most "
                         f"{REFERENCE_MAX_S:g} s (training cuts longer ones to {REFERENCE_MAX_S:g} s)")
    return max(1, min(round(reference_seconds * AUDIO_LATENTS_PER_SECOND), most))


def mode_lora_targets(transformer: torch.nn.Module, mode: str,
                      target_modules: tuple[str, ...] | None) -> tuple[list[str] | str, list[str]]:
    """``(targets for PEFT, matched layers the mode leaves out)``: ``target_modules`` (None: the
    mode's default targets) narrowed to the layers ``mode`` may train, as the trainer does.
    Raises :class:`worker.engine.step.modes.ModeError` when none is left."""
    targets = list(target_modules) if target_modules else default_targets(mode)
    config = SimpleNamespace(lora=LoraSettings(target_modules=targets), training=mode_training(mode))
    return lora_targets(transformer, config)


@dataclass
class ModeStep:
    """One mode's step on a synthetic clip: its batch (what the transformer gets, before
    :func:`worker.engine.step.flow.ready_for_step`), the inputs of each step, the reference."""

    mode: str
    training: TrainingSettings
    clip: FlowBatch  # the synthetic clip, as a collated training batch
    batch: FlowBatch  # the batch a step of this mode runs (audio_only: the stand-in video)
    reference: torch.Tensor | None  # [B, N_ref, C] packed reference audio tokens (reference_voice)

    @classmethod
    def build(cls, clip: FlowBatch, mode: str, reference_audio_frames: int = 0) -> ModeStep:
        """The step of ``mode`` on ``clip``, with a random reference of ``reference_audio_frames``
        audio latents (reference_voice)."""
        training = mode_training(mode)
        batch = stand_in_video(clip) if rules_of(mode).video_role == "absent" else clip
        reference = None
        if reference_audio_frames:
            generator = torch.Generator().manual_seed(1)
            shape = (clip.audio.shape[0], reference_audio_frames, clip.audio.shape[2])
            reference = torch.randn(*shape, generator=generator).to(device=clip.audio.device, dtype=clip.audio.dtype)
        return cls(mode, training, clip, batch, reference)

    def inputs(self, transformer: torch.nn.Module, sampler, generator: torch.Generator,
               ready: FlowBatch | None = None) -> tuple[FlowBatch, FlowInputs]:
        """One step's ``(batch, inputs)`` as the trainer's micro-step makes them: the clip noised
        as the mode says, then (reference_voice) the reference in front. ``ready``: this step's
        batch already made ready (the benchmark does it once); None: :attr:`batch` as it is."""
        batch, inputs = micro_step_inputs(self.clip, self.training, sampler, generator)
        if ready is not None:
            batch = ready
        if self.reference is not None:
            batch, inputs = with_reference(transformer, batch, inputs, self.reference)
        return batch, inputs

    def token_counts(self) -> dict[str, int]:
        """What one step takes in: video tokens (1 for the stand-in), the target's audio tokens
        (the scored ones), the reference's, and all the audio tokens in."""
        reference = 0 if self.reference is None else self.reference.shape[1]
        audio = self.batch.audio.shape[1]
        return {"video_tokens": self.batch.video.shape[1], "audio_tokens": audio,
                "reference_audio_tokens": reference, "audio_tokens_in": audio + reference}
