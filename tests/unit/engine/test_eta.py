"""The ETA a training reports counts the validation samples still to render, not only the steps (issue 19:
it ran out and stood still while samples rendered)."""

from __future__ import annotations

import time

import pytest
import torch

from tests.unit.engine._train_data import build_precomputed, run_config
from worker.engine.model.pipelines import load_pipeline
from worker.engine.progress import TrainCallbacks
from worker.engine.train import train_run


class Clock(TrainCallbacks):
    """Each progress event with the moment it came."""

    def __init__(self):
        self.events: list[tuple[float, object]] = []

    def on_progress(self, event):
        self.events.append((time.perf_counter(), event))


@pytest.fixture(scope="module")
def precomputed(tmp_path_factory, engine_data_dir, toy_pipeline):
    return build_precomputed(tmp_path_factory.mktemp("dataset"), engine_data_dir, toy_pipeline)


def test_the_eta_counts_the_samples_still_to_render(tmp_path, engine_data_dir, precomputed):
    torch.set_num_threads(1)
    config = run_config(tmp_path / "run", precomputed, optimization={"steps": 4}, checkpoints={"interval": 2},
                        validation={"variants": ["lora", "base"], "at_checkpoints": True, "inference_steps": 6,
                                    "prompts": ["{trigger}, a red square hums", "{trigger}, a red square hums low"]})
    clock = Clock()
    pipe = load_pipeline("toy", data_dir=engine_data_dir, device="cpu", dtype=torch.float32)
    assert train_run(config, data_dir=engine_data_dir, pipeline=pipe, callbacks=clock).status == "completed"
    ended = time.perf_counter()

    at, first = clock.events[0]
    assert first.step == 1
    left = ended - at  # three steps and two rounds of two LoRA samples (steps 2 and 4)
    steps_only = first.step_time_s * 3
    assert steps_only < 0.5 * left  # sampling is most of what is left: an ETA of steps alone is far off
    assert 0.5 * left < first.eta_s < 2.0 * left, (first.eta_s, left)
    at_last, last = clock.events[-1]
    assert last.step == 4 and 0.5 * (ended - at_last) < last.eta_s < first.eta_s  # the last round is still to come
