"""memory_plan: auto in the engine: the plan applied to the run's optimization settings and levers."""

import pytest
import torch

from core.recipe.memory_plan import GIB
from core.recipe.run_config import parse_run_config
from tests.unit.engine._train_data import build_precomputed, run_config
from worker.engine.model.pipelines import load_pipeline
from worker.engine.progress import TrainCallbacks
from worker.engine.step.setup import planned_optimization
from worker.engine.train import Trainer


@pytest.fixture(scope="module")
def precomputed(tmp_path_factory, engine_data_dir, toy_pipeline):
    return build_precomputed(tmp_path_factory.mktemp("dataset"), engine_data_dir, toy_pipeline)


def _full_size(buckets: str, **optimization):
    return parse_run_config({"model": "ltx-2.3", "data": {"buckets": buckets},
                             "optimization": {"memory_plan": "auto", **optimization}})


def test_auto_on_a_large_card_turns_checkpointing_off_for_the_512_bucket_and_says_why():
    logs = []
    opt = planned_optimization(_full_size("512x512x49"), "cuda", lambda *line: logs.append(line),
                               free_bytes=int(139 * GIB))
    assert opt.gradient_checkpointing is False
    assert logs == [("info", "Memory plan auto: free 139 GiB, bucket 1,843 tokens: no checkpointing "
                             "(needs ~75 GiB).")]


def test_auto_plans_for_the_largest_bucket_and_manual_is_left_alone():
    opt = planned_optimization(_full_size("512x512x49;768x768x121"), "cuda", free_bytes=int(79 * GIB))
    assert (opt.gradient_checkpointing, opt.checkpointing_policy, opt.checkpointing_rest_policy) == (
        True, "matmul", "attention")
    manual = parse_run_config({"model": "ltx-2.3", "optimization": {"gradient_checkpointing": False}})
    assert planned_optimization(manual, "cuda", free_bytes=int(139 * GIB)) is manual.optimization


class _Logs(TrainCallbacks):
    def __init__(self):
        self.lines = []

    def on_log(self, level, message):
        self.lines.append((level, message))


def test_the_trainer_on_the_cpu_applies_the_plan_the_defaults(tmp_path, engine_data_dir, precomputed):
    # written as no checkpointing, but auto decides: on the CPU, the defaults (full checkpointing)
    config = run_config(tmp_path / "auto", precomputed, optimization={
        "memory_plan": "auto", "gradient_checkpointing": False, "checkpointing_policy": "none"})
    callbacks = _Logs()
    trainer = Trainer(config, data_dir=engine_data_dir, callbacks=callbacks,
                      pipeline=load_pipeline("toy", data_dir=engine_data_dir, device="cpu", dtype=torch.float32))
    assert trainer.checkpoint_modes == ["full", "full"]
    assert ("info", "Memory plan auto: on the CPU: the defaults.") in callbacks.lines
