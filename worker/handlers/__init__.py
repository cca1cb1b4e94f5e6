"""Job handlers by kind. Each is ``handler(ctx: JobContext, params: dict) -> dict | None``."""

from __future__ import annotations

from worker.handlers.probe import probe_clip

HANDLERS = {
    "probe_clip": probe_clip,
}
