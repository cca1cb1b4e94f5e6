"""``avlora bench run`` on the toy on the CPU: the whole ``avlora train`` path, timed phase by phase."""

import json

import pytest
import torch

from avlora.cli import main as avlora
from worker.engine.bench.phases import PHASES
from worker.engine.commands.bench import run_table
from worker.engine.lora.checkpoint import checkpoint_paths
from worker.engine.validate import sample_stem

# what a run's time goes to, each of which a toy run really spends time on
SPENT = ("model_load", "text_encoding", "setup", "training_steps", "checkpoint_write", "sampling_denoise",
         "vae_decode", "audio_decode", "sample_write")


@pytest.fixture
def flushed_denormals():
    """The toy's random audio decoder and vocoder produce denormal floats, which the CPU computes
    with about 50 times slower (a 7-sample run: about 70 s, against 4 s with them flushed to 0)."""
    torch.set_flush_denormal(True)
    yield
    torch.set_flush_denormal(False)


def test_bench_run_reports_every_phase_of_a_real_run_and_writes_its_files(engine_data_dir, tmp_path, capsys,
                                                                        flushed_denormals):
    out = tmp_path / "bench"
    code = avlora(["bench", "run", "--preset", "toy", "--size", "64x64x9", "--steps", "2", "--checkpoints", "2",
                   "--inference-steps", "2", "--prompts", "1", "--clips", "2", "--device", "cpu",
                   "--data-dir", str(engine_data_dir), "--out", str(out), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result = json.loads(captured.out)
    phases = result["phases"]
    assert list(phases)[: len(PHASES)] == list(PHASES)
    assert all(seconds >= 0 for seconds in phases.values()), phases
    assert all(phases[name] > 0 for name in SPENT), phases
    assert sum(phases.values()) == pytest.approx(result["total_s"], rel=0.01, abs=0.05)
    assert result["status"] == "completed" and result["checkpoint_steps"] == [1, 2]
    assert [write["step"] for write in result["checkpoints"]] == [1, 2]
    assert result["steps_detail"]["count"] == 2
    # the sanity preset's rounds: LoRA on and off at step 0, the LoRA variants at each checkpoint
    assert [(r["step"], r["samples"]) for r in result["rounds"]] == [(0, 3), (1, 2), (2, 2)]
    assert all(row["seconds"] > 0 for r in result["rounds"] for row in r["sample_rows"])

    run = out / "run"
    for step in (1, 2):
        paths = checkpoint_paths(run, step)
        assert paths.official.is_file() and paths.diffusers.is_file() and paths.state.is_file()
    rounds = {0: ["lora", "base", "lora-audio-off"], 1: ["lora", "lora-audio-off"], 2: ["lora", "lora-audio-off"]}
    expected = {f"{sample_stem(step, 0, variant)}.{ext}"
                for step, variants in rounds.items() for variant in variants for ext in ("mp4", "wav")}
    assert {path.name for path in (run / "samples").iterdir()} == expected
    assert set(result["files"]["samples"]) == expected

    table = run_table(result)
    assert all(label in table for label in PHASES.values()) and "total" in table


def test_bench_run_refuses_more_checkpoints_than_steps(engine_data_dir, tmp_path, capsys):
    code = avlora(["bench", "run", "--preset", "toy", "--size", "64x64x9", "--steps", "2", "--checkpoints", "3",
                   "--device", "cpu", "--data-dir", str(engine_data_dir), "--out", str(tmp_path / "bench")])
    assert code == 2
    assert "checkpoints must be between 1 and the steps (2)" in capsys.readouterr().err
