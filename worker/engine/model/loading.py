"""Loading model weights from disk (never downloading them) and fingerprinting them.

Where the weights are is decided by :mod:`core.model_files` (pure Python, shared with the web).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

FULL_HASH_LIMIT = 64 * 1024 * 1024  # files up to this size are hashed whole
SAMPLE_BYTES = 1024 * 1024  # larger files: header, size and 1 MiB samples at start, middle, end


def default_device() -> str:
    """``"cuda"`` when a GPU is visible, else ``"cpu"``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def default_dtype(device: str):
    """bfloat16 on a GPU, float32 on the CPU."""
    import torch

    return torch.float32 if str(device).startswith("cpu") else torch.bfloat16


# Optional pipeline parts a training run never uses: LTX-2.5's prompt-enhancement Gemma 4 (a second
# 12B model), its processor, and the duration head (predicts a clip length from a caption).
UNUSED_OPTIONAL_COMPONENTS = ("prompt_enhancer", "processor", "duration_head")


def load_diffusers_dir(path: Path, *, dtype, with_text_encoder: bool = True):
    """``LTX2Pipeline.from_pretrained`` on a local directory, offline (audio parts in float32); the
    optional parts in ``UNUSED_OPTIONAL_COMPONENTS`` are not read even when the directory has them,
    nor the text encoder without ``with_text_encoder`` (``pipe.text_encoder`` is then ``None``)."""
    import json

    from diffusers import LTX2Pipeline

    index = json.loads((Path(path) / "model_index.json").read_text())
    skipped = {name: None for name in UNUSED_OPTIONAL_COMPONENTS if name in index}
    if not with_text_encoder:
        skipped["text_encoder"] = None
    return LTX2Pipeline.from_pretrained(str(path), dtype=component_dtypes(dtype), local_files_only=True, **skipped)


def gemma_class(path: Path):
    """The ``transformers`` class of the text encoder saved in ``path`` (its ``config.json`` names it)."""
    import json

    import transformers

    return getattr(transformers, json.loads((Path(path) / "config.json").read_text())["architectures"][0])


def load_gemma_dir(path: Path, *, dtype):
    """The Gemma text encoder saved in ``path``, offline, in eval mode."""
    return gemma_class(path).from_pretrained(str(path), dtype=dtype, local_files_only=True).eval()


def component_dtypes(dtype) -> dict:
    """Per-component dtypes: ``dtype`` for all but the audio VAE and vocoder, which stay float32.

    The official trainer encodes audio in float32 for quality; both are small (about 0.2 B
    parameters at full size) and the pipeline casts latents to the audio VAE's dtype itself.
    """
    import torch

    return {"default": dtype, "audio_vae": torch.float32, "vocoder": torch.float32}


def _file_digest(path: Path, hasher) -> None:
    size = path.stat().st_size
    hasher.update(f"{path.name}:{size}".encode())
    with path.open("rb") as handle:
        if size <= FULL_HASH_LIMIT:
            for block in iter(lambda: handle.read(1 << 20), b""):
                hasher.update(block)
            return
        # Large checkpoints: the safetensors header (names, shapes, offsets) and three samples.
        for offset in (0, size // 2, size - SAMPLE_BYTES):
            handle.seek(offset)
            hasher.update(handle.read(SAMPLE_BYTES))


def weights_fingerprint(path: Path) -> str:
    """A 16-hex-digit hash of the weights and configs at ``path`` (a file or a directory)."""
    path = Path(path)
    hasher = hashlib.sha256()
    if path.is_file():
        _file_digest(path, hasher)
    else:
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            if file.suffix not in {".safetensors", ".json", ".bin", ".model", ".txt"}:
                continue
            hasher.update(os.fsencode(file.relative_to(path)))
            _file_digest(file, hasher)
    return hasher.hexdigest()[:16]
