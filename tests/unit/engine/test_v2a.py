"""Video-to-audio samples on the toy: the clip's video stays clean and fixed, only the audio is
generated; the seed fixes it; the LoRA changes it; validation writes the v2a files."""

import numpy as np
import pytest
import torch

from core.names import VARIANT_V2A_BASE, VARIANT_V2A_LORA
from tests.unit.engine._train_data import build_precomputed
from worker.engine.data.dataset import PrecomputedDataset
from worker.engine.data.prompt_cache import encode_prompts
from worker.engine.lora.adapters import add_lora
from worker.engine.model.pipelines import load_pipeline
from worker.engine.sampling import lora_variant
from worker.engine.v2a import V2ASampler, V2ASpec
from worker.engine.validate import ValidationPlan, run_validation

SPEC = V2ASpec(seed=7, num_inference_steps=3, audio_guidance_scale=3.0)


@pytest.fixture(scope="module")
def v2a_setup(tmp_path_factory, engine_data_dir):
    """A private toy pipeline with a non-zero LoRA, the cached clip and the negative prompt encoded."""
    torch.set_num_threads(2)
    pipe = load_pipeline("toy", data_dir=engine_data_dir, device="cpu", dtype=torch.float32)
    precomputed = build_precomputed(tmp_path_factory.mktemp("v2a"), engine_data_dir, pipe)
    clips = PrecomputedDataset(precomputed, connectors=pipe.connectors)
    add_lora(pipe.transformer, rank=4, alpha=4, target_modules=["to_k", "to_q", "to_v", "to_out.0"], init_seed=3)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in pipe.transformer.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.2)
    cache = encode_prompts(pipe, ["", "ema_voice, a red square hums a low tone"])
    return pipe, clips, cache


def _record(calls):
    def hook(_module, _args, kwargs):
        calls.append({key: kwargs[key].detach().clone() for key in
                      ("hidden_states", "audio_hidden_states", "timestep", "audio_timestep", "sigma", "audio_sigma")})
    return hook


def test_the_video_stays_clean_and_only_the_audio_is_denoised(v2a_setup):
    pipe, clips, cache = v2a_setup
    clip = clips[0]
    sampler = V2ASampler(pipe, SPEC, cache.get(""))
    clean_video, _ = sampler.batch(clip)
    calls: list[dict] = []
    handle = pipe.transformer.register_forward_pre_hook(_record(calls), with_kwargs=True)
    try:
        with lora_variant(pipe, VARIANT_V2A_BASE):
            latents = sampler.audio_latents(clip)
    finally:
        handle.remove()
    assert len(calls) == 2 * SPEC.num_inference_steps  # conditional and unconditional per step
    for call in calls:
        assert torch.equal(call["hidden_states"], clean_video.video)  # the given latents, bit for bit
        assert not call["timestep"].any() and not call["sigma"].any()  # every video token clean: 0
    audio_levels = [float(call["audio_timestep"][0]) for call in calls[::2]]
    assert audio_levels[0] == pytest.approx(1000.0) and audio_levels == sorted(audio_levels, reverse=True)
    assert all(torch.equal(call["audio_sigma"], call["audio_timestep"]) for call in calls)
    noise_in = calls[0]["audio_hidden_states"]
    assert not torch.equal(calls[-1]["audio_hidden_states"], noise_in)  # the audio moves step by step
    assert latents.shape == clip.audio.shape  # [C, T, M] like the clip's own audio latents


def test_same_seed_same_audio_and_the_lora_changes_it(v2a_setup):
    pipe, clips, cache = v2a_setup
    clip = clips[0]
    sampler = V2ASampler(pipe, SPEC, cache.get(""))
    with lora_variant(pipe, VARIANT_V2A_BASE):
        base, again = sampler.generate(clip), sampler.generate(clip)
        other_seed = V2ASampler(pipe, V2ASpec(seed=8, num_inference_steps=3, audio_guidance_scale=3.0),
                                cache.get("")).generate(clip)
    with lora_variant(pipe, VARIANT_V2A_LORA):
        lora = sampler.generate(clip)
    assert np.array_equal(base.audio, again.audio) and np.abs(base.audio - other_seed.audio).max() > 1e-4
    assert np.abs(lora.audio - base.audio).max() > 1e-4
    assert np.array_equal(base.frames, lora.frames)  # the same picture: the clip's own, decoded
    assert base.frames.shape == (9, 64, 64, 3) and base.fps == clip.fps
    assert base.sample_rate == int(pipe.vocoder.config.output_sampling_rate) and base.audio.shape[0] == 2


def test_validation_writes_v2a_samples_with_their_source(v2a_setup, tmp_path):
    pipe, clips, cache = v2a_setup
    plan = ValidationPlan(prompts=[], negative_prompt="", seed=7, width=64, height=64, num_frames=9,
                          frame_rate=24.0, inference_steps=2, video_guidance_scale=3.0, audio_guidance_scale=3.0,
                          variants=["lora", VARIANT_V2A_LORA, VARIANT_V2A_BASE], v2a_clips=2)
    assert plan.samples_anything and plan.prompt_variants == ["lora"]
    events = run_validation(pipe, plan, tmp_path, 5, prompt_cache=cache, clips=clips)
    assert [(e.variant, e.prompt_index, e.source) for e in events] == [
        (VARIANT_V2A_LORA, 0, "clips/a.pt"), (VARIANT_V2A_BASE, 0, "clips/a.pt")]  # one clip in the cache
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "step_000005_v2a_01.mp4", "step_000005_v2a_01.wav", "v2a_base_01.mp4", "v2a_base_01.wav"]
    assert run_validation(pipe, plan, tmp_path, 10, prompt_cache=cache, clips=clips)[-1].variant == VARIANT_V2A_LORA
    assert run_validation(pipe, plan, tmp_path, 10, prompt_cache=cache, clips=None) == []  # no clips, no v2a
