"""On a CUDA GPU: the voice and audio_only training modes keep the step's levers (compiled blocks,
whole-step CUDA graphs) and train like their eager runs (``python -m pytest tests/gpu --noconftest``)."""

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.parametrize("mode", ["voice", "audio_only"])
def test_a_mode_replays_as_cuda_graphs_with_compiled_blocks_like_the_eager_run(tmp_path, mode):
    from core.recipe.modes import default_targets
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
            self.logs = []

        def on_log(self, level, message):
            self.logs.append((level, message))

    runs = {}
    for graphs in (False, True):
        config = run_config(tmp_path / f"run-{graphs}", precomputed, training={"mode": mode},
                            lora={"target_modules": default_targets(mode)}, optimization={
                                "steps": 6, "gradient_checkpointing": True, "compile": True, "cuda_graph": graphs})
        pipe = load_pipeline("toy", data_dir=data_dir, device="cuda", dtype=torch.bfloat16)
        callbacks = Logs()
        trainer = Trainer(config, data_dir=data_dir, pipeline=pipe, callbacks=callbacks)
        assert (trainer.graphed is not None) == graphs and trainer.levers.compile_blocks
        result = trainer.run()
        assert result.status == "completed" and result.step == 6
        if graphs:
            assert trainer.graphed.captures == 1
        assert not any(level == "warning" for level, _ in callbacks.logs), callbacks.logs
        runs[graphs] = result.losses
    for (step, video, audio), (_, video_g, audio_g) in zip(runs[False], runs[True]):
        assert video is None and video_g is None
        assert audio_g == pytest.approx(audio, rel=1e-2), step


def test_reference_voice_replays_as_cuda_graphs_with_compiled_blocks_like_the_eager_run(tmp_path):
    """reference_voice (issue 17): the reference's clean audio tokens in front of the target's, a
    longer audio sequence than the target, through the whole-step graph and compiled blocks."""
    from tests.unit.engine._train_data import run_config
    from tests.unit.engine.test_reference_voice import BUCKET, build_voices
    from worker.engine.model.pipelines import load_pipeline
    from worker.engine.train import Trainer

    data_dir = tmp_path / "data"
    precomputed = build_voices(tmp_path / "dataset", data_dir,
                               load_pipeline("toy", data_dir=data_dir, device="cpu", dtype=torch.float32))
    runs = {}
    for graphs in (False, True):
        config = run_config(tmp_path / f"run-{graphs}", precomputed, training={"mode": "reference_voice"},
                            data={"buckets": BUCKET}, optimization={
                                "steps": 6, "gradient_checkpointing": True, "compile": True, "cuda_graph": graphs})
        pipe = load_pipeline("toy", data_dir=data_dir, device="cuda", dtype=torch.bfloat16)
        trainer = Trainer(config, data_dir=data_dir, pipeline=pipe)
        assert (trainer.graphed is not None) == graphs and trainer.levers.compile_blocks
        result = trainer.run()
        assert result.status == "completed" and result.step == 6
        runs[graphs] = result.losses
    for (step, _video, audio), (_, _video_g, audio_g) in zip(runs[False], runs[True]):
        assert audio_g == pytest.approx(audio, rel=1e-2), step
