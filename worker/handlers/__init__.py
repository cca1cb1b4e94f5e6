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
