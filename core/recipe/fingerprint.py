"""The run-config fingerprint: the settings a resumed run must share with the run that wrote its
checkpoint. :func:`config_fingerprint` hashes them (the training state stores the hash) and
:func:`resume_differences` names each one that changed. Pure Python: no torch.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from core.recipe.run_config import RunConfig

# Settings a resumed run must share with the run that wrote the checkpoint: they change the
# model, the data, the loss or the optimizer state. Paths, checkpoint and sampling settings may change.
FINGERPRINT_FIELDS: tuple[str, ...] = (
    "model",
    "quantization",
    "seed",
    "lora",
    "optimization.steps",
    "optimization.batch_size",
    "optimization.gradient_accumulation_steps",
    "optimization.learning_rate",
    "optimization.optimizer",
    "optimization.weight_decay",
    "optimization.scheduler",
    "optimization.lr_end_factor",
    "optimization.warmup_steps",
    "optimization.max_grad_norm",
    "optimization.mixed_precision",
    "training",
    "data.buckets",
    "data.trigger",
)

GLOBAL_BATCH = "the global batch (optimization.batch_size x optimization.num_processes)"


def fingerprint_payload(config: RunConfig) -> dict[str, Any]:
    """The settings the fingerprint covers, by dotted name."""
    data = config.model_dump(mode="json")
    payload: dict[str, Any] = {}
    for dotted in FINGERPRINT_FIELDS:
        value: Any = data
        for part in dotted.split("."):
            value = value[part]
        payload[dotted] = value
    # the global batch, whatever the number of processes: a run resumes on another count with the same data
    payload["optimization.batch_size"] = config.optimization.batch_size * config.optimization.num_processes
    # the training-mode settings at their defaults hash as before they existed: older checkpoints resume
    training = payload["training"]
    for name, default in (("mode", "audio_video"), ("video_frozen", False)):
        if training.get(name) == default:
            training.pop(name)
    return payload


def config_fingerprint(config: RunConfig) -> str:
    """Stable hash (16 hex digits) of the settings that must match for a safe resume."""
    canonical = json.dumps(fingerprint_payload(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def resume_differences(saved: RunConfig, current: RunConfig) -> list[str]:
    """Readable lines naming each fingerprinted setting that differs (empty: safe to resume)."""
    before, after = _flatten(fingerprint_payload(saved)), _flatten(fingerprint_payload(current))
    return [
        f"{GLOBAL_BATCH if key == 'optimization.batch_size' else key}: was {before.get(key)!r}, now {after.get(key)!r}"
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key)
    ]


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat
