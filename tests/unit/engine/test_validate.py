"""Validation samples: variants, per-side strength, mp4 with audio, and the CLI on a run folder."""

import av
import numpy as np
import pytest
import soundfile
import torch

from avlora.cli import main as avlora
from tests.unit.engine._train_data import build_precomputed, run_config
from worker.engine.model.pipelines import load_pipeline
from worker.engine.sampling import SampleSpec, generate, lora_variant
from worker.engine.train import train_run

AUDIO_SIDE_TARGETS = [
    f"{family}.{proj}"
    for family in ("audio_attn1", "audio_attn2", "video_to_audio_attn")
    for proj in ("to_q", "to_k", "to_v", "to_out.0")
] + ["audio_ff.net.0.proj", "audio_ff.net.2"]


@pytest.fixture(scope="module")
def audio_side_run(tmp_path_factory, engine_data_dir, toy_pipeline):
    """A short run whose LoRA sits on audio-side modules only, sampled at step 0 and 20."""
    torch.set_num_threads(1)
    precomputed = build_precomputed(tmp_path_factory.mktemp("dataset"), engine_data_dir, toy_pipeline)
    run_dir = tmp_path_factory.mktemp("run") / "run"
    config = run_config(
        run_dir, precomputed,
        lora={"rank": 4, "alpha": 4, "target_modules": AUDIO_SIDE_TARGETS},
        optimization={"steps": 20, "learning_rate": 1e-2},
        checkpoints={"interval": 20},
        validation={"variants": ["lora", "base", "lora-audio-off"], "at_checkpoints": True},
    )
    pipe = load_pipeline("toy", data_dir=engine_data_dir, device="cpu", dtype=torch.float32)
    result = train_run(config, data_dir=engine_data_dir, pipeline=pipe)
    assert result.status == "completed"
    return run_dir, pipe


def _wav(path):
    data, rate = soundfile.read(str(path))
    return data, rate


def test_training_writes_samples_at_step_zero_and_each_checkpoint(audio_side_run):
    run_dir, _ = audio_side_run
    names = sorted(p.name for p in (run_dir / "samples").iterdir())
    assert names == sorted(
        f"{stem}.{ext}" for stem in ("base_01", "step_000000_01", "step_000000_01_lora-audio-off",
                                     "step_000020_01", "step_000020_01_lora-audio-off")
        for ext in ("mp4", "wav")
    )
    with av.open(str(run_dir / "samples" / "step_000020_01.mp4")) as container:
        kinds = sorted(s.type for s in container.streams)
        audio = container.streams.audio[0]
        assert kinds == ["audio", "video"] and audio.sample_rate == 48000 and audio.channels == 2
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 9 and frames[0].shape == (64, 64, 3)


def test_audio_side_lora_switched_off_equals_base_and_on_changes_audio(audio_side_run):
    run_dir, _ = audio_side_run
    base, rate = _wav(run_dir / "samples" / "base_01.wav")
    off, _ = _wav(run_dir / "samples" / "step_000020_01_lora-audio-off.wav")
    on, _ = _wav(run_dir / "samples" / "step_000020_01.wav")
    assert rate == 48000 and base.shape == on.shape
    assert np.array_equal(base, off)
    assert np.abs(on - base).max() > 1e-3


def test_side_strengths_in_memory(audio_side_run):
    """Raw outputs (no encoding): audio side off is bit-identical to base, frames included."""
    _, pipe = audio_side_run
    spec = SampleSpec(prompt="ema_voice, a red square hums a low tone", width=64, height=64, num_frames=9,
                      num_inference_steps=2)
    with lora_variant(pipe, "base"):
        base = generate(pipe, spec)
    with lora_variant(pipe, "lora", audio_strength=0.0):
        off = generate(pipe, spec)
    with lora_variant(pipe, "lora", audio_strength=0.5):
        half = generate(pipe, spec)
    with lora_variant(pipe, "lora"):
        full = generate(pipe, spec)
    assert np.array_equal(base.audio, off.audio) and np.array_equal(base.frames, off.frames)
    d_half, d_full = np.abs(half.audio - base.audio).mean(), np.abs(full.audio - base.audio).mean()
    assert 0 < d_half < d_full


def test_validate_cli_loads_the_checkpoint_file_into_a_fresh_pipeline(audio_side_run, engine_data_dir, capsys):
    run_dir, _ = audio_side_run
    base_before = _wav(run_dir / "samples" / "base_01.wav")[0]
    step_file = run_dir / "samples" / "step_000020_01.wav"
    trained = _wav(step_file)[0]
    step_file.unlink()
    code = avlora(["validate", str(run_dir), "--data-dir", str(engine_data_dir), "--json",
                   "--variants", "lora,lora-audio-off", "--device", "cpu"])
    assert code == 0
    again = _wav(step_file)[0]
    # bf16 file vs float32 in-memory LoRA: close, not bit-equal; audio-off still equals base exactly
    assert np.abs(again - trained).max() < 0.05
    assert np.array_equal(_wav(run_dir / "samples" / "step_000020_01_lora-audio-off.wav")[0], base_before)


def test_validate_cli_errors(tmp_path, engine_data_dir, capsys, audio_side_run):
    assert avlora(["validate", str(tmp_path), "--data-dir", str(engine_data_dir)]) == 2
    assert "training_config.yaml is missing" in capsys.readouterr().err
    run_dir, _ = audio_side_run
    assert avlora(["validate", str(run_dir), "--step", "7", "--data-dir", str(engine_data_dir)]) == 2
    assert "No checkpoint at step 7" in capsys.readouterr().err


def test_validate_cli_samples_the_v2a_variants_from_the_run_cache(audio_side_run, engine_data_dir):
    """The resume path (a checkpoint's v2a samples cut short) reads the clips from the run's cache."""
    run_dir, _ = audio_side_run
    code = avlora(["validate", str(run_dir), "--data-dir", str(engine_data_dir), "--json",
                   "--variants", "v2a-lora", "--device", "cpu"])
    assert code == 0
    audio, rate = _wav(run_dir / "samples" / "step_000020_v2a_01.wav")
    assert rate == 48000 and audio.shape[1] == 2 and np.abs(audio).max() > 0
    with av.open(str(run_dir / "samples" / "step_000020_v2a_01.mp4")) as container:
        assert len([f for f in container.decode(video=0)]) == 9  # the clip's own 9 frames
    for name in ("step_000020_v2a_01.mp4", "step_000020_v2a_01.wav"):
        (run_dir / "samples" / name).unlink()  # the module's other tests list the folder
