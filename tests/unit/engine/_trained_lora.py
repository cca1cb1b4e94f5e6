"""Test support (not collected): a real toy LoRA checkpoint, trained for two steps on one clip."""

from __future__ import annotations

from pathlib import Path

from tests.unit.engine._train_data import build_precomputed, run_config


def train_toy_checkpoint(root: Path, data_dir: Path) -> dict[str, Path]:
    """Preprocess one generated clip and train the toy model for 2 steps (default targets, which
    reach every attention family); returns the step-2 checkpoint's ``official`` and ``diffusers`` files."""
    import torch

    from worker.engine.lora.checkpoint import checkpoint_paths
    from worker.engine.model.pipelines import load_pipeline
    from worker.engine.train import train_run

    def fresh():
        return load_pipeline("toy", data_dir=data_dir, device="cpu", dtype=torch.float32)

    precomputed = build_precomputed(root / "dataset", data_dir, fresh())
    config = run_config(root / "run", precomputed, optimization={"steps": 2, "learning_rate": 1e-2},
                        checkpoints={"interval": 2})
    result = train_run(config, data_dir=data_dir, pipeline=fresh())
    assert result.status == "completed" and result.checkpoints == [2], result
    paths = checkpoint_paths(root / "run", 2)
    return {"official": paths.official, "diffusers": paths.diffusers}
