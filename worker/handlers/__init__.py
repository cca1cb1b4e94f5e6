"""Job handlers by kind. Each is ``handler(ctx: JobContext, params: dict) -> dict | None``."""

from __future__ import annotations

import functools

from core.errors import DiskFull
from core.names import JobKind
from worker.handlers.key_report import key_report
from worker.handlers.preprocess import preprocess
from worker.handlers.probe import probe_clip
from worker.handlers.sample_metrics import sample_metrics
from worker.handlers.speech import split_plan, transcribe
from worker.handlers.split import split_clip
from worker.handlers.strength_samples import strength_samples
from worker.handlers.train import train
from worker.jobs import JobFailed

HANDLERS = {
    JobKind.probe_clip: probe_clip,  # cpu queue
    JobKind.preprocess: preprocess,  # gpu queue
    JobKind.train: train,  # gpu queue
    JobKind.key_report: key_report,  # cpu queue: which LoRA keys load
    JobKind.sample_metrics: sample_metrics,  # cpu queue
    JobKind.strength_samples: strength_samples,  # gpu queue: per-modality LoRA strengths on the compare page
    JobKind.transcribe: transcribe,  # cpu queue: words of clips, with their times
    JobKind.split_plan: split_plan,  # cpu queue: cut points of a long clip
    JobKind.split_clip: split_clip,  # cpu queue: cut a clip into new clips
}


def _full_disk_fails_the_job(handler):
    """A full disk ends any job with its own words as the job's error ("the disk holding DATA_DIR
    is full: N MiB free"), not as an unexpected ``DiskFull`` with its class name in front."""

    @functools.wraps(handler)
    def run(ctx, params):
        try:
            return handler(ctx, params)
        except DiskFull as exc:
            raise JobFailed(exc.message) from exc

    return run


HANDLERS = {kind: _full_disk_fails_the_job(handler) for kind, handler in HANDLERS.items()}
