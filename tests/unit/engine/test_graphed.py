"""The whole-step CUDA graph's bookkeeping, checked on the CPU (``capture=False`` runs the step
eagerly on the graph's buffers): inputs copied in, gradients handed back and overwritten, one
entry per clip shape, the eager path taken where no graph applies, and the trainer's results
unchanged. ``tests/gpu/test_graphed_cuda.py`` checks a real capture against the eager step."""

import dataclasses

import pytest
import torch

from tests.unit.engine._train_data import build_precomputed, run_config
from worker.engine.bench.train import synthetic_batch
from worker.engine.lora.adapters import add_lora, trainable_parameters
from worker.engine.model.pipelines import load_pipeline
from worker.engine.step.flow import (
    compute_step_losses,
    forward_backward,
    prepare_flow_inputs,
    ready_for_step,
    run_transformer,
    with_rope_coords,
)
from worker.engine.step.graphed import GraphedStep, GraphUnavailable, step_signature
from worker.engine.step.levers import lora_compute_in_base_dtype
from worker.engine.step.optim import build_optimizer
from worker.engine.step.timesteps import ShiftedLogitNormalSampler
from worker.engine.train import Trainer

TARGETS = ["to_k", "to_q", "to_v", "to_out.0"]


def _model(data_dir):
    transformer = load_pipeline("toy", data_dir=data_dir, device="cpu", dtype=torch.float32).transformer
    add_lora(transformer, rank=4, alpha=4, target_modules=TARGETS, init_seed=3)
    lora_compute_in_base_dtype(transformer)
    transformer.train()
    return transformer


def _inputs(batch, seed):
    return prepare_flow_inputs(batch, ShiftedLogitNormalSampler(), torch.Generator().manual_seed(seed))


def test_coordinates_computed_before_the_forward_give_the_same_prediction(engine_data_dir, toy_pipeline):
    transformer = toy_pipeline.transformer
    batch = synthetic_batch(transformer, (64, 64, 9), 64, "cpu", torch.float32, fps=25.0)
    inputs = _inputs(batch, 0)
    ready = with_rope_coords(transformer, batch)
    assert ready.video_coords is not None and ready.audio_coords is not None
    args = (inputs.noisy_video, inputs.noisy_audio, inputs.video_timesteps, inputs.video_sigma, inputs.audio_sigma)
    with torch.no_grad():
        inside = run_transformer(transformer, batch, *args)
        outside = run_transformer(transformer, ready, *args)
    for a, b in zip(inside, outside):
        assert torch.equal(a, b)
    # the fps reaches the model through the coordinates: another fps, other coordinates
    other = with_rope_coords(transformer, synthetic_batch(transformer, (64, 64, 9), 64, "cpu", torch.float32, fps=12.0))
    assert not torch.equal(other.video_coords, ready.video_coords)


def test_replayed_steps_train_exactly_like_the_eager_step(engine_data_dir):
    eager, graphed_model = _model(engine_data_dir), _model(engine_data_dir)
    results = {}
    for name, transformer in (("eager", eager), ("graphed", graphed_model)):
        params = trainable_parameters(transformer)
        optimizer = build_optimizer(params, name="adamw", lr=1e-2)

        def step_fn(batch, inputs, transformer=transformer):
            return forward_backward(transformer, batch, inputs)

        graphed = GraphedStep(step_fn, params, capture=False) if name == "graphed" else None
        batch = ready_for_step(transformer, synthetic_batch(transformer, (64, 64, 9), 64, "cpu", torch.float32))
        losses_seen = []
        for seed in range(3):  # new noise each step: the buffers must take each step's inputs
            optimizer.zero_grad(set_to_none=True)  # the graph hands its gradients back regardless
            inputs = _inputs(batch, seed)
            losses = graphed(batch, inputs) if graphed else step_fn(batch, inputs)
            assert all(p.grad is not None for p in params)
            losses_seen.append((float(losses.total.detach()), float(losses.video_loss), float(losses.audio_loss)))
            optimizer.step()
        results[name] = (losses_seen, [p.detach().clone() for p in params])
    assert results["graphed"][0] == results["eager"][0]
    assert len({loss for loss, _, _ in results["eager"][0]}) == 3  # the steps really differed
    for a, b in zip(results["graphed"][1], results["eager"][1]):
        assert torch.equal(a, b)


def test_gradients_are_overwritten_not_summed(engine_data_dir):
    transformer = _model(engine_data_dir)
    params = trainable_parameters(transformer)
    graphed = GraphedStep(lambda b, i: forward_backward(transformer, b, i), params, capture=False)
    batch = ready_for_step(transformer, synthetic_batch(transformer, (64, 64, 9), 64, "cpu", torch.float32))
    inputs = _inputs(batch, 4)
    first = graphed(batch, inputs)
    once = [p.grad.clone() for p in params]
    second = graphed(batch, inputs)  # no zero_grad in between: a plain backward would sum
    assert float(first.total) == float(second.total)
    for grad, p in zip(once, params):
        assert torch.equal(p.grad, grad)


def test_one_graph_per_shape_and_a_clear_refusal_beyond_the_limit(engine_data_dir):
    transformer = _model(engine_data_dir)
    params = trainable_parameters(transformer)
    graphed = GraphedStep(lambda b, i: forward_backward(transformer, b, i), params, capture=False, max_graphs=1)
    small = ready_for_step(transformer, synthetic_batch(transformer, (64, 64, 9), 64, "cpu", torch.float32))
    graphed(small, _inputs(small, 0))
    base = synthetic_batch(transformer, (64, 64, 9), 64, "cpu", torch.float32)
    same_shape = ready_for_step(transformer, dataclasses.replace(base, fps=30.0))
    graphed(same_shape, _inputs(same_shape, 1))  # another fps: same graph (coordinates are inputs)
    assert len(graphed._entries) == 1
    wide = ready_for_step(transformer, synthetic_batch(transformer, (96, 64, 9), 64, "cpu", torch.float32))
    with pytest.raises(GraphUnavailable, match="new shape") as caught:
        graphed(wide, _inputs(wide, 2))
    assert not caught.value.permanent
    assert step_signature(wide, _inputs(wide, 2)) != step_signature(small, _inputs(small, 2))


def test_a_kept_text_mask_is_part_of_the_signature(engine_data_dir, toy_pipeline):
    transformer = toy_pipeline.transformer
    batch = synthetic_batch(transformer, (64, 64, 9), 64, "cpu", torch.float32)
    dropped = ready_for_step(transformer, batch)
    batch.text_mask[:, -8:] = 0  # padding: the mask must be kept
    kept = ready_for_step(transformer, batch)
    assert dropped.text_mask is None and kept.text_mask is not None
    inputs = _inputs(batch, 0)
    assert step_signature(dropped, inputs) != step_signature(kept, inputs)
    with torch.no_grad():  # and a kept mask changes the prediction (it is really used)
        a = compute_step_losses(transformer, dropped, inputs, drop_all_ones_mask=False).video
        b = compute_step_losses(transformer, kept, inputs, drop_all_ones_mask=False).video
    assert a != b


def test_capture_needs_a_gpu():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: tests/gpu covers the capture")
    with pytest.raises(GraphUnavailable, match="CUDA GPU") as caught:
        GraphedStep(lambda b, i: None, [], capture=True)
    assert caught.value.permanent


@pytest.fixture(scope="module")
def precomputed(tmp_path_factory, engine_data_dir, toy_pipeline):
    return build_precomputed(tmp_path_factory.mktemp("dataset"), engine_data_dir, toy_pipeline)


def test_trainer_with_the_graphed_step_gives_the_same_run(tmp_path, engine_data_dir, precomputed):
    """The trainer's step through the graph's bookkeeping (run eagerly on this CPU) reproduces the
    plain run's losses and LoRA: gradients handed back after zero_grad, clipping, the schedule."""
    runs = {}
    for name in ("plain", "graphed"):
        config = run_config(tmp_path / name, precomputed, optimization={"steps": 4, "learning_rate": 1e-2})
        trainer = Trainer(config, data_dir=engine_data_dir,
                          pipeline=load_pipeline("toy", data_dir=engine_data_dir, device="cpu", dtype=torch.float32))
        assert trainer.graphed is None  # on a CPU the trainer records no graph
        if name == "graphed":
            trainer.graphed = GraphedStep(trainer._forward_backward, trainer.params, capture=False)
        result = trainer.run()
        runs[name] = (result.losses, [p.detach().clone() for p in trainer.params])
        if name == "graphed":
            assert len(trainer.graphed._entries) == 1
    assert runs["graphed"][0] == runs["plain"][0]
    for a, b in zip(runs["graphed"][1], runs["plain"][1]):
        assert torch.equal(a, b)


def test_trainer_takes_the_checkpointing_mix_from_the_config(tmp_path, engine_data_dir, precomputed):
    config = run_config(tmp_path / "mix", precomputed, optimization={
        "gradient_checkpointing": True, "checkpointing_policy": "none", "checkpointing_ratio": 0.5,
        "checkpointing_rest_policy": "attention",
    })
    trainer = Trainer(config, data_dir=engine_data_dir,
                      pipeline=load_pipeline("toy", data_dir=engine_data_dir, device="cpu", dtype=torch.float32))
    assert trainer.checkpoint_modes == ["attention", "none"]  # the toy's two blocks: one of each


def _fake_recorder(transformer, params, fail_after: int):
    """Stands in for the CUDA capture (this machine has no GPU): the first ``fail_after`` shapes
    are 'recorded' (their replay runs the step eagerly on the buffers), then memory runs out."""
    from worker.engine.step.graphed import clear_grads

    recorded = []

    def record(entry):
        if len(recorded) >= fail_after:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 72.00 MiB.")
        recorded.append(entry)

        class Replay:
            def replay(self):
                clear_grads(params)
                entry.losses = forward_backward(transformer, entry.batch, entry.inputs)
                entry.grads = [p.grad for p in params]

        entry.graph = Replay()

    return record


def test_no_memory_for_another_shape_sends_that_shape_to_the_eager_step(engine_data_dir, monkeypatch):
    transformer = _model(engine_data_dir)
    params = trainable_parameters(transformer)
    graphed = GraphedStep(lambda b, i: forward_backward(transformer, b, i), params, capture=False, max_graphs=4)
    graphed.capture = True  # the bookkeeping around the capture, with the capture itself faked
    monkeypatch.setattr(graphed, "_record", _fake_recorder(transformer, params, fail_after=1))
    small = ready_for_step(transformer, synthetic_batch(transformer, (64, 64, 9), 64, "cpu", torch.float32))
    wide = ready_for_step(transformer, synthetic_batch(transformer, (96, 64, 9), 64, "cpu", torch.float32))
    first = graphed(small, _inputs(small, 0))
    with pytest.raises(GraphUnavailable, match="no memory") as caught:
        graphed(wide, _inputs(wide, 1))
    assert not caught.value.permanent and graphed.max_graphs == 1
    assert all(p.grad is None for p in params)  # nothing half-recorded is left behind
    again = graphed(small, _inputs(small, 0))  # the recorded shape still replays
    assert float(again.total) == float(first.total)


def test_a_first_shape_that_does_not_fit_is_an_out_of_memory_error(engine_data_dir, monkeypatch):
    transformer = _model(engine_data_dir)
    params = trainable_parameters(transformer)
    graphed = GraphedStep(lambda b, i: forward_backward(transformer, b, i), params, capture=False)
    graphed.capture = True
    monkeypatch.setattr(graphed, "_record", _fake_recorder(transformer, params, fail_after=0))
    batch = ready_for_step(transformer, synthetic_batch(transformer, (64, 64, 9), 64, "cpu", torch.float32))
    with pytest.raises(torch.OutOfMemoryError):
        graphed(batch, _inputs(batch, 0))
    assert not graphed._entries
