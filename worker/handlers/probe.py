"""probe_clip: analyse one uploaded clip on the cpu queue (filled in with the media pipeline)."""

from __future__ import annotations

from typing import Any

from worker.jobs import JobContext, JobFailed


def probe_clip(ctx: JobContext, params: dict[str, Any]) -> dict | None:
    raise JobFailed("probe_clip is not wired yet")
