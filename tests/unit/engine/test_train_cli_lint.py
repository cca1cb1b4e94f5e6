"""`avlora train` is as safe as the studio's run form: the same linter, its errors refuse the run
by name unless --force."""

from __future__ import annotations

import json

import pytest

from core.recipe.run_config import run_config_to_yaml
from tests.unit.engine._train_data import build_precomputed, run_config

VIDEO_ONLY_TARGETS = ["attn1.to_k", "attn1.to_v"]  # audio_attn1 is another module: the voice never trains


def _write(tmp_path, config) -> str:
    path = tmp_path / "run.yaml"
    path.write_text(run_config_to_yaml(config))
    return str(path)


@pytest.mark.parametrize(("sections", "code"), [
    ({"lora": {"target_modules": VIDEO_ONLY_TARGETS}}, "targets_miss_audio"),
    ({"data": {"trigger": ""}}, "trigger_empty"),
])
def test_linter_errors_refuse_the_run_by_name(tmp_path, capsys, sections, code):
    from avlora.cli import main as avlora

    config = run_config(tmp_path / "run", tmp_path / "never-read", **sections)
    assert avlora(["train", _write(tmp_path, config), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert f"error: [{code}]" in err and "--force" in err
    assert not (tmp_path / "run").exists()  # nothing loaded, nothing trained


def test_force_trains_despite_linter_errors(tmp_path, capsys, engine_data_dir, toy_pipeline):
    from avlora.cli import main as avlora

    precomputed = build_precomputed(tmp_path / "dataset", engine_data_dir, toy_pipeline)
    config = run_config(tmp_path / "run", precomputed, lora={"target_modules": VIDEO_ONLY_TARGETS},
                        optimization={"steps": 2}, checkpoints={"interval": 2})
    argv = ["train", _write(tmp_path, config), "--data-dir", str(engine_data_dir), "--device", "cpu", "--json"]
    assert avlora([*argv, "--force"]) == 0
    captured = capsys.readouterr()
    events = [json.loads(line) for line in captured.out.splitlines()]
    assert [e["code"] for e in events if e["event"] == "lint" and e["severity"] == "error"] == ["targets_miss_audio"]
    assert events[-1]["event"] == "result" and events[-1]["status"] == "completed" and events[-1]["checkpoints"] == [2]
    assert "despite 1 linter error" in captured.err
