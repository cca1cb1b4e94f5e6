"""Encode pixels and audio to the normalised latents training uses, and decode them back.

Stored latents are normalised the way ``LTX2Pipeline`` normalises them (and the way ltx-core's
encoders return them), unpacked:

- video ``[128, F', H', W']``: ``(mode - latents_mean) * scaling_factor / latents_std`` per channel;
  bfloat16 like the official trainer's files.
- audio ``[8, T, 16]``: packed to ``[T, 8*16]``, normalised with the audio VAE's 128-wide
  ``latents_mean/std``, unpacked again; float32 (the official trainer runs the audio VAE in fp32).

The encoders use the posterior mode (no sampling), so a clip always gives the same latents.
"""

from __future__ import annotations

import torch

from worker.engine.data.audio import MEL_SAMPLE_RATE, log_mel_spectrogram


@torch.inference_mode()
def encode_video(pipe, pixels: torch.Tensor) -> torch.Tensor:
    """``[3, F, H, W]`` pixels in [-1, 1] -> normalised latents ``[C, F', H', W']`` (bfloat16, CPU)."""
    vae = pipe.vae
    sample = pixels.unsqueeze(0).to(vae.device, vae.dtype)
    latents = vae.encode(sample).latent_dist.mode()
    latents = pipe._normalize_latents(latents, vae.latents_mean, vae.latents_std, vae.config.scaling_factor)
    return latents[0].to("cpu", torch.bfloat16).contiguous()


@torch.inference_mode()
def decode_video(pipe, latents: torch.Tensor) -> torch.Tensor:
    """Normalised latents ``[C, F', H', W']`` -> pixels ``[3, F, H, W]`` in [-1, 1] (float32, CPU)."""
    vae = pipe.vae
    batch = latents.unsqueeze(0).to(vae.device, torch.float32)
    batch = pipe._denormalize_latents(batch, vae.latents_mean, vae.latents_std, vae.config.scaling_factor)
    timestep = None
    if vae.config.timestep_conditioning:
        timestep = torch.zeros(1, device=vae.device, dtype=vae.dtype)
    video = vae.decode(batch.to(vae.dtype), timestep, return_dict=False)[0]
    return video[0].to("cpu", torch.float32).clamp(-1, 1)


def _audio_stats(pipe, device, dtype):
    vae = pipe.audio_vae
    return vae.latents_mean.to(device, dtype), vae.latents_std.to(device, dtype)


@torch.inference_mode()
def encode_audio(pipe, waveform: torch.Tensor) -> torch.Tensor:
    """A 16 kHz stereo waveform ``[2, samples]`` -> normalised audio latents ``[C, T, M]`` (float32, CPU)."""
    vae = pipe.audio_vae
    if vae.config.sample_rate != MEL_SAMPLE_RATE:
        raise ValueError(f"the audio VAE expects {vae.config.sample_rate} Hz, preprocessing makes {MEL_SAMPLE_RATE}")
    mel = log_mel_spectrogram(waveform, n_mels=vae.config.mel_bins).to(vae.device, vae.dtype)
    latents = vae.encode(mel).latent_dist.mode()  # [1, C, T, M]
    _, channels, frames, mel_bins = latents.shape
    mean, std = _audio_stats(pipe, latents.device, latents.dtype)
    packed = pipe._pack_audio_latents(latents)
    packed = (packed - mean) / std
    latents = pipe._unpack_audio_latents(packed, frames, num_mel_bins=mel_bins)
    return latents[0].to("cpu", torch.float32).contiguous()


@torch.inference_mode()
def decode_audio(pipe, latents: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Normalised audio latents ``[C, T, M]`` -> ``(waveform [2, samples], vocoder sample rate)``."""
    vae = pipe.audio_vae
    batch = latents.unsqueeze(0).to(vae.device, torch.float32)
    _, _, frames, mel_bins = batch.shape
    mean, std = _audio_stats(pipe, batch.device, batch.dtype)
    packed = pipe._pack_audio_latents(batch) * std + mean
    batch = pipe._unpack_audio_latents(packed, frames, num_mel_bins=mel_bins)
    mel = vae.decode(batch.to(vae.dtype), return_dict=False)[0]
    waveform = pipe.vocoder(mel.to(pipe.vocoder.dtype))
    return waveform[0].to("cpu", torch.float32), int(pipe.vocoder.config.output_sampling_rate)
