"""Validation variants through the training's compiled blocks: one compile, not one per variant.

On an H200 each extra compile of the sampling graph cost 8-28 s of a sanity run's wait for its
verdict (docs/benchmarks.md, "Time to a verdict"). The variants (LoRA on, audio side off, the
base model, other strengths) must all run through the graphs compiled for the first sample, and
give what the eager model gives.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from worker.engine.lora.adapters import add_lora, lora_layers
from worker.engine.model.pipelines import load_pipeline
from worker.engine.sampling import SampleSpec, generate, lora_variant

SPEC = SampleSpec(prompt="a person speaks", width=64, height=64, num_frames=9, num_inference_steps=2)


@pytest.fixture(scope="module")
def lora_pipe(engine_data_dir):
    """A private toy pipeline with a LoRA on both sides whose up-weights are not zero."""
    pipe = load_pipeline("toy", data_dir=engine_data_dir, device="cpu", dtype=torch.float32)
    add_lora(pipe.transformer, rank=4, alpha=4.0, init_seed=0,
             target_modules=["attn1.to_q", "attn1.to_v", "audio_attn1.to_q", "audio_attn1.to_v"])
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for _, module in lora_layers(pipe.transformer):
            weight = module.lora_B["default"].weight
            weight.copy_(torch.randn(weight.shape, generator=generator) * 0.5)
    pipe.transformer.eval()
    return pipe


def _sample(pipe, variant: str, **strengths) -> np.ndarray:
    with lora_variant(pipe, variant, **strengths):
        return generate(pipe, SPEC).audio


def test_variants_match_the_eager_model_and_differ_from_each_other(lora_pipe):
    base = _sample(lora_pipe, "base")
    lora_pipe.transformer.disable_adapters()
    try:
        disabled = generate(lora_pipe, SPEC).audio
    finally:
        lora_pipe.transformer.enable_adapters()
    np.testing.assert_array_equal(base, disabled)
    lora = _sample(lora_pipe, "lora")
    assert np.abs(lora - base).max() > 1e-4
    half = _sample(lora_pipe, "lora", audio_strength=0.5)
    assert np.abs(half - lora).max() > 1e-6 and np.abs(half - base).max() > 1e-6


def test_every_variant_runs_through_the_graphs_compiled_for_the_first(lora_pipe):
    """...and leaving a variant puts the trained float scales back (the training's graph has them)."""
    import torch._dynamo
    from torch._dynamo.testing import CompileCounter

    trained = {name: dict(module.scaling) for name, module in lora_layers(lora_pipe.transformer)}
    eager_lora = _sample(lora_pipe, "lora")
    counter = CompileCounter()
    torch._dynamo.reset()
    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
    blocks = list(lora_pipe.transformer.transformer_blocks)
    for block in blocks:
        block.compile(backend=counter)
    try:
        compiled_lora = _sample(lora_pipe, "lora")
        first = counter.frame_count
        assert first >= 1
        for variant, strengths in [("lora-audio-off", {}), ("base", {}), ("lora", {"audio_strength": 0.5}),
                                   ("v2a-base", {}), ("lora", {})]:
            _sample(lora_pipe, variant, **strengths)
        assert counter.frame_count == first, f"compiled {counter.frame_count - first} more graphs for the variants"
        np.testing.assert_allclose(compiled_lora, eager_lora, atol=1e-5)
        after = {name: dict(module.scaling) for name, module in lora_layers(lora_pipe.transformer)}
        assert after == trained
        assert all(isinstance(v, float) for scales in after.values() for v in scales.values())
    finally:
        for block in blocks:
            block._compiled_call_impl = None
        torch._dynamo.reset()


def test_modality_guidance_off_drops_the_third_pass_and_changes_the_sample(toy_pipeline):
    """``validation.modality_guidance_scale: 1`` (the sanity preset): each denoising step runs the
    guidance batch only, not the extra modality-isolation pass, so sampling does a third less work."""
    from dataclasses import replace

    calls = []
    hook = toy_pipeline.transformer.register_forward_pre_hook(lambda module, args: calls.append(1))
    try:
        samples = {}
        for scale in (3.0, 1.0):
            calls.clear()
            samples[scale] = generate(toy_pipeline, replace(SPEC, modality_scale=scale)).audio
            samples[f"calls {scale}"] = len(calls)
    finally:
        hook.remove()
    assert samples["calls 3.0"] == 2 * SPEC.num_inference_steps
    assert samples["calls 1.0"] == SPEC.num_inference_steps
    assert np.abs(samples[3.0] - samples[1.0]).max() > 1e-6


def test_the_sanity_preset_samples_without_modality_guidance_and_full_with_it():
    from core.recipe.run_config import preset_config
    from worker.engine.validate import plan_from_config

    sanity, full = (plan_from_config(preset_config(name, model="toy")) for name in ("sanity", "full"))
    assert sanity.spec("p").modality_scale == 1.0 and full.spec("p").modality_scale == 3.0
