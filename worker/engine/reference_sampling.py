"""Text-prompt samples with a reference clip's voice in context: the ``reference_voice`` samples.

A ``reference_voice`` LoRA learns to speak in the voice of a reference clip given in context
(:mod:`worker.engine.step.reference`). Its samples must feed the reference exactly as training
does, which ``LTX2Pipeline`` (diffusers 0.42.1) cannot: it has no audio conditioning. So, like
:mod:`worker.engine.v2a`, this is a small denoising loop over the transformer the engine drives,
here denoising both streams from noise as ``LTX2Pipeline.__call__`` does, step for step:

- the noise: ``pipe.prepare_latents`` / ``pipe.prepare_audio_latents`` from a CPU generator seeded
  with ``spec.seed`` (video first, then audio, as the pipeline draws them), the sizes the pipeline
  works out (``(frames - 1) // 8 + 1`` latent frames, the audio's latent frames from the duration);
- the schedule: :func:`worker.engine.v2a.schedule` for each stream (the same sigmas and shift);
- the transformer call: the training step's (:func:`worker.engine.step.flow.run_transformer`) with
  the reference put in front of the audio by the training's own function,
  :func:`worker.engine.step.reference.with_reference`: clean, timestep 0, positions ending
  :data:`~worker.engine.step.reference.REFERENCE_GAP_S` before the target's. The reference tokens'
  prediction is dropped: only the last ``N_target`` audio tokens are stepped and decoded, so the
  output is as long as a plain sample's;
- guidance in x0 space on both streams as the pipeline's defaults have it: classifier-free with
  the negative prompt, and modality isolation (a pass with the cross-modal attentions off, at the
  spec's ``modality_scale``, 3 by default; none at 1), then ``rescale_noise_cfg`` at 0.7; the
  reference is in context in every pass; STG off, as the validation samples have it;
- identity guidance as ComfyUI's ``LTXVReferenceAudio`` node applies it: with a reference and
  ``spec.identity_guidance_scale`` above 0, one more pass without the reference each step, and the
  guided estimate plus ``scale x (conditional with reference - conditional without)`` on both streams;
- decoding as the pipeline does with its defaults (decode timestep 0, no decode noise):
  :func:`worker.engine.data.latents.decode_video` and :func:`~worker.engine.data.latents.decode_audio`.

Without a reference the same loop makes a plain text-to-audio-video sample.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from core.recipe.reference_pairs import REFERENCE_MAX_S
from worker.engine.data.dataset import AUDIO_LATENTS_PER_SECOND
from worker.engine.data.latents import decode_audio, decode_video
from worker.engine.sampling import GeneratedSample, SampleSpec
from worker.engine.step.flow import FlowBatch, FlowInputs, base_dtype, run_transformer, with_rope_coords
from worker.engine.step.reference import with_reference
from worker.engine.v2a import AUDIO_GUIDANCE_RESCALE, schedule

VIDEO_GUIDANCE_RESCALE = 0.7  # LTX2Pipeline.__call__'s default guidance_rescale


def reference_tokens(audio: torch.Tensor) -> torch.Tensor:
    """A cached clip's normalised audio latents ``[C, T, M]`` as one reference: packed tokens
    ``[1, N, C * M]``, cut to :data:`REFERENCE_MAX_S` as training cuts them."""
    from diffusers import LTX2Pipeline

    frames = min(audio.shape[1], int(REFERENCE_MAX_S * AUDIO_LATENTS_PER_SECOND))
    return LTX2Pipeline._pack_audio_latents(audio[:, :frames].unsqueeze(0).float())


def _guided(x0: torch.Tensor, uncond: torch.Tensor | None, isolated: torch.Tensor | None, scale: float,
            rescale: float, modality_scale: float) -> torch.Tensor:
    """The pipeline's guidance of one stream in x0 space: classifier-free (``uncond`` None: none)
    plus modality isolation (``isolated`` None: none), then rescaled towards ``x0``."""
    from diffusers.pipelines.ltx2.pipeline_ltx2 import rescale_noise_cfg

    guided = x0 if isolated is None else x0 + (modality_scale - 1) * (x0 - isolated)
    if uncond is not None:
        guided = guided + (scale - 1) * (x0 - uncond)
    return rescale_noise_cfg(guided, x0, guidance_rescale=rescale) if rescale > 0 else guided


class ReferenceSampler:
    """Text-prompt samples of one pipeline with an optional reference clip in context.

    ``prompt_cache``: a :class:`worker.engine.data.prompt_cache.PromptCache` holding the prompts
    and the negative prompt; ``None``: the pipeline's text encoder encodes them per sample.
    """

    def __init__(self, pipe, prompt_cache=None):
        self.pipe, self.prompt_cache = pipe, prompt_cache
        self.transformer = pipe.transformer
        self.device = next(self.transformer.parameters()).device
        self.dtype = base_dtype(self.transformer)

    def _text(self, text: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``text`` through ``pipe.connectors``: (video text, audio text, mask) on the device."""
        cache = self.prompt_cache
        if cache is None or text not in cache:
            from worker.engine.data.prompt_cache import encode_prompts

            cache = encode_prompts(self.pipe, [text])
        embedding = cache.get(text)
        connectors = self.pipe.connectors
        param = next(connectors.parameters())
        with torch.no_grad():
            outputs = connectors(embedding.embeds.to(param.device), embedding.mask.to(param.device),
                                 padding_side="left")
        return tuple(t.to(self.device) for t in outputs)

    def _batch(self, spec: SampleSpec, text: str, audio_width: int) -> FlowBatch:
        pipe = self.pipe
        video_text, audio_text, mask = self._text(text)
        duration_s = spec.num_frames / spec.frame_rate
        per_second = pipe.audio_sampling_rate / pipe.audio_hop_length / float(pipe.audio_vae_temporal_compression_ratio)
        batch = FlowBatch(
            video=torch.empty(1, 0, self.transformer.config.in_channels, device=self.device), audio=None,
            video_text=video_text, audio_text=audio_text, text_mask=mask,
            latent_frames=(spec.num_frames - 1) // pipe.vae_temporal_compression_ratio + 1,
            latent_height=spec.height // pipe.vae_spatial_compression_ratio,
            latent_width=spec.width // pipe.vae_spatial_compression_ratio,
            fps=spec.frame_rate, audio_frames=round(duration_s * per_second), audio_channels=audio_width)
        return with_rope_coords(self.transformer, batch)

    def _noise(self, spec: SampleSpec, batch: FlowBatch) -> tuple[torch.Tensor, torch.Tensor]:
        pipe = self.pipe
        generator = torch.Generator(device="cpu").manual_seed(spec.seed)
        video = pipe.prepare_latents(1, self.transformer.config.in_channels, spec.height, spec.width, spec.num_frames,
                                     0.0, torch.float32, self.device, generator)
        audio = pipe.prepare_audio_latents(1, num_channels_latents=pipe.audio_vae.config.latent_channels,
                                           audio_latent_length=batch.audio_frames,
                                           num_mel_bins=pipe.audio_vae.config.mel_bins, noise_scale=0.0,
                                           dtype=torch.float32, device=self.device, generator=generator)
        return video, audio

    def _x0(self, batch: FlowBatch, video, audio, sigma, reference) -> tuple[torch.Tensor, torch.Tensor]:
        """Both streams' clean estimates at noise level ``sigma``, the reference in context."""
        n_video, n_audio = video.shape[1], audio.shape[1]
        level = sigma.view(1).to(self.device, torch.float32)
        inputs = FlowInputs(noisy_video=video, noisy_audio=audio, video_target=None, audio_target=None,
                            video_timesteps=level.view(1, 1).expand(1, n_video), video_sigma=level,
                            audio_sigma=level, video_loss_mask=None)
        if reference is not None:
            batch, inputs = with_reference(self.transformer, batch, inputs, reference)
        video_v, audio_v = run_transformer(self.transformer, batch, inputs.noisy_video, inputs.noisy_audio,
                                           inputs.video_timesteps, inputs.video_sigma, inputs.audio_sigma,
                                           audio_timesteps=inputs.audio_timesteps)
        audio_v = audio_v[:, audio_v.shape[1] - n_audio:]  # the reference's prediction is not output
        return video - video_v.float() * sigma, audio - audio_v.float() * sigma

    def _identity(self, batch, video, audio, sigma, reference, spec: SampleSpec, video_c, audio_c):
        """The identity guidance's push (video, audio), or None (no reference, or scale 0)."""
        scale = spec.identity_guidance_scale
        if reference is None or scale <= 0:
            return None
        video_n, audio_n = self._x0(batch, video, audio, sigma, None)
        return scale * (video_c - video_n), scale * (audio_c - audio_n)

    @torch.no_grad()
    def denoise(self, spec: SampleSpec, reference: torch.Tensor | None = None, on_step=None):
        """``(batch, video tokens, audio tokens)`` denoised from ``spec.seed``'s noise, with
        ``reference`` (packed tokens ``[1, N_ref, C]``, :func:`reference_tokens`) in context or none.
        ``on_step(index, sigma, audio_tokens_in)`` sees each step's audio input length."""
        width = self.pipe.audio_vae.config.latent_channels * (
            self.pipe.audio_vae.config.mel_bins // self.pipe.audio_vae_mel_compression_ratio)
        batch = self._batch(spec, spec.prompt, width)
        video, audio = self._noise(spec, batch)
        batch.video = video
        guided = spec.guidance_scale > 1.0 or spec.audio_guidance_scale > 1.0
        negative = None
        if guided:
            video_text, audio_text, mask = self._text(spec.negative_prompt or "")
            negative = replace(batch, video_text=video_text, audio_text=audio_text, text_mask=mask)
        if reference is not None:
            reference = reference.to(self.device, torch.float32)
        video_scheduler, timesteps = schedule(self.pipe.scheduler, spec.num_inference_steps, video.shape[1], self.device)
        audio_scheduler, _ = schedule(self.pipe.scheduler, spec.num_inference_steps, video.shape[1], self.device)
        for index, t in enumerate(timesteps):
            sigma = video_scheduler.sigmas[index].to(self.device, torch.float32)
            if on_step is not None:
                on_step(index, sigma, audio.shape[1] + (0 if reference is None else reference.shape[1]))
            video_x0, audio_x0 = self._x0(batch, video, audio, sigma, reference)
            identity = self._identity(batch, video, audio, sigma, reference, spec, video_x0, audio_x0)
            video_u = audio_u = None
            if negative is not None:
                video_u, audio_u = self._x0(negative, video, audio, sigma, reference)
            video_i = audio_i = None
            if spec.modality_scale > 1.0:
                video_i, audio_i = self._x0(replace(batch, isolated=True), video, audio, sigma, reference)
            video_x0 = _guided(video_x0, video_u, video_i, spec.guidance_scale, VIDEO_GUIDANCE_RESCALE,
                               spec.modality_scale)
            audio_x0 = _guided(audio_x0, audio_u, audio_i, spec.audio_guidance_scale, AUDIO_GUIDANCE_RESCALE,
                               spec.modality_scale)
            if identity is not None:
                video_x0, audio_x0 = video_x0 + identity[0], audio_x0 + identity[1]
            video = video_scheduler.step((video - video_x0) / sigma, t, video, return_dict=False)[0]
            audio = audio_scheduler.step((audio - audio_x0) / sigma, t, audio, return_dict=False)[0]
        return batch, video, audio

    def generate(self, spec: SampleSpec, reference: torch.Tensor | None = None) -> GeneratedSample:
        """One sample of ``spec`` (picture and sound) with ``reference`` in context (or none)."""
        from diffusers import LTX2Pipeline

        batch, video, audio = self.denoise(spec, reference)
        pipe = self.pipe
        latents = LTX2Pipeline._unpack_latents(video, batch.latent_frames, batch.latent_height, batch.latent_width,
                                               pipe.transformer_spatial_patch_size, pipe.transformer_temporal_patch_size)
        pixels = decode_video(pipe, latents[0])  # [3, F, H, W] in [-1, 1]
        frames = ((pixels.permute(1, 2, 3, 0).numpy() + 1.0) * 127.5 + 0.5).clip(0, 255).astype(np.uint8)
        mel_bins = audio.shape[2] // pipe.audio_vae.config.latent_channels
        audio_latents = LTX2Pipeline._unpack_audio_latents(audio, batch.audio_frames, num_mel_bins=mel_bins)[0]
        waveform, rate = decode_audio(pipe, audio_latents)
        return GeneratedSample(frames=frames, audio=waveform.numpy(), sample_rate=rate, fps=spec.frame_rate)


def validation_references(clips, on_log=None) -> tuple[str, str | None]:
    """The references a ``reference_voice`` run's validation samples with, as cache names of
    ``clips`` (its :class:`~worker.engine.data.dataset.PrecomputedDataset`): the first paired
    clip's reference from the pairs file, and a clip of another voice group (the one with the
    most speech; ``None`` when every clip has the same voice, which ``on_log`` is told)."""
    from worker.engine.data.dataset import DatasetError
    from worker.engine.data.reference import reference_plan

    names = list(clips.names)
    plan = reference_plan(clips.root, names, on_log=on_log)
    paired = [name for name in names if name in plan.pairs]
    if not paired:
        raise DatasetError("reference_voice validation: no clip of the cache has a reference clip of the same voice")
    own = plan.pairs[paired[0]]
    others = [name for name in names if name in plan.voice_of and plan.voice_of[name] != plan.voice_of.get(own)]
    other = max(others, key=lambda name: (plan.speech_s.get(name, 0.0), -names.index(name))) if others else None
    if other is None and on_log is not None:
        on_log("info", "Every clip of the dataset has the same voice: the other-voice reference samples "
                       "(ref-other-lora, ref-other-base) are left out.")
    return own, other
