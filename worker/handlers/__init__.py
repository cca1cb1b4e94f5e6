"""Job handlers by kind. Each is ``handler(ctx: JobContext, params: dict) -> dict | None``."""

from __future__ import annotations

from worker.handlers.preprocess import preprocess
from worker.handlers.probe import probe_clip
from worker.handlers.train import train

HANDLERS = {
    "probe_clip": probe_clip,
    "preprocess": preprocess,  # gpu queue
    "train": train,  # gpu queue
}

# Comparing checkpoints (issue 5), cpu queue.
from worker.handlers.key_report import key_report  # noqa: E402
from worker.handlers.sample_metrics import sample_metrics  # noqa: E402

HANDLERS["sample_metrics"] = sample_metrics
HANDLERS["key_report"] = key_report

# Per-modality LoRA strengths on the compare page (issue 5), gpu queue.
from worker.handlers.strength_samples import strength_samples  # noqa: E402

HANDLERS["strength_samples"] = strength_samples
