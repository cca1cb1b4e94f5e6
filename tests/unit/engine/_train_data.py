"""Test support for the training tests (not collected): a tiny preprocessed clip and run configs."""

from __future__ import annotations

import json
from pathlib import Path

from tests.unit.engine.conftest import write_clip

TRIGGER = "ema_voice"
BUCKET = "64x64x9"


def build_precomputed(root: Path, data_dir: Path, pipeline, *, preset: str = "toy") -> Path:
    """Write one 9-frame 64x64 clip with a stereo tone, preprocess it with the toy model, and
    return the ``.precomputed`` folder (the real preprocessing path, nothing hand-made)."""
    from worker.engine.data.preprocess import preprocess_dataset

    write_clip(root / "clips" / "a.mp4", frames=9, width=64, height=64, audio="stereo", tone_hz=330.0)
    metadata = root / "dataset.jsonl"
    caption = f"{TRIGGER}, a red square hums a low tone"
    metadata.write_text(json.dumps({"caption": caption, "media_path": "clips/a.mp4"}) + "\n")
    result = preprocess_dataset(
        metadata, out_dir=root, preset=preset, buckets=BUCKET, trigger=TRIGGER, data_dir=data_dir, pipeline=pipeline
    )
    assert result.ok, result
    return root / ".precomputed"


def run_config(output_dir: Path, precomputed: Path, *, model: str = "toy", **sections):
    """A toy run config: tiny validation, no first-frame conditioning unless asked."""
    from core.recipe.run_config import preset_config

    base = {
        "lora": {"rank": 4, "alpha": 4},
        "optimization": {"steps": 10, "learning_rate": 1e-3, "gradient_checkpointing": False},
        "training": {"first_frame_conditioning_p": 0.0},
        "data": {"preprocessed_dir": str(precomputed), "buckets": BUCKET, "trigger": TRIGGER},
        "checkpoints": {"interval": 5},
        "validation": {
            "video_dims": (64, 64, 9),
            "inference_steps": 2,
            "prompts": ["{trigger}, a red square hums a low tone"],
            "variants": ["lora"],
            "at_checkpoints": False,
        },
    }
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values}
    return preset_config("sanity", model=model, output_dir=str(output_dir), **base)
