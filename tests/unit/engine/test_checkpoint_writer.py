"""Checkpoints written in the background while the steps go on (issue 14, "Time to a verdict").

The files must be the ones a synchronous save of the same step writes, the checkpoint row's
callback may come only once they are whole, a failed write fails the run with its message and
leaves nothing behind, and a run never returns with a checkpoint half written.
"""

from __future__ import annotations

import threading

import pytest
import torch

import worker.engine.lora.checkpoint as checkpoint
import worker.engine.train as train
import worker.engine.train_rounds as rounds  # where the trainer's checkpoints are written
from core.errors import DiskFull
from tests.unit.engine._train_data import build_precomputed, run_config
from worker.engine.lora.checkpoint import checkpoint_paths, list_checkpoint_steps, save_checkpoint
from worker.engine.lora.files import extract_lora_weights, read_lora_file
from worker.engine.model.pipelines import load_pipeline
from worker.engine.progress import CancelToken, TrainCallbacks

WAIT_S = 30  # a generous bound on a loaded CI machine; the tests take well under a second when it works


@pytest.fixture(scope="module")
def precomputed(tmp_path_factory, engine_data_dir, toy_pipeline):
    return build_precomputed(tmp_path_factory.mktemp("dataset"), engine_data_dir, toy_pipeline)


class Recorder(TrainCallbacks):
    """Keeps the order of progress and checkpoint callbacks, and whether each checkpoint's files existed."""

    def __init__(self, output_dir, step_done: threading.Event | None = None, at: int = 0):
        self.output_dir, self.step_done, self.at = output_dir, step_done, at
        self.order, self.checkpoints, self.files_there, self.threads = [], [], [], []

    def on_progress(self, event):
        self.order.append(("step", event.step))
        if self.step_done is not None and event.step == self.at:
            self.step_done.set()

    def on_checkpoint(self, event):
        self.order.append(("checkpoint", event.step))
        self.checkpoints.append(event.step)
        self.threads.append(threading.current_thread())
        paths = checkpoint_paths(self.output_dir, event.step)
        self.files_there.append(all(p.is_file() for p in (paths.official, paths.diffusers, paths.state)))


def _run(config, engine_data_dir, recorder, cancel=None):
    pipe = load_pipeline("toy", data_dir=engine_data_dir, device="cpu", dtype=torch.float32)
    trainer = train.Trainer(config, data_dir=engine_data_dir, pipeline=pipe, callbacks=recorder, cancel=cancel)
    return trainer, trainer.run()


def _assert_same(ours, theirs, where="") -> None:
    """Equal structure, every tensor equal in dtype, shape and bits. (Whole files differ by design in
    places that say nothing: safetensors orders its header metadata freely, and torch.save names its
    archive after the temporary file.)"""
    if isinstance(ours, torch.Tensor):
        assert ours.dtype == theirs.dtype and torch.equal(ours, theirs), where
    elif isinstance(ours, dict):
        assert ours.keys() == theirs.keys(), where
        for key in ours:
            _assert_same(ours[key], theirs[key], f"{where}/{key}")
    elif isinstance(ours, (list, tuple)):
        assert len(ours) == len(theirs), where
        for index, (mine, sync) in enumerate(zip(ours, theirs)):
            _assert_same(mine, sync, f"{where}/{index}")
    else:
        assert ours == theirs, where


def _write_after(event: threading.Event, written: list, monkeypatch):
    """Make the background write wait until ``event`` (a later step finished): the run must not wait for it."""
    real = rounds.write_checkpoint

    def slow_write(output_dir, snapshot):
        written.append((threading.current_thread(), event.wait(WAIT_S)))
        return real(output_dir, snapshot)

    monkeypatch.setattr(rounds, "write_checkpoint", slow_write)


def test_background_files_equal_a_synchronous_save_and_the_row_comes_after_them(
        tmp_path, engine_data_dir, precomputed, monkeypatch):
    """Step 3 runs (changing the LoRA and AdamW in place) while step 2's files are being written;
    they still hold step 2's exact tensors and metadata: what a synchronous save of that step writes."""
    step3_done, written = threading.Event(), []
    _write_after(step3_done, written, monkeypatch)
    synchronous = tmp_path / "synchronous"
    real_snapshot = rounds.snapshot_adapter

    def snapshot_and_save(transformer, adapter, step, **state):
        save_checkpoint(synchronous, step, extract_lora_weights(transformer, adapter), **state)
        return real_snapshot(transformer, adapter, step, **state)

    monkeypatch.setattr(rounds, "snapshot_adapter", snapshot_and_save)
    output = tmp_path / "run"
    recorder = Recorder(output, step3_done, at=3)
    config = run_config(output, precomputed, optimization={"steps": 4}, checkpoints={"interval": 2})
    _, result = _run(config, engine_data_dir, recorder)

    assert result.status == "completed" and result.checkpoints == [2, 4]
    assert [waited for _, waited in written] == [True, True]  # the write of step 2 waited for step 3: no stall
    assert all(thread is not threading.main_thread() for thread, _ in written)
    order = recorder.order  # step 2's row at a step boundary after step 3 (when its write is seen done)
    assert [e for e in order if e[0] == "step"] == [("step", 1), ("step", 2), ("step", 3), ("step", 4)]
    assert order.index(("step", 3)) < order.index(("checkpoint", 2)) < order.index(("checkpoint", 4))
    assert recorder.files_there == [True, True]
    assert recorder.threads == [threading.main_thread()] * 2  # rows are made on the training thread
    for step in (2, 4):
        ours, theirs = checkpoint_paths(output, step), checkpoint_paths(synchronous, step)
        for layout in ("official", "diffusers"):
            _assert_same(read_lora_file(getattr(ours, layout)), read_lora_file(getattr(theirs, layout)))
        _assert_same(torch.load(ours.state, weights_only=False), torch.load(theirs.state, weights_only=False))
    assert sorted(p.name for p in (output / "checkpoints").iterdir()) == sorted(
        p.name for p in (synchronous / "checkpoints").iterdir())  # no temporary file left


def test_a_failed_background_write_fails_the_run_and_leaves_nothing(tmp_path, engine_data_dir, precomputed,
                                                                    monkeypatch):
    """The disk fills during step 2's write, after both LoRA files are on disk: the run stops with the
    full-disk message by the next checkpoint at the latest, with no file and no row of step 2."""
    step3_done = threading.Event()
    real_save = checkpoint.save_diffusers

    def save_then_full(*args, **kwargs):
        real_save(*args, **kwargs)
        step3_done.wait(WAIT_S)  # the steps go on meanwhile
        raise DiskFull(5 * 1024 * 1024)

    monkeypatch.setattr(checkpoint, "save_diffusers", save_then_full)
    output = tmp_path / "run"
    recorder = Recorder(output, step3_done, at=3)
    config = run_config(output, precomputed, optimization={"steps": 6}, checkpoints={"interval": 2})
    with pytest.raises(DiskFull, match=r"^the disk holding DATA_DIR is full: 5 MiB free$"):
        _run(config, engine_data_dir, recorder)

    steps = [step for kind, step in recorder.order if kind == "step"]
    assert steps[:3] == [1, 2, 3] and steps[-1] <= 4
    assert recorder.checkpoints == []
    assert list((output / "checkpoints").iterdir()) == []
    assert list_checkpoint_steps(output) == []


def test_a_cancel_during_the_write_ends_with_that_checkpoint_complete(tmp_path, engine_data_dir, precomputed,
                                                                     monkeypatch):
    """Cancelled as step 2's checkpoint starts, its files still being written when the training thread
    sees the cancel: the run returns only once they are whole, with its row made."""
    cancel = CancelToken()
    real = rounds.write_checkpoint

    def slow_write(output_dir, snapshot):
        threading.Event().wait(0.5)  # still writing when the loop's next boundary sees the cancel
        return real(output_dir, snapshot)

    class CancelAtCheckpoint(Recorder):
        def on_phase(self, phase):
            if phase == "checkpoint_write":
                cancel.cancel()

    monkeypatch.setattr(rounds, "write_checkpoint", slow_write)
    output = tmp_path / "run"
    recorder = CancelAtCheckpoint(output)
    config = run_config(output, precomputed, optimization={"steps": 6}, checkpoints={"interval": 2})
    _, result = _run(config, engine_data_dir, recorder, cancel=cancel)

    assert result.status == "cancelled" and result.step == 2 and result.checkpoints == [2]
    assert recorder.checkpoints == [2] and recorder.files_there == [True]
    assert list_checkpoint_steps(output) == [2]
    assert sorted(p.name for p in (output / "checkpoints").iterdir()) == [
        "lora_weights_step_00002.diffusers.safetensors", "lora_weights_step_00002.safetensors",
        "training_state_step_00002.pt",
    ]
