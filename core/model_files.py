"""A real model's weights on disk, found without loading them (pure Python, no torch).

MODEL_DIR holds either a diffusers-format pipeline directory or the official weights: for LTX-2.3 /
LTX-2 the single-file checkpoint with a Gemma-3 directory beside it, for LTX-2.5 one file per
component (``core.model_files_25``). A diffusers directory or an official checkpoint (the 2.5
transformer file included) of another LTX generation than the preset's is reported, not loaded:
the generation is read from the file's header (``core.model_files_25.other_generation``), so the
web refuses the job before it is queued. ``resolve_real_model`` says which, or raises
``ModelFilesMissing`` listing exactly what to put where. The web's preflight and the engine's
loader both use it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from core.model_files_25 import (
    SPLIT_FILES_25,
    TRANSFORMER_FOLDER_25,
    diffusers_dir_version,
    find_file,
    other_generation,
    split_layout_lines,
)
from core.presets import PRESETS, PresetInfo

PIPELINE_COMPONENTS = (
    "transformer",
    "vae",
    "audio_vae",
    "connectors",
    "vocoder",
    "text_encoder",
    "tokenizer",
    "scheduler",
)
GEMMA_DIR_HINT = "gemma-3-12b-it"


class ModelFilesMissing(FileNotFoundError):
    """The weights for a preset are not on disk; the message lists which files to put where."""


@dataclass(frozen=True)
class RealModelLocation:
    """Where a real preset's weights are: ``kind`` is ``"diffusers"`` or ``"single_file"``.

    For a single file, ``path`` is the checkpoint and ``gemma_dir`` the text encoder directory.
    ``"split"`` (LTX-2.5's one file per component): ``path`` is the transformer file and ``files``
    names every component's file, the transformer's included.
    """

    kind: str
    path: Path
    gemma_dir: Path | None = None
    files: tuple[tuple[str, Path], ...] = ()



def is_diffusers_dir(path: Path) -> bool:
    """True when ``path`` holds ``model_index.json`` and a folder for every pipeline component."""
    return (path / "model_index.json").is_file() and all((path / c).is_dir() for c in PIPELINE_COMPONENTS)


def find_gemma_dir(model_dir: Path) -> Path | None:
    """A Gemma-3 directory inside ``model_dir`` (a ``config.json`` of model_type gemma3 and a tokenizer)."""
    candidates = [model_dir / GEMMA_DIR_HINT, model_dir / "text_encoder"]
    candidates += sorted(p for p in model_dir.iterdir() if p.is_dir()) if model_dir.is_dir() else []
    for candidate in candidates:
        config = candidate / "config.json"
        if not config.is_file():
            continue
        try:
            model_type = json.loads(config.read_text()).get("model_type", "")
        except (OSError, json.JSONDecodeError):
            continue
        has_tokenizer = (candidate / "tokenizer.json").is_file() or (candidate / "tokenizer.model").is_file()
        if model_type.startswith("gemma3") and has_tokenizer:
            return candidate
    return None


def missing_files_message(info: PresetInfo, model_dir: Path | None, found: str = "") -> str:
    """The person-readable list of files ``info`` needs in MODEL_DIR."""
    where = str(model_dir) if model_dir else "MODEL_DIR"
    place = where if model_dir else "MODEL_DIR (none is set: set AVLORA_MODEL_DIR or pass --model-dir)"
    lines = [
        f"Model weights for preset {info.name!r} (LTX-{info.version}) are not in {place}. "
        "Nothing is downloaded; put one of these layouts there:",
        f"  A) a diffusers-format pipeline: {where}/model_index.json and the folders "
        + ", ".join(f"{c}/" for c in PIPELINE_COMPONENTS),
    ]
    if info.version == "2.5":
        lines.append("  B) the official LTX-2.5 files (Lightricks/LTX-2.5), each in its folder or directly in "
                     f"{where}:")
        lines += split_layout_lines(where, info.single_file_names)
    else:
        lines.append(
            f"  B) the official checkpoint {where}/{info.single_file_names[0]}"
            + (f" (or {', '.join(info.single_file_names[1:])})" if len(info.single_file_names) > 1 else "")
            + f" and the Gemma-3-12B text encoder directory {where}/{GEMMA_DIR_HINT}/ "
            "(config.json, tokenizer.json or tokenizer.model, model*.safetensors)"
        )
    if found:
        lines.append(f"Found: {found}")
    return "\n".join(lines)


def resolve_real_model(info: PresetInfo, model_dir: Path | None) -> RealModelLocation:
    """Locate ``info``'s weights in ``model_dir``; raise ``ModelFilesMissing`` when incomplete."""
    if model_dir is None:
        raise ModelFilesMissing(missing_files_message(info, None))
    model_dir = Path(model_dir)
    found: list[str] = []
    if is_diffusers_dir(model_dir):
        version = diffusers_dir_version(model_dir)
        if version in (None, info.version):
            return RealModelLocation("diffusers", model_dir)
        found.append(f"a diffusers-format LTX-{version} pipeline (preset {_preset_of(version)!r}), "
                     f"not LTX-{info.version}")
    elif (model_dir / "model_index.json").is_file():
        absent = [c for c in PIPELINE_COMPONENTS if not (model_dir / c).is_dir()]
        found.append("model_index.json without the folders " + ", ".join(absent))
    if info.version == "2.5":
        return _resolve_split_25(info, model_dir, found)
    checkpoints = [(model_dir / n, _another_generation(info, model_dir / n))
                   for n in info.single_file_names if (model_dir / n).is_file()]
    found += [refused for _, refused in checkpoints if refused]
    checkpoint = next((path for path, refused in checkpoints if not refused), None)
    if checkpoint is not None:
        gemma = find_gemma_dir(model_dir)
        if gemma is not None:
            return RealModelLocation("single_file", checkpoint, gemma)
        found.append(f"{checkpoint.name} but no Gemma-3 directory")
    raise ModelFilesMissing(missing_files_message(info, model_dir, "; ".join(found)))


def _preset_of(version: str) -> str:
    """The real preset that loads LTX generation ``version`` (the version itself when none does)."""
    return next((p.name for p in PRESETS.values() if not p.is_toy and p.version == version), version)


def _another_generation(info: PresetInfo, checkpoint: Path) -> str:
    """What to say when official file ``checkpoint`` is of another LTX generation than ``info``'s, else ""."""
    known = tuple(sorted({p.version for p in PRESETS.values()}))
    version = other_generation(checkpoint, info.version, known)
    if version is None:
        return ""
    return (f"{checkpoint.name} is an LTX-{version} checkpoint (preset {_preset_of(version)!r}), "
            f"not LTX-{info.version}")


def _resolve_split_25(info: PresetInfo, model_dir: Path, found: list[str]) -> RealModelLocation:
    """LTX-2.5's official files: all present, or ``ModelFilesMissing`` naming the ones found."""
    parts = [("transformer", find_file(model_dir, TRANSFORMER_FOLDER_25, info.single_file_names))]
    parts += [(component, find_file(model_dir, folder, names)) for component, folder, names in SPLIT_FILES_25]
    present = [(component, path) for component, path in parts if path is not None]
    refused = _another_generation(info, parts[0][1]) if parts[0][1] is not None else ""
    if refused:
        found.append(refused)
    elif len(present) == len(parts):
        return RealModelLocation("split", present[0][1], files=tuple(present))
    missing = [component for component, path in parts if path is None]
    if present and missing:
        found.append(", ".join(p.name for _, p in present) + f" but no {', '.join(missing)} file")
    raise ModelFilesMissing(missing_files_message(info, model_dir, "; ".join(found)))
