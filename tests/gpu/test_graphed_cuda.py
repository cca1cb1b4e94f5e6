"""On a CUDA GPU: the engine's step levers (compiled blocks, whole-step CUDA graph, compiled
memory budget) train like the plain eager step, on the real LTX-2 architecture at toy size in bf16.

These need a GPU, so they skip elsewhere (CI has none); run them on one with
``python -m pytest tests/gpu --noconftest`` (docs/benchmarks.md records the last run).
"""

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

STEPS = 3


def _model(*, compile_blocks=False, checkpointing=True, policy="full", memory_budget=None):
    import torch._dynamo

    from worker.engine.lora.adapters import add_lora
    from worker.engine.model.toy import build_toy_transformer
    from worker.engine.step.checkpointing import enable_activation_checkpointing
    from worker.engine.step.compiling import compile_transformer_blocks
    from worker.engine.step.levers import lora_compute_in_base_dtype

    torch._dynamo.reset()
    torch.manual_seed(0)
    with torch.device("cuda"):
        transformer = build_toy_transformer().to(torch.bfloat16)
    add_lora(transformer, rank=4, alpha=4, target_modules=["to_k", "to_q", "to_v", "to_out.0"], init_seed=3)
    generator = torch.Generator().manual_seed(1)
    for name, param in sorted(transformer.named_parameters()):
        if "lora_B" in name:  # non-zero B: every LoRA weight gets a gradient from the first step
            param.data = (0.05 * torch.randn(param.shape, generator=generator)).to(param.device, param.dtype)
    lora_compute_in_base_dtype(transformer)
    if checkpointing:
        enable_activation_checkpointing(transformer, policy=policy, inside_compile=compile_blocks)
    if compile_blocks:
        compile_transformer_blocks(transformer, memory_budget=memory_budget)
    transformer.train()
    return transformer


def _train(transformer, *, graphed: bool):
    """Losses of STEPS optimizer steps on fixed inputs with fresh noise each step, and how far the
    LoRA weights moved (the update, so a wrong gradient cannot hide behind the initial weights)."""
    from worker.engine.bench.train import synthetic_batch
    from worker.engine.lora.adapters import trainable_parameters
    from worker.engine.step.flow import forward_backward, prepare_flow_inputs, ready_for_step
    from worker.engine.step.graphed import GraphedStep
    from worker.engine.step.levers import cast_lora_weights_once
    from worker.engine.step.timesteps import ShiftedLogitNormalSampler

    params = trainable_parameters(transformer)
    initial = torch.cat([p.detach().flatten() for p in params]).clone()
    # plain SGD: each update is the gradient itself, so comparing updates compares gradients (Adam
    # would blow bf16 noise in near-zero gradients up to full-size steps)
    optimizer = torch.optim.SGD(params, lr=1e-2)
    batch = ready_for_step(transformer, synthetic_batch(transformer, (64, 64, 17), 64, "cuda", torch.bfloat16))

    def step_fn(step_batch, inputs):
        return forward_backward(transformer, step_batch, inputs,
                                weight_cast=lambda: cast_lora_weights_once(transformer, torch.bfloat16))

    runner = GraphedStep(step_fn, params) if graphed else step_fn
    generator, losses = torch.Generator().manual_seed(0), []
    for _ in range(STEPS):
        optimizer.zero_grad(set_to_none=True)
        inputs = prepare_flow_inputs(batch, ShiftedLogitNormalSampler(), generator)
        result = runner(batch, inputs)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        losses.append(float(result.total.detach()))
    if graphed:
        assert runner.captures == 1
    return losses, torch.cat([p.detach().flatten() for p in params]) - initial


@pytest.fixture(scope="module")
def eager():
    return _train(_model(), graphed=False)


def _assert_same_training(got, want, *, loss_rtol, weight_rtol):
    losses, weights = got
    want_losses, want_weights = want
    assert losses == pytest.approx(want_losses, rel=loss_rtol)
    assert len(set(want_losses)) == STEPS  # each step really saw new noise
    assert float(want_weights.norm()) > 0
    error = float((weights.float() - want_weights.float()).norm() / want_weights.float().norm())
    assert error < weight_rtol, error


def test_a_replayed_cuda_graph_trains_like_the_eager_step(eager):
    _assert_same_training(_train(_model(), graphed=True), eager, loss_rtol=1e-3, weight_rtol=1e-2)


def test_compiled_blocks_in_a_cuda_graph_train_like_the_eager_step(eager):
    # inductor fuses and reorders float math: bf16-rounding-level differences, no more
    _assert_same_training(_train(_model(compile_blocks=True), graphed=True), eager, loss_rtol=2e-2, weight_rtol=5e-2)


def test_a_compiled_memory_budget_trains_like_the_eager_step(eager):
    got = _train(_model(compile_blocks=True, checkpointing=False, memory_budget=0.2), graphed=True)
    _assert_same_training(got, eager, loss_rtol=2e-2, weight_rtol=5e-2)


def test_selective_checkpointing_inside_compiled_blocks_trains_like_the_eager_step(eager):
    got = _train(_model(compile_blocks=True, policy="attention"), graphed=True)
    _assert_same_training(got, eager, loss_rtol=2e-2, weight_rtol=5e-2)


def test_a_training_run_replays_its_steps_as_cuda_graphs_and_matches_the_eager_run(tmp_path):
    """The trainer's own path on the GPU: the toy preprocessed on the CPU, then trained in bf16
    with compiled blocks, with and without CUDA graphs; the graph is released mid-run (as
    sampling does) and recorded again. Same losses, no fallback."""
    from tests.unit.engine._train_data import build_precomputed, run_config
    from worker.engine.model.pipelines import load_pipeline
    from worker.engine.progress import TrainCallbacks
    from worker.engine.train import Trainer

    data_dir = tmp_path / "data"
    precomputed = build_precomputed(
        tmp_path / "dataset", data_dir, load_pipeline("toy", data_dir=data_dir, device="cpu", dtype=torch.float32)
    )

    class Logs(TrainCallbacks):
        def __init__(self):
            self.logs, self.trainer = [], None

        def on_log(self, level, message):
            self.logs.append((level, message))

        def on_progress(self, event):
            if event.step == 3 and self.trainer.graphed is not None:
                self.trainer.graphed.release()  # what sampling does between steps

    runs = {}
    for graphs in (False, True):
        config = run_config(tmp_path / f"run-{graphs}", precomputed, optimization={
            "steps": 6, "gradient_checkpointing": True, "compile": True, "cuda_graph": graphs,
        })
        pipe = load_pipeline("toy", data_dir=data_dir, device="cuda", dtype=torch.bfloat16)
        callbacks = Logs()
        trainer = Trainer(config, data_dir=data_dir, pipeline=pipe, callbacks=callbacks)
        callbacks.trainer = trainer
        assert (trainer.graphed is not None) == graphs and trainer.levers.compile_blocks
        result = trainer.run()
        assert result.status == "completed" and result.step == 6
        if graphs:
            assert trainer.graphed.captures == 2  # the first step, and again after the release
            assert any("CUDA graph" in message for _, message in callbacks.logs)
        assert not any(level == "warning" for level, _ in callbacks.logs), callbacks.logs
        runs[graphs] = result.losses
    for (step, video, audio), (_, video_g, audio_g) in zip(runs[False], runs[True]):
        assert video_g == pytest.approx(video, rel=1e-2), step
        assert audio_g == pytest.approx(audio, rel=1e-2), step
