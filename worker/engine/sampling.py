"""Generate audio-video samples with an ``LTX2Pipeline`` and write them as mp4 (+ wav).

Variants of one LoRA, all from the same prompt and seed:

- ``base``: LoRA disabled (the base model);
- ``lora``: LoRA on at the given per-side strengths;
- ``lora-audio-off``: LoRA on for its video-side modules, audio-side modules switched off;
- ``v2a-base`` / ``v2a-lora``: LoRA off / on, for the video-to-audio samples (:mod:`worker.engine.v2a`).

Sides are DESIGN.md's (see :func:`worker.engine.lora.adapters.set_side_strength`).
"""

from __future__ import annotations

import contextlib
import fractions
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from core.files import atomic_write
from core.names import LORA_OFF_VARIANTS, SAMPLE_VARIANTS, VARIANT_AUDIO_OFF
from worker.engine.lora.adapters import DEFAULT_ADAPTER, lora_layers, set_all_adapters_off, set_side_strength


@dataclass
class SampleSpec:
    """What to generate. ``stg_scale`` 0 turns spatio-temporal guidance off; ``modality_scale`` 1
    turns modality-isolation guidance off (both streams)."""

    prompt: str
    seed: int = 42
    width: int = 512
    height: int = 512
    num_frames: int = 49
    frame_rate: float = 24.0
    num_inference_steps: int = 30
    guidance_scale: float = 3.0
    audio_guidance_scale: float = 7.0
    negative_prompt: str = ""
    stg_scale: float = 0.0
    modality_scale: float = 3.0  # the pipeline's default; 1 drops the third (modality-isolation) pass per step
    identity_guidance_scale: float = 0.0  # with a reference in context (reference_sampling): 0 = no extra pass


@dataclass
class GeneratedSample:
    """One generated clip: ``frames`` uint8 ``[F, H, W, 3]``, ``audio`` float32 ``[channels, samples]``."""

    frames: np.ndarray
    audio: np.ndarray
    sample_rate: int
    fps: float


def audio_sample_rate(pipe) -> int:
    """The vocoder's output rate (24 kHz for LTX-2.0, 48 kHz with 2.3's BWE vocoder)."""
    return int(pipe.vocoder.config.output_sampling_rate)


@torch.no_grad()
def generate(pipe, spec: SampleSpec, prompt_cache=None) -> GeneratedSample:
    """Run the pipeline once for ``spec`` with a fixed-seed generator.

    ``prompt_cache`` (a :class:`worker.engine.data.prompt_cache.PromptCache` holding ``spec.prompt``
    and ``spec.negative_prompt``): use its embeddings instead of running the text encoder; the
    sample is the same.
    """
    generator = torch.Generator(device="cpu").manual_seed(spec.seed)
    stg = {"stg_scale": 0.0, "audio_stg_scale": 0.0, "spatio_temporal_guidance_blocks": None}
    if spec.stg_scale > 0:
        blocks = len(pipe.transformer.transformer_blocks)
        stg = {
            "stg_scale": spec.stg_scale,
            "audio_stg_scale": spec.stg_scale,
            "spatio_temporal_guidance_blocks": [min(28, blocks - 1)],
        }
    output = _call_pipeline(pipe, spec, generator, stg, prompt_cache)
    frames = np.asarray(output.frames[0])
    frames = (np.clip(frames, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    audio = output.audio[0].detach().float().cpu().numpy()
    return GeneratedSample(frames=frames, audio=audio, sample_rate=audio_sample_rate(pipe), fps=spec.frame_rate)


def _call_pipeline(pipe, spec: SampleSpec, generator: torch.Generator, stg: dict, prompt_cache=None):
    if prompt_cache is None:
        text = {"prompt": spec.prompt, "negative_prompt": spec.negative_prompt}
    else:
        text = prompt_cache.pipeline_kwargs(spec.prompt, spec.negative_prompt, pipe._execution_device)
    return pipe(
        **text,
        height=spec.height,
        width=spec.width,
        num_frames=spec.num_frames,
        frame_rate=spec.frame_rate,
        num_inference_steps=spec.num_inference_steps,
        guidance_scale=spec.guidance_scale,
        audio_guidance_scale=spec.audio_guidance_scale,
        modality_scale=spec.modality_scale,
        audio_modality_scale=spec.modality_scale,
        generator=generator,
        output_type="np",
        **stg,
    )


@contextlib.contextmanager
def lora_variant(
    pipe,
    variant: str,
    *,
    video_strength: float = 1.0,
    audio_strength: float = 1.0,
    adapter_name: str = DEFAULT_ADAPTER,
):
    """Set the transformer's LoRA up for ``variant`` for the duration of the ``with`` block.

    Every variant only changes the LoRA layers' scales, held as tensors for the block (the base
    model is every adapter at scale 0): compiled blocks then run each variant, and any strength,
    through one compiled graph instead of compiling again for each (8-28 s apiece on an H200).
    On leaving, the trained float scales are back, as the training's compiled graph expects.
    """
    if variant not in SAMPLE_VARIANTS:
        raise ValueError(f"Unknown sample variant {variant!r}: use one of {', '.join(SAMPLE_VARIANTS)}")
    transformer = pipe.transformer
    has_lora = any(True for _ in lora_layers(transformer))
    if variant in LORA_OFF_VARIANTS:
        if has_lora:
            set_all_adapters_off(transformer, True)
        try:
            yield
        finally:
            if has_lora:
                set_all_adapters_off(transformer, False)
        return
    if not has_lora:
        raise ValueError(f"Variant {variant!r} needs a LoRA loaded into the transformer.")
    audio = 0.0 if variant == VARIANT_AUDIO_OFF else audio_strength
    set_side_strength(transformer, video=video_strength, audio=audio, adapter_name=adapter_name, as_tensors=True)
    try:
        yield
    finally:
        set_side_strength(transformer, video=1.0, audio=1.0, adapter_name=adapter_name)


def write_wav(path: str | Path, sample: GeneratedSample) -> Path:
    """Write the sample's audio as 16-bit PCM WAV (atomically)."""
    import soundfile

    data = np.clip(sample.audio.T, -1.0, 1.0)
    return atomic_write(path, lambda tmp: soundfile.write(str(tmp), data, sample.sample_rate, subtype="PCM_16", format="WAV"))


def write_mp4(path: str | Path, sample: GeneratedSample) -> Path:
    """Write H.264 video with the AAC audio muxed in (PyAV), atomically."""
    return atomic_write(path, lambda tmp: _encode_mp4(tmp, sample))


def _encode_mp4(path: Path, sample: GeneratedSample) -> None:
    import av

    frames = sample.frames
    height, width = frames.shape[1:3]
    if height % 2 or width % 2:
        frames = frames[:, : height - height % 2, : width - width % 2]
        height, width = frames.shape[1:3]
    container = av.open(str(path), mode="w", format="mp4")
    try:
        video = container.add_stream("libx264", rate=fractions.Fraction(sample.fps).limit_denominator(1001))
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"preset": "veryfast", "crf": "18"}
        channels = sample.audio.shape[0]
        audio = container.add_stream("aac", rate=sample.sample_rate, layout="stereo" if channels >= 2 else "mono")
        for image in frames:
            for packet in video.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        samples = np.ascontiguousarray(np.clip(sample.audio[: min(channels, 2)], -1.0, 1.0).astype(np.float32))
        chunk = 1024
        for start in range(0, samples.shape[1], chunk):
            part = np.ascontiguousarray(samples[:, start : start + chunk])
            frame = av.AudioFrame.from_ndarray(part, format="fltp", layout=audio.layout.name)
            frame.sample_rate = sample.sample_rate
            frame.pts = start
            frame.time_base = fractions.Fraction(1, sample.sample_rate)
            for packet in audio.encode(frame):
                container.mux(packet)
        for packet in audio.encode():
            container.mux(packet)
    finally:
        container.close()
