"""Training modes on the toy: each learns the sides it scores, leaves the others without a LoRA,
resumes, validates (voice with the v2a voice test) and exports files that verify."""

import pytest
import torch
from safetensors import safe_open

from core.recipe.architecture import AUDIO_FAMILIES, BLOCK_FAMILIES
from tests.unit.engine._train_data import build_precomputed, run_config
from worker.engine.data.dataset import collate
from worker.engine.lora.names import family_of_key
from worker.engine.model.pipelines import load_pipeline
from worker.engine.progress import CancelToken, TrainCallbacks
from worker.engine.step.flow import fixed_noise_losses, stand_in_video
from worker.engine.train import Trainer, TrainingError, train_run

WIDE_TARGETS = ["to_k", "to_q", "to_v", "to_out.0", "net.0.proj", "net.2"]
# mode -> (training settings, the families that may hold LoRA keys, whether the video loss is scored)
MODES = {
    "voice": ({"mode": "voice"}, set(AUDIO_FAMILIES), False),
    "audio_only": ({"mode": "audio_only"}, {"audio_attn1", "audio_attn2", "audio_ff"}, False),
    "video_frozen": ({"mode": "audio_video", "video_frozen": True}, set(AUDIO_FAMILIES), True),
}


@pytest.fixture(scope="module")
def precomputed(tmp_path_factory, engine_data_dir, toy_pipeline):
    return build_precomputed(tmp_path_factory.mktemp("dataset"), engine_data_dir, toy_pipeline)


def _fresh(engine_data_dir):
    return load_pipeline("toy", data_dir=engine_data_dir, device="cpu", dtype=torch.float32)


class Recorder(TrainCallbacks):
    def __init__(self, cancel_at=None, cancel=None):
        self.events, self.cancel_at, self.cancel = [], cancel_at, cancel

    def on_progress(self, event):
        self.events.append(event)
        if self.cancel_at is not None and event.step == self.cancel_at:
            self.cancel.cancel()


def _config(path, precomputed, mode, **sections):
    training = {**MODES[mode][0], **sections.pop("training", {})}
    return run_config(path, precomputed, training=training, **{"lora": {"target_modules": WIDE_TARGETS}, **sections})


def _file_families(path) -> set[str]:
    with safe_open(str(path), "pt") as handle:
        names = handle.keys()  # a safe_open handle is not iterable itself
    return {family_of_key(k) for k in names}


@pytest.mark.parametrize("mode", list(MODES))
def test_each_mode_learns_its_sides_and_leaves_the_others_alone(tmp_path, engine_data_dir, precomputed, mode):
    torch.set_num_threads(1)
    training, allowed, scores_video = MODES[mode]
    config = _config(tmp_path / "run", precomputed, mode, lora={"rank": 8, "alpha": 8},
                     optimization={"steps": 40, "learning_rate": 3e-3}, checkpoints={"interval": 40})
    recorder = Recorder()
    trainer = Trainer(config, data_dir=engine_data_dir, pipeline=_fresh(engine_data_dir), callbacks=recorder)
    role = {"voice": "clean", "audio_only": "absent"}.get(training["mode"], "denoised")
    batch = collate([trainer.dataset[0]], "cpu", torch.float32)
    batch = stand_in_video(batch) if role == "absent" else batch
    _, audio_before = fixed_noise_losses(trainer.transformer, batch, video_role=role)
    result = trainer.run()
    _, audio_after = fixed_noise_losses(trainer.transformer, batch, video_role=role)
    assert result.status == "completed"
    assert audio_after < 0.95 * audio_before, (audio_before, audio_after)
    assert all((e.loss_video is not None) == scores_video and e.loss_audio is not None for e in recorder.events)
    trained = {n.split(".lora_")[0] for n, p in trainer.transformer.named_parameters() if p.requires_grad}
    assert trained and all(p.grad is not None and p.grad.abs().sum() > 0
                           for p in trainer.params)  # every LoRA weight it has is learning
    families = _file_families(tmp_path / "run" / "checkpoints" / "lora_weights_step_00040.safetensors")
    assert families <= allowed and families & allowed
    assert not families & (set(BLOCK_FAMILIES) - allowed)  # the side it must not touch has no key


def test_modes_refuse_contradictions_before_loading(tmp_path, engine_data_dir, precomputed):
    for training, lora, code in [
        ({"mode": "voice"}, {"target_modules": ["attn1.to_k", "ff.net.2"]}, "mode_targets_none"),
        ({"mode": "audio_only", "first_frame_conditioning_p": 0.5}, {}, "mode_first_frame_without_video"),
        ({"mode": "voice", "with_audio": False}, {}, "mode_needs_audio"),
    ]:
        config = run_config(tmp_path / "run", precomputed, training=training, lora=lora)
        with pytest.raises(TrainingError, match=code):
            Trainer(config, data_dir=engine_data_dir, pipeline=None)  # refused before any model loads


@pytest.mark.parametrize("mode", ["voice", "audio_only"])
def test_a_mode_resumes_on_the_same_loss_curve(tmp_path, engine_data_dir, precomputed, mode):
    torch.set_num_threads(1)
    sections = dict(optimization={"steps": 6}, checkpoints={"interval": 3})
    straight = train_run(_config(tmp_path / "straight", precomputed, mode, **sections),
                         data_dir=engine_data_dir, pipeline=_fresh(engine_data_dir))
    cancel = CancelToken()
    config = _config(tmp_path / "interrupted", precomputed, mode, **sections)
    first = train_run(config, data_dir=engine_data_dir, pipeline=_fresh(engine_data_dir),
                      callbacks=Recorder(cancel_at=3, cancel=cancel), cancel=cancel)
    second = train_run(config, data_dir=engine_data_dir, pipeline=_fresh(engine_data_dir), resume=True)
    assert first.step == 3 and second.status == "completed"
    resumed = first.losses + second.losses
    assert [s for s, _, _ in resumed] == list(range(1, 7))
    for (step, video_a, audio_a), (_, video_b, audio_b) in zip(straight.losses, resumed):
        assert video_a is None and video_b is None
        assert audio_b == pytest.approx(audio_a, rel=1e-4, abs=1e-6), step


def test_a_voice_run_samples_the_v2a_voice_test_and_its_files_verify(tmp_path, engine_data_dir, precomputed, capsys):
    import json

    from avlora.cli import main as avlora

    config = _config(tmp_path / "run", precomputed, "voice", optimization={"steps": 2}, checkpoints={"interval": 2},
                     validation={"at_checkpoints": True, "v2a_clips": 1})
    assert config.validation.variants == ["lora"]  # the voice mode adds the v2a variants itself
    train_run(config, data_dir=engine_data_dir, pipeline=_fresh(engine_data_dir))
    samples = sorted(p.name for p in (tmp_path / "run" / "samples").glob("*.mp4"))
    assert samples == ["step_000000_01.mp4", "step_000000_v2a_01.mp4", "step_000002_01.mp4",
                       "step_000002_v2a_01.mp4", "v2a_base_01.mp4"]
    checkpoints = tmp_path / "run" / "checkpoints"
    for name in ("lora_weights_step_00002.safetensors", "lora_weights_step_00002.diffusers.safetensors"):
        code = avlora(["verify-lora", str(checkpoints / name), "--preset", "toy", "--data-dir", str(engine_data_dir),
                       "--json"])
        report = json.loads(capsys.readouterr().out)
        assert code == 0 and report["ok"], report
        assert report["sides"] == ["audio"]
    with safe_open(str(checkpoints / "lora_weights_step_00002.safetensors"), "pt") as handle:
        assert handle.metadata()["avlora_training_mode"] == "voice"


def test_the_cli_trains_a_voice_run_and_prints_no_video_loss(tmp_path, engine_data_dir, precomputed, capsys):
    from avlora.cli import main as avlora
    from core.recipe.run_config import run_config_to_yaml

    config = _config(tmp_path / "run", precomputed, "voice", lora={"target_modules": ["audio_attn1.to_k"]},
                     optimization={"steps": 2}, checkpoints={"interval": 2})
    path = tmp_path / "run.yaml"
    path.write_text(run_config_to_yaml(config))
    assert avlora(["train", str(path), "--data-dir", str(engine_data_dir), "--device", "cpu", "--log-every", "1"]) == 0
    assert "step 2/2  loss_video -  loss_audio " in capsys.readouterr().err
