"""Create the toy pipelines on first use and keep them under ``<data_dir>/models/<preset>/``.

The toy is saved in the diffusers layout with ``save_pretrained`` and loaded back with
``from_pretrained`` like real weights. It is written to a temporary directory and renamed into
place, so a crash never leaves half a model; a ``toy_build.json`` marker records which build of
the toy architecture the directory holds, and an outdated one is replaced.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from core.model_files import is_diffusers_dir
from core.presets import PresetInfo, toy_dir

# Bump when worker/engine/model/toy.py changes the architecture or the weights it produces.
TOY_BUILD = 2  # 2: toy-2.5 has the prompt AdaLN and the keyframe embedding (issue 15)
MARKER = "toy_build.json"


def _is_current(path: Path, info: PresetInfo) -> bool:
    marker = path / MARKER
    if not (is_diffusers_dir(path) and marker.is_file()):
        return False
    try:
        data = json.loads(marker.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return data == {"preset": info.name, "version": info.version, "build": TOY_BUILD}


def ensure_toy_saved(info: PresetInfo, data_dir: Path) -> Path:
    """The toy's diffusers directory, building and saving it first if absent or outdated."""
    target = toy_dir(info, data_dir)
    if _is_current(target, info):
        return target
    import torch

    from worker.engine.model.toy import build_toy_pipeline

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{info.name}-", dir=target.parent))
    try:
        with torch.random.fork_rng(devices=[]):
            pipe = build_toy_pipeline(info.version)
        pipe.save_pretrained(str(staging), safe_serialization=True)
        (staging / MARKER).write_text(
            json.dumps({"preset": info.name, "version": info.version, "build": TOY_BUILD})
        )
        if target.exists() and not _is_current(target, info):
            outdated = target.with_name(f".{info.name}-outdated-{os.getpid()}")
            os.rename(target, outdated)
            shutil.rmtree(outdated, ignore_errors=True)
        try:
            os.rename(staging, target)
        except OSError:
            # Another process saved the same toy first; keep theirs if it is complete.
            if not _is_current(target, info):
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target
