"""`avlora train` refuses a `.precomputed` cache made for another model (its latents and caption
features come from that model's VAEs and text encoder): toy never trains on a toy-2.5 cache nor
toy-2.5 on a toy one, named in a clear message, before any weights load."""

from __future__ import annotations

import pytest
import torch

from core.recipe.run_config import run_config_to_yaml
from tests.unit.engine._train_data import build_precomputed, run_config


@pytest.fixture(scope="module")
def caches(tmp_path_factory, engine_data_dir, toy_pipeline):
    """One clip preprocessed by the toy (LTX-2.3) and by toy-2.5, each into its own folder."""
    from worker.engine.model.pipelines import load_pipeline

    root = tmp_path_factory.mktemp("caches")
    toy25 = load_pipeline("toy-2.5", data_dir=engine_data_dir, device="cpu", dtype=torch.float32)
    return {"toy": build_precomputed(root / "toy", engine_data_dir, toy_pipeline, preset="toy"),
            "toy-2.5": build_precomputed(root / "toy25", engine_data_dir, toy25, preset="toy-2.5")}


@pytest.mark.parametrize(("made_with", "trains"), [("toy", "toy-2.5"), ("toy-2.5", "toy")])
def test_a_cache_of_another_model_is_refused_by_name(tmp_path, capsys, engine_data_dir, caches, made_with, trains):
    from avlora.cli import main as avlora

    config = run_config(tmp_path / "run", caches[made_with], model=trains, optimization={"steps": 2})
    path = tmp_path / "run.yaml"
    path.write_text(run_config_to_yaml(config))
    status = avlora(["train", str(path), "--data-dir", str(engine_data_dir), "--device", "cpu", "--force"])
    err = capsys.readouterr().err
    assert status == 2, err
    assert f"was made for model '{made_with}', but the config trains '{trains}'" in err
    assert f"model: {made_with}" in err and f"--preset {trains}" in err
    assert not (tmp_path / "run" / "checkpoints").exists()  # nothing trained


def test_the_cache_model_is_read_from_its_preprocess_report(caches, tmp_path):
    from worker.engine.data.dataset import cache_preset, check_cache_model

    assert cache_preset(caches["toy"]) == "toy" and cache_preset(caches["toy-2.5"].parent) == "toy-2.5"
    check_cache_model(caches["toy-2.5"], "toy-2.5")  # its own model trains
    foreign = tmp_path / ".precomputed" / "latents"  # a cache from another tool: no report, nothing to check
    foreign.mkdir(parents=True)
    assert cache_preset(tmp_path) is None
    check_cache_model(tmp_path, "ltx-2.5")
