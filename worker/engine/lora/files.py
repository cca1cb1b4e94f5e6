"""LoRA weights in memory and on disk, in the official (ComfyUI / ltx-trainer) and diffusers layouts.

In memory a LoRA is a :class:`LoraWeights`: PEFT's tensors under diffusers module names
(``transformer_blocks.0.attn1.to_k.lora_A.weight``), plus rank and alpha (PEFT scales
``B @ A`` by ``alpha / rank``).

On disk:

- official layout (``save_official``): ``diffusion_model.<ltx-core name>.lora_A.weight`` /
  ``lora_B``, bf16, no ``.alpha`` keys and ``alpha / rank`` folded into ``lora_B``, so loaders that
  apply ``strength * B @ A`` (ComfyUI, diffusers' ``load_lora_weights`` which assumes
  alpha == rank without alpha keys) get the trained strength;
- diffusers layout (``save_diffusers``): ``transformer.<diffusers name>.lora_A.weight``, rank and
  alpha in the ``lora_adapter_metadata`` header that ``load_lora_weights`` reads as the PEFT config.

Both carry ``avlora_tensor_sha256`` in their header: a digest of every tensor, so a file whose
values changed after export is caught by ``verify-lora``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from core.disk import ensure_free, payload_bytes
from core.files import atomic_write
from worker.engine.lora.names import (
    DIFFUSERS_CONNECTORS_PREFIX,
    DIFFUSERS_TRANSFORMER_PREFIX,
    OFFICIAL_PREFIX,
    connector_module_to_diffusers,
    connector_module_to_official,
    is_official_connector_name,
    transformer_module_to_diffusers,
    transformer_module_to_official,
)

LORA_METADATA_KEY = "lora_adapter_metadata"  # diffusers' header key for the PEFT config
DIGEST_METADATA_KEY = "avlora_tensor_sha256"
FORMAT_METADATA_KEY = "avlora_format"
FORMAT_OFFICIAL = "official"
FORMAT_DIFFUSERS = "diffusers"
_LORA_SUFFIXES = (".lora_A.weight", ".lora_B.weight")


@dataclass
class LoraWeights:
    """A transformer LoRA: PEFT tensors under diffusers module names, with rank and alpha."""

    tensors: dict[str, torch.Tensor]
    rank: int
    alpha: float
    extra_metadata: dict[str, str] = field(default_factory=dict)

    @property
    def scale(self) -> float:
        """PEFT's multiplier of ``B @ A``."""
        return float(self.alpha) / float(self.rank)

    def module_names(self) -> list[str]:
        """Diffusers names of the adapted modules, sorted."""
        return sorted({split_lora_key(k)[0] for k in self.tensors})


def split_lora_key(key: str) -> tuple[str, str]:
    """``a.b.lora_A.weight`` -> (``a.b``, ``lora_A.weight``). Raises on a non-LoRA key."""
    for suffix in _LORA_SUFFIXES:
        if key.endswith(suffix):
            return key[: -len(suffix)], suffix[1:]
    raise ValueError(f"{key!r} is not a LoRA key (expected it to end in .lora_A.weight or .lora_B.weight)")


def tensor_digest(state_dict: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the sorted key names, dtypes, shapes and raw bytes of every tensor."""
    digest = hashlib.sha256()
    for key in sorted(state_dict):
        tensor = state_dict[key].detach().cpu().contiguous()
        digest.update(key.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def extract_lora_weights(transformer: torch.nn.Module, adapter_name: str = "default") -> LoraWeights:
    """Copy one adapter's tensors out of a PEFT-wrapped transformer."""
    from peft.utils import get_peft_model_state_dict

    config = transformer.peft_config[adapter_name]
    state = get_peft_model_state_dict(transformer, adapter_name=adapter_name)
    tensors = {k: v.detach().to("cpu", copy=True) for k, v in state.items()}
    if not tensors:
        raise ValueError(f"The transformer has no LoRA tensors for adapter {adapter_name!r}.")
    return LoraWeights(tensors=tensors, rank=int(config.r), alpha=float(config.lora_alpha))


def official_state_dict(weights: LoraWeights, dtype: torch.dtype = torch.bfloat16) -> dict[str, torch.Tensor]:
    """Official / ComfyUI keys with ``alpha / rank`` folded into every ``lora_B``."""
    out: dict[str, torch.Tensor] = {}
    for key, tensor in weights.tensors.items():
        module, suffix = split_lora_key(key)
        if module.startswith(DIFFUSERS_CONNECTORS_PREFIX):
            official = connector_module_to_official(module.removeprefix(DIFFUSERS_CONNECTORS_PREFIX))
            if not official.startswith("text_embedding_projection."):
                official = OFFICIAL_PREFIX + official
        else:
            official = OFFICIAL_PREFIX + transformer_module_to_official(module)
        value = tensor.float() * weights.scale if suffix.startswith("lora_B") else tensor.float()
        out[f"{official}.{suffix}"] = value.to(dtype).contiguous()
    return out


def diffusers_state_dict(weights: LoraWeights, dtype: torch.dtype = torch.bfloat16) -> dict[str, torch.Tensor]:
    """diffusers pipeline keys (``transformer.`` prefix), values unscaled."""
    out = {}
    for key, tensor in weights.tensors.items():
        prefixed = key if key.startswith(DIFFUSERS_CONNECTORS_PREFIX) else DIFFUSERS_TRANSFORMER_PREFIX + key
        out[prefixed] = tensor.to(dtype).contiguous()
    return out


def _peft_metadata(weights: LoraWeights) -> dict:
    return {
        "r": weights.rank,
        "lora_alpha": weights.alpha,
        "target_modules": [m for m in weights.module_names() if not m.startswith(DIFFUSERS_CONNECTORS_PREFIX)],
        "lora_dropout": 0.0,
        "bias": "none",
    }


def _write_safetensors(path: str | Path, state: dict[str, torch.Tensor], metadata: dict[str, str]) -> Path:
    """Checked for room first; on a full disk :class:`core.errors.DiskFull`, never a half file."""
    ensure_free(Path(path).parent, payload_bytes(state))
    return atomic_write(path, lambda tmp: save_file(state, str(tmp), metadata=metadata))


def save_official(weights: LoraWeights, path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """Write the official / ComfyUI layout atomically. Returns the path."""
    state = official_state_dict(weights)
    header = {"format": "pt", FORMAT_METADATA_KEY: FORMAT_OFFICIAL, **weights.extra_metadata, **(metadata or {})}
    header["avlora_rank"] = str(weights.rank)
    header["avlora_alpha_folded"] = str(weights.alpha)
    header[DIGEST_METADATA_KEY] = tensor_digest(state)
    return _write_safetensors(path, state, header)


def save_diffusers(weights: LoraWeights, path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """Write the diffusers layout (``transformer.`` prefix, PEFT config in the header) atomically."""
    state = diffusers_state_dict(weights)
    peft_meta = {f"transformer.{k}": v for k, v in _peft_metadata(weights).items()}
    header = {"format": "pt", FORMAT_METADATA_KEY: FORMAT_DIFFUSERS, **weights.extra_metadata, **(metadata or {})}
    header[LORA_METADATA_KEY] = json.dumps(peft_meta, sort_keys=True)
    header[DIGEST_METADATA_KEY] = tensor_digest(state)
    return _write_safetensors(path, state, header)


def read_lora_file(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """All tensors and the header metadata of a ``.safetensors`` LoRA file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"LoRA file not found: {path}")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = dict(handle.metadata() or {})
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 - safe_open is not iterable
    except Exception as exc:  # safetensors raises its own error types for a corrupt header
        raise ValueError(f"{path} is not a readable .safetensors file: {exc}") from exc
    return tensors, metadata


def detect_layout(keys: list[str]) -> str:
    """``official`` if any key starts with ``diffusion_model.``, ``diffusers`` if any starts with
    ``transformer.`` or ``connectors.``, else ``unknown``."""
    if any(k.startswith(OFFICIAL_PREFIX) for k in keys):
        return FORMAT_OFFICIAL
    if any(k.startswith((DIFFUSERS_TRANSFORMER_PREFIX, DIFFUSERS_CONNECTORS_PREFIX)) for k in keys):
        return FORMAT_DIFFUSERS
    return "unknown"


def expected_diffusers_module(key: str) -> str | None:
    """Where a LoRA file key should land in an ``LTX2Pipeline``, as ``component.module``.

    Returns e.g. ``transformer.transformer_blocks.0.attn1.to_k`` or
    ``connectors.video_connector.transformer_blocks.0.attn1.to_q``; None for a key with a prefix
    no LTX-2 loader knows (such a key cannot load anywhere).
    """
    try:
        module, _ = split_lora_key(key)
    except ValueError:
        return None
    if module.startswith((DIFFUSERS_TRANSFORMER_PREFIX, DIFFUSERS_CONNECTORS_PREFIX)):
        return module
    if module.startswith("text_embedding_projection."):
        return DIFFUSERS_CONNECTORS_PREFIX + connector_module_to_diffusers(module)
    if module.startswith(OFFICIAL_PREFIX):
        name = module.removeprefix(OFFICIAL_PREFIX)
        if is_official_connector_name(name):
            return DIFFUSERS_CONNECTORS_PREFIX + connector_module_to_diffusers(name)
        return DIFFUSERS_TRANSFORMER_PREFIX + transformer_module_to_diffusers(name)
    return None


def load_lora_weights_file(path: str | Path) -> LoraWeights:
    """Read one of our files (either layout) back into :class:`LoraWeights`.

    Official files have alpha folded into ``lora_B``: they come back with alpha == rank.
    """
    tensors, metadata = read_lora_file(path)
    layout = detect_layout(list(tensors))
    out: dict[str, torch.Tensor] = {}
    for key, tensor in tensors.items():
        target = expected_diffusers_module(key)
        if target is None:
            raise ValueError(f"{path}: key {key!r} has no LTX-2 module name this loader knows.")
        _, suffix = split_lora_key(key)
        name = target.removeprefix(DIFFUSERS_TRANSFORMER_PREFIX)
        out[f"{name}.{suffix}"] = tensor
    ranks = {t.shape[0] for k, t in out.items() if k.endswith("lora_A.weight")}
    if len(ranks) != 1:
        raise ValueError(f"{path}: expected one LoRA rank, found {sorted(ranks)}")
    rank = ranks.pop()
    alpha = float(rank)
    if layout == FORMAT_DIFFUSERS and LORA_METADATA_KEY in metadata:
        peft_meta = json.loads(metadata[LORA_METADATA_KEY])
        alpha = float(peft_meta.get("transformer.lora_alpha", rank))
    return LoraWeights(tensors=out, rank=rank, alpha=alpha)
