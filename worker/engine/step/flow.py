"""One rectified-flow training step for the LTX-2 audio-video transformer (the official recipe).

For clean latents x0 and Gaussian noise at noise level s in [0, 1]:
``x_t = (1 - s) * x0 + s * noise``; the transformer predicts the velocity ``noise - x0``; the loss
is the mean squared error, computed separately for video and audio.

First-frame conditioning: with probability ``first_frame_p`` per sample, the tokens of the first
latent frame stay clean, get per-token timestep 0 and are left out of the video loss.

Training modes (:mod:`core.recipe.modes`): with ``video_role="clean"`` (``voice``) every video
token is given clean (timestep and sigma 0) and only the audio is noised and scored; with
``"absent"`` (``audio_only``) the batch's video is a one-token stand-in (:func:`stand_in_video`)
and the transformer runs with ``isolate_modalities=True``, so the audio sees no video at all.

Timesteps go to the transformer as ``s * 1000``: per video token as ``timestep``, per sample as
``audio_timestep``, and, for LTX-2.3's prompt modulation, as ``sigma`` / ``audio_sigma``
(``use_cross_timestep=True``, as ``LTX2Pipeline`` calls it for 2.3).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from worker.engine.step.levers import text_mask_or_none
from worker.engine.step.timesteps import ShiftedLogitNormalSampler, UniformSampler

TIMESTEP_SCALE = 1000.0


@dataclass
class FlowBatch:
    """Packed, model-ready latents of one batch (all tensors on the training device)."""

    video: torch.Tensor  # [B, N_video, 128] clean latent tokens
    audio: torch.Tensor | None  # [B, N_audio, C_audio] clean latent tokens, or None (video only)
    video_text: torch.Tensor  # [B, L, D_video] connector output for the video stream
    audio_text: torch.Tensor  # [B, L, D_audio] connector output for the audio stream
    text_mask: torch.Tensor  # [B, L]
    latent_frames: int
    latent_height: int
    latent_width: int
    fps: float
    audio_frames: int
    audio_channels: int = 128  # packed audio token width (8 latent channels x 16 mel bins)
    # RoPE patch coordinates, computed ahead of the forward by :func:`with_rope_coords` (None: the
    # transformer computes them itself, which copies small host tensors to the device each call)
    video_coords: torch.Tensor | None = None
    audio_coords: torch.Tensor | None = None
    isolated: bool = False  # the cross-modal attentions are skipped (audio_only: the video is a stand-in)


@dataclass
class FlowInputs:
    """Noised inputs, targets and masks of one step."""

    noisy_video: torch.Tensor
    noisy_audio: torch.Tensor  # noised audio latents, or pure noise when training video only
    video_target: torch.Tensor | None  # None: the video is conditioning, not scored
    audio_target: torch.Tensor | None
    video_timesteps: torch.Tensor  # [B, N_video], s in [0, 1] (0 on conditioning tokens)
    video_sigma: torch.Tensor  # [B]
    audio_sigma: torch.Tensor  # [B]
    video_loss_mask: torch.Tensor | None  # [B, N_video] bool; None when the video is not scored
    # [B, N_audio_in] per audio token (reference_voice: 0 on the clean reference tokens in front of
    # the target's); None: ``audio_sigma`` for every token. The audio target covers the last tokens.
    audio_timesteps: torch.Tensor | None = None
    # 0-dim, a run on several processes with a video loss mask: this rank's share of the global
    # batch's scored video tokens x the ranks, so the ranks' mean loss is the global batch's masked
    # mean (as one process computes it) rather than a mean of per-rank means. None: 1.
    video_loss_weight: torch.Tensor | None = None


@dataclass
class StepLosses:
    """The losses of one step: ``total`` carries the graph; ``video`` / ``audio`` are floats.

    The per-modality losses are kept as detached tensors and read as floats only when asked
    for, so a training step does not wait for the device before its backward is queued.
    """

    total: torch.Tensor
    video_loss: torch.Tensor | None
    audio_loss: torch.Tensor | None

    @property
    def video(self) -> float | None:
        """The video loss as a float (waits for the device), or None when the video is not scored."""
        return None if self.video_loss is None else float(self.video_loss)

    @property
    def audio(self) -> float | None:
        """The audio loss as a float, or None when no audio loss was computed."""
        return None if self.audio_loss is None else float(self.audio_loss)


def prepare_flow_inputs(
    batch: FlowBatch,
    sampler: ShiftedLogitNormalSampler | UniformSampler,
    generator: torch.Generator,
    *,
    first_frame_p: float = 0.0,
    independent_audio_timestep: bool = False,
    video_role: str = "denoised",
) -> FlowInputs:
    """Draw noise levels and noise, apply first-frame conditioning, build targets.

    ``video_role``: ``denoised`` (both streams noised), or ``clean`` / ``absent`` (the video given
    as it is at timestep 0, only the audio noised: :func:`audio_flow_inputs`).
    All randomness comes from ``generator`` (a CPU generator), so a run is reproducible and a
    resumed run continues the same random stream.
    """
    if video_role != "denoised":
        return audio_flow_inputs(batch, sampler, generator)
    video = batch.video
    bsz, n_video, _ = video.shape
    device = video.device
    video_sigma = sampler.sample(bsz, n_video, generator=generator).to(device)
    video_noise = torch.randn(video.shape, generator=generator).to(device=device, dtype=video.dtype)
    s = video_sigma.view(-1, 1, 1).to(video.dtype)
    noisy_video = (1 - s) * video + s * video_noise
    video_target = video_noise - video
    video_timesteps = video_sigma.view(-1, 1).expand(bsz, n_video).clone()
    loss_mask = torch.ones(bsz, n_video, dtype=torch.bool, device=device)

    conditioned = torch.rand(bsz, generator=generator).to(device) < first_frame_p
    if conditioned.any():
        tokens_per_frame = batch.latent_height * batch.latent_width
        first = torch.zeros(bsz, n_video, dtype=torch.bool, device=device)
        first[:, :tokens_per_frame] = True
        first &= conditioned.view(-1, 1)
        noisy_video = torch.where(first.unsqueeze(-1), video, noisy_video)
        video_timesteps = video_timesteps.masked_fill(first, 0.0)
        loss_mask &= ~first

    noisy_audio, audio_target, audio_sigma = _noised_audio(batch, sampler, generator, video_sigma,
                                                           independent_audio_timestep)
    return FlowInputs(
        noisy_video=noisy_video,
        noisy_audio=noisy_audio,
        video_target=video_target,
        audio_target=audio_target,
        video_timesteps=video_timesteps,
        video_sigma=video_sigma,
        audio_sigma=audio_sigma,
        video_loss_mask=loss_mask,
    )


def _noised_audio(batch: FlowBatch, sampler, generator: torch.Generator, video_sigma: torch.Tensor,
                  independent: bool) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """``(noisy audio, audio target or None, audio noise level)`` of a step that denoises both streams."""
    bsz, device = video_sigma.shape[0], batch.video.device
    if batch.audio is None:
        # Video-only training: the audio stream still runs (the model needs it) on pure noise at
        # noise level 1, and contributes no loss.
        shape = (bsz, batch.audio_frames, batch.audio_channels)
        noise = torch.randn(shape, generator=generator).to(device=device, dtype=batch.video.dtype)
        return noise, None, torch.ones_like(video_sigma)
    audio = batch.audio
    audio_sigma = video_sigma
    if independent:
        audio_sigma = sampler.sample(bsz, audio.shape[1], generator=generator).to(device)
    audio_noise = torch.randn(audio.shape, generator=generator).to(device=device, dtype=audio.dtype)
    sa = audio_sigma.view(-1, 1, 1).to(audio.dtype)
    return (1 - sa) * audio + sa * audio_noise, audio_noise - audio, audio_sigma


def audio_flow_inputs(batch: FlowBatch, sampler, generator: torch.Generator) -> FlowInputs:
    """Inputs of a step that scores the audio alone: the video tokens clean at timestep 0 (no
    target, no loss), the audio noised at a level drawn for its own token count."""
    video, audio = batch.video, batch.audio
    if audio is None:
        raise ValueError("this training mode learns the audio, but the batch has no audio latents")
    bsz, n_video, _ = video.shape
    device = video.device
    audio_sigma = sampler.sample(bsz, audio.shape[1], generator=generator).to(device)
    audio_noise = torch.randn(audio.shape, generator=generator).to(device=device, dtype=audio.dtype)
    sa = audio_sigma.view(-1, 1, 1).to(audio.dtype)
    return FlowInputs(
        noisy_video=video,
        noisy_audio=(1 - sa) * audio + sa * audio_noise,
        video_target=None,
        audio_target=audio_noise - audio,
        video_timesteps=torch.zeros(bsz, n_video, device=device),
        video_sigma=torch.zeros(bsz, device=device),
        audio_sigma=audio_sigma,
        video_loss_mask=None,
    )


def stand_in_video(batch: FlowBatch) -> FlowBatch:
    """``batch`` for a step without a picture (``audio_only``): the video stream gets one zero
    token (a 1x1x1 latent) and the cross-modal attentions are skipped (``isolated``), so the audio
    stream computes what the official audio-only model computes (diffusers' transformer always
    takes a video input; with ``isolate_modalities`` nothing of it reaches the audio)."""
    bsz, _, channels = batch.video.shape
    return replace(batch, video=batch.video.new_zeros(bsz, 1, channels), latent_frames=1, latent_height=1,
                   latent_width=1, video_coords=None, isolated=True)


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error over channels, then over the tokens where ``mask`` is True."""
    per_token = (pred.float() - target.float()).pow(2).mean(dim=-1)
    if mask is None:
        return per_token.mean()
    weights = mask.to(per_token.dtype)
    return (per_token * weights).sum() / weights.sum().clamp(min=1.0)


def uses_cross_timestep(transformer: torch.nn.Module) -> bool:
    """True for LTX-2.3-style transformers (prompt / cross-attention modulation)."""
    config = transformer.config
    return bool(getattr(config, "cross_attn_mod", False) or getattr(config, "audio_cross_attn_mod", False))


def with_rope_coords(transformer: torch.nn.Module, batch: FlowBatch) -> FlowBatch:
    """``batch`` with its RoPE patch coordinates filled in, as the transformer would compute them.

    The coordinates depend only on the clip's shape and fps. Computed here, outside the forward,
    the forward issues no host-to-device copies, which a CUDA graph capture of it requires
    (:mod:`worker.engine.step.graphed`).
    """
    device, bsz = batch.video.device, batch.video.shape[0]
    video_coords = transformer.rope.prepare_video_coords(
        bsz, batch.latent_frames, batch.latent_height, batch.latent_width, device, fps=batch.fps
    )
    audio_coords = transformer.audio_rope.prepare_audio_coords(bsz, batch.audio_frames, device)
    return replace(batch, video_coords=video_coords, audio_coords=audio_coords)


def base_dtype(transformer: torch.nn.Module) -> torch.dtype:
    """The dtype of the transformer's own (non-LoRA) weights, which its inputs must match."""
    return next(p.dtype for n, p in transformer.named_parameters() if "lora_" not in n)


def run_transformer(
    transformer: torch.nn.Module,
    batch: FlowBatch,
    noisy_video: torch.Tensor,
    noisy_audio: torch.Tensor,
    video_timesteps: torch.Tensor,
    video_sigma: torch.Tensor,
    audio_sigma: torch.Tensor,
    *,
    drop_all_ones_mask: bool = True,
    audio_timesteps: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Call the transformer the way ``LTX2Pipeline`` does; returns (video, audio) velocity.

    ``drop_all_ones_mask``: pass an all-ones text mask as ``None`` (the same attention, but SDPA
    may then use its flash kernel; see :mod:`worker.engine.step.levers`).
    """
    dtype = base_dtype(transformer)
    text_mask = text_mask_or_none(batch.text_mask) if drop_all_ones_mask else batch.text_mask
    video_pred, audio_pred = transformer(
        hidden_states=noisy_video.to(dtype),
        audio_hidden_states=noisy_audio.to(dtype),
        encoder_hidden_states=batch.video_text.to(dtype),
        audio_encoder_hidden_states=batch.audio_text.to(dtype),
        timestep=video_timesteps * TIMESTEP_SCALE,
        audio_timestep=(audio_sigma if audio_timesteps is None else audio_timesteps) * TIMESTEP_SCALE,
        sigma=video_sigma * TIMESTEP_SCALE,
        audio_sigma=audio_sigma * TIMESTEP_SCALE,
        encoder_attention_mask=text_mask,
        audio_encoder_attention_mask=text_mask,
        num_frames=batch.latent_frames,
        height=batch.latent_height,
        width=batch.latent_width,
        fps=batch.fps,
        audio_num_frames=batch.audio_frames,
        video_coords=batch.video_coords,
        audio_coords=batch.audio_coords,
        isolate_modalities=batch.isolated,
        use_cross_timestep=uses_cross_timestep(transformer),
        return_dict=False,
    )
    return video_pred, audio_pred


def compute_step_losses(
    transformer: torch.nn.Module,
    batch: FlowBatch,
    inputs: FlowInputs,
    *,
    audio_loss_weight: float = 1.0,
    drop_all_ones_mask: bool = True,
) -> StepLosses:
    """Forward pass and the separate video / audio losses (total = video + weight * audio).

    Without audio latents (video-only training) ``audio`` is None and only the video loss counts;
    without a video target (``voice``, ``audio_only``) the audio loss is the total.
    """
    video_pred, audio_pred = run_transformer(
        transformer,
        batch,
        inputs.noisy_video,
        inputs.noisy_audio,
        inputs.video_timesteps,
        inputs.video_sigma,
        inputs.audio_sigma,
        drop_all_ones_mask=drop_all_ones_mask,
        audio_timesteps=inputs.audio_timesteps,
    )
    if inputs.audio_target is not None:  # tokens in front of the target's (a reference) are not scored
        audio_pred = audio_pred[:, audio_pred.shape[1] - inputs.audio_target.shape[1]:]
    if inputs.video_target is None:
        audio_loss = masked_mse(audio_pred, inputs.audio_target)
        return StepLosses(total=audio_loss, video_loss=None, audio_loss=audio_loss.detach())
    video_loss = masked_mse(video_pred, inputs.video_target, inputs.video_loss_mask)
    if inputs.video_loss_weight is not None:
        video_loss = video_loss * inputs.video_loss_weight
    total = video_loss
    audio_loss = None
    if inputs.audio_target is not None:
        audio_loss = masked_mse(audio_pred, inputs.audio_target)
        total = total + audio_loss_weight * audio_loss
        audio_loss = audio_loss.detach()
    return StepLosses(total=total, video_loss=video_loss.detach(), audio_loss=audio_loss)


def ready_for_step(transformer: torch.nn.Module, batch: FlowBatch, *, drop_all_ones_mask: bool = True) -> FlowBatch:
    """``batch`` with everything the forward would otherwise work out on the host done now: the
    RoPE coordinates (:func:`with_rope_coords`) and the all-ones text mask dropped (read once,
    here). A batch made ready runs the same forward with no host-to-device copy or device read
    inside it, which a CUDA graph capture needs (:mod:`worker.engine.step.graphed`)."""
    batch = with_rope_coords(transformer, batch)
    if drop_all_ones_mask:
        batch = replace(batch, text_mask=text_mask_or_none(batch.text_mask))
    return batch


def forward_backward(
    transformer: torch.nn.Module,
    batch: FlowBatch,
    inputs: FlowInputs,
    *,
    audio_loss_weight: float = 1.0,
    loss_scale: float = 1.0,
    weight_cast=None,
) -> StepLosses:
    """One step's forward, losses and backward (of ``loss_scale`` x the total, e.g. 1 / the
    gradient accumulation steps); returns the losses. ``weight_cast``: a zero-argument callable
    returning the context the forward and backward run in (the cast-once lever), or None.

    Expects a batch made ready by :func:`ready_for_step`: the text mask is used as it is.
    """
    import contextlib

    with weight_cast() if weight_cast is not None else contextlib.nullcontext():
        losses = compute_step_losses(transformer, batch, inputs, audio_loss_weight=audio_loss_weight,
                                     drop_all_ones_mask=False)
        (losses.total * loss_scale if loss_scale != 1.0 else losses.total).backward()
    return losses


@torch.no_grad()
def fixed_noise_losses(
    transformer: torch.nn.Module,
    batch: FlowBatch,
    *,
    noise_levels: tuple[float, ...] = (0.1, 0.3, 0.5, 0.7, 0.9),
    seed: int = 0,
    video_role: str = "denoised",
) -> tuple[float | None, float | None]:
    """Mean video and audio loss over fixed noise levels and fixed noise (no first-frame condition).

    Unlike the training loss, which jumps with the randomly drawn noise level, this is
    comparable between steps: a held-out measure of how well the model fits ``batch``.
    ``video_role`` as in :func:`prepare_flow_inputs` (the video loss is then None unless denoised);
    with ``absent`` give the batch :func:`stand_in_video` made.
    """
    generator = torch.Generator().manual_seed(seed)
    videos, audios = [], []
    for level in noise_levels:
        inputs = prepare_flow_inputs(batch, _FixedLevelSampler(level), generator, first_frame_p=0.0,
                                     video_role=video_role)
        losses = compute_step_losses(transformer, batch, inputs)
        if losses.video is not None:
            videos.append(losses.video)
        if losses.audio is not None:
            audios.append(losses.audio)
    return (sum(videos) / len(videos) if videos else None), (sum(audios) / len(audios) if audios else None)


class _FixedLevelSampler:
    """A 'sampler' that always returns one noise level (for :func:`fixed_noise_losses`)."""

    def __init__(self, level: float):
        self.level = level

    def sample(self, batch_size: int, seq_length: int, *, generator=None, device=None) -> torch.Tensor:  # noqa: ARG002
        return torch.full((batch_size,), self.level, device=device)
