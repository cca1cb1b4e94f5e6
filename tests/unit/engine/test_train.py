"""Training runs on the toy model: learning, progress, checkpoints, cancel, resume, refusals."""

import pytest
import torch
from safetensors import safe_open

from tests.unit.engine._train_data import build_precomputed, run_config
from worker.engine.data.dataset import collate
from worker.engine.model.pipelines import load_pipeline
from worker.engine.progress import CancelToken, TrainCallbacks
from worker.engine.step.flow import fixed_noise_losses
from worker.engine.train import Trainer, TrainingError, train_run

WIDE_TARGETS = ["to_k", "to_q", "to_v", "to_out.0", "net.0.proj", "net.2", "proj_out", "audio_proj_out"]


@pytest.fixture(scope="module")
def precomputed(tmp_path_factory, engine_data_dir, toy_pipeline):
    return build_precomputed(tmp_path_factory.mktemp("dataset"), engine_data_dir, toy_pipeline)


def _fresh(engine_data_dir):
    return load_pipeline("toy", data_dir=engine_data_dir, device="cpu", dtype=torch.float32)


class Recorder(TrainCallbacks):
    def __init__(self, cancel_at=None, cancel=None):
        self.events, self.checkpoints, self.logs = [], [], []
        self.cancel_at, self.cancel = cancel_at, cancel

    def on_progress(self, event):
        self.events.append(event)
        if self.cancel_at is not None and event.step == self.cancel_at:
            self.cancel.cancel()

    def on_checkpoint(self, event):
        self.checkpoints.append(event)

    def on_log(self, level, message):
        self.logs.append((level, message))


def test_overfitting_one_clip_lowers_video_and_audio_loss(tmp_path, engine_data_dir, precomputed):
    torch.set_num_threads(1)
    config = run_config(
        tmp_path / "run", precomputed,
        lora={"rank": 8, "alpha": 8, "target_modules": WIDE_TARGETS},
        optimization={"steps": 200, "learning_rate": 3e-3},
        checkpoints={"interval": 200},
    )
    trainer = Trainer(config, data_dir=engine_data_dir, pipeline=_fresh(engine_data_dir), callbacks=Recorder())
    batch = collate([trainer.dataset[0]], "cpu", torch.float32)
    video_before, audio_before = fixed_noise_losses(trainer.transformer, batch)
    result = trainer.run()
    video_after, audio_after = fixed_noise_losses(trainer.transformer, batch)
    assert result.status == "completed" and result.step == 200
    assert video_after < 0.85 * video_before, (video_before, video_after)
    assert audio_after < 0.85 * audio_before, (audio_before, audio_after)


def test_progress_checkpoints_and_files(tmp_path, engine_data_dir, precomputed):
    recorder = Recorder()
    config = run_config(tmp_path / "run", precomputed, optimization={"steps": 6}, checkpoints={"interval": 3})
    result = train_run(config, data_dir=engine_data_dir, pipeline=_fresh(engine_data_dir), callbacks=recorder)
    assert [e.step for e in recorder.events] == [1, 2, 3, 4, 5, 6]
    last = recorder.events[-1]
    assert last.total == 6 and last.loss_audio is not None and last.loss_video > 0
    assert last.grad_norm > 0 and last.step_time_s > 0 and last.memory_bytes > 0 and last.eta_s == 0
    assert recorder.events[0].lr > recorder.events[-1].lr >= 0  # linear decay
    assert result.checkpoints == [3, 6] and [c.step for c in recorder.checkpoints] == [3, 6]
    folder = tmp_path / "run" / "checkpoints"
    names = sorted(p.name for p in folder.iterdir())
    assert names == [
        "lora_weights_step_00003.diffusers.safetensors", "lora_weights_step_00003.safetensors",
        "lora_weights_step_00006.diffusers.safetensors", "lora_weights_step_00006.safetensors",
        "training_state_step_00003.pt", "training_state_step_00006.pt",
    ]  # no temporary files left behind
    with safe_open(str(folder / "lora_weights_step_00006.safetensors"), "pt") as handle:
        keys = list(handle.keys())
        assert all(k.startswith("diffusion_model.transformer_blocks.") for k in keys)
        assert not any(k.endswith(".alpha") for k in keys)
        assert handle.get_tensor(keys[0]).dtype == torch.bfloat16
    assert (tmp_path / "run" / "training_config.yaml").is_file()


def test_resume_continues_the_same_loss_curve(tmp_path, engine_data_dir, precomputed):
    torch.set_num_threads(1)
    sections = dict(optimization={"steps": 12}, checkpoints={"interval": 6}, training={"first_frame_conditioning_p": 0.5})
    straight = train_run(
        run_config(tmp_path / "straight", precomputed, **sections),
        data_dir=engine_data_dir, pipeline=_fresh(engine_data_dir),
    )
    cancel = CancelToken()
    config = run_config(tmp_path / "interrupted", precomputed, **sections)
    first = train_run(
        config, data_dir=engine_data_dir, pipeline=_fresh(engine_data_dir),
        callbacks=Recorder(cancel_at=6, cancel=cancel), cancel=cancel,
    )
    assert first.status == "cancelled" and first.step == 6
    second = train_run(config, data_dir=engine_data_dir, pipeline=_fresh(engine_data_dir), resume=True)
    assert second.status == "completed" and second.step == 12
    resumed = first.losses + second.losses
    assert [s for s, _, _ in resumed] == list(range(1, 13))
    for (step, video_a, audio_a), (_, video_b, audio_b) in zip(straight.losses, resumed):
        assert video_b == pytest.approx(video_a, rel=1e-4, abs=1e-6), step
        assert audio_b == pytest.approx(audio_a, rel=1e-4, abs=1e-6), step


def test_cancel_writes_a_checkpoint_to_resume_from(tmp_path, engine_data_dir, precomputed):
    cancel = CancelToken()
    config = run_config(tmp_path / "run", precomputed, optimization={"steps": 10}, checkpoints={"interval": 10})
    result = train_run(
        config, data_dir=engine_data_dir, pipeline=_fresh(engine_data_dir),
        callbacks=Recorder(cancel_at=4, cancel=cancel), cancel=cancel,
    )
    assert result.status == "cancelled" and result.checkpoints == [4]
    assert (tmp_path / "run" / "checkpoints" / "training_state_step_00004.pt").is_file()


def test_resume_refuses_a_changed_config(tmp_path, engine_data_dir, precomputed):
    config = run_config(tmp_path / "run", precomputed, optimization={"steps": 4}, checkpoints={"interval": 2})
    train_run(config, data_dir=engine_data_dir, pipeline=_fresh(engine_data_dir))
    changed = run_config(tmp_path / "run", precomputed, optimization={"steps": 4, "learning_rate": 5e-4},
                         checkpoints={"interval": 2})
    with pytest.raises(TrainingError, match="different training configuration"):
        train_run(changed, data_dir=engine_data_dir, pipeline=_fresh(engine_data_dir), resume=True)
    with pytest.raises(TrainingError, match="already holds checkpoints"):
        train_run(config, data_dir=engine_data_dir, pipeline=_fresh(engine_data_dir))


def test_targets_that_match_nothing_are_refused(tmp_path, engine_data_dir, precomputed):
    config = run_config(tmp_path / "run", precomputed, lora={"target_modules": ["no_such_layer"]})
    with pytest.raises(TrainingError, match="matched no module"):
        Trainer(config, data_dir=engine_data_dir, pipeline=_fresh(engine_data_dir))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU refusal")
def test_eight_bit_adam_is_refused_without_a_gpu(tmp_path, engine_data_dir, precomputed):
    from worker.engine.step.optim import OptimizerUnavailable

    config = run_config(tmp_path / "run", precomputed, optimization={"optimizer": "adamw8bit"})
    with pytest.raises(OptimizerUnavailable, match="needs a CUDA GPU"):
        Trainer(config, data_dir=engine_data_dir, pipeline=_fresh(engine_data_dir))


def test_train_cli_json_and_resume(tmp_path, engine_data_dir, precomputed, capsys):
    import json

    from avlora.cli import main as avlora
    from core.recipe.run_config import run_config_to_yaml

    config = run_config(tmp_path / "run", precomputed, optimization={"steps": 4}, checkpoints={"interval": 2})
    path = tmp_path / "run.yaml"
    path.write_text(run_config_to_yaml(config))
    assert avlora(["train", str(path), "--data-dir", str(engine_data_dir), "--device", "cpu", "--json"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds.count("progress") == 4 and kinds.count("checkpoint") == 2 and kinds[-1] == "result"
    assert events[-1]["status"] == "completed" and events[-1]["checkpoints"] == [2, 4]
    progress = next(e for e in events if e["event"] == "progress")
    assert {"step", "total", "loss_video", "loss_audio", "lr", "grad_norm", "step_time_s", "memory_bytes", "eta_s"} <= set(progress)
    # resuming a finished run does nothing more and says so
    assert avlora(["train", str(path), "--data-dir", str(engine_data_dir), "--device", "cpu", "--resume"]) == 0
    assert "completed at step 4/4" in capsys.readouterr().out


def test_train_cli_bad_config(tmp_path, capsys):
    from avlora.cli import main as avlora

    path = tmp_path / "run.yaml"
    path.write_text("lora:\n  rank: 0\n")
    assert avlora(["train", str(path)]) == 2
    assert "lora.rank" in capsys.readouterr().err


def test_missing_audio_latents_stop_an_audio_video_run(tmp_path, engine_data_dir, precomputed):
    import shutil

    from worker.engine.data.dataset import DatasetError

    copy = tmp_path / "cache"
    shutil.copytree(precomputed, copy)
    for path in (copy / "audio_latents").rglob("*.pt"):
        path.unlink()
    config = run_config(tmp_path / "run", copy)
    with pytest.raises(DatasetError, match="audio_latents/clips/a.pt is missing"):
        Trainer(config, data_dir=engine_data_dir, pipeline=_fresh(engine_data_dir))
    # an explicit video-only run trains on the video alone and reports no audio loss
    video_only = run_config(tmp_path / "video_only", copy, training={"with_audio": False}, optimization={"steps": 2})
    recorder = Recorder()
    result = train_run(video_only, data_dir=engine_data_dir, pipeline=_fresh(engine_data_dir), callbacks=recorder)
    assert result.status == "completed"
    assert [e.loss_audio for e in recorder.events] == [None, None]
    assert all(e.loss_video > 0 for e in recorder.events)
