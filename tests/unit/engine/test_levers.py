"""Each speed lever of the training step leaves the losses and the LoRA gradients unchanged."""

import pytest
import torch

from worker.engine.bench.train import synthetic_batch
from worker.engine.lora.adapters import add_lora, lora_layers, trainable_parameters
from worker.engine.model.pipelines import load_pipeline
from worker.engine.step.compiling import compile_transformer_blocks
from worker.engine.step.flow import compute_step_losses, prepare_flow_inputs, run_transformer
from worker.engine.step.levers import lora_compute_in_base_dtype, sdpa_backends_used, text_mask_or_none
from worker.engine.step.optim import build_optimizer
from worker.engine.step.timesteps import ShiftedLogitNormalSampler

TARGETS = ["to_k", "to_q", "to_v", "to_out.0"]


def _lora_transformer(data_dir, dtype):
    """A private toy transformer with a LoRA whose B is non-zero (so every LoRA weight gets a gradient)."""
    transformer = load_pipeline("toy", data_dir=data_dir, device="cpu", dtype=dtype).transformer
    add_lora(transformer, rank=4, alpha=4, target_modules=TARGETS, init_seed=3)
    generator = torch.Generator().manual_seed(11)
    for name, param in sorted(transformer.named_parameters()):
        if "lora_B" in name:
            param.data = 0.1 * torch.randn(param.shape, generator=generator).to(param.dtype)
    transformer.train()
    return transformer


def _step(transformer, dtype, **options):
    """(total loss, {name: LoRA gradient}) of one step on a fixed synthetic batch."""
    batch = synthetic_batch(transformer, (64, 64, 9), 64, "cpu", dtype)
    inputs = prepare_flow_inputs(batch, ShiftedLogitNormalSampler(), torch.Generator().manual_seed(0))
    losses = compute_step_losses(transformer, batch, inputs, **options)
    losses.total.backward()
    grads = {n: p.grad.detach().float().clone() for n, p in transformer.named_parameters() if p.requires_grad}
    return float(losses.total), grads


def _assert_close_grads(got: dict, want: dict, rtol: float) -> None:
    assert got.keys() == want.keys() and got
    for name in want:
        error = (got[name] - want[name]).norm() / want[name].norm().clamp(min=1e-12)
        assert error < rtol, (name, float(error))


def _flat(grads: dict) -> torch.Tensor:
    return torch.cat([grads[name].flatten() for name in sorted(grads)])


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def test_lora_math_in_bf16_keeps_losses_and_gradients(engine_data_dir):
    _, grads_reference = _step(_lora_transformer(engine_data_dir, torch.float32), torch.float32)
    plain = _lora_transformer(engine_data_dir, torch.bfloat16)
    lever = _lora_transformer(engine_data_dir, torch.bfloat16)
    assert lora_compute_in_base_dtype(lever) == len(list(lora_layers(lever))) > 0
    seen = {}

    def record(key):
        def hook(module, args, output):
            seen.setdefault(key, args[0].dtype)
        return hook

    name, layer = next(iter(lora_layers(lever)))
    layer.lora_A["default"].register_forward_hook(record("lever"))
    dict(lora_layers(plain))[name].lora_A["default"].register_forward_hook(record("plain"))

    loss_plain, grads_plain = _step(plain, torch.bfloat16)
    loss_lever, grads_lever = _step(lever, torch.bfloat16)

    # PEFT alone casts the bf16 activation up to float32; the lever keeps it bf16
    assert seen == {"plain": torch.float32, "lever": torch.bfloat16}
    # master weights and their gradients stay float32
    assert all(p.dtype == torch.float32 and p.grad.dtype == torch.float32 for p in trainable_parameters(lever))
    assert loss_lever == pytest.approx(loss_plain, rel=1e-2)
    # bf16 rounding: the lever's gradients are as close to the float32 step as PEFT's own are
    reference = _flat(grads_reference)
    error_plain = _relative(_flat(grads_plain), reference)
    error_lever = _relative(_flat(grads_lever), reference)
    assert error_lever < 1.5 * error_plain + 5e-3, (error_lever, error_plain)
    assert _relative(_flat(grads_lever), _flat(grads_plain)) < 2e-2


def test_lora_math_lever_is_exact_in_float32(engine_data_dir):
    plain = _lora_transformer(engine_data_dir, torch.float32)
    lever = _lora_transformer(engine_data_dir, torch.float32)
    lora_compute_in_base_dtype(lever)
    loss_plain, grads_plain = _step(plain, torch.float32)
    loss_lever, grads_lever = _step(lever, torch.float32)
    assert loss_lever == pytest.approx(loss_plain, rel=1e-6)
    _assert_close_grads(grads_lever, grads_plain, rtol=1e-5)


def test_all_ones_text_mask_is_dropped_and_the_output_is_the_same(toy_pipeline):
    ones = torch.ones(1, 64, dtype=torch.int64)
    padded = ones.clone()
    padded[:, :10] = 0
    assert text_mask_or_none(ones) is None
    assert text_mask_or_none(padded) is padded
    transformer = toy_pipeline.transformer
    batch = synthetic_batch(transformer, (64, 64, 9), 64, "cpu", torch.float32)
    inputs = prepare_flow_inputs(batch, ShiftedLogitNormalSampler(), torch.Generator().manual_seed(0))
    args = (inputs.noisy_video, inputs.noisy_audio, inputs.video_timesteps, inputs.video_sigma, inputs.audio_sigma)
    with torch.no_grad():
        dropped = run_transformer(transformer, batch, *args, drop_all_ones_mask=True)
        kept = run_transformer(transformer, batch, *args, drop_all_ones_mask=False)
        batch.text_mask = padded  # a real mask must still change the result
        masked = run_transformer(transformer, batch, *args, drop_all_ones_mask=True)
    for a, b in zip(dropped, kept):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(masked[0], dropped[0], atol=1e-4)


def test_fused_adamw_takes_the_same_steps_as_the_default():
    generator = torch.Generator().manual_seed(0)
    start = [torch.randn(shape, generator=generator) for shape in ((8, 4), (4,), (3, 5))]
    grads = [[torch.randn(t.shape, generator=generator) for t in start] for _ in range(3)]
    results = []
    for fused in (False, True):
        params = [torch.nn.Parameter(t.clone()) for t in start]
        optimizer = build_optimizer(params, name="adamw", lr=1e-2, fused=fused)
        assert bool(optimizer.defaults.get("fused")) is fused
        for step_grads in grads:
            for param, grad in zip(params, step_grads):
                param.grad = grad.clone()
            optimizer.step()
        results.append([p.detach().clone() for p in params])
    for plain, fused in zip(*results):
        assert not torch.equal(plain, start[0]) or plain.shape != start[0].shape
        torch.testing.assert_close(fused, plain, rtol=1e-6, atol=1e-7)


def test_compiled_blocks_keep_losses_and_gradients(engine_data_dir):
    eager = _lora_transformer(engine_data_dir, torch.float32)
    compiled = _lora_transformer(engine_data_dir, torch.float32)
    assert compile_transformer_blocks(compiled, backend="aot_eager") == len(compiled.transformer_blocks)
    loss_eager, grads_eager = _step(eager, torch.float32)
    loss_compiled, grads_compiled = _step(compiled, torch.float32)
    assert loss_compiled == pytest.approx(loss_eager, rel=1e-5)
    _assert_close_grads(grads_compiled, grads_eager, rtol=1e-4)


def test_sdpa_backend_report_counts_every_attention(toy_pipeline):
    transformer = toy_pipeline.transformer
    batch = synthetic_batch(transformer, (64, 64, 9), 64, "cpu", torch.float32)
    inputs = prepare_flow_inputs(batch, ShiftedLogitNormalSampler(), torch.Generator().manual_seed(0))

    def forward():
        with torch.no_grad():
            compute_step_losses(transformer, batch, inputs)

    backends = sdpa_backends_used(forward)
    # six attentions per block: video/audio self, video/audio text, audio->video, video->audio
    assert sum(backends.values()) == 6 * len(transformer.transformer_blocks), backends
