"""LTX-2.5's weights on disk, and the LTX generation a file or folder holds (pure Python, no torch).

LTX-2.5 is published one file per component (README of Lightricks/LTX-2, "Full Model List"),
in the folders of the Hugging Face repository ``Lightricks/LTX-2.5``: the transformer under
``diffusion_models/``, the Gemma 4 text encoder with its text projection packed in one file under
``text_encoders/``, the video and audio VAEs under ``vae/``. Each file is looked for in its
folder and, for a flat download, directly in MODEL_DIR.

The generation is read from the files, never guessed from a name: a diffusers pipeline's
``model_index.json`` (its text encoder class) and ``transformer/config.json``; an official
checkpoint's safetensors header (its ``model_version`` / ``config`` metadata, else its tensor names).
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

# (component, folder in Lightricks/LTX-2.5, accepted file names: the first is the one to name).
# The transformer's names are the preset's ``single_file_names``.
SPLIT_FILES_25: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("text_encoder", "text_encoders", ("gemma4-12b-with-proj-ltx-2.5-bf16.safetensors",)),
    ("vae", "vae", ("ltx-2.5-video-vae-conv-bf16.safetensors", "ltx-2.5-video-vae-bf16.safetensors")),
    ("audio_vae", "vae", ("ltx-2.5-audio-vae-bf16.safetensors",)),
)
TRANSFORMER_FOLDER_25 = "diffusion_models"
MAX_HEADER_BYTES = 100 * 1024 * 1024


def find_file(model_dir: Path, folder: str, names: tuple[str, ...]) -> Path | None:
    """The first of ``names`` found in ``model_dir/folder`` or ``model_dir`` itself."""
    for name in names:
        for candidate in (model_dir / folder / name, model_dir / name):
            if candidate.is_file():
                return candidate
    return None


def split_layout_lines(where: str, transformer_names: tuple[str, ...]) -> list[str]:
    """The files of the official LTX-2.5 layout, one line each, for the missing-weights message."""
    def line(folder: str, names: tuple[str, ...]) -> str:
        more = f" (or {', '.join(names[1:])})" if len(names) > 1 else ""
        return f"       {where}/{folder}/{names[0]}{more}"

    rows = [line(TRANSFORMER_FOLDER_25, transformer_names)]
    rows += [line(folder, names) for _, folder, names in SPLIT_FILES_25]
    return rows


def read_safetensors_header(path: Path) -> dict:
    """The JSON header of a safetensors file (tensor names, and ``__metadata__``), read without torch."""
    with Path(path).open("rb") as handle:
        raw = handle.read(8)
        if len(raw) < 8:
            return {}
        (size,) = struct.unpack("<Q", raw)
        if size > MAX_HEADER_BYTES:
            return {}
        try:
            return json.loads(handle.read(size))
        except (json.JSONDecodeError, UnicodeDecodeError):
            return {}


def version_from_metadata(metadata: dict) -> str | None:
    """The LTX generation an official checkpoint's metadata declares, or ``None`` when it says nothing.

    ``model_version`` ("2.5.0" -> "2.5") first; else what only LTX-2.5 files declare: a
    ``gemma_source_checkpoint`` (the Gemma 4 its text encoder was fine-tuned from; ltx-core
    ``encoder_configurator._check_gemma_version``: "LTX 2.5 / gemma4") or ``ff_bias`` false in the
    transformer ``config`` ("LTX 2.5 (gemma4) sets ff_bias=false", ltx-core's configurator). The
    prompt AdaLN is no marker: 2.5 keeps it, as 2.3.
    """
    declared = str(metadata.get("model_version") or "")
    if declared:  # "2.5.0", "2.3.rc1", "2.4-rc2" (ltx-pipelines reads "-" as ".")
        parts = declared.lstrip("v").replace("-", ".").split(".")
        if len(parts) >= 2 and parts[0].isdigit() and parts[1].isdigit():
            return f"{int(parts[0])}.{int(parts[1])}"
    if metadata.get("gemma_source_checkpoint"):
        return "2.5"
    config = metadata.get("config")
    if isinstance(config, str):
        try:
            config = json.loads(config)
        except json.JSONDecodeError:
            config = None
    transformer = config.get("transformer", {}) if isinstance(config, dict) else {}
    if isinstance(transformer, dict) and transformer.get("ff_bias") is False:
        return "2.5"
    return None


# What only a combined LTX-2.3 checkpoint holds (the per-modality text projection, the BWE vocoder),
# never an LTX-2.5 transformer file; prompt_adaln_single is in 2.3 and 2.5 files alike.
COMBINED_MARKERS_23 = ("video_aggregate_embed", "bwe_generator")
MARKERS_23 = ("prompt_adaln_single", *COMBINED_MARKERS_23)
# LTX-2.5's video feed-forward has no bias: its first Linear's weight is stored, its bias is not.
VIDEO_FF_WEIGHT = re.compile(r"^model\.diffusion_model\.transformer_blocks\.\d+\.ff\.net\.0\.proj\.weight$")


def has_bias_free_video_ff(keys) -> bool:
    """Whether official tensor names ``keys`` hold a video feed-forward weight without its bias (LTX-2.5)."""
    names = set(keys)
    weights = [k for k in names if VIDEO_FF_WEIGHT.match(k)]
    return bool(weights) and not any(k[: -len("weight")] + "bias" in names for k in weights)


def version_from_tensor_names(keys) -> str | None:
    """"2.5" when the video feed-forward has no bias; "2.3" when a 2.3 marker is there (prompt
    AdaLN, per-modality text projection, BWE vocoder); "2.0" for other ``model.diffusion_model.``
    tensors; else ``None``."""
    keys = [k for k in keys if k != "__metadata__"]
    if has_bias_free_video_ff(keys):
        return "2.5"
    if any(m in k for k in keys for m in MARKERS_23):
        return "2.3"
    if any(k.startswith("model.diffusion_model.") for k in keys):
        return "2.0"
    return None


def checkpoint_version(path: Path) -> str | None:
    """The LTX generation of an official checkpoint file, from its header alone."""
    header = read_safetensors_header(path)
    return version_from_metadata(header.get("__metadata__") or {}) or version_from_tensor_names(header)


def other_generation(path: Path, expected: str, known: tuple[str, ...]) -> str | None:
    """The generation of official file ``path`` when it is told and is not ``expected``, else ``None``.

    The metadata's generation counts when it is one of ``known`` (a version no preset has, "2.4"
    say, is left to the tensor names); else the tensor names'. An LTX-2.5 transformer file whose
    names hold no video feed-forward (nothing tells 2.5 from 2.3 then: both have the prompt AdaLN)
    is held only to a combined 2.3 checkpoint's markers. A file whose generation cannot be told (no
    header, no LTX tensors) is never refused.
    """
    header = read_safetensors_header(path)
    version = version_from_metadata(header.get("__metadata__") or {})
    if version not in known:
        keys = [k for k in header if k != "__metadata__"]
        if expected == "2.5" and not any(VIDEO_FF_WEIGHT.match(k) for k in keys):
            version = "2.3" if any(m in k for k in keys for m in COMBINED_MARKERS_23) else None
        else:
            version = version_from_tensor_names(keys)
    return version if version not in (None, expected) else None


def diffusers_dir_version(path: Path) -> str | None:
    """The LTX generation of a diffusers pipeline directory: 2.5 has a Gemma 4 text encoder (and a
    bias-free video feed-forward, ``ff_bias`` false); 2.3 a transformer with cross-attention
    modulation; 2.0 neither."""
    try:
        index = json.loads((path / "model_index.json").read_text())
        transformer = json.loads((path / "transformer" / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    encoder = index.get("text_encoder") or [None, None]
    if "gemma4" in str(encoder[-1]).lower() or transformer.get("ff_bias") is False:
        return "2.5"
    return "2.3" if transformer.get("cross_attn_mod") else "2.0"
