"""Video-to-audio (v2a) samples: a training clip's own video, the audio generated from noise.

The direct voice test of a LoRA: the model gets a training clip's real video (its cached,
normalised video latents from ``.precomputed``) and its caption (the cached connector outputs),
and denoises only the audio. Heard beside the clip's real audio, with the LoRA on and off, it
tells whether the LoRA learnt the voice that goes with those pictures.

``LTX2Pipeline`` (diffusers 0.42.1) has no video-conditioned audio generation: it denoises both
streams from noise, and ``LTX2ConditionPipeline`` conditions video frames on pixels, not on whole
clean latents. So this is a small denoising loop on the transformer the engine already drives,
following those pipelines step for step:

- the schedule: a copy of ``pipe.scheduler`` set up as ``LTX2Pipeline.__call__`` sets its audio
  scheduler (``sigmas = linspace(1, 1/N, N)``, the shift ``mu`` from the video token count,
  ``retrieve_timesteps``), stepped with ``scheduler.step`` on the packed audio latents;
- the transformer call: :func:`worker.engine.step.flow.run_transformer`, the training step's call
  (the one its first-frame conditioning uses), with per-token video timesteps all 0 (every video
  token is clean conditioning, as ``LTX2ConditionPipeline`` zeroes the timesteps of its
  conditioning tokens), the video ``sigma`` 0, and ``audio_timestep`` / ``audio_sigma`` at the
  current noise level; ``use_cross_timestep`` as :func:`~worker.engine.step.flow.uses_cross_timestep`
  decides (on for LTX-2.3, whose audio cross-attention modulation then sees the clean video's 0);
- the video latents are passed unchanged at every step and never stepped: they stay exactly as
  given;
- classifier-free guidance on the audio as the pipelines do it: in x0 space, ``x0 + (scale - 1) *
  (x0 - x0_uncond)`` with the negative prompt's connector outputs, then ``rescale_noise_cfg``
  with the pipelines' default ``audio_guidance_rescale`` 0.7. Their STG and modality-isolation
  guidance are not applied (the validation samples turn STG off too);
- the audio is decoded as :func:`worker.engine.data.latents.decode_audio` decodes cached latents
  (audio VAE, then vocoder); the picture is the clip's cached video latents decoded by the video
  VAE (:func:`~worker.engine.data.latents.decode_video`), decoded once per clip.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace

import numpy as np
import torch

from worker.engine.data.dataset import CachedSample, collate
from worker.engine.data.latents import decode_audio, decode_video
from worker.engine.sampling import GeneratedSample
from worker.engine.step.flow import FlowBatch, base_dtype, run_transformer, with_rope_coords

AUDIO_GUIDANCE_RESCALE = 0.7  # LTX2Pipeline.__call__'s default audio_guidance_rescale


@dataclass
class V2ASpec:
    """How to sample: seed, denoising steps, audio guidance scale (1 turns guidance off)."""

    seed: int = 42
    num_inference_steps: int = 30
    audio_guidance_scale: float = 7.0
    guidance_rescale: float = AUDIO_GUIDANCE_RESCALE


def schedule(scheduler, steps: int, video_tokens: int, device):
    """A fresh copy of ``scheduler`` set up as ``LTX2Pipeline`` sets its audio scheduler; returns it
    and its timesteps."""
    from diffusers.pipelines.ltx2.pipeline_ltx2 import calculate_shift, retrieve_timesteps

    scheduler = copy.deepcopy(scheduler)
    sigmas = np.linspace(1.0, 1 / steps, steps)
    mu = calculate_shift(
        video_tokens,
        scheduler.config.get("base_image_seq_len", 1024),
        scheduler.config.get("max_image_seq_len", 4096),
        scheduler.config.get("base_shift", 0.95),
        scheduler.config.get("max_shift", 2.05),
    )
    timesteps, _ = retrieve_timesteps(scheduler, steps, device, None, sigmas=sigmas, mu=mu)
    scheduler.set_begin_index(0)
    return scheduler, timesteps


def _audio_x0(transformer, batch: FlowBatch, audio: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """The transformer's clean-audio estimate at noise level ``sigma`` with the video clean."""
    bsz, n_video, _ = batch.video.shape
    video_timesteps = torch.zeros(bsz, n_video, device=audio.device)
    audio_sigma = sigma.expand(bsz).to(audio.device, torch.float32)
    _, velocity = run_transformer(transformer, batch, batch.video, audio, video_timesteps,
                                  torch.zeros(bsz, device=audio.device), audio_sigma)
    return audio - velocity.float() * sigma


@torch.no_grad()
def denoise_audio(transformer, scheduler, batch: FlowBatch, spec: V2ASpec, *, audio_width: int,
                  negative: FlowBatch | None = None, on_step=None) -> torch.Tensor:
    """Packed, normalised audio latents ``[1, batch.audio_frames, audio_width]`` denoised from
    noise (``spec.seed``) next to the clean video of ``batch``.

    ``negative``: ``batch`` with the negative prompt's text, for guidance (``None``: none).
    ``on_step(index, sigma, video_tokens, audio_tokens)`` sees the transformer's inputs per step.
    """
    device = batch.video.device
    scheduler, timesteps = schedule(scheduler, spec.num_inference_steps, batch.video.shape[1], device)
    generator = torch.Generator(device="cpu").manual_seed(spec.seed)
    audio = torch.randn((batch.video.shape[0], batch.audio_frames, audio_width), generator=generator)
    audio = audio.to(device)
    guided = negative is not None and spec.audio_guidance_scale > 1.0
    for index, t in enumerate(timesteps):
        sigma = scheduler.sigmas[index].to(device, torch.float32)
        if on_step is not None:
            on_step(index, sigma, batch.video, audio)
        x0 = _audio_x0(transformer, batch, audio, sigma)
        if guided:
            from diffusers.pipelines.ltx2.pipeline_ltx2 import rescale_noise_cfg

            uncond = _audio_x0(transformer, negative, audio, sigma)
            cfg = x0 + (spec.audio_guidance_scale - 1) * (x0 - uncond)
            x0 = rescale_noise_cfg(cfg, x0, guidance_rescale=spec.guidance_rescale) if spec.guidance_rescale > 0 else cfg
        velocity = (audio - x0) / sigma
        audio = scheduler.step(velocity, t, audio, return_dict=False)[0]
    return audio


class V2ASampler:
    """v2a samples of training clips for one pipeline; each clip's picture is decoded once.

    ``negative_text``: the negative prompt's Gemma features and mask (``PromptEmbedding`` of the
    run's prompt cache), run through ``pipe.connectors`` as the pipeline does; ``None``: no guidance.
    """

    def __init__(self, pipe, spec: V2ASpec, negative_text=None):
        self.pipe, self.spec = pipe, spec
        self.transformer = pipe.transformer
        self.device = next(self.transformer.parameters()).device
        self.dtype = base_dtype(self.transformer)
        self._negative = self._connect(negative_text) if negative_text is not None else None
        self._frames: dict[str, np.ndarray] = {}

    def _connect(self, text) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        connectors = self.pipe.connectors
        param = next(connectors.parameters())
        with torch.no_grad():
            return connectors(text.embeds.to(param.device), text.mask.to(param.device), padding_side="left")

    def batch(self, clip: CachedSample) -> tuple[FlowBatch, FlowBatch | None]:
        """The clip as a model-ready batch (clean video, its caption), and the same with the negative text."""
        batch = with_rope_coords(self.transformer, collate([clip], self.device, self.dtype))
        if self._negative is None:
            return batch, None
        video_text, audio_text, mask = (t.to(self.device) for t in self._negative)
        return batch, replace(batch, video_text=video_text, audio_text=audio_text, text_mask=mask)

    def audio_width(self, clip: CachedSample) -> int:
        """Packed audio token width: the cached audio's ``channels x mel bins``, else the audio VAE's."""
        if clip.audio is not None:
            return clip.audio.shape[0] * clip.audio.shape[2]
        vae = self.pipe.audio_vae
        return vae.config.latent_channels * (vae.config.mel_bins // self.pipe.audio_vae_mel_compression_ratio)

    def audio_latents(self, clip: CachedSample, on_step=None) -> torch.Tensor:
        """The generated audio as normalised latents ``[C, T, M]`` (what ``decode_audio`` takes)."""
        from diffusers import LTX2Pipeline

        batch, negative = self.batch(clip)
        width = self.audio_width(clip)
        tokens = denoise_audio(self.transformer, self.pipe.scheduler, batch, self.spec, audio_width=width,
                               negative=negative, on_step=on_step)
        mel_bins = width // self.pipe.audio_vae.config.latent_channels
        return LTX2Pipeline._unpack_audio_latents(tokens, batch.audio_frames, num_mel_bins=mel_bins)[0]

    def frames(self, clip: CachedSample) -> np.ndarray:
        """The clip's picture: its cached video latents decoded, uint8 ``[F, H, W, 3]`` (once per clip)."""
        if clip.name not in self._frames:
            pixels = decode_video(self.pipe, clip.video)  # [3, F, H, W] in [-1, 1]
            frames = ((pixels.permute(1, 2, 3, 0).numpy() + 1.0) * 127.5 + 0.5).clip(0, 255)
            self._frames[clip.name] = frames.astype(np.uint8)
        return self._frames[clip.name]

    def generate(self, clip: CachedSample) -> GeneratedSample:
        """One v2a sample of ``clip``: its decoded picture with the generated audio."""
        waveform, rate = decode_audio(self.pipe, self.audio_latents(clip))
        return GeneratedSample(frames=self.frames(clip), audio=waveform.numpy(), sample_rate=rate, fps=clip.fps)
