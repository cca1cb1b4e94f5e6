"""The compiled blocks' activation memory budget: the same losses and gradients, fewer saved
activations. Traced with ``aot_eager_decomp_partition`` (the partitioner inductor uses, without
generating kernels) so it runs on the CPU in seconds."""

import pytest
import torch
import torch._dynamo
import torch._functorch.config

from worker.engine.bench.train import synthetic_batch
from worker.engine.lora.adapters import add_lora, trainable_parameters
from worker.engine.model.pipelines import load_pipeline
from worker.engine.step.compiling import compile_transformer_blocks
from worker.engine.step.flow import forward_backward, prepare_flow_inputs, ready_for_step
from worker.engine.step.levers import lora_compute_in_base_dtype
from worker.engine.step.timesteps import ShiftedLogitNormalSampler

BACKEND = "aot_eager_decomp_partition"


def _run(data_dir, budget):
    """(loss, flat LoRA gradient, bytes saved for the backward) of one step."""
    transformer = load_pipeline("toy", data_dir=data_dir, device="cpu", dtype=torch.float32).transformer
    add_lora(transformer, rank=4, alpha=4, target_modules=["to_k", "to_q", "to_v", "to_out.0"], init_seed=3)
    for name, param in transformer.named_parameters():
        if "lora_B" in name:  # non-zero B: every LoRA weight gets a gradient
            param.data = 0.05 * torch.ones_like(param)
    lora_compute_in_base_dtype(transformer)
    transformer.train()
    if budget is not None:
        compile_transformer_blocks(transformer, backend=BACKEND, memory_budget=budget)
    batch = ready_for_step(transformer, synthetic_batch(transformer, (64, 64, 9), 64, "cpu", torch.float32))
    inputs = prepare_flow_inputs(batch, ShiftedLogitNormalSampler(), torch.Generator().manual_seed(0))
    saved = []

    def pack(tensor):
        saved.append(tensor.numel() * tensor.element_size())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        losses = forward_backward(transformer, batch, inputs)
    grads = torch.cat([p.grad.flatten() for p in trainable_parameters(transformer)])
    torch._dynamo.reset()
    return float(losses.total.detach()), grads, sum(saved)


@pytest.fixture(autouse=True)
def _restore_budget():
    yield
    torch._functorch.config.activation_memory_budget = 1.0


def test_a_smaller_budget_keeps_fewer_activations_and_the_same_numbers(engine_data_dir):
    loss_eager, grads_eager, _ = _run(engine_data_dir, None)
    loss_full, grads_full, saved_full = _run(engine_data_dir, 1.0)
    loss_low, grads_low, saved_low = _run(engine_data_dir, 0.0)
    assert saved_low < 0.7 * saved_full, (saved_low, saved_full)
    for loss, grads in ((loss_full, grads_full), (loss_low, grads_low)):
        assert loss == pytest.approx(loss_eager, rel=1e-5)
        assert float((grads - grads_eager).norm() / grads_eager.norm()) < 1e-4


def test_the_budget_is_checked_and_set_at_every_compile(engine_data_dir, toy_pipeline):
    with pytest.raises(ValueError, match="between 0 and 1"):
        compile_transformer_blocks(toy_pipeline.transformer, backend=BACKEND, memory_budget=1.5)
    transformer = load_pipeline("toy", data_dir=engine_data_dir, device="cpu", dtype=torch.float32).transformer
    compile_transformer_blocks(transformer, backend=BACKEND, memory_budget=0.25)
    assert torch._functorch.config.activation_memory_budget == 0.25
    compile_transformer_blocks(transformer, backend=BACKEND)  # None: back to torch's default
    assert torch._functorch.config.activation_memory_budget == 1.0
