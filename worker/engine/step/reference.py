"""The ``reference_voice`` step: a reference clip's audio in context, in front of the target's.

In-context conditioning as the official trainer's reference condition does it for audio (its
flexible strategy: condition tokens concatenated in front of the target sequence, clean, at
timestep 0, outside the loss) with the reference placed in time as the official Dub-It
pipeline places its reference audio (RoPE positions shifted to end one latent step, 40 ms,
before the target's start, so reference and target never share a position). diffusers' LTX-2
transformer takes this as it is: ``audio_timestep`` may be per token (``[B, N]``, embedded per
token like the video's) and ``audio_coords`` may be any positions. The reference tokens get no
noise and no target; :func:`worker.engine.step.flow.compute_step_losses` scores the last
``N_target`` audio tokens only.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from worker.engine.step.flow import FlowBatch, FlowInputs

REFERENCE_GAP_S = 0.04  # one audio latent step: the reference ends this long before the target starts


def reference_coords(transformer: torch.nn.Module, batch_size: int, frames: int, device) -> torch.Tensor:
    """``[B, 1, frames, 2]`` RoPE positions (seconds) of a reference of ``frames`` audio latents,
    shifted so it ends :data:`REFERENCE_GAP_S` before 0."""
    coords = transformer.audio_rope.prepare_audio_coords(batch_size, frames, device)
    return coords - (coords[..., 1].amax() + REFERENCE_GAP_S)


def with_reference(transformer: torch.nn.Module, batch: FlowBatch, inputs: FlowInputs,
                   reference: torch.Tensor) -> tuple[FlowBatch, FlowInputs]:
    """``batch`` and ``inputs`` with the packed ``reference`` audio tokens (``[B, N_ref, C]``) in
    front of the target's audio: clean, timestep 0, positions before the target's."""
    bsz, n_ref, _ = reference.shape
    device = inputs.noisy_audio.device
    n_target = inputs.noisy_audio.shape[1]
    target_coords = batch.audio_coords
    if target_coords is None:
        target_coords = transformer.audio_rope.prepare_audio_coords(bsz, batch.audio_frames, device)
    coords = torch.cat([reference_coords(transformer, bsz, n_ref, device), target_coords], dim=2)
    target_steps = inputs.audio_sigma.view(-1, 1).expand(bsz, n_target) if inputs.audio_timesteps is None \
        else inputs.audio_timesteps
    timesteps = torch.cat([torch.zeros(bsz, n_ref, device=device, dtype=target_steps.dtype), target_steps], dim=1)
    noisy = torch.cat([reference.to(device=device, dtype=inputs.noisy_audio.dtype), inputs.noisy_audio], dim=1)
    return replace(batch, audio_coords=coords), replace(inputs, noisy_audio=noisy, audio_timesteps=timesteps)
