"""Selective activation checkpointing, the once-per-step LoRA weight cast and the CUDA-graph compile
mode: the step's losses and LoRA gradients stay the same, and each lever does less work."""

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from core.recipe.run_config import ConfigFileError, parse_run_config
from worker.engine.bench.flops import count_flops
from worker.engine.bench.synthetic import synthetic_batch
from worker.engine.lora.adapters import lora_layers
from worker.engine.step.checkpointing import checkpointed_block_indices, enable_activation_checkpointing
from worker.engine.step.compiling import check_cuda_graphs_allowed, compile_transformer_blocks
from worker.engine.step.flow import compute_step_losses, prepare_flow_inputs
from worker.engine.step.levers import cast_lora_weights_once, lora_compute_in_base_dtype
from worker.engine.step.timesteps import ShiftedLogitNormalSampler

from .test_levers import _assert_close_grads, _lora_transformer


def _step(transformer, dtype, cast_once=False):
    """(total loss, {name: LoRA gradient}) of one training step on a fixed synthetic batch."""
    batch = synthetic_batch(transformer, (64, 64, 9), 64, "cpu", dtype)
    inputs = prepare_flow_inputs(batch, ShiftedLogitNormalSampler(), torch.Generator().manual_seed(0))
    for param in transformer.parameters():
        param.grad = None
    if cast_once:
        with cast_lora_weights_once(transformer, dtype) as cached:
            # lora_A and lora_B of each layer; nothing to cache when the activations are float32
            assert cached == (0 if dtype == torch.float32 else 2 * len(list(lora_layers(transformer))))
            losses = compute_step_losses(transformer, batch, inputs)
            losses.total.backward()
    else:
        losses = compute_step_losses(transformer, batch, inputs)
        losses.total.backward()
    grads = {n: p.grad.detach().float().clone() for n, p in transformer.named_parameters() if p.requires_grad}
    return float(losses.total), grads


def _checkpointed(data_dir, policy="full", ratio=1.0, dtype=torch.float32, rest="full", inside_compile=False):
    transformer = _lora_transformer(data_dir, dtype)
    lora_compute_in_base_dtype(transformer)
    modes = enable_activation_checkpointing(transformer, policy=policy, ratio=ratio, rest=rest,
                                            inside_compile=inside_compile)
    assert len(modes) == len(transformer.transformer_blocks)
    return transformer


def test_checkpointed_blocks_are_evenly_spread():
    assert checkpointed_block_indices(48, 1.0) == list(range(48))
    assert checkpointed_block_indices(48, 0.5) == list(range(1, 48, 2))
    three_quarters = checkpointed_block_indices(48, 0.75)
    assert len(three_quarters) == 36 and max(b - a for a, b in zip(three_quarters, three_quarters[1:])) == 2
    assert checkpointed_block_indices(2, 0.5) == [1]
    with pytest.raises(ValueError, match="between 0 and 1"):
        checkpointed_block_indices(48, 1.5)


@pytest.mark.parametrize(("policy", "ratio", "rest"),
                         [("attention", 1.0, "full"), ("matmul", 1.0, "full"), ("none", 0.5, "full"),
                          ("none", 0.5, "attention")])
def test_selective_checkpointing_keeps_losses_and_gradients(engine_data_dir, policy, ratio, rest):
    loss_full, grads_full = _step(_checkpointed(engine_data_dir), torch.float32)
    loss, grads = _step(_checkpointed(engine_data_dir, policy, ratio, rest=rest), torch.float32)
    assert loss == pytest.approx(loss_full, rel=1e-6)
    _assert_close_grads(grads, grads_full, rtol=1e-5)


def test_selective_checkpointing_recomputes_less(engine_data_dir):
    """Ops run in one step: the full checkpoint runs each block's attention and matmuls twice;
    ``attention`` keeps the attention outputs, ``matmul`` the matmuls too; half the blocks
    checkpointed, half the recompute (counted FLOPs)."""

    def ops_run(transformer):
        with _CountOps() as counter:
            _step(transformer, torch.float32)
        return counter

    plain = _lora_transformer(engine_data_dir, torch.float32)
    lora_compute_in_base_dtype(plain)
    none = ops_run(plain)
    full = ops_run(_checkpointed(engine_data_dir, "full"))
    attention = ops_run(_checkpointed(engine_data_dir, "attention"))
    matmul = ops_run(_checkpointed(engine_data_dir, "matmul"))
    assert none.attention > 0 and full.attention == 2 * none.attention
    assert attention.attention == matmul.attention == none.attention
    assert full.matmuls == attention.matmuls > matmul.matmuls == none.matmuls
    assert full.pointwise > none.pointwise and matmul.pointwise > none.pointwise  # norms, GELU: recomputed

    none_flops = count_flops(lambda: _step(plain, torch.float32))
    full_flops = count_flops(lambda: _step(_checkpointed(engine_data_dir, "full"), torch.float32))
    half_flops = count_flops(lambda: _step(_checkpointed(engine_data_dir, "none", 0.5), torch.float32))
    assert full_flops > none_flops
    assert half_flops - none_flops == pytest.approx((full_flops - none_flops) / 2, rel=1e-6)  # 1 of 2 blocks


class _CountOps(TorchDispatchMode):
    """Counts the aten ops that really run while active (by kind)."""

    def __init__(self):
        super().__init__()
        self.attention = self.matmuls = self.pointwise = self.casts = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.__name__
        if name.startswith("_scaled_dot_product") and "backward" not in name:
            self.attention += 1
        elif name.split(".")[0] in ("mm", "addmm", "bmm"):
            self.matmuls += 1
        elif name.split(".")[0] in ("gelu", "rsqrt", "sigmoid"):
            self.pointwise += 1
        elif func is torch.ops.aten._to_copy.default:
            self.casts += 1
        return func(*args, **(kwargs or {}))


def test_lora_weights_cast_once_per_step_gives_the_same_step(engine_data_dir):
    plain, lever = (_checkpointed(engine_data_dir, dtype=torch.bfloat16) for _ in range(2))
    with _CountOps() as plain_casts:
        loss_plain, grads_plain = _step(plain, torch.bfloat16)
    with _CountOps() as lever_casts:
        loss_lever, grads_lever = _step(lever, torch.bfloat16, cast_once=True)
    assert loss_lever == loss_plain
    _assert_close_grads(grads_lever, grads_plain, rtol=1e-6)
    # per LoRA weight: one cast in the forward and one in the checkpoint recompute, now one in all
    weights = 2 * len(list(lora_layers(lever)))
    assert plain_casts.casts - lever_casts.casts >= weights
    assert not any("step_weight" in m.__dict__ for m in lever.modules())  # the copies are freed
    assert all(p.dtype == torch.float32 and p.grad.dtype == torch.float32
               for n, p in lever.named_parameters() if p.requires_grad)


def _attention_runs(transformer, dtype) -> int:
    """SDPA forwards that run in one training step (the profiler sees inside compiled code)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        _step(transformer, dtype)
    return sum(e.count for e in prof.key_averages()
               if e.key.startswith("aten::_scaled_dot_product") and "backward" not in e.key)


def test_checkpoint_inside_the_compiled_blocks_recomputes_what_the_policy_says(engine_data_dir):
    """With compiled blocks the checkpoint sits inside the compiled graph: ``attention`` runs each
    attention once per step (a checkpoint around the compiled call ran it more often, not less),
    and the numbers are the eager step's."""
    runs = {}
    try:
        for policy in ("full", "attention"):
            compiled = _checkpointed(engine_data_dir, policy, inside_compile=True)
            compile_transformer_blocks(compiled, backend="aot_eager_decomp_partition")
            _step(compiled, torch.float32)  # compile
            runs[policy] = _attention_runs(compiled, torch.float32)
            loss, grads = _step(compiled, torch.float32)
            torch._dynamo.reset()
            loss_eager, grads_eager = _step(_checkpointed(engine_data_dir), torch.float32)
            assert loss == pytest.approx(loss_eager, rel=1e-5)
            _assert_close_grads(grads, grads_eager, rtol=1e-4)
    finally:
        torch._dynamo.reset()
    blocks = len(_lora_transformer(engine_data_dir, torch.float32).transformer_blocks)
    attentions_per_block = 6
    assert runs["full"] == 2 * blocks * attentions_per_block  # forward + recompute
    assert runs["attention"] == blocks * attentions_per_block  # forward only


def test_compiled_selective_checkpointing_with_cast_once(engine_data_dir):
    """The GPU configuration, traced on the CPU in bf16: selective checkpoints inside compiled
    blocks, with the once-per-step cast; the eager full checkpoint's numbers, no recompile."""
    import torch._dynamo.utils

    loss_eager, grads_eager = _step(_checkpointed(engine_data_dir, dtype=torch.bfloat16), torch.bfloat16)
    compiled = _checkpointed(engine_data_dir, "attention", 0.5, dtype=torch.bfloat16, inside_compile=True)
    compile_transformer_blocks(compiled, backend="aot_eager_decomp_partition")
    torch._dynamo.utils.counters.clear()
    try:
        loss, grads = _step(compiled, torch.bfloat16, cast_once=True)
        graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
        _step(compiled, torch.bfloat16, cast_once=True)
        assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == graphs > 0
    finally:
        torch._dynamo.reset()
    assert loss == pytest.approx(loss_eager, rel=1e-2)
    _assert_close_grads(grads, grads_eager, rtol=2e-2)


def test_cuda_graph_compile_mode_is_guarded(toy_pipeline):
    check_cuda_graphs_allowed("cuda:0", shapes=2)
    with pytest.raises(ValueError, match="CUDA GPU"):
        check_cuda_graphs_allowed("cpu", shapes=1)
    with pytest.raises(ValueError, match="9 shapes"):
        check_cuda_graphs_allowed("cuda", shapes=9)
    with pytest.raises(ValueError, match="inductor"):
        compile_transformer_blocks(toy_pipeline.transformer, backend="aot_eager", mode="reduce-overhead")
    with pytest.raises(ValueError, match="compile mode"):
        compile_transformer_blocks(toy_pipeline.transformer, mode="max-autotune")


def test_run_config_takes_the_checkpointing_settings():
    config = parse_run_config({"optimization": {"checkpointing_policy": "attention", "checkpointing_ratio": 0.5}})
    assert (config.optimization.checkpointing_policy, config.optimization.checkpointing_ratio) == ("attention", 0.5)
    assert parse_run_config({}).optimization.checkpointing_policy == "full"
    mixed = parse_run_config({"optimization": {"checkpointing_policy": "matmul", "checkpointing_ratio": 0.25,
                                               "checkpointing_rest_policy": "attention"}}).optimization
    assert (mixed.checkpointing_policy, mixed.checkpointing_ratio, mixed.checkpointing_rest_policy) == (
        "matmul", 0.25, "attention")
    assert parse_run_config({}).optimization.checkpointing_rest_policy == "full"
    with pytest.raises(ConfigFileError, match="checkpointing_ratio"):
        parse_run_config({"optimization": {"checkpointing_ratio": 0}})
    with pytest.raises(ConfigFileError, match="checkpointing_policy"):
        parse_run_config({"optimization": {"checkpointing_policy": "some"}})
